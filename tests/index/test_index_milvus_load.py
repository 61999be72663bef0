"""Loading a collection another process is still creating waits for its index (no server needed)."""

from __future__ import annotations

import pytest
from pymilvus.exceptions import MilvusException

from facesearch.errors import IndexUnavailable
from facesearch.index import milvus
from facesearch.index.milvus import MilvusIndex


class FlakyClient:
    def __init__(self, failures: int, message: str = "index not found[collection=x_meta]") -> None:
        self.failures, self.message, self.calls = failures, message, 0

    def load_collection(self, name: str) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise MilvusException(code=700, message=self.message)


def _index(client: FlakyClient) -> MilvusIndex:
    index = MilvusIndex.__new__(MilvusIndex)  # no server: only the load helper is exercised
    index._client = client  # type: ignore[assignment]
    return index


def test_a_collection_whose_index_is_still_being_created_is_loaded_once_it_exists() -> None:
    client = FlakyClient(failures=2)
    _index(client)._load("x_meta")
    assert client.calls == 3


def test_other_load_failures_and_a_missing_index_for_too_long_are_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(IndexUnavailable):
        _index(FlakyClient(failures=1, message="collection not found"))._load("x")
    monkeypatch.setattr(milvus, "LOAD_WAIT_S", 0.0)
    client = FlakyClient(failures=5)
    with pytest.raises(IndexUnavailable):
        _index(client)._load("x")
    assert client.calls <= 2

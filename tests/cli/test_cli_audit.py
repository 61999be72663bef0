"""`facesearch audit`, and the command line's own key changes and deletions in the audit log."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import Result

Cli = Callable[..., Result]


def ok(cli: Cli, data: Path, *args: str | Path) -> Any:
    result = cli(*args, "--json", "--data-dir", data)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_key_changes_and_deletions_from_the_command_line_are_audited(cli: Cli, tmp_path: Path) -> None:
    coll = ok(cli, tmp_path, "collections", "create", "staff")
    key = ok(cli, tmp_path, "keys", "create", "door", "--role", "reader")
    ok(cli, tmp_path, "keys", "revoke", key["id"])
    person = ok(cli, tmp_path, "persons", "create", "-c", "staff", "--external-id", "a")
    ok(cli, tmp_path, "persons", "delete", "a", "-c", "staff", "--yes")
    entries = ok(cli, tmp_path, "audit")["entries"]
    assert [e["operation"] for e in entries] == ["create_key", "revoke_key", "delete_person"]
    assert entries[0]["summary"] == {"key_id": key["id"], "role": "reader", "collections": None}
    assert key["key"] not in json.dumps(entries)  # never the key
    assert all(
        e["method"] == "CLI" and e["client"].startswith("cli:") and e["key_id"] is None for e in entries
    )
    assert entries[2]["collection_id"] == coll["id"] and entries[2]["summary"] == {"id": person["id"]}
    assert [e["operation"] for e in ok(cli, tmp_path, "audit", "-c", "staff")["entries"]] == ["delete_person"]
    assert ok(cli, tmp_path, "audit", "--since", "2999-01-01T00:00Z")["entries"] == []
    bad = cli("audit", "--since", "yesterday", "--data-dir", tmp_path)
    assert bad.exit_code != 0 and "ISO 8601" in bad.output
    text = cli("audit", "--data-dir", tmp_path)
    assert "revoke_key" in text.output and "cli:" in text.output

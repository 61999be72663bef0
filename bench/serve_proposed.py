"""`facesearch serve` with a change proposed for src/facesearch/search.py, to measure what it is worth.

The search path looks its collections up with `Store.get_collection`, which also counts the
collection's persons and faces: ~45 ms per request at 1M faces (two COUNT(*) over SQLite indexes).
Search needs only the collection's id, name, pack and settings, which `Store.collection_info` reads
without counting (0.4 ms). This wrapper swaps `SearchMixin._collections` for that version and runs
the ordinary CLI; bench/scale.py starts it beside the unchanged server on the same data.

Usage: python bench/serve_proposed.py serve --port 8001 --data-dir DIR [...]  (the `facesearch` args)
"""

from __future__ import annotations

from collections.abc import Sequence

from facesearch.domain import Collection
from facesearch.errors import ValidationError
from facesearch.search import SearchMixin


def _collections(self: SearchMixin, refs: Sequence[str]) -> list[Collection]:
    if not refs:
        raise ValidationError("name at least one collection", field="collections")
    colls = [self.store.collection_info(r) for r in refs]  # was: self.store.get_collection(r)
    packs = {c.pack for c in colls}
    if len(packs) > 1:
        raise ValidationError(
            "collections of different model packs cannot be searched together: "
            + ", ".join(f"{c.name} ({c.pack})" for c in colls),
            field="collections",
        )
    return colls


def main() -> None:
    SearchMixin._collections = _collections  # type: ignore[method-assign]
    from facesearch.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()

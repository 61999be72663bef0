"""Run by test_recovery.py as a separate process: enrols persons and acknowledges each.

Usage: python bulk_enrol_worker.py DATA_DIR COUNT SNAPSHOT_AFTER
Prints "ACK <external_id>" after each create_person call has returned (committed).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from facesearch.config import Settings  # noqa: E402
from facesearch.errors import NotFound  # noqa: E402
from facesearch.service import FaceSearch  # noqa: E402
from fakes import fake_pack, person_photo  # noqa: E402


def colour(i: int) -> tuple[int, int]:
    """A distinct fake identity per index."""
    return (i % 250) + 1, (i // 250) + 1


def main() -> None:
    data_dir, count, snapshot_after = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    svc = FaceSearch(Settings(data_dir=data_dir, default_pack="fake"), packs={"fake": fake_pack()})
    try:
        svc.get_collection("bulk")
    except NotFound:
        svc.create_collection("bulk")
    for i in range(count):
        svc.create_person("bulk", external_id=f"p{i}", images=[person_photo(*colour(i))])
        print(f"ACK p{i}", flush=True)
        if i + 1 == snapshot_after:
            svc.follower.save_snapshot()


if __name__ == "__main__":
    main()

"""Run by the API tests as a separate process: the real uvicorn server over the FAKE pack.

Usage: python fake_server.py DATA_DIR PORT
Prints "ADMIN_KEY <key>" once the app is built, then serves until SIGTERM.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn  # noqa: E402

from facesearch.api.app import create_app  # noqa: E402
from facesearch.config import Settings  # noqa: E402
from facesearch.service import FaceSearch  # noqa: E402
from fakes import fake_pack  # noqa: E402


def main() -> None:
    data_dir, port = Path(sys.argv[1]), int(sys.argv[2])
    service = FaceSearch(
        Settings(data_dir=data_dir, default_pack="fake", workers=0), packs={"fake": fake_pack()}
    )
    app = create_app(service=service)
    _, key = service.store.create_api_key("concurrency test", "admin")
    print(f"ADMIN_KEY {key}", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()

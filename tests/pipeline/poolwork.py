"""Work functions for the worker-pool tests: run inside spawned worker processes."""

from __future__ import annotations

import os
import time
from typing import Any


def echo_pid(request: Any) -> int:
    """The worker's pid; b"poison" kills the worker every time, b"slow" takes 3 seconds."""
    if request.data == b"poison":
        os._exit(1)
    if request.data == b"slow":
        time.sleep(3)
    return os.getpid()


def cores_seen(request: Any) -> int:
    """The cores the request was handed; b"slow" takes 1 second first."""
    if request.data == b"slow":
        time.sleep(1)
    return int(request.cores)

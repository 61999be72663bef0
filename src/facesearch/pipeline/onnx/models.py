"""The ONNX sessions of the npm model pack, loaded once per process on first use."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from facesearch.errors import ModelUnavailable
from facesearch.pipeline.cores import cores
from facesearch.pipeline.models_install import MODEL_FILES, missing_models, not_installed_error, onnx_dir
from facesearch.pipeline.onnx.graph import rewritten


def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ModelUnavailable(
            "onnxruntime is not installed: install the PyPI package 'onnxruntime'",
            details={"package": "onnxruntime"},
        ) from exc
    return onnxruntime


class OnnxModels:
    """Lazily created onnxruntime sessions, shared by the pack's parts within a process.

    One thread per session: the server gets its parallelism from worker processes, as
    with dlib, so a session does not compete with the other worker for the cores. A photo
    analysed with two cores (``facesearch.pipeline.cores``: one request in flight) runs on a
    second session of the same model with two threads that do not spin-wait between runs (a
    spinning thread would take CPU from the other worker when work arrives). Roles in
    ``free_batch`` have their fixed batch dimension freed (``onnx/graph.py``).
    """

    def __init__(
        self,
        models_dir: Path | None = None,
        threads: int = 1,
        *,
        folder: Callable[[Path | None], Path] = onnx_dir,
        files: Mapping[str, str] = MODEL_FILES,
        missing: Callable[[Path | None], list[str]] = missing_models,
        error: Callable[..., ModelUnavailable] = not_installed_error,
        free_batch: frozenset[str] = frozenset(),
    ) -> None:
        """The npm pack's models by default; ``folder``, ``files``, ``missing`` and ``error``
        (called with the models folder and optionally what is missing) describe another installed
        set (the retina pack's)."""
        self._models_dir = models_dir
        self._threads = threads
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, int], Any] = {}
        self._graphs: dict[str, bytes | str] = {}  # per role, rewritten once for both sessions
        self._free_batch = free_batch
        self._folder, self._files, self._missing, self._error = folder, files, missing, error

    @property
    def folder(self) -> Path:
        """Where the ``.onnx`` files are expected."""
        return self._folder(self._models_dir)

    def installed(self) -> bool:
        """Whether every model file is present (cheap: no file is read)."""
        return not self._missing(self._models_dir)

    def require(self, what: str = "the ONNX model pack") -> None:
        """Raise ModelUnavailable, naming the install command, when files are missing."""
        if not self.installed():
            raise self._error(self._models_dir, what)

    def session(self, role: str, threads: int | None = None) -> Any:
        """The onnxruntime session of a model role (``detect``, ``landmark``, ...) with that many
        intra-op threads (default: the pack's, raised to the current photo's cores)."""
        threads = threads or max(self._threads, cores())
        found = self._sessions.get((role, threads))
        if found is not None:
            return found
        with self._lock:
            if (role, threads) not in self._sessions:
                path = self.folder / self._files[role]
                if not path.is_file():
                    raise self._error(self._models_dir)
                ort = _import_onnxruntime()
                options = ort.SessionOptions()
                options.log_severity_level = 3  # the liveness file has initializers listed as inputs
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                if threads > 1:
                    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                try:
                    if role not in self._graphs:
                        self._graphs[role] = rewritten(str(path), batch=role in self._free_batch)
                    graph = self._graphs[role]
                    self._sessions[(role, threads)] = ort.InferenceSession(
                        graph, options, providers=["CPUExecutionProvider"]
                    )
                except Exception as exc:  # onnx and onnxruntime raise their own exception types
                    raise ModelUnavailable(
                        f"cannot load {path.name}: {exc}; reinstall with the install command",
                        details={"file": path.name},
                    ) from exc
            return self._sessions[(role, threads)]

    def run(self, role: str, tensor: np.ndarray) -> list[np.ndarray]:
        """Run one model on one input tensor (float32, NCHW); its outputs in order."""
        session = self.session(role)
        name = session.get_inputs()[0].name
        outputs: list[np.ndarray] = session.run(None, {name: np.ascontiguousarray(tensor, np.float32)})
        return outputs

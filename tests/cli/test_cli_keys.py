"""`facesearch keys create | list | revoke` through Typer's runner: a key is shown once, never listed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

Cli = Callable[..., Result]
CREATED = re.compile(r"^created (\w+) key (key_\S+) \((.*); (.*)\)$", re.MULTILINE)
SECRET = re.compile(r"^API key \(shown once, store it now\): (fs_\S+)$", re.MULTILINE)


def create_key(cli: Cli, data: Path, *args: str) -> tuple[re.Match[str], str]:
    result = cli("keys", "create", *args, "--data-dir", data)
    assert result.exit_code == 0, result.output
    made, secret = CREATED.search(result.stdout), SECRET.search(result.stdout)
    assert made is not None and secret is not None, result.stdout
    assert result.output.count(secret.group(1)) == 1
    return made, secret.group(1)


def test_list_on_a_fresh_data_dir(cli: Cli, tmp_path: Path) -> None:
    text = cli("keys", "list", "--data-dir", tmp_path)
    assert text.exit_code == 0, text.output
    assert text.stdout.strip() == "No API keys yet: facesearch keys create NAME --role admin"
    as_json = cli("keys", "list", "--json", "--data-dir", tmp_path)
    assert as_json.exit_code == 0 and json.loads(as_json.stdout) == []


def test_create_defaults_to_a_reader_on_all_collections(cli: Cli, tmp_path: Path) -> None:
    made, secret = create_key(cli, tmp_path, "dashboard")
    assert made.group(1) == "reader" and made.group(3) == "dashboard" and made.group(4) == "all collections"
    assert len(secret) > 30


def test_secret_is_shown_once_and_never_listed(cli: Cli, tmp_path: Path) -> None:
    for name in ("lobby", "garage"):
        assert cli("collections", "create", name, "--data-dir", tmp_path).exit_code == 0
    door, door_secret = create_key(
        cli, tmp_path, "door", "--role", "writer", "--collections", "lobby, garage"
    )
    assert door.group(1) == "writer" and door.group(4) == "lobby, garage"
    admin, admin_secret = create_key(cli, tmp_path, "ops", "--role", "admin")
    assert door_secret != admin_secret and door.group(2) != admin.group(2)

    text = cli("keys", "list", "--data-dir", tmp_path)
    assert text.exit_code == 0, text.output
    assert door_secret not in text.output and admin_secret not in text.output
    rows = {line.split()[0]: line for line in text.stdout.splitlines()}
    assert set(rows) == {door.group(2), admin.group(2)}
    door_row = rows[door.group(2)].split()
    # id, prefix..., role, name, scope, state, "never used"
    assert door_row[1] == f"{door_secret[:8]}..."
    assert door_row[2:6] == ["writer", "door", "lobby,garage", "active"]
    assert rows[door.group(2)].endswith("never used")
    assert rows[admin.group(2)].split()[2:6] == ["admin", "ops", "*", "active"]

    as_json = cli("keys", "list", "--json", "--data-dir", tmp_path)
    assert as_json.exit_code == 0, as_json.output
    assert door_secret not in as_json.stdout and admin_secret not in as_json.stdout
    keys = {k["id"]: k for k in json.loads(as_json.stdout)}
    assert set(keys[door.group(2)]) >= {
        "id",
        "name",
        "prefix",
        "role",
        "collections",
        "created_at",
        "last_used_at",
        "revoked_at",
    }
    assert [c["name"] for c in keys[door.group(2)]["collections"]] == ["lobby", "garage"]
    assert all(c["id"].startswith("col_") for c in keys[door.group(2)]["collections"])
    assert keys[door.group(2)]["prefix"] == door_secret[:8]
    assert keys[admin.group(2)]["collections"] is None
    assert keys[admin.group(2)]["revoked_at"] is None and keys[admin.group(2)]["last_used_at"] is None


def test_keys_follow_a_renamed_collection_and_refuse_unknown_ones(cli: Cli, tmp_path: Path) -> None:
    assert cli("collections", "create", "lobby", "--data-dir", tmp_path).exit_code == 0
    create_key(cli, tmp_path, "door", "--collections", "lobby")
    renamed = cli("collections", "update", "lobby", "--name", "hall", "--data-dir", tmp_path)
    assert renamed.exit_code == 0, renamed.output
    assert cli("collections", "create", "lobby", "--data-dir", tmp_path).exit_code == 0
    rows = cli("keys", "list", "--data-dir", tmp_path).stdout.split()
    assert "hall" in rows and "lobby" not in rows
    unknown = cli("keys", "create", "x", "--collections", "nope", "--data-dir", tmp_path)
    assert unknown.exit_code == 2 and "NOT_FOUND" in unknown.output and "nope" in unknown.output
    empty = cli("keys", "create", "x", "--collections", "", "--data-dir", tmp_path)
    assert empty.exit_code == 2 and "VALIDATION_ERROR" in empty.output
    blank = cli("keys", "create", " ", "--data-dir", tmp_path)
    assert blank.exit_code == 2 and "VALIDATION_ERROR" in blank.output


def test_revoke_marks_only_that_key(cli: Cli, tmp_path: Path) -> None:
    gone, _ = create_key(cli, tmp_path, "old laptop")
    kept, _ = create_key(cli, tmp_path, "new laptop")
    result = cli("keys", "revoke", gone.group(2), "--data-dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"revoked {gone.group(2)} (old laptop)"

    keys = {k["id"]: k for k in json.loads(cli("keys", "list", "--json", "--data-dir", tmp_path).stdout)}
    assert keys[gone.group(2)]["revoked_at"] is not None
    assert keys[kept.group(2)]["revoked_at"] is None
    text = cli("keys", "list", "--data-dir", tmp_path).stdout
    gone_line = next(line for line in text.splitlines() if line.startswith(gone.group(2)))
    assert re.search(r"revoked \d{4}-\d\d-\d\d", gone_line)
    kept_line = next(line for line in text.splitlines() if line.startswith(kept.group(2)))
    assert " active " in kept_line


def test_data_dir_from_the_environment(cli: Cli, tmp_path: Path) -> None:
    env = {"FACESEARCH_DATA_DIR": str(tmp_path / "env")}
    made = cli("keys", "create", "from env", env=env)
    assert made.exit_code == 0, made.output
    names = [
        k["name"] for k in json.loads(cli("keys", "list", "--json", "--data-dir", tmp_path / "env").stdout)
    ]
    assert names == ["from env"]


def test_bad_role_and_unknown_key_exit_2(cli: Cli, tmp_path: Path) -> None:
    bad = cli("keys", "create", "x", "--role", "root", "--data-dir", tmp_path)
    assert bad.exit_code == 2
    assert "error VALIDATION_ERROR: role must be one of reader, writer, admin" in bad.stderr
    assert "API key" not in bad.output
    missing = cli("keys", "revoke", "key_nope", "--data-dir", tmp_path)
    assert missing.exit_code == 2
    assert "error NOT_FOUND: API key 'key_nope' not found" in missing.stderr
    assert json.loads(cli("keys", "list", "--json", "--data-dir", tmp_path).stdout) == []
    no_name = cli("keys", "create", "--data-dir", tmp_path)
    assert no_name.exit_code == 2 and "Missing argument" in no_name.output

"""`facesearch serve` and `facesearch keys` for real: a uvicorn subprocess on a free loopback port.

The realmodel test is the README walk-through in code, with real photos and the dlib pack.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from apihelpers import ServerProcess, admin_key_file, free_port, key_from_output
from typer.testing import CliRunner

import facesearch
from facesearch import errors
from facesearch.cli import app as cli_app
from facesearch.config import PackConfig
from facesearch.pipeline.packs import best_installed_pack

KEY_LINE = "admin API key (shown once, store it now):"


def serve_cmd(data_dir: Path, port: int, workers: int) -> list[str]:
    script = Path(sys.executable).parent / "facesearch"
    base = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from facesearch.cli import main; main()"]
    )
    return [*base, "serve", "--port", str(port), "--workers", str(workers), "--data-dir", str(data_dir)]


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    data, port = tmp_path / "data", free_port()
    server = ServerProcess(serve_cmd(data, port, 0), tmp_path, port)
    try:
        server.wait_ready(60)
        yield server, data
    finally:
        server.stop()


@pytest.mark.integration
def test_serve_writes_the_first_admin_key_to_a_private_file_and_never_logs_it(
    started: tuple[ServerProcess, Path],
) -> None:
    server, data = started
    out = server.stdout()
    key_file = data / "admin-key.txt"
    key = admin_key_file(data)
    assert key.startswith("fs_") and (key_file.stat().st_mode & 0o777) == 0o600
    assert out.count(f"admin API key written to {key_file.resolve()}") == 1
    assert key not in out and KEY_LINE not in out  # stdout is not a terminal here: it may be a log
    assert f"{server.url} (database sqlite, index hnsw; API docs: {server.url}/docs)" in out
    with facesearch.Client(server.url, key) as fs:
        # The default pack is the most accurate installed one: onnx once its models are installed.
        assert fs.health()["model_pack"] == best_installed_pack(PackConfig.from_environment())
        assert fs.list_collections() == {"collections": [], "next_cursor": None}
        assert len(fs.list_keys()["keys"]) == 1
    assert server.stop() in (0, -15)
    assert "Application shutdown complete" in server.stderr()
    assert key not in server.stderr()  # uvicorn's logs never see it
    (data.parent / "again").mkdir()
    again = ServerProcess(serve_cmd(data, port := free_port(), 0), data.parent / "again", port)
    try:
        again.wait_ready(60)
        assert "admin API key" not in again.stdout()  # only on a fresh data folder
        with facesearch.Client(again.url, key) as fs:
            assert fs.health()["status"] == "ok" and fs.list_keys()["keys"][0]["role"] == "admin"
    finally:
        again.stop()


def test_keys_commands(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    for name in ("a", "b"):
        assert runner.invoke(cli_app, ["collections", "create", name, *data]).exit_code == 0
    made = runner.invoke(
        cli_app, ["keys", "create", "door", "--role", "writer", "--collections", "a,b", *data]
    )
    assert made.exit_code == 0, made.output
    key = key_from_output(made.output, "API key (shown once, store it now):")
    assert key.startswith("fs_") and made.output.count(key) == 1 and "a, b" in made.output
    listed = runner.invoke(cli_app, ["keys", "list", *data])
    assert listed.exit_code == 0 and "door" in listed.output and "writer" in listed.output
    assert key not in listed.output
    as_json = runner.invoke(cli_app, ["keys", "list", "--json", *data])
    key_id = as_json.output.split('"id": "')[1].split('"')[0]
    revoked = runner.invoke(cli_app, ["keys", "revoke", key_id, *data])
    assert revoked.exit_code == 0 and f"revoked {key_id}" in revoked.output
    assert "revoked" in runner.invoke(cli_app, ["keys", "list", *data]).output
    bad = runner.invoke(cli_app, ["keys", "create", "x", "--role", "root", *data])
    assert bad.exit_code == 2 and "VALIDATION_ERROR" in bad.output
    missing = runner.invoke(cli_app, ["keys", "revoke", "key_nope", *data])
    assert missing.exit_code == 2 and "NOT_FOUND" in missing.output


@pytest.mark.realmodel
@pytest.mark.integration
def test_readme_walkthrough(tmp_path: Path, faces_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    server = ServerProcess(serve_cmd(tmp_path / "data", port, 2), tmp_path, port)
    try:
        server.wait_ready(120)
        key = admin_key_file(tmp_path / "data")
        people, probes, groups = faces_dir / "people", faces_dir / "probes", faces_dir / "groups"
        with facesearch.Client(server.url, key, timeout=120) as fs:
            fs.create_collection("demo", title="README demo")
            obama = fs.create_person(
                "demo",
                external_id="obama",
                name="Barack Obama",
                metadata={"role": "president"},
                groups=["presidents"],
                images=sorted((people / "obama").glob("*.jpg")),
            )
            assert len(obama["faces"]) == 2
            biden = fs.create_person(
                "demo", external_id="biden", name="Joe Biden", images=[people / "biden/biden.jpg"]
            )

            found = fs.identify("demo", probes / "obama1.jpg", top_k=2, return_thumbnails=True)
            best = found["matches"][0]
            assert best["external_id"] == "obama" and best["similarity"] >= found["threshold"]
            assert best["thumbnail"] and best["metadata"] == {"role": "president"}
            assert set(found["timings"]) == {"decode_ms", "detect_ms", "embed_ms", "search_ms"}

            everyone = fs.identify_all("demo", groups / "fr_two_people.jpg")
            names = sorted(f["matches"][0]["external_id"] for f in everyone["faces"])
            assert names == ["biden", "obama"] and everyone["unrecognized"] == []
            assert len(fs.detect(groups / "fr_two_people.jpg")["faces"]) == 2

            assert fs.verify(people / "obama/obama.jpg", people / "obama/obama2.jpg")["match"] is True
            assert fs.verify(people / "obama/obama.jpg", people / "biden/biden.jpg")["match"] is False
            assert fs.verify(probes / "obama1.jpg", collection="demo", person=obama["id"])["match"] is True

            assert {p["external_id"] for p in fs.list_persons("demo")["persons"]} == {"obama", "biden"}
            assert fs.get_person("demo", obama["id"])["name"] == "Barack Obama"
            assert fs.update_person("demo", biden["id"], name="Joseph R. Biden")["name"] == "Joseph R. Biden"
            fs.create_group("demo", "vice-presidents")
            assert "vice-presidents" in fs.add_member("demo", "vice-presidents", biden["id"])["groups"]
            assert fs.identify("demo", probes / "obama1.jpg", groups=["vice-presidents"])["matches"] == []

            face = fs.add_face("demo", biden["id"], people / "biden/biden2.jpg")
            assert face["quality"]["face_size"] > 50
            assert fs.face_image(face["id"])[:3] == b"\xff\xd8\xff"
            assert fs.face_image(face["id"], format="base64")["file_name"] == f"{face['id']}.jpg"
            fs.delete_face("demo", face["id"])
            assert len(fs.get_person("demo", biden["id"])["faces"]) == 1

            fs.create_collection("musicals")
            fs.create_person("musicals", external_id="alex", images=[people / "alex_lacamoire/img1.jpg"])
            both = fs.search(["demo", "musicals"], probes / "alex_lacamoire1.jpg")
            assert [(m["external_id"], m["collection"]) for m in both["matches"]] == [("alex", "musicals")]

            probe = (probes / "obama1.jpg").read_bytes()
            latencies, server_ms = [], []
            for _ in range(20):
                t0 = time.perf_counter()
                result = fs.identify("demo", probe)
                latencies.append((time.perf_counter() - t0) * 1000)
                server_ms.append(result["query_time_ms"])
                assert result["matches"][0]["external_id"] == "obama"
            with capsys.disabled():
                print(
                    "\nidentify probes/obama1.jpg over HTTP, 20 requests: "
                    f"p50 {statistics.median(latencies):.1f} ms (client), "
                    f"server query_time_ms p50 {statistics.median(server_ms):.1f} ms"
                )

            reader = fs.create_key("kiosk", "reader", collections=["demo"])
            with facesearch.Client(server.url, reader["key"]) as kiosk:
                assert kiosk.identify("demo", probe)["matches"][0]["external_id"] == "obama"
                with pytest.raises(errors.Forbidden):
                    kiosk.identify("musicals", probe)
            fs.revoke_key(reader["id"])

            fs.delete_person("demo", obama["id"])
            assert fs.identify("demo", probe)["matches"] == []
            fs.delete_collection("musicals")
            assert [c["name"] for c in fs.list_collections()["collections"]] == ["demo"]
            assert fs.health()["counts"] == {"collections": 1, "faces": 1, "negatives": 0, "unknown_faces": 0}
    finally:
        code = server.stop()
    # uvicorn shuts down cleanly on SIGTERM (closing the service), then re-raises the signal.
    assert code in (0, -15) and "Application shutdown complete" in server.stderr()


@pytest.mark.integration
def test_a_taken_port_fails_before_serving_is_announced(tmp_path: Path) -> None:
    import socket
    import subprocess

    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        run = subprocess.run(
            serve_cmd(tmp_path / "data", port, 0), capture_output=True, text=True, timeout=120
        )
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert "error ADDRESS_IN_USE: cannot listen on 127.0.0.1:" in run.stderr
    assert "serving" not in run.stdout and "admin API key" not in run.stdout


def test_the_listening_socket_sends_without_delay() -> None:
    """serve binds its own socket; without TCP_NODELAY every response waited ~40 ms for an ACK."""
    import socket

    from facesearch.cli.server import _bind

    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        with socket.create_connection(sock.getsockname()[:2]):
            conn, _ = sock.accept()
            with conn:  # what the server answers on
                assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        sock.close()

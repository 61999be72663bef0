"""`facesearch serve` (the HTTP API) and `facesearch keys` (create, list, revoke API keys)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from facesearch.cli.common import DataDir, JsonOpt, cli_audit, emit, handle_errors, print_json
from facesearch.cli.context import settings_for
from facesearch.errors import AddressInUse

if TYPE_CHECKING:
    from facesearch.storage import Store
    from facesearch.storage.records import ApiKeyRecord


keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)


ADMIN_KEY_FILE = "admin-key.txt"


def bootstrap_admin_key(store: Store) -> str | None:
    """On a store without any key, create an admin key and return it (else None); atomic, so
    several servers starting at once on one database make one."""
    created = store.create_first_api_key("admin (first run)")
    return None if created is None else created[1]


def write_key_file(data_dir: Path, key: str) -> Path:
    """Write the first admin key to ``<data_dir>/admin-key.txt``, readable by this user only
    (created with mode 0600, never over an existing file)."""
    import os

    path = data_dir / ADMIN_KEY_FILE
    if path.exists():
        path.unlink()  # a key file of a data folder that has no key any more
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(key + "\n")
    return path


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything is loaded or printed (ADDRESS_IN_USE when taken)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it a response waits ~40 ms for a delayed ACK
    # (measured: identify over HTTP 110 ms instead of 73 ms; uvicorn sets it only on its own sockets).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise AddressInUse(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", details={"host": host, "port": port}
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@handle_errors
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    workers: Annotated[
        int | None,
        typer.Option(help="worker processes for detection and embedding (default: cores; 0: in-process)"),
    ] = None,
    data_dir: DataDir = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Run the HTTP API and the web page. On a fresh data folder the first admin API key is written
    to <data>/admin-key.txt (0600). Example: facesearch serve --port 8000 --workers 2"""
    import uvicorn

    from facesearch.api.app import create_app

    settings = settings_for(data_dir)
    if workers is not None:
        settings = settings.model_copy(update={"workers": max(0, workers)})
    sock = _bind(host, port)  # a taken port fails now, before models load and before "serving at"
    app = create_app(settings)
    service = app.state.service
    try:
        key = bootstrap_admin_key(service.store)
        if key is not None:
            # Never a logger, and stdout only when it is a terminal: under systemd or Docker stdout
            # is the log. The file is the one place the key is kept.
            where = write_key_file(settings.data_dir, key)
            typer.echo(
                f"admin API key written to {where.resolve()} (mode 0600): store it, then delete the file"
            )
            if sys.stdout.isatty():
                typer.echo(f"admin API key (shown once, store it now): {key}")
        url = _url(host, port)
        if settings.default_pack == "auto" and service.default_pack != "retina":
            from facesearch.pipeline.retina_install import INSTALL_COMMAND

            which = "ONNX models are" if service.default_pack == "dlib" else "retina pack's models are"
            typer.echo(
                f"note: the {which} not installed, so new collections use the {service.default_pack} "
                f"pack, which tells strangers apart less well; `{INSTALL_COMMAND}` installs them",
                err=True,
            )
        where_from = (
            f"database {service.store.engine.dialect.name}, index {getattr(service.index, 'backend', '?')}"
        )
        typer.echo(
            f"facesearch serving {settings.data_dir.resolve()} at {url} ({where_from}; API docs: {url}/docs)"
        )
        uvicorn.Server(uvicorn.Config(app, log_level=log_level)).run(sockets=[sock])
    finally:
        service.close()
        sock.close()


def _open_store(data_dir: Path | None) -> Store:
    from facesearch.storage import open_store

    settings = settings_for(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return open_store(settings.resolved_database_url)


def _scope(record: ApiKeyRecord, sep: str, every: str) -> str:
    """The collections a key reaches, by current name (``every`` when it is not limited)."""
    if record.collections is None:
        return every
    names = [name for _, name in record.reaches or ()]
    return sep.join(names) if names else "(none:deleted)"


@keys_app.command("create")
@handle_errors
def keys_create(
    name: Annotated[str, typer.Argument(help="who or what the key is for")],
    role: Annotated[str, typer.Option(help="reader, writer or admin")] = "reader",
    collections: Annotated[
        str | None,
        typer.Option(
            help="limit the key to these existing collections, ids or names, comma-separated "
            "(bound to their ids: a rename keeps the key's reach). Example: --collections lobby,garage"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (with the key itself, once)")] = False,
    data_dir: DataDir = None,
) -> None:
    """Create an API key and print it once (only its hash is stored).
    Example: facesearch keys create door-camera --role reader --collections lobby"""
    limited = [c.strip() for c in collections.split(",") if c.strip()] if collections is not None else None
    store = _open_store(data_dir)
    try:
        record, plaintext = store.create_api_key(name, role, limited)
        summary = {"key_id": record.id, "role": record.role, "collections": record.collections}
        cli_audit(store, "create_key", "facesearch keys create", summary)
    finally:
        store.close()
    if as_json:
        from facesearch.api.responses import KeyCreated

        print_json(KeyCreated.created(record, plaintext).model_dump(mode="json"))
        return
    typer.echo(
        f"created {record.role} key {record.id} ({record.name}; {_scope(record, ', ', 'all collections')})"
    )
    typer.echo(f"API key (shown once, store it now): {plaintext}")


@keys_app.command("list")
@handle_errors
def keys_list(
    collection: Annotated[
        str | None,
        typer.Option("--collection", "-c", help="only keys that reach this collection (id or name)"),
    ] = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """List API keys (never the keys themselves: id, name, prefix, role, the collections each
    reaches, dates). Example: facesearch keys list -c staff"""
    store = _open_store(data_dir)
    try:
        records = store.list_api_keys()
        if collection is not None:
            cid = store.collection_info(collection).id
            records = [r for r in records if r.allows(cid)]
    finally:
        store.close()
    if as_json:
        from facesearch.api.responses import KeyOut

        print_json([KeyOut.of(r).model_dump(mode="json") for r in records])
        return
    if not records:
        typer.echo("No API keys yet: facesearch keys create NAME --role admin")
    for r in records:
        scope = _scope(r, ",", "*")
        state = f"revoked {r.revoked_at:%Y-%m-%d}" if r.revoked_at else "active"
        used = f"{r.last_used_at:%Y-%m-%d %H:%M}" if r.last_used_at else "never used"
        typer.echo(f"{r.id}  {r.prefix}...  {r.role:6}  {r.name:24} {scope:20} {state:18} {used}")


@keys_app.command("revoke")
@handle_errors
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id (key_...)")],
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """Revoke an API key: it stops working at once (revoking it again changes nothing).
    Example: facesearch keys revoke key_..."""
    from facesearch.api.responses import KeyOut

    store = _open_store(data_dir)
    try:
        record = store.revoke_api_key(key_id)
        cli_audit(store, "revoke_key", "facesearch keys revoke", {"key_id": record.id})
    finally:
        store.close()
    emit(as_json, lambda: KeyOut.of(record).model_dump(mode="json"), f"revoked {record.id} ({record.name})")


@handle_errors
def audit(
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="a collection (id or name)")
    ] = None,
    key: Annotated[str | None, typer.Option(help="entries of this key id (key_...)")] = None,
    since: Annotated[str | None, typer.Option(help="from this time on, ISO 8601 with zone")] = None,
    operation: Annotated[str | None, typer.Option(help="e.g. identify, delete_person")] = None,
    limit: Annotated[int, typer.Option(help="page size, 1-1000")] = 100,
    cursor: Annotated[str | None, typer.Option(help="cursor printed by the previous page")] = None,
    as_json: JsonOpt = False,
    data_dir: DataDir = None,
) -> None:
    """The audit log, oldest first (as GET /v1/audit).
    Example: facesearch audit -c staff --since 2026-12-01T00:00Z"""
    from datetime import UTC, datetime

    from facesearch.api.responses import AuditOut
    from facesearch.errors import NotFound, ValidationError

    when = None
    if since is not None:
        try:
            when = datetime.fromisoformat(since)
        except ValueError:
            raise ValidationError(f"--since is not an ISO 8601 time: {since!r}", field="since") from None
        if when.tzinfo is None:
            raise ValidationError("--since needs a time zone, e.g. 2026-12-01T00:00Z", field="since")
        when = when.astimezone(UTC)
    store = _open_store(data_dir)
    try:
        cid = None
        if collection is not None:
            try:
                cid = store.collection_info(collection).id
            except NotFound:
                if not collection.startswith("col_"):
                    raise
                cid = collection  # a deleted collection, by its id
        store.purge_audit(settings_for(data_dir).audit_retention_days)
        entries, next_cursor = store.list_audit(
            collection_id=cid, key_id=key, since=when, operation=operation, limit=limit, cursor=cursor
        )
    finally:
        store.close()
    if as_json:
        print_json(
            {"entries": [AuditOut.of(e).model_dump(mode="json") for e in entries], "next_cursor": next_cursor}
        )
        return
    for e in entries:
        who = e.key_id or e.client or "-"
        typer.echo(
            f"{e.at:%Y-%m-%d %H:%M:%S}  {e.operation:18} {e.outcome:22} {who:22} {e.collection_id or '-'}"
        )
    if next_cursor:
        typer.echo(f"more: --cursor {next_cursor}")

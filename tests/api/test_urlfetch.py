"""Safe URL fetching. The only real traffic goes to a server on 127.0.0.1 started here."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from facesearch.api.urlfetch import UrlFetcher, host_allowed, is_public_address
from facesearch.config import Settings
from facesearch.errors import ImageTooLarge, ImageUrlRefused

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
LIMIT = 4096
PUBLIC_IP = "93.184.216.34"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        try:
            self._route(self.path)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeouts, size caps)

    def _route(self, path: str) -> None:
        if path == "/img":
            self._send(200, IMAGE, {"Content-Type": "image/png"})
        elif path == "/host":
            self._send(200, self.headers["Host"].encode())
        elif path.startswith("/redirect/"):
            n = int(path.rsplit("/", 1)[1])
            self._send(302, headers={"Location": "/img" if n == 0 else f"/redirect/{n - 1}"})
        elif path == "/big":
            self._send(200, b"x" * (LIMIT + 1))
        elif path == "/big-undeclared":
            # No Content-Length: HTTP/1.0 body delimited by closing the connection.
            self.send_response(200)
            self.end_headers()
            for _ in range(64):
                self.wfile.write(b"x" * 1024)
        elif path == "/slow":
            time.sleep(2)
            self._send(200, IMAGE)
        else:
            self._send(404, b"no")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def settings(**kw: Any) -> Settings:
    base: dict[str, Any] = {"url_fetch_enabled": True, "max_upload_bytes": LIMIT, "url_timeout_s": 5.0}
    base.update(kw)
    return Settings(**base)


def no_dns(host: str, port: int) -> Sequence[str]:
    raise AssertionError(f"unexpected DNS lookup of {host}")


def local_fetcher(**kw: Any) -> UrlFetcher:
    return UrlFetcher(
        settings(url_allowed_hosts=["127.0.0.1"], url_allow_private=True, **kw), resolver=no_dns
    )


# --- refusals before any connection -------------------------------------------------------


def test_disabled_by_default() -> None:
    with pytest.raises(ImageUrlRefused) as info:
        UrlFetcher(Settings()).fetch("http://127.0.0.1/img")
    assert "disabled" in info.value.message
    assert "FACESEARCH_URL_FETCH_ENABLED" in info.value.message
    assert info.value.code == "IMAGE_URL_REFUSED"


@pytest.mark.parametrize(
    "url", ["ftp://images.example/a.png", "file:///etc/passwd", "gopher://images.example/", "not a url"]
)
def test_only_http_and_https(url: str) -> None:
    fetcher = UrlFetcher(settings(url_allowed_hosts=["images.example"]), resolver=no_dns)
    with pytest.raises(ImageUrlRefused):
        fetcher.fetch(url)


def test_host_not_allowed() -> None:
    fetcher = UrlFetcher(settings(url_allowed_hosts=["images.example", "*.cdn.example"]), resolver=no_dns)
    for url in ("http://evil.example/a.png", "http://images.example.evil/a.png", "http://cdn.example/a"):
        with pytest.raises(ImageUrlRefused) as info:
            fetcher.fetch(url)
        assert info.value.details["reason"] == "host"


def test_host_allowed_matching() -> None:
    allowed = ["Images.Example", "*.cdn.example"]
    assert host_allowed("images.example", allowed)
    assert host_allowed("images.example.", allowed)
    assert host_allowed("a.cdn.example", allowed) and host_allowed("a.b.cdn.example", allowed)
    assert not host_allowed("cdn.example", allowed)
    assert not host_allowed("xcdn.example", allowed)
    assert not host_allowed("anything", [])
    assert host_allowed("anything", ["*"])
    assert host_allowed("::1", ["[::1]"])


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "[::1]", "10.1.2.3", "169.254.169.254", "[::ffff:127.0.0.1]", "0.0.0.0"],
)
def test_non_public_addresses_refused(host: str) -> None:
    name = host.strip("[]")
    fetcher = UrlFetcher(settings(url_allowed_hosts=[name]))  # real resolver: only "localhost" is looked up
    with pytest.raises(ImageUrlRefused) as info:
        fetcher.fetch(f"http://{host}/latest/meta-data")
    assert info.value.details["reason"] == "private_address"


def test_any_private_resolved_address_refuses() -> None:
    fetcher = UrlFetcher(
        settings(url_allowed_hosts=["mixed.example"]), resolver=lambda h, p: [PUBLIC_IP, "192.168.1.5"]
    )
    with pytest.raises(ImageUrlRefused) as info:
        fetcher.fetch("https://mixed.example/a.png")
    assert info.value.details["reason"] == "private_address"


@pytest.mark.parametrize(
    ("address", "public"),
    [
        (PUBLIC_IP, True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("192.168.0.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("::", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:10.0.0.1", False),
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(address) is public


def test_credentials_never_in_messages() -> None:
    fetcher = UrlFetcher(settings(url_allowed_hosts=["10.0.0.1"]))
    with pytest.raises(ImageUrlRefused) as info:
        fetcher.fetch("http://alice:hunter2@10.0.0.1/a.png?sig=topsecret")
    text = info.value.message + str(info.value.details)
    assert "hunter2" not in text and "alice" not in text and "topsecret" not in text
    assert info.value.details["url"] == "http://10.0.0.1/a.png"


# --- pinning and redirects, through a mock transport (no network at all) -----------------------


def test_connects_to_the_vetted_address_and_rechecks_redirects() -> None:
    answers = {"public.example": [PUBLIC_IP], "internal.example": ["10.0.0.7"]}
    lookups: list[str] = []
    seen: list[httpx.Request] = []

    def resolver(host: str, port: int) -> Sequence[str]:
        lookups.append(host)
        return answers[host]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(302, headers={"Location": "http://internal.example/secret"})

    allowed = ["public.example", "internal.example"]
    fetcher = UrlFetcher(
        settings(url_allowed_hosts=allowed), resolver=resolver, transport=httpx.MockTransport(handler)
    )
    with pytest.raises(ImageUrlRefused) as info:
        fetcher.fetch("https://public.example/a.png")
    assert info.value.details["reason"] == "private_address"
    assert lookups == ["public.example", "internal.example"]
    assert len(seen) == 1  # the private hop was never requested
    assert seen[0].url.host == PUBLIC_IP
    assert seen[0].headers["host"] == "public.example"
    assert seen[0].extensions["sni_hostname"] == "public.example"


def test_redirect_to_metadata_ip_and_other_schemes_refused() -> None:
    for location, reason in (
        ("http://169.254.169.254/latest", "private_address"),
        ("file:///etc/passwd", "scheme"),
    ):
        transport = httpx.MockTransport(
            lambda r, loc=location: httpx.Response(301, headers={"Location": loc})
        )
        fetcher = UrlFetcher(
            settings(url_allowed_hosts=["public.example", "169.254.169.254"]),
            resolver=lambda h, p: [PUBLIC_IP],
            transport=transport,
        )
        with pytest.raises(ImageUrlRefused) as info:
            fetcher.fetch("http://public.example/a.png")
        assert info.value.details["reason"] == reason


def test_dns_failure_refused() -> None:
    def resolver(host: str, port: int) -> Sequence[str]:
        raise OSError("nxdomain")

    fetcher = UrlFetcher(settings(url_allowed_hosts=["gone.example"]), resolver=resolver)
    with pytest.raises(ImageUrlRefused) as info:
        fetcher.fetch("http://gone.example/a.png")
    assert info.value.details["reason"] == "dns"


# --- a real server on 127.0.0.1 (url_allow_private=True) ----------------------------------------


def test_happy_path(server: str) -> None:
    assert local_fetcher().fetch(f"http://{server}/img") == IMAGE


def test_host_header_is_the_original_host(server: str) -> None:
    assert local_fetcher().fetch(f"http://{server}/host") == server.encode()


def test_follows_up_to_three_redirects(server: str) -> None:
    fetcher = local_fetcher()
    assert fetcher.fetch(f"http://{server}/redirect/2") == IMAGE  # 3 redirects
    with pytest.raises(ImageUrlRefused) as info:
        fetcher.fetch(f"http://{server}/redirect/3")  # 4 redirects
    assert info.value.details["reason"] == "too_many_redirects"


def test_redirect_to_private_refused_without_allow_private(server: str) -> None:
    # Same local server, but private addresses not allowed: even the first hop is refused.
    fetcher = UrlFetcher(settings(url_allowed_hosts=["127.0.0.1"]), resolver=no_dns)
    with pytest.raises(ImageUrlRefused):
        fetcher.fetch(f"http://{server}/redirect/0")


def test_http_error_status(server: str) -> None:
    with pytest.raises(ImageUrlRefused) as info:
        local_fetcher().fetch(f"http://{server}/missing")
    assert info.value.details["status"] == 404


def test_declared_size_over_cap(server: str) -> None:
    with pytest.raises(ImageTooLarge) as info:
        local_fetcher().fetch(f"http://{server}/big")
    assert info.value.code == "IMAGE_TOO_LARGE"
    assert info.value.details["limit_bytes"] == LIMIT


def test_streamed_size_over_cap(server: str) -> None:
    with pytest.raises(ImageTooLarge):
        local_fetcher().fetch(f"http://{server}/big-undeclared")


def test_timeout(server: str) -> None:
    started = time.monotonic()
    with pytest.raises(ImageUrlRefused) as info:
        local_fetcher(url_timeout_s=0.3).fetch(f"http://{server}/slow")
    assert info.value.details["reason"] == "timeout"
    assert time.monotonic() - started < 1.5


def test_connection_refused(server: str) -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ImageUrlRefused) as info:
        local_fetcher().fetch(f"http://127.0.0.1:{port}/img")
    assert info.value.details["reason"] == "network"

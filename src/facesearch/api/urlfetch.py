"""Fetching ``image_url`` without becoming an SSRF tool.

Off unless ``url_fetch_enabled``; http(s) only; the host must be on ``url_allowed_hosts``
(exact names, or ``*.example.com`` for any subdomain; ``*`` alone allows every host); every
address the host resolves to must be public unless ``url_allow_private``; the connection
goes to the vetted address (no second DNS lookup to rebind); redirects are followed by
hand, at most three, each hop vetted again; one deadline of ``url_timeout_s`` covers the
whole fetch; the body is capped at ``max_upload_bytes`` while it streams.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Sequence

import httpx

from facesearch.config import Settings
from facesearch.errors import ImageTooLarge, ImageUrlRefused

__all__ = ["MAX_REDIRECTS", "Resolver", "UrlFetcher", "host_allowed", "is_public_address", "safe_url"]

#: ``(host, port) -> IP address strings``; injectable for tests.
Resolver = Callable[[str, int], Sequence[str]]

MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_URL_LENGTH = 4096
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``socket.getaddrinfo`` gives for ``host`` (TCP), without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public_address(address: str) -> bool:
    """False for loopback, private, link-local, multicast, reserved, unspecified or non-global.

    IPv6 addresses that embed an IPv4 one (mapped, 6to4, NAT64, Teredo) must pass for both.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded: list[ipaddress.IPv4Address] = []
        if ip.ipv4_mapped is not None:
            embedded.append(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            embedded.append(ip.sixtofour)
        if ip.teredo is not None:
            embedded.extend(ip.teredo)
        if ip in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if any(not is_public_address(str(e)) for e in embedded):
            return False
    return not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def _norm_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether ``host`` matches an entry: exact, ``*.example.com`` (subdomains at any depth) or ``*``."""
    host = _norm_host(host)
    for entry in allowed:
        entry = _norm_host(entry)
        if entry == "*" or entry == host:
            return True
        if entry.startswith("*.") and host.endswith(entry[1:]) and len(host) > len(entry) - 1:
            return True
    return False


def safe_url(url: httpx.URL) -> str:
    """The URL for messages and logs: no userinfo, query or fragment."""
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


class _NoClose(httpx.BaseTransport):
    """Lends an injected transport to a client without letting the client close it."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.inner.handle_request(request)

    def close(self) -> None:
        pass


class UrlFetcher:
    """Downloads image bytes from allowed URLs under the settings' limits."""

    def __init__(
        self,
        settings: Settings,
        *,
        resolver: Resolver | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.enabled = settings.url_fetch_enabled
        self.allowed_hosts = tuple(settings.url_allowed_hosts)
        self.allow_private = settings.url_allow_private
        self.timeout_s = settings.url_timeout_s
        self.max_bytes = settings.max_upload_bytes
        self.resolver: Resolver = resolver or system_resolver
        self._transport = transport

    def fetch(self, url: str) -> bytes:
        """The body at ``url``; ``ImageUrlRefused`` if refused or failing, ``ImageTooLarge`` over the cap."""
        if not self.enabled:
            raise ImageUrlRefused(
                "fetching images by URL is disabled; set FACESEARCH_URL_FETCH_ENABLED=true "
                "(and FACESEARCH_URL_ALLOWED_HOSTS) to enable it, or send the image itself",
                details={"reason": "disabled", "setting": "url_fetch_enabled"},
            )
        current = self._parse(url)
        deadline = time.monotonic() + self.timeout_s
        for hop in range(MAX_REDIRECTS + 1):
            status, location, body = self._get_any(current, self._vet(current), deadline)
            if status in _REDIRECTS:
                if hop == MAX_REDIRECTS:
                    raise self._refuse(current, f"more than {MAX_REDIRECTS} redirects", "too_many_redirects")
                if not location:
                    raise self._refuse(current, f"redirect ({status}) without a Location", "bad_redirect")
                try:
                    current = current.join(location)
                except httpx.InvalidURL:
                    raise self._refuse(current, "redirect to an invalid URL", "bad_redirect") from None
                continue
            if not 200 <= status < 300:
                raise self._refuse(
                    current, f"the server answered HTTP {status}", "http_status", status=status
                )
            return body
        raise AssertionError("unreachable")  # pragma: no cover

    # --- checks -------------------------------------------------------------------------

    def _parse(self, url: str) -> httpx.URL:
        if not isinstance(url, str) or not url.strip() or len(url) > _MAX_URL_LENGTH:
            raise ImageUrlRefused("image_url must be an http(s) URL", details={"reason": "invalid_url"})
        try:
            return httpx.URL(url.strip())
        except (httpx.InvalidURL, TypeError, ValueError):
            raise ImageUrlRefused("image_url is not a valid URL", details={"reason": "invalid_url"}) from None

    def _vet(self, url: httpx.URL) -> list[str]:
        """Check scheme, host and resolved addresses; the vetted addresses to connect to."""
        if url.scheme not in ("http", "https"):
            raise self._refuse(url, "only http and https URLs are allowed", "scheme")
        host = url.host
        if not host:
            raise self._refuse(url, "the URL has no host", "invalid_url")
        if not host_allowed(host, self.allowed_hosts):
            raise self._refuse(
                url, f"host {host!r} is not in the allowed hosts (FACESEARCH_URL_ALLOWED_HOSTS)", "host"
            )
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = self._resolve(url, host, port)
        if not self.allow_private:
            for address in addresses:
                if not is_public_address(address):
                    raise self._refuse(
                        url,
                        f"host {host!r} resolves to a non-public address; "
                        "set FACESEARCH_URL_ALLOW_PRIVATE=true to allow it",
                        "private_address",
                    )
        return addresses

    def _resolve(self, url: httpx.URL, host: str, port: int) -> list[str]:
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return [str(literal)]
        try:
            found = [a.split("%", 1)[0] for a in self.resolver(url.raw_host.decode("ascii"), port)]
            for a in found:
                ipaddress.ip_address(a)
        except (OSError, UnicodeError, ValueError):
            found = []
        if not found:
            raise self._refuse(url, f"could not resolve host {host!r}", "dns")
        return found

    # --- transfer -----------------------------------------------------------------------

    def _get_any(
        self, url: httpx.URL, addresses: list[str], deadline: float
    ) -> tuple[int, str | None, bytes]:
        """``_get`` from the first vetted address that accepts a connection."""
        for address in addresses[:-1]:
            try:
                return self._get(url, address, deadline, raise_connect=True)
            except httpx.ConnectError:
                continue
        return self._get(url, addresses[-1], deadline)

    def _get(
        self, url: httpx.URL, address: str, deadline: float, *, raise_connect: bool = False
    ) -> tuple[int, str | None, bytes]:
        """GET ``url`` from ``address``: status, Location, and (for 2xx) the capped body."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._timed_out(url)
        target = url.copy_with(host=address)
        headers = {
            "Host": url.netloc.decode("ascii"),
            "Accept": "image/*",
            "Accept-Encoding": "identity",
            "User-Agent": "facesearch-urlfetch/1",
        }
        extensions: dict[str, str] = {}
        if url.scheme == "https" and _norm_host(url.host) != _norm_host(address):
            extensions["sni_hostname"] = url.raw_host.decode("ascii")
        transport = _NoClose(self._transport) if self._transport is not None else None
        try:
            with httpx.Client(
                transport=transport,
                timeout=httpx.Timeout(remaining),
                follow_redirects=False,
                trust_env=False,  # an environment proxy would undo the address pinning
            ) as client:
                request = client.build_request("GET", target, headers=headers, extensions=extensions)
                response = client.send(request, stream=True)
                try:
                    status = response.status_code
                    if status in _REDIRECTS:
                        return status, response.headers.get("location"), b""
                    if not 200 <= status < 300:
                        return status, None, b""
                    return status, None, self._read_capped(url, response, deadline)
                finally:
                    response.close()
        except httpx.TimeoutException:
            raise self._timed_out(url) from None
        except httpx.ConnectError as exc:
            if raise_connect:
                raise
            raise self._refuse(url, f"could not connect ({type(exc).__name__})", "network") from None
        except httpx.HTTPError as exc:
            raise self._refuse(url, f"could not fetch the image ({type(exc).__name__})", "network") from None

    def _read_capped(self, url: httpx.URL, response: httpx.Response, deadline: float) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            raise self._too_large(url)
        chunks: list[bytes] = []
        total = 0
        for chunk in response.iter_bytes():
            total += len(chunk)
            if total > self.max_bytes:
                raise self._too_large(url)
            if time.monotonic() > deadline:
                raise self._timed_out(url)
            chunks.append(chunk)
        return b"".join(chunks)

    # --- errors -------------------------------------------------------------------------

    def _refuse(self, url: httpx.URL, why: str, reason: str, *, status: int | None = None) -> ImageUrlRefused:
        details: dict[str, object] = {"reason": reason, "url": safe_url(url)}
        if status is not None:
            details["status"] = status
        return ImageUrlRefused(f"image_url refused: {why}", details=details)

    def _timed_out(self, url: httpx.URL) -> ImageUrlRefused:
        return self._refuse(url, f"fetching the image took longer than {self.timeout_s:g} s", "timeout")

    def _too_large(self, url: httpx.URL) -> ImageTooLarge:
        return ImageTooLarge(
            f"the image at image_url is larger than {self.max_bytes} bytes",
            details={"limit_bytes": self.max_bytes, "url": safe_url(url)},
        )

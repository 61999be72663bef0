"""A TCP relay for outage tests: a server "goes away" (`cut`) and comes back (`restore`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit


class Forwarder:
    """A TCP relay from a local port to a server (Milvus, PostgreSQL): `cut()` closes it and every
    connection through it (the server "goes away"), `restore()` listens again on the same port."""

    def __init__(self, url: str) -> None:
        import socket

        parts = urlsplit(url)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 19530)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._conns: list[Any] = []
        self._listener: Any = None
        self.restore()

    def url(self, url: str) -> str:
        """``url`` (milvus://, postgresql+psycopg://...) pointed at this relay."""
        parts = urlsplit(url)
        netloc = f"127.0.0.1:{self.port}"
        if parts.username:
            netloc = f"{parts.username}{':' + parts.password if parts.password else ''}@{netloc}"
        return parts._replace(netloc=netloc).geturl()

    def restore(self) -> None:
        import socket
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener

        def pump(src: Any, dst: Any) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.close()
                    except OSError:
                        pass

        def accept() -> None:
            while True:
                try:
                    client, _ = listener.accept()
                except OSError:
                    return
                upstream = socket.create_connection(self.target)
                self._conns += [client, upstream]
                threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
                threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

        threading.Thread(target=accept, daemon=True).start()

    def cut(self) -> None:
        import socket

        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        self._listener.close()
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            except OSError:
                pass
        self._conns.clear()

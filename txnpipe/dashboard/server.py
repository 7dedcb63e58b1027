"""The dashboard's HTTP server: the standard library's threading server in a daemon thread.

It serves three files shipped in the wheel (the page, its script, its style: nothing from a
CDN) and ``/api/state``, the sampler's last document, which the page polls.
"""

from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from typing import Any

from common.errors import ConfigError
from txnpipe.dashboard.state import DashboardState

log = logging.getLogger(__name__)

ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}


def asset(name: str) -> bytes:
    """A file of the page, read from the installed package."""
    return files("txnpipe.dashboard").joinpath(name).read_bytes()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/api/state":
            body = json.dumps(self.server.state.document()).encode()
            self._send(HTTPStatus.OK, body, "application/json")
        elif path in ASSETS:
            name, kind = ASSETS[path]
            self._send(HTTPStatus.OK, asset(name), kind)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("dashboard %s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: DashboardState) -> None:
        self.state = state
        super().__init__(address, _Handler)


class DashboardServer:
    """The sampler and the HTTP server together; ``start()`` returns once the port is bound."""

    def __init__(self, state: DashboardState, host: str = "127.0.0.1", port: int = 8088) -> None:
        self.state = state
        try:
            self._httpd = _Server((host, port), state)
        except OSError as exc:
            raise ConfigError(
                f"dashboard cannot listen on {host}:{port} ({exc.strerror}): "
                "choose another port (0 = off in `txnpipe run`)"
            ) from None
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="dashboard-http", daemon=True
        )

    @property
    def url(self) -> str:
        address = self._httpd.server_address
        host, port = str(address[0]), address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    def start(self) -> DashboardServer:
        self.state.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; a sample in flight is given a few seconds (its thread is a daemon)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()
        self.state.stop(timeout=5)

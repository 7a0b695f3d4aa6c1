"""The view's HTTP server: the page, its assets from the package, and the session, with a token.

Standard library only (``http.server``): one thread per connection, HTTP/1.1 keep-alive, every
request checked against the session's random token (query ``token=`` or header
``X-Tonuslab-Token``; 403 otherwise). The server knows a fixed list of routes and a fixed list
of asset files read from the package at start: no path from a request ever reaches the file
system, so there is nothing to traverse. Actions (marker, stop) are POSTs. A socket that stops
reading times out after :attr:`ViewServer.socket_timeout_s` and only its own thread waits on it.
"""

from __future__ import annotations

import hmac
import http.server
import json
import math
import secrets
import threading
import urllib.parse
from importlib import resources

from tonuslab.errors import UsageError

ASSETS = {"view.js": "text/javascript; charset=utf-8", "view.css": "text/css; charset=utf-8"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _load_assets() -> tuple[bytes, dict[str, bytes]]:
    root = resources.files("tonuslab.view") / "assets"
    page = (root / "index.html").read_bytes()
    return page, {name: (root / name).read_bytes() for name in ASSETS}


def _clean(obj):
    """JSON without NaN/inf (as null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _dumps(obj) -> bytes:
    try:
        text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(_clean(obj), separators=(",", ":"), allow_nan=False)
    return text.encode()


class ViewServer:
    """Serve a :class:`~tonuslab.view.live.LiveModel` or :class:`~tonuslab.view.review.ReviewModel`.

    Parameters
    ----------
    model : LiveModel or ReviewModel
    host : str
        Interface to bind; loopback by default.
    port : int
        0 picks a free port.
    token : str, optional
        Default: 32 random URL-safe characters (``secrets.token_urlsafe``).
    """

    socket_timeout_s = 10.0

    def __init__(self, model, host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        self.model = model
        self.token = token or secrets.token_urlsafe(24)
        self.page, self.assets = _load_assets()
        self.bytes_sent = 0
        self.requests = 0
        self._count_lock = threading.Lock()
        handler = _make_handler(self)
        try:
            self.httpd = http.server.ThreadingHTTPServer((host, int(port)), handler)
        except OSError as exc:
            raise UsageError(f"cannot serve the view on {host}:{port}: {exc.strerror}") from None
        self.httpd.daemon_threads = True
        self.host = host
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}/?token={self.token}"

    def start(self) -> ViewServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
            name="tonuslab-view-http", daemon=True,
        )  # fmt: skip
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def count(self, n: int) -> None:
        with self._count_lock:
            self.bytes_sent += n
            self.requests += 1


def _make_handler(server: ViewServer):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = server.socket_timeout_s
        server_version = "tonuslab-view"
        sys_version = ""

        def log_message(self, fmt, *args):  # no access log on the technician's terminal
            pass

        # -------------------------------------------------------------- plumbing
        def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("X-Frame-Options", "DENY")
            self.send_header(
                "Content-Security-Policy",
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                "img-src 'self' data:; base-uri 'none'; form-action 'none'",
            )
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            server.count(len(body))

        def _error(self, code: int, text: str) -> None:
            self._send(code, _dumps({"error": text}))

        def _authorised(self, query: dict) -> bool:
            given = self.headers.get("X-Tonuslab-Token") or (query.get("token") or [""])[0]
            return hmac.compare_digest(given.encode(), server.token.encode())

        def _parse(self):
            url = urllib.parse.urlsplit(self.path)
            return url.path, urllib.parse.parse_qs(url.query)

        # -------------------------------------------------------------- routes
        def do_GET(self):
            path, query = self._parse()
            if not self._authorised(query):
                return self._error(403, "a valid token is required")
            model = server.model
            try:
                if path in ("/", "/index.html"):
                    page = server.page.replace(b"__TOKEN__", server.token.encode())
                    return self._send(200, page, "text/html; charset=utf-8")
                if path.startswith("/static/") and path[8:] in server.assets:
                    return self._send(200, server.assets[path[8:]], ASSETS[path[8:]])
                if path == "/api/info":
                    return self._send(200, _dumps(model.info()))
                if path == "/api/live" and model.mode == "live":
                    q = {k: int((query.get(k) or ["0"])[0]) for k in ("emg", "angle", "ev", "sw")}
                    return self._send(200, _dumps(model.live(q["emg"], q["angle"], q["ev"],
                                                              q["sw"])))  # fmt: skip
                if path == "/api/window" and model.mode == "review":
                    t0 = float((query.get("t0") or ["0"])[0])
                    t1 = float((query.get("t1") or ["10"])[0])
                    cols = int((query.get("cols") or ["1000"])[0])
                    return self._send(200, _dumps(model.window(t0, t1, cols)))
                if path == "/api/sweeps" and model.mode == "review":
                    return self._send(200, _dumps(model.sweeps()))
            except ValueError as exc:
                return self._error(400, str(exc))
            return self._error(404, "not found")

        def do_HEAD(self):
            self.do_GET()

        def do_POST(self):
            path, query = self._parse()
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(min(n, 4096))
            if not self._authorised(query):
                return self._error(403, "a valid token is required")
            actions = {"/api/marker": "m", "/api/stop": "q", "/api/stop-stim": "s"}
            if path in actions and getattr(server.model, "actions", None) is not None:
                server.model.actions.append(actions[path])
                return self._send(200, _dumps({"ok": True, "action": path[5:]}))
            return self._error(404, "not found")

        def _not_allowed(self):
            self._error(405, "method not allowed")

        do_PUT = do_DELETE = do_PATCH = _not_allowed

    return Handler

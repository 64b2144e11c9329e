"""A real local HTTP server for tests: routes can change between requests and every hit is counted."""

from __future__ import annotations

import http.server
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Handler = Callable[["http.server.BaseHTTPRequestHandler"], Reply]


class PageServer:
    """`server.route("/path", Reply(...))` or a callable taking the request handler; 404 otherwise.

    robots.txt allows everything unless a route for it is set. Honours If-None-Match against an ETag reply
    header (304), like a real server would.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Reply | Handler] = {}
        self.hits: Counter[str] = Counter()
        self.connections = 0  # TCP connections accepted (a client that keeps them alive opens few)
        self.max_in_flight = 0  # most requests being answered at the same time
        in_flight = [0]
        lock = threading.Lock()
        self.requests: list[tuple[str, dict[str, str]]] = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with lock:
                    in_flight[0] += 1
                    outer.max_in_flight = max(outer.max_in_flight, in_flight[0])
                try:
                    self._get()
                finally:
                    with lock:
                        in_flight[0] -= 1

            def _get(self) -> None:
                path = self.path
                outer.hits[path] += 1
                outer.requests.append((path, dict(self.headers)))
                route = outer.routes.get(path)
                if route is None and path == "/robots.txt":
                    route = Reply(body=b"User-agent: *\nAllow: /\n", headers={"Content-Type": "text/plain"})
                if route is None:
                    route = Reply(404, b"not found")
                reply = route(self) if callable(route) else route
                if reply.delay:
                    time.sleep(reply.delay)
                etag = reply.headers.get("ETag")
                if etag and self.headers.get("If-None-Match") == etag and reply.status == 200:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # clients that hang up early (size limits, timeouts) are what some tests are about

            def process_request(self, request: object, client_address: object) -> None:
                outer.connections += 1
                super().process_request(request, client_address)  # type: ignore[arg-type]

        self.httpd = Server(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}"

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def allow(self) -> str:
        """This server for `fetch.allow_private` (the egress policy refuses loopback addresses otherwise)."""
        return f"127.0.0.1:{self.httpd.server_port}"

    def route(self, path: str, reply: Reply | Handler) -> None:
        self.routes[path] = reply

    def __enter__(self) -> PageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

"""The benchmark's page server, in its own process so it does not share a GIL with what it measures.

`python -m benchmarks.server --pages N --port P` serves /page/<i> for i < N; `GET /_mutate?fraction=0.1`
moves a fact on every 10th page; `GET /_hits` returns the request count and `GET /_stats`
{"hits": requests, "connections": TCP connections accepted} (how well a client reuses its connections).
robots.txt allows everything.
"""

from __future__ import annotations

import argparse
import http.server
import json
import threading

from benchmarks.pages import page


def serve(pages: int, port: int) -> None:
    versions = [0] * pages
    cache: dict[tuple[int, int], bytes] = {}
    lock = threading.Lock()
    hits = [0]
    connections = [0]

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY, as production servers set it: http.server writes the headers and the body separately,
        # and with Nagle's algorithm the body waits for the client's (delayed) ACK of the headers. That stalled
        # every response on a keep-alive connection (1,000 pages over 8 connections: 5.5 s, 0.2 s without),
        # so a cycle measured the stall times the client's concurrency, not the client.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            with lock:
                hits[0] += 1
            path = self.path
            if path == "/robots.txt":
                return self._send(b"User-agent: *\nAllow: /\n", "text/plain")
            if path == "/_hits":
                return self._send(str(hits[0]).encode(), "text/plain")
            if path == "/_stats":
                return self._send(json.dumps({"hits": hits[0], "connections": connections[0]}).encode(),
                                  "application/json")
            if path.startswith("/_mutate"):
                fraction = float(path.partition("fraction=")[2] or 0.1)
                step = max(1, round(1 / fraction)) if fraction > 0 else pages + 1
                with lock:
                    for i in range(0, pages, step):
                        versions[i] += 1
                return self._send(b"ok", "text/plain")
            if path.startswith("/page/"):
                try:
                    i = int(path[6:])
                except ValueError:
                    i = -1
                if 0 <= i < pages:
                    key = (i, versions[i])
                    body = cache.get(key)
                    if body is None:
                        body = cache[key] = page(i, versions[i]).encode()
                    return self._send(body, "text/html; charset=utf-8")
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _send(self, body: bytes, ctype: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024

        def process_request(self, request: object, client_address: object) -> None:
            with lock:
                connections[0] += 1
            super().process_request(request, client_address)  # type: ignore[arg-type]

    server = Server(("127.0.0.1", port), H)
    print(f"serving {pages} pages on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    serve(args.pages, args.port)

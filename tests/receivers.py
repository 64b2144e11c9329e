"""Real local alert receivers for tests: an HTTP webhook endpoint and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HookReceiver:
    """POST endpoint answering with the scripted statuses in order (then `default`). With `hold` set, the
    first request is recorded and then left unanswered until `release` is set (a sender killed mid-send)."""

    script: list[int | tuple[int, dict[str, str]]] = field(default_factory=list)
    default: int = 200
    hold: bool = False
    hits: list[Hit] = field(default_factory=list)
    first: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.hits.append(Hit(self.path, dict(self.headers), body))
                if outer.hold and not outer.first.is_set():
                    outer.first.set()
                    outer.release.wait(30)
                    return
                outer.first.set()
                step = outer.script.pop(0) if outer.script else outer.default
                status, headers = step if isinstance(step, tuple) else (step, {})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass

        self.httpd = Server(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/hook"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1:`port` that keeps every message it accepts."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self.controller = None

    def start(self) -> SmtpSink:
        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
                sink.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[attr-defined]
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def __iter__(self) -> Iterator[EmailMessage]:
        return iter(self.messages)

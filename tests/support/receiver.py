"""A webhook receiver on loopback (a real HTTP server in a thread) that can misbehave on purpose."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]

    @property
    def event_id(self) -> str:
        return str(json.loads(self.body)["id"])


@dataclass
class Receiver:
    url: str = ""
    received: list[Received] = field(default_factory=list)  # to be answered 2xx, in arrival order
    attempts: list[Received] = field(default_factory=list)  # everything that arrived
    script: list[tuple[int, float, dict[str, str]]] = field(default_factory=list)  # (status, delay, headers)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> list[str]:
        with self.lock:
            return [r.event_id for r in self.received]


@contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            item = Received(body, {k.lower(): v for k, v in self.headers.items()})
            with state.lock:
                state.attempts.append(item)
                status, delay, headers = state.script.pop(0) if state.script else (200, state.delay, {})
                if 200 <= status < 300:
                    state.received.append(item)  # in arrival order (a slow answer may still time out)
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", "0")
                self.end_headers()
            except OSError:
                return

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()

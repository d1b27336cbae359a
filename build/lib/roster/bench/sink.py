"""A webhook receiver for benchmarks, run as its own process: ``python -m roster.bench.sink PORT``.

POST anything: 200, counted, arrival time kept by ``Idempotency-Key``.
GET /count: how many arrived. GET /seen/<id>: the arrival time (unix seconds), or 404.
"""

from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

count = 0
arrivals: dict[str, float] = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _reply(self, status: int, text: str = "") -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        global count
        self.rfile.read(int(self.headers.get("content-length", "0")))
        with lock:
            count += 1
            arrivals.setdefault(self.headers.get("Idempotency-Key", ""), time.time())
        self._reply(200)

    def do_GET(self) -> None:
        if self.path == "/count":
            self._reply(200, str(count))
        elif self.path.startswith("/seen/") and self.path[6:] in arrivals:
            self._reply(200, repr(arrivals[self.path[6:]]))
        else:
            self._reply(404)

    def log_message(self, *args: Any) -> None:
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()

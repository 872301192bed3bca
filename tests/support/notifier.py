"""A notifier endpoint on 127.0.0.1 for tests: a real HTTP server that keeps the JSON
bodies it is sent and answers ``status``, or, with ``hold``, waits until ``release`` is
set first (a notifier that is down and slow)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Recorder:
    def __init__(self, *, status: int = 200, hold: bool = False) -> None:
        self.requests: list[Any] = []
        self.called = threading.Event()
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.requests.append(json.loads(body) if body else None)
                outer.called.set()
                if hold:
                    outer.release.wait(60)  # bounded: never hang the test run
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@contextlib.contextmanager
def running(*, status: int = 200, hold: bool = False) -> Iterator[Recorder]:
    recorder = Recorder(status=status, hold=hold)
    recorder.thread.start()
    try:
        yield recorder
    finally:
        recorder.release.set()
        recorder.server.shutdown()
        recorder.server.server_close()

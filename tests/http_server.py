"""A scriptable HTTP server on 127.0.0.1 for download tests (fixture ``server`` in conftest)."""

from __future__ import annotations

import http.server
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    """One scripted response. ``truncate``: announce more bytes than sent, then close."""

    status: int = 200
    body: bytes = b""
    truncate: bool = False
    chunked_truncate: bool = False
    delay: float = 0.0


class Server:
    """State shared with the handler: scripted replies per path and a hit counter."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.routes: dict[str, list[Reply]] = {}
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def next_reply(self, path: str) -> Reply:
        """Pop the next reply for ``path``; the last one repeats. Unknown paths get 404."""
        with self.lock:
            self.hits[path] += 1
            replies = self.routes.get(path)
            if not replies:
                return Reply(404, b"not found")
            return replies.pop(0) if len(replies) > 1 else replies[0]


def _make_handler(state: Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            reply = state.next_reply(self.path)
            time.sleep(reply.delay)
            self.close_connection = True
            self.send_response(reply.status)
            self.send_header("Connection", "close")
            if reply.chunked_truncate:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"%x\r\n" % len(reply.body) + reply.body[: len(reply.body) // 2])
                return
            extra = 1000 if reply.truncate else 0
            self.send_header("Content-Length", str(len(reply.body) + extra))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def serve() -> Iterator[Server]:
    state = Server(0)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)

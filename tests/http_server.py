"""HTTP servers on 127.0.0.1 for the tests: a scriptable one for the download tests (fixture
``server`` in conftest) and a static one for the built book."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Reply:
    """One scripted response. ``truncate``: announce more bytes than sent, then close.
    ``trickle``: send the body one byte every ``trickle`` seconds; with ``trickle_head``, the
    status line and headers too."""

    status: int = 200
    body: bytes = b""
    truncate: bool = False
    chunked_truncate: bool = False
    delay: float = 0.0
    trickle: float = 0.0
    trickle_head: bool = False


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
            if reply.trickle:
                self._trickle(reply)
                return
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

        def _trickle(self, reply: Reply) -> None:
            head = f"HTTP/1.1 {reply.status} OK\r\nContent-Length: {len(reply.body)}\r\n\r\n"
            fast, slow = (b"", head.encode()) if reply.trickle_head else (head.encode(), b"")
            self.wfile.write(fast)
            for byte in slow + reply.body:
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:  # the client gave up
                    return
                time.sleep(reply.trickle)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def running(httpd: http.server.ThreadingHTTPServer) -> Iterator[int]:
    """Run ``httpd`` on a background thread; yield its port; shut it down afterwards."""
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@contextmanager
def serve() -> Iterator[Server]:
    """The scripted server on a free port of 127.0.0.1."""
    state = Server(0)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    with running(httpd) as port:
        state.port = port
        yield state


class _StaticHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve the files under ``folder`` on a free port of 127.0.0.1; yield the base URL."""
    handler = functools.partial(_StaticHandler, directory=str(folder))
    with running(http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)) as port:
        yield f"http://127.0.0.1:{port}/"

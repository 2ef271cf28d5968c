"""The transport's kept-alive connections read a bounded answer, whatever the server sends."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from newsletter.delivery.connections import MAX_ANSWER_BYTES, KeptAliveConnections


class _Flood(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers["Content-Length"]))
        size = MAX_ANSWER_BYTES * 3 if self.path == "/flood" else 5
        self.send_response(500)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        try:
            self.wfile.write(b"x" * size)
        except OSError:  # the client stopped reading: that is the point
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Flood)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_an_oversized_answer_is_cut_and_its_connection_not_reused(server: str) -> None:
    connections = KeptAliveConnections(server)
    try:
        small = connections.request("POST", "/small", b"{}", {"Content-Type": "application/json"})
        assert (small.status, small.body) == (500, b"xxxxx")
        assert connections.open_connections() == 1  # a whole answer: the connection is kept
        flood = connections.request("POST", "/flood", b"{}", {"Content-Type": "application/json"})
        assert flood.status == 500 and len(flood.body) == MAX_ANSWER_BYTES
        assert connections.open_connections() == 0  # the rest unread: dropped, never reused
    finally:
        connections.close()

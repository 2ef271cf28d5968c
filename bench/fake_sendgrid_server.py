"""Run tests/fake_sendgrid.FakeSendGrid(record=False, schema_path=None) in its own process.

Prints one JSON line ``{"url": ..., "api_key": ...}``, then answers commands read from stdin,
one per line, each with one JSON line: ``stats``, ``reset``, ``quit`` (stats, then exit).
Closing stdin also stops it. Listens on 127.0.0.1 only.

One change for long benchmark runs, not touching what a request costs the client: requests
are counted, not kept (the stock fake keeps every raw body and parsed JSON, which at a million
recipients is several GB in this process). Like the stock fake it speaks HTTP/1.1, so a client
that keeps its connection alive can; one that sends ``Connection: close`` gets one connection
per request.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fake_sendgrid as fs  # noqa: E402


class BenchFake(fs.FakeSendGrid):
    def __init__(self) -> None:
        super().__init__(record=False, schema_path=None)
        self.statuses: Counter[str] = Counter()
        self.handle_seconds = 0.0

    def _log(self, raw, body, status, handler, message_id=None):  # type: ignore[no-untyped-def, override]
        with self.lock:
            self.statuses[str(status)] += 1
            return -1

    def _handle(self, handler, raw):  # type: ignore[no-untyped-def, override]
        started = time.perf_counter()
        try:
            super()._handle(handler, raw)
        finally:
            with self.lock:
                self.handle_seconds += time.perf_counter() - started

    def start(self) -> BenchFake:
        self._stopping.clear()
        self._httpd = fs._Server(("127.0.0.1", 0), fs._Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-sendgrid", daemon=True
        )
        self._thread.start()
        return self

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.statuses.clear()
            self.handle_seconds = 0.0

    def stats(self) -> dict[str, object]:
        r = resource.getrusage(resource.RUSAGE_SELF)
        with self.lock:
            duplicates = sum(1 for n in self.addresses.values() if n > 1)
            return {
                "recipients": self.count,
                "requests": self.request_count,
                "connections": self.connection_count,
                "statuses": dict(self.statuses),
                "distinct_addresses": len(self.addresses),
                "addresses_sent_twice": duplicates,
                "handle_seconds": round(self.handle_seconds, 3),
                "cpu_seconds": round(r.ru_utime + r.ru_stime, 2),
                "peak_rss_mb": round(r.ru_maxrss / 1024, 1),
            }


def main() -> None:
    fake = BenchFake().start()
    print(json.dumps({"url": fake.url, "api_key": fake.api_key, "pid": __import__("os").getpid()}), flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                print(json.dumps(fake.stats()), flush=True)
            elif command == "reset":
                fake.reset()
                print(json.dumps({"ok": True}), flush=True)
            elif command == "quit":
                print(json.dumps(fake.stats()), flush=True)
                break
            elif command:
                print(json.dumps({"error": f"unknown command {command!r}"}), flush=True)
    finally:
        fake.stop()


if __name__ == "__main__":
    main()

"""Benchmark: SendGrid Event Webhook ingest, batches of 1,000 signed events POSTed to the real
app under uvicorn on 127.0.0.1; events stored per second.

    python bench/webhook.py --db sqlite
    python bench/webhook.py --db postgresql
    python bench/webhook.py --db postgresql --batches 100 --concurrency 2
    python bench/webhook.py --db sqlite --profile        # cProfile of ingest_events, in process

Phases, each in its own child process:

1. setup: ``--recipients`` deliveries (default 100,000) of one campaign, sent an hour ago, with
   its links.
2. serve: ``create_app`` with a P-256 key made for the run, under uvicorn (one process, asyncio
   loop, h11, no access log), in a child process.
3. post (TIMED, in this process): ``--batches`` bodies (default 50) of 1,000 events each, made
   and signed *before* the clock starts: a realistic mix of processed, delivered, open (some
   ``sg_machine_open``), click (on our tracking URLs), deferred, and 0.5% bounces, drops and
   spam reports that go through suppression, each event carrying our ``delivery_id``
   custom arg. POSTed with ``http.client`` on kept-alive connections (``--concurrency`` of
   them). Then every batch is POSTed again (SendGrid's retries): nothing new may be stored.

Figures: events stored per second (the count in the ``events`` table over the wall time of the
first pass), the second pass's rate, and the check that rows == events sent.
"""

from __future__ import annotations

import base64
import cProfile
import http.client
import io
import json
import os
import pstats
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
from _sent_campaign import bench_settings, event_count, load_sent_campaign  # noqa: E402

SCRIPT = Path(__file__).resolve()
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
SIG = "X-Twilio-Email-Event-Webhook-Signature"
TS = "X-Twilio-Email-Event-Webhook-Timestamp"


# --------------------------------------------------------------------------- phase: setup


def phase_setup(state: dict) -> dict:
    import datetime as dt

    n, url = state["n"], state["url"]
    campaign_id, sent = load_sent_campaign(
        url,
        n,
        links=[
            (p, f"https://example.test/{p}", k) for p, k in ((1, "article"), (2, "cta"), (3, "read_more"), (4, "web"))
        ],
        sent_ago=dt.timedelta(hours=1),
        message_id=lambda i: f"MSG{i // 1000}",
    )
    result = {"deliveries": n, "campaign_id": campaign_id, "sent_epoch": int(sent.timestamp())}
    c.write_result(state, result)
    return result


# --------------------------------------------------------------------------- phase: serve


def phase_serve(state: dict) -> dict:
    from newsletter.db import make_engine
    from newsletter.web import create_app
    from newsletter.web.server import settle_memory

    engine = make_engine(state["url"])
    if state.get("sqlite_pragmas"):  # --sqlite-pragma: a what-if for the store's settings (db room), not the product's
        from sqlalchemy import event

        @event.listens_for(engine, "connect")
        def _more_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            for pragma in state["sqlite_pragmas"]:
                dbapi_connection.execute(f"PRAGMA {pragma}")

    # the key as production gets it (NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY), and what `newsletter serve` does
    app = create_app(bench_settings(state).with_overrides(webhook_public_key=state["public_key"]), engine)
    settle_memory()
    server = c.uvicorn_server(app, state["port"])
    if not state.get("profile_server"):
        server.run()
        return {}
    import threading

    profiles: list[cProfile.Profile] = []

    def start_profile(*_: object) -> None:  # every thread: the event loop and the threadpool's workers
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()

    def exit_quietly(*_: object) -> None:  # uvicorn re-raises SIGTERM after its shutdown
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, exit_quietly)
    threading.setprofile(start_profile)
    main = cProfile.Profile()
    main.enable()
    try:
        server.run()
    except SystemExit:
        pass
    main.disable()
    for p in profiles:
        p.disable()
    buffer = io.StringIO()
    stats = pstats.Stats(main, stream=buffer)
    for p in profiles:
        stats.add(p)
    stats.sort_stats("tottime").print_stats(25)
    Path(state["tmp"], "server-profile.txt").write_text(buffer.getvalue())
    return {}


# --------------------------------------------------------------------------- batches


def make_batches(n_batches: int, n_deliveries: int, campaign_id: int, sent_epoch: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    kinds = (
        ["processed"] * 20
        + ["delivered"] * 20
        + ["open"] * 30
        + ["click"] * 10
        + ["deferred"] * 14
        + ["group_resubscribe"]
    )
    batches = []
    serial = 0
    for _batch in range(n_batches):
        events = []
        for _ in range(1000):
            serial += 1
            delivery = rng.randrange(1, n_deliveries + 1)
            kind = rng.choice(kinds)
            roll = rng.random()
            if roll < 0.002:
                kind = "bounce"
            elif roll < 0.004:
                kind = "dropped"
            elif roll < 0.005:
                kind = "spamreport"
            event = {
                "email": f"reader{delivery}@example.com",
                "timestamp": sent_epoch + rng.randrange(60, 3000),
                "event": kind,
                "sg_event_id": f"bench-{serial:09d}-{rng.getrandbits(40):010x}",
                "sg_message_id": f"MSG{delivery // 1000}.filterdrecv-5645d9c87f-abc-1-{serial}.0",
                "smtp-id": f"<MSG{delivery // 1000}@geopod-ismtpd-4-0>",
                "category": [f"campaign-{campaign_id}"],
                "delivery_id": str(delivery),
                "campaign_id": str(campaign_id),
            }
            if kind in ("open", "click"):
                event.update(useragent=BROWSER, ip=f"203.0.{rng.randrange(256)}.{rng.randrange(256)}")
            if kind == "open":
                event["sg_machine_open"] = rng.random() < 0.3
            if kind == "click":
                event["url"] = f"{c.PUBLIC_URL}/c/token{delivery}/{rng.randrange(1, 5)}"
                event["url_offset"] = {"index": 0, "type": "html"}
            if kind == "bounce":
                event.update(type="bounce", reason="550 5.1.1 The email account does not exist.", status="5.1.1")
            if kind == "dropped":
                event["reason"] = "Bounced Address"
            if kind == "deferred":
                event.update(response="400 try again later", attempt="1")
            if kind == "processed":
                event["pool"] = {"name": "new_MY_test", "id": 210}
            events.append(event)
        batches.append(json.dumps(events, separators=(",", ":")).encode())
    return batches


class Signer:
    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self.key = ec.generate_private_key(ec.SECP256R1())
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_b64 = base64.b64encode(der).decode()

    def headers(self, body: bytes, ts: str) -> dict[str, str]:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        sig = base64.b64encode(self.key.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
        return {SIG: sig, TS: ts, "Content-Type": "application/json"}


def post_all(port: int, signed: list[tuple[bytes, dict[str, str]]], concurrency: int) -> tuple[float, list[dict]]:
    answers: list[dict] = []
    lock = threading.Lock()
    queue = list(enumerate(signed))

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if not queue:
                    break
                _, (body, headers) = queue.pop(0)
            conn.request("POST", "/webhooks/sendgrid", body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200:
                raise SystemExit(f"webhook answered {response.status}: {data[:300]!r}")
            with lock:
                answers.append(json.loads(data))
        conn.close()

    return c.timed_threads(worker, concurrency), answers


def _cpu_seconds(pids: list[int], since: dict[int, float] | None = None) -> dict[int, float]:
    """User + system CPU seconds of each process, minus ``since`` (an earlier reading; a
    process started in between counts from zero)."""
    out: dict[int, float] = {}
    for pid in pids:
        seconds = c.process_cpu_seconds(pid)
        if seconds is not None:  # None: gone
            out[pid] = seconds - (since or {}).get(pid, 0.0)
    return out


def _backend_pids(url: str) -> list[int]:
    """PostgreSQL: the server processes connected to the bench database (the app's pool)."""
    if not url.startswith("postgresql"):
        return []
    import psycopg

    with psycopg.connect(c._libpq_dsn(url), autocommit=True) as conn:
        return [
            pid
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]


def profile_ingest(state: dict, setup: dict, batches: int = 5) -> str:
    """``ingest_events`` alone (no HTTP, no signature), per phase of a batch, and a cProfile."""
    from newsletter.db import make_engine, session_scope
    from newsletter.tracking import ingest_events, parse_batch

    engine = make_engine(state["url"])
    bodies = make_batches(batches, state["n"], setup["campaign_id"], setup["sent_epoch"], seed=99)
    parsed = [parse_batch(b) for b in bodies]
    started = time.perf_counter()
    for body in bodies:
        parse_batch(body)
    parse_s = (time.perf_counter() - started) / batches
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for events in parsed:
        with session_scope(engine) as s:
            ingest_events(s, events)
    profiler.disable()
    ingest_s = (time.perf_counter() - started) / batches
    engine.dispose()
    buffer = io.StringIO()
    pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(20)
    return (
        f"per batch of 1,000: parse {parse_s * 1000:.1f} ms, ingest_events + commit {ingest_s * 1000:.1f} ms "
        f"({1000 / ingest_s:,.0f} events/s without HTTP)\n" + buffer.getvalue()
    )


def main() -> None:
    parser = c.base_parser(__doc__.split("\n\n")[0], default_n=100_000)
    parser.add_argument("--batches", type=int, default=50, help="batches of 1,000 events (default %(default)s)")
    parser.add_argument("--concurrency", type=int, default=1, help="connections posting at once (default %(default)s)")
    parser.add_argument("--profile", action="store_true", help="also profile ingest_events in process")
    parser.add_argument(
        "--sqlite-pragma",
        action="append",
        default=[],
        metavar="PRAGMA",
        help="what-if: also run 'PRAGMA <PRAGMA>' on each of the server's SQLite connections "
        "(e.g. cache_size=-65536); repeatable",
    )
    parser.add_argument(
        "--profile-server",
        action="store_true",
        help="cProfile the server process (all threads); printed at the end (slows it down)",
    )
    # a database of its own: other benchmarks (send.py, ...) use newsletter_bench and may run at the same time
    parser.set_defaults(pg_url=c.pg_url_for("webhook"))
    args = parser.parse_args()
    if args.phase:
        state = c.load_state(args.state)
        {"setup": phase_setup, "serve": phase_serve}[args.phase](state)
        return
    console, info = c.report_console(args.pg_url)
    results: dict = {
        "machine": info,
        "db": args.db,
        "deliveries": args.recipients,
        "batches": args.batches,
        "sqlite_pragmas_what_if": args.sqlite_pragma,
        "events_per_batch": 1000,
        "concurrency": args.concurrency,
        "server": "uvicorn, 1 process, asyncio loop, h11, no access log",
    }
    with c.bench_store(args.db, args.pg_url, keep=args.keep, prefix="nlbench-webhook-") as (url, tmp):
        state = {"url": url, "tmp": str(tmp), "n": args.recipients}
        setup = c.run_phase(SCRIPT, "setup", state, tmp)
        signer = Signer()
        bodies = make_batches(args.batches, args.recipients, setup["campaign_id"], setup["sent_epoch"])
        port = c.free_port()
        serve_state = dict(
            state,
            port=port,
            public_key=signer.public_b64,
            result_file=str(tmp / "serve.json"),
            profile_server=args.profile_server,
            sqlite_pragmas=args.sqlite_pragma,
        )
        (tmp / "state-serve.json").write_text(json.dumps(serve_state))
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--phase", "serve", "--state", str(tmp / "state-serve.json")], cwd=str(tmp)
        )
        try:
            c.wait_until_serving(
                proc, lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close(), "server"
            )
            # warm-up: one small signed post (imports, pool, first compilations), not timed
            warm = json.dumps(
                [{"event": "processed", "sg_event_id": "warm-up", "delivery_id": "1", "timestamp": setup["sent_epoch"]}]
            ).encode()
            post_all(port, [(warm, signer.headers(warm, str(int(time.time()))))] * args.concurrency, args.concurrency)
            before = event_count(url)
            ts = str(int(time.time()))
            signed = [(b, signer.headers(b, ts)) for b in bodies]  # signed before the clock starts
            mb = sum(len(b) for b in bodies) / 1e6
            server_cpu, db_cpu = _cpu_seconds([proc.pid]), _cpu_seconds(_backend_pids(url))
            wall, answers = post_all(port, signed, args.concurrency)
            server_cpu = _cpu_seconds([proc.pid], since=server_cpu)
            db_pids = _backend_pids(url)  # the pool may have opened a connection during the pass
            db_cpu = _cpu_seconds(db_pids, since=db_cpu)
            stored = event_count(url) - before
            sent = 1000 * args.batches
            ts = str(int(time.time()))
            signed = [(b, signer.headers(b, ts)) for b in bodies]
            wall2, answers2 = post_all(port, signed, args.concurrency)
            stored2 = event_count(url) - before - stored
        finally:
            proc.send_signal(signal.SIGTERM)  # our own child, by handle
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        results.update(
            {
                "body_mb_total": round(mb, 1),
                "body_kb_per_batch": round(mb * 1000 / args.batches),
                "wall_s": round(wall, 2),
                "events_sent": sent,
                "events_stored": stored,
                "stored_equals_sent": stored == sent,
                "events_per_s_stored": round(stored / wall),
                "ms_per_batch": round(wall / args.batches * 1000, 1),
                # CPU, not wall: on a shared machine it moves far less than the wall time does
                "server_cpu_ms_per_batch": round(sum(server_cpu.values()) / args.batches * 1000, 1),
                "postgres_cpu_ms_per_batch": round(sum(db_cpu.values()) / args.batches * 1000, 1) if db_pids else None,
                "suppressed_addresses": sum(a["suppressed"] for a in answers),
                "machine_events": sum(a["machine"] for a in answers),
                "retry_pass": {
                    "wall_s": round(wall2, 2),
                    "events_per_s_checked": round(sent / wall2),
                    "new_rows": stored2,
                    "duplicates_reported": sum(a["duplicates"] for a in answers2),
                },
            }
        )
        console.print(
            f"webhook ingest ({args.db}): {args.batches} batches × 1,000 events, {mb:.1f} MB, "
            f"concurrency {args.concurrency}: {wall:.2f} s → [bold]{stored / wall:,.0f} events/s stored[/] "
            f"({wall / args.batches * 1000:.1f} ms per batch); stored {stored:,} of {sent:,} "
            f"({'ok' if stored == sent else 'MISMATCH'}); {results['suppressed_addresses']} addresses "
            f"suppressed, {results['machine_events']:,} machine opens/clicks"
        )
        console.print(
            f"retry pass (same events again): {wall2:.2f} s, {sent / wall2:,.0f} events/s checked, {stored2} new rows"
        )
        console.print(
            f"CPU per batch of 1,000 (first pass): server process {results['server_cpu_ms_per_batch']} ms"
            + (f", PostgreSQL backends {results['postgres_cpu_ms_per_batch']} ms" if db_pids else "")
            + f"; load average now {[round(x, 2) for x in os.getloadavg()]}"
        )
        if args.profile_server and (tmp / "server-profile.txt").exists():
            results["server_profile"] = (tmp / "server-profile.txt").read_text()
            console.print(results["server_profile"])
        if args.profile:
            text = profile_ingest(state, setup)
            results["profile"] = text
            console.print(text)
    c.write_json_out(args, results)


if __name__ == "__main__":
    main()

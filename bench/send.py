"""Benchmark: a campaign to N recipients (default 1,000,000) end to end, through the official
``sendgrid`` library, to the fake SendGrid running in a separate process.

    python bench/send.py --db sqlite --recipients 1000000
    python bench/send.py --db postgresql --recipients 1000000
    python bench/send.py --db postgresql --recipients 200000 --profile   # cProfile of the send phase

Phases, each in its own child process (so each peak RSS is its own):

1. setup (not timed as the product): N active subscribers bulk-loaded (COPY / executemany), plus
   N/100 unsubscribed ones and N/500 suppressions the ledger must skip; the seed article
   imported; a campaign created for segment ``all``.
2. send (TIMED): ``send_campaign(engine, settings, campaign_id)`` with ``sendgrid_api_key`` and
   ``sendgrid_host`` pointing at the fake and one request out at a time (``--concurrency``; the
   replay below is one request at a time too) → segment → ledger (one INSERT…SELECT) → batches of
   1000 → ``SendGridTransport`` (official library) → fake answers 202.
3. bodies (not timed as the product): the same request bodies rebuilt for the same recipients
   with ``encode_request_body`` (the JSON text the transport posts); the cost of each step
   is reported.
4. replay: those bodies POSTed by ``http.client`` on one kept-alive connection (the machine's
   ceiling with this fake), then once more with a new connection per request (as urllib does).
5. naive: one request per recipient with ``sendgrid.helpers.mail.Mail`` on a sample, each
   message personalised locally; extrapolated to N.

The fake is ``tests/fake_sendgrid.FakeSendGrid(record=False, schema_path=None)`` (JSON parsed,
essential checks run) in its own process, the same one for every phase.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

SCRIPT = Path(__file__).resolve()
ARTICLE = c.REPO_DIR / "articles" / "000-ketamine-assisted-psychotherapy.txt"
FIRST_NAMES = ["Ann", "Bo", "Chen", "Dana", "Elif", "Femi", "Gus", "Hana", "Ivo", "José", None, "Zoë"]


def _settings(state: dict) -> object:
    from newsletter.config import Settings

    return Settings(
        database_url=state["url"],
        secret_key=c.SECRET,
        public_url=c.PUBLIC_URL,
        outbox_dir=str(Path(state["tmp"]) / "outbox"),
        sendgrid_api_key=state.get("api_key"),
        sendgrid_host=state.get("fake_url") or "http://127.0.0.1:9",
        sendgrid_timeout=120.0,
        **({"send_concurrency": state["concurrency"]} if state.get("concurrency") else {}),
    )


# --------------------------------------------------------------------------- phase: setup


def phase_setup(state: dict) -> dict:
    import datetime as dt

    from newsletter.audiences.queries import SUBSCRIBER_COLUMNS
    from newsletter.campaigns import create_campaign, import_article
    from newsletter.db import make_engine, session_scope, upgrade

    n = state["n"]
    url = state["url"]
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    now = dt.datetime.now(dt.timezone.utc)
    cols = ["id", *SUBSCRIBER_COLUMNS]
    extra = n // 100

    def rows():
        for i in range(1, n + extra + 1):
            active = i <= n
            yield (
                i,
                f"reader{i}@example{i % 50}.com",
                FIRST_NAMES[i % len(FIRST_NAMES)],
                "Reader",
                "America/Los_Angeles",
                "en-US",
                "{}",
                "active" if active else "unsubscribed",
                "bench",
                now,
                None,  # consent_text_version
                now,
                now,
                None if active else now,
            )

    started = time.perf_counter()
    with c.progress_bar() as bar:
        task = bar.add_task("subscribers (bulk load)", total=n + extra)
        c.bulk_load(url, "subscribers", cols, rows(), advance=lambda k: bar.advance(task, k))
    c.bulk_load(
        url,
        "suppressions",
        ["email", "reason", "source", "created_at"],
        ((f"gone{i}@example.net", "unsubscribed", "bench", now) for i in range(n // 500)),
    )
    c.reset_pg_sequences(url, ["subscribers", "suppressions"])
    c.analyze(url)
    load_s = time.perf_counter() - started

    settings = _settings(state)
    engine = make_engine(url)
    with session_scope(engine) as session:
        slug = import_article(session, ARTICLE).row.slug
        campaign = create_campaign(session, settings, article_slug=slug, segment="all")
        campaign_id, html_bytes = campaign.id, len(campaign.html.encode())
    engine.dispose()
    return {
        "bulk_load_s": round(load_s, 2),
        "campaign_id": campaign_id,
        "html_bytes": html_bytes,
        "subscribers": n + extra,
        "suppressions": n // 500,
    }


# --------------------------------------------------------------------------- phase: send (timed)


def phase_send(state: dict) -> dict:
    import newsletter.campaigns.send as send_mod
    import newsletter.delivery.sendgrid as sg_mod
    from newsletter.campaigns import send_campaign
    from newsletter.db import make_engine

    settings = _settings(state)
    engine = make_engine(state["url"])
    timing = {"ledger_s": 0.0, "send_batch_s": 0.0, "build_body_s": 0.0, "batches": 0, "ledger_pg_cpu_s": None}

    # Thin timing wrappers around module globals (one call per campaign / per batch: no
    # measurable overhead). send_campaign itself is called as is.
    original_start, original_send_batch, original_build = (
        send_mod.start_sending,
        sg_mod.SendGridTransport.send_batch,
        sg_mod.encode_request_body,
    )

    def start_sending(*a, **k):  # type: ignore[no-untyped-def]
        t0, pg0 = time.perf_counter(), c.postgres_cpu_seconds()
        try:
            return original_start(*a, **k)
        finally:
            timing["ledger_s"] = time.perf_counter() - t0
            pg1 = c.postgres_cpu_seconds()
            timing["ledger_pg_cpu_s"] = None if pg0 is None or pg1 is None else pg1 - pg0

    def send_batch(self, *a, **k):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return original_send_batch(self, *a, **k)
        finally:
            timing["send_batch_s"] += time.perf_counter() - t0
            timing["batches"] += 1

    def build(*a, **k):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return original_build(*a, **k)
        finally:
            timing["build_body_s"] += time.perf_counter() - t0

    send_mod.start_sending = start_sending
    sg_mod.SendGridTransport.send_batch = send_batch
    sg_mod.encode_request_body = build

    profiler = cProfile.Profile() if state.get("profile") else None
    rss_before = c.peak_rss_mb()
    with c.progress_bar() as bar:
        task = bar.add_task("send_campaign", total=state["n"])

        def on_batch(result, total):  # type: ignore[no-untyped-def]
            bar.update(task, completed=result.sent + result.failed + result.suppressed + result.ambiguous, total=total)

        cpu0, pg0 = c.cpu_seconds(), c.postgres_cpu_seconds()
        t0 = time.perf_counter()
        if profiler:
            profiler.enable()
        summary = send_campaign(engine, settings, state["campaign_id"], on_batch=on_batch)
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - t0
        cpu, pg1 = c.cpu_seconds() - cpu0, c.postgres_cpu_seconds()
    pg_cpu = None if pg0 is None or pg1 is None or not state["url"].startswith("postgresql") else pg1 - pg0
    ledger_pg = timing["ledger_pg_cpu_s"] if pg_cpu is not None else None
    out = {
        "postgres_cpu_s": None if pg_cpu is None else round(pg_cpu, 2),
        "postgres_ledger_cpu_s": None if ledger_pg is None else round(ledger_pg, 2),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "ledger_s": round(timing["ledger_s"], 2),
        "dispatch_s": round(wall - timing["ledger_s"], 2),
        "send_batch_s": round(timing["send_batch_s"], 2),
        "build_body_s": round(timing["build_body_s"], 2),
        "batches": timing["batches"],
        "sent": summary.sent,
        "failed": summary.failed,
        "suppressed": summary.suppressed,
        "ambiguous": summary.ambiguous,
        "ledger_added": summary.ledger_added,
        "paused": summary.paused_reason,
        "counts": summary.counts,
        "rate_per_s": round(summary.sent / wall) if wall else None,
        "rss_before_send_mb": round(rss_before, 1),
    }
    if profiler:
        out["profile"] = _profile_text(profiler, Path(state["tmp"]) / "send.prof")
    engine.dispose()
    return out


def _profile_text(profiler: cProfile.Profile, dump: Path, top: int = 30) -> dict:
    profiler.dump_stats(str(dump))
    texts = {}
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).strip_dirs().sort_stats(key).print_stats(top)
        texts[key] = buf.getvalue()
    buf = io.StringIO()  # the package's own functions, by cumulative time
    pstats.Stats(profiler, stream=buf).strip_dirs().sort_stats("cumulative").print_stats(
        r"(dispatch|send|ledger|tokens|sendgrid|personalise|segments?)\.py", 40
    )
    texts["package"] = buf.getvalue()
    return texts


# --------------------------------------------------------------------------- phase: bodies


def _ledger_batches(engine, campaign_id: int, size: int = 1000):  # type: ignore[no-untyped-def]
    """The ledger rows in dispatch order (delivery id), in batches of ``size``: one streamed query."""
    from sqlalchemy import select

    from newsletter.db import models
    from newsletter.delivery.dispatch import LedgerRow

    D, S = models.Delivery, models.Subscriber
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=size).execute(
            select(D.id, S.email, S.first_name, S.last_name)
            .join(S, S.id == D.subscriber_id)
            .where(D.campaign_id == campaign_id)
            .order_by(D.id)
        )
        for part in result.partitions(size):
            yield [LedgerRow(*r) for r in part]


def phase_bodies(state: dict) -> dict:
    from newsletter.campaigns import campaign_message, get_campaign, recipient_factory
    from newsletter.db import make_engine, session_scope
    from newsletter.delivery.sendgrid import encode_request_body

    settings = _settings(state)
    engine = make_engine(state["url"])
    with session_scope(engine) as session:
        message = campaign_message(get_campaign(session, state["campaign_id"]), settings)
    make = recipient_factory(settings)
    t = {"load_s": 0.0, "recipients_s": 0.0, "build_s": 0.0, "encode_s": 0.0}
    n = total_bytes = batches = 0
    path = Path(state["bodies_file"])
    with open(path, "wb") as out:
        it = _ledger_batches(engine, state["campaign_id"])
        while True:
            t0 = time.perf_counter()
            rows = next(it, None)
            t1 = time.perf_counter()
            t["load_s"] += t1 - t0
            if rows is None:
                break
            recipients = [make(r) for r in rows]
            t2 = time.perf_counter()
            body = encode_request_body(message, recipients)  # the JSON text, as the transport posts it
            t3 = time.perf_counter()
            data = body.encode("utf-8")  # as python_http_client encodes a str body
            t4 = time.perf_counter()
            t["recipients_s"] += t2 - t1
            t["build_s"] += t3 - t2
            t["encode_s"] += t4 - t3
            out.write(struct.pack("<I", len(data)))
            out.write(data)
            n += len(recipients)
            total_bytes += len(data)
            batches += 1
    engine.dispose()
    return {
        "recipients": n,
        "batches": batches,
        "body_mb_total": round(total_bytes / 1e6, 1),
        "body_kb_mean": round(total_bytes / max(batches, 1) / 1e3, 1),
        **{k: round(v, 2) for k, v in t.items()},
    }


# --------------------------------------------------------------------------- phase: raw replay


def _bodies(path: Path):  # type: ignore[no-untyped-def]
    with open(path, "rb") as f:
        while head := f.read(4):
            (size,) = struct.unpack("<I", head)
            yield f.read(size)


def _replay(state: dict, keep_alive: bool, connections: int = 1) -> dict:
    """Post the recorded bodies to the fake as fast as it answers, over ``connections``
    connections at once (one thread each, each taking the next body when its answer is in)."""
    import http.client
    import threading
    from urllib.parse import urlsplit

    u = urlsplit(state["fake_url"])
    headers = {
        "Authorization": f"Bearer {state['api_key']}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": "bench-raw-replay",
    }
    if not keep_alive:
        headers["Connection"] = "close"
    bodies = _bodies(Path(state["bodies_file"]))
    take = threading.Lock()
    per_request: list[float] = []
    accepted: list[bool] = []

    def post_all() -> None:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        while True:
            with take:
                data = next(bodies, None)
            if data is None:
                break
            r0 = time.perf_counter()
            conn.request("POST", "/v3/mail/send", body=data, headers=headers)
            resp = conn.getresponse()
            resp.read()
            per_request.append(time.perf_counter() - r0)
            accepted.append(resp.status == 202)
            if not keep_alive:
                conn.close()
        conn.close()

    wall = c.timed_threads(post_all, connections)
    per_request.sort()
    return {
        "wall_s": round(wall, 2),
        "requests": len(per_request),
        "accepted": sum(accepted),
        "connections": connections,
        "p50_ms": round(per_request[len(per_request) // 2] * 1000, 1) if per_request else None,
        "p99_ms": round(per_request[int(len(per_request) * 0.99)] * 1000, 1) if per_request else None,
    }


def phase_replay(state: dict) -> dict:
    return _replay(state, keep_alive=state.get("keep_alive", True), connections=state.get("connections", 1))


# --------------------------------------------------------------------------- phase: naive loop


def phase_naive(state: dict) -> dict:
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import Category, CustomArg, Header, Mail, To

    from newsletter.campaigns import campaign_message, get_campaign
    from newsletter.db import make_engine, session_scope
    from newsletter.render import personalise, recipient_values
    from newsletter.tracking.tokens import TokenSigner

    settings = _settings(state)
    engine = make_engine(state["url"])
    with session_scope(engine) as session:
        message = campaign_message(get_campaign(session, state["campaign_id"]), settings)
    sample = []
    for rows in _ledger_batches(engine, state["campaign_id"]):
        sample.extend(rows)
        if len(sample) >= state["sample"]:
            break
    sample = sample[: state["sample"]]
    engine.dispose()
    signer = TokenSigner(c.SECRET)
    client = SendGridAPIClient(state["api_key"], host=state["fake_url"])
    ok = 0
    t0 = time.perf_counter()
    for row in sample:
        token = signer.sign(row.delivery_id)
        values = recipient_values(row.first_name, token)
        name = " ".join(p for p in (row.first_name, row.last_name) if p) or None
        mail = Mail(
            from_email=(message.from_email, message.from_name),
            to_emails=To(row.email, name),
            subject=personalise(message.subject, values),
            plain_text_content=personalise(message.text, values),
            html_content=personalise(message.html, values),
        )
        mail.reply_to = message.reply_to
        mail.add_header(Header("List-Unsubscribe", f"<{c.PUBLIC_URL}/u/{token}>"))
        mail.add_header(Header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
        mail.add_custom_arg(CustomArg("delivery_id", str(row.delivery_id)))
        mail.add_custom_arg(CustomArg("campaign_id", str(message.campaign_id)))
        mail.add_category(Category(message.category))
        response = client.send(mail)
        ok += response.status_code == 202
    wall = time.perf_counter() - t0
    return {
        "sample": len(sample),
        "accepted": ok,
        "wall_s": round(wall, 2),
        "rate_per_s": round(len(sample) / wall) if wall else None,
    }


PHASES = {
    "setup": phase_setup,
    "send": phase_send,
    "bodies": phase_bodies,
    "replay": phase_replay,
    "naive": phase_naive,
}


# --------------------------------------------------------------------------- orchestration


def main() -> None:
    parser = c.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--naive-sample", type=int, default=2000, help="recipients for the naive loop (default 2000)")
    parser.add_argument("--profile", action="store_true", help="run the send phase under cProfile (slower!)")
    parser.add_argument("--no-replay", action="store_true", help="skip the raw replay and the naive loop")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="requests out at once (NEWSLETTER_SEND_CONCURRENCY); default 1, as in the raw replay: "
        "against a fake on the same two cores, more only add contention",
    )
    args = parser.parse_args()
    if c.run_child_phase(args, PHASES):
        return

    console, info = c.report_console(args.pg_url, width=140)
    n = args.recipients
    console.print(f"[bold]send[/]: {n:,} recipients on {args.db}")
    results: dict = {
        "benchmark": "send",
        "db": args.db,
        "recipients": n,
        "machine": info,
        "command": f"python bench/send.py --db {args.db} --recipients {n}"
        + (" --profile" if args.profile else "")
        + (f" --concurrency {args.concurrency}" if args.concurrency != 1 else ""),
    }
    with c.bench_store(args.db, args.pg_url, args.keep, prefix="nlbench-send-") as (url, tmp):
        state = {
            "url": url,
            "tmp": str(tmp),
            "n": n,
            "bodies_file": str(tmp / "bodies.bin"),
            "profile": args.profile,
            "sample": min(args.naive_sample, n),
            "concurrency": args.concurrency,
        }
        setup = c.run_phase(SCRIPT, "setup", state, tmp)
        results["setup"] = setup
        console.print(
            f"set-up: {setup['subscribers']:,} subscribers bulk-loaded in {setup['bulk_load_s']} s; "
            f"campaign {setup['campaign_id']} (HTML {setup['html_bytes']:,} bytes)"
        )
        state["campaign_id"] = setup["campaign_id"]
        with c.FakeProcess() as fake:
            state.update(fake_url=fake.url, api_key=fake.api_key)
            console.print(f"fake SendGrid: {fake.url} (pid {fake.pid}, a separate process)")
            send = c.run_phase(SCRIPT, "send", state, tmp)
            send["fake"] = fake.stats()
            send["db_size_mb"] = round(c.db_size_mb(url), 1)
            results["send"] = send
            profile = send.pop("profile", None)
            if not args.no_replay and not args.profile:
                fake.reset()
                results["bodies"] = c.run_phase(SCRIPT, "bodies", state, tmp)
                replay = c.run_phase(SCRIPT, "replay", dict(state, keep_alive=True), tmp)
                replay["fake"] = fake.stats()
                results["replay"] = replay
                if args.concurrency > 1:  # the ceiling is the faster of one connection and as many as ours
                    fake.reset()
                    replay_n = c.run_phase(
                        SCRIPT, "replay", dict(state, keep_alive=True, connections=args.concurrency), tmp
                    )
                    replay_n["fake"] = fake.stats()
                    results["replay_concurrent"] = replay_n
                fake.reset()
                replay_close = c.run_phase(SCRIPT, "replay", dict(state, keep_alive=False), tmp)
                replay_close["fake"] = fake.stats()
                results["replay_new_connection"] = replay_close
                fake.reset()
                naive = c.run_phase(SCRIPT, "naive", state, tmp)
                naive["fake"] = fake.stats()
                results["naive"] = naive
            results["fake_final"] = fake.stop()

    _report(console, results, profile)
    c.write_json_out(args, results)


def _report(console, r: dict, profile: dict | None) -> None:  # type: ignore[no-untyped-def]
    n = r["recipients"]
    s = r["send"]
    ok = s["sent"] == n and s["fake"]["recipients"] == n and s["fake"]["addresses_sent_twice"] == 0
    t = c.figures_table(f"send: {n:,} recipients, {r['db']}")
    t.add_row("ours: send_campaign wall", f"{s['wall_s']} s")
    t.add_row("ours: recipients/s", c.fmt_rate(s["rate_per_s"]))
    t.add_row("  ledger build (INSERT…SELECT)", f"{s['ledger_s']} s")
    t.add_row("  dispatch (claim/load/send/record)", f"{s['dispatch_s']} s")
    t.add_row("    send_batch on the sending thread (the HTTP request)", f"{s['send_batch_s']} s")
    t.add_row("    on the main thread: claims, recipients, request bodies", "(overlapped: not a sum)")
    t.add_row("      of which encode_request_body (the bodies)", f"{s['build_body_s']} s")
    t.add_row("  sender CPU (user+sys)", f"{s['cpu_s']} s")
    if s.get("postgres_cpu_s") is not None:
        t.add_row(
            "  PostgreSQL CPU, whole server (of which ledger build)",
            f"{s['postgres_cpu_s']} s ({s['postgres_ledger_cpu_s']} s)",
        )
    t.add_row("  fake CPU / time in handler", f"{s['fake']['cpu_seconds']} s / {s['fake']['handle_seconds']} s")
    t.add_row("peak RSS, send process", f"{s['peak_rss_mb']} MB (before send {s['rss_before_send_mb']} MB)")
    t.add_row("delivered exactly once", "yes" if ok else f"NO: {s['sent']} sent, fake {s['fake']}")
    if "replay" in r:
        b, rp, rc, nv = r["bodies"], r["replay"], r["replay_new_connection"], r["naive"]
        t.add_row(
            "bodies: rebuild ledger rows → recipients → body → JSON",
            f"{b['load_s']} + {b['recipients_s']} + {b['build_s']} + {b['encode_s']} s "
            f"({b['body_kb_mean']} kB/request)",
        )
        raw_rate = n / rp["wall_s"]
        if "replay_concurrent" in r:
            rn = r["replay_concurrent"]
            t.add_row(
                f"raw replay, kept-alive, {rn['connections']} connections at once",
                f"{c.fmt_rate(n / rn['wall_s'])}/s ({rn['wall_s']} s, p50 {rn['p50_ms']} ms)",
            )
            raw_rate = max(raw_rate, n / rn["wall_s"])
        close_rate = n / rc["wall_s"]
        naive_rate = nv["rate_per_s"]
        t.add_row(
            "raw replay, kept-alive, 1 connection",
            f"{c.fmt_rate(n / rp['wall_s'])}/s ({rp['wall_s']} s, p50 {rp['p50_ms']} ms)",
        )
        t.add_row("raw replay, new connection each", f"{c.fmt_rate(close_rate)}/s ({rc['wall_s']} s)")
        t.add_row(
            f"naive (Mail helper, 1/request, {nv['sample']:,} sample)",
            f"{c.fmt_rate(naive_rate)}/s → {n / naive_rate / 60:,.1f} min for {n:,}",
        )
        t.add_row("ours / raw replay (the faster replay: the ceiling)", f"{s['rate_per_s'] / raw_rate:.0%}")
        t.add_row("ours / naive", f"{s['rate_per_s'] / naive_rate:,.0f}×")
        r["ratios"] = {
            "ours_over_raw": s["rate_per_s"] / raw_rate,
            "ours_over_naive": s["rate_per_s"] / naive_rate,
            "raw_rate": raw_rate,
            "raw_new_connection_rate": close_rate,
        }
    console.print(t)
    targets = [("≥ 20,000 recipients/s", s["rate_per_s"] >= 20_000), ("peak RSS < 200 MB", s["peak_rss_mb"] < 200)]
    if "ratios" in r:
        targets.append(("≥ 50% of raw replay", r["ratios"]["ours_over_raw"] >= 0.5))
    console.print("targets: " + "; ".join(f"{name}: {'met' if met else '[red]MISSED[/]'}" for name, met in targets))
    if profile:
        console.print("[bold]cProfile, send phase, by tottime[/]")
        console.print(profile["tottime"], markup=False, highlight=False)
        console.print("[bold]cProfile, send phase, by cumulative[/]")
        console.print(profile["cumulative"], markup=False, highlight=False)
        console.print("[bold]cProfile, send phase, package functions by cumulative[/]")
        console.print(profile["package"], markup=False, highlight=False)


if __name__ == "__main__":
    main()

"""Benchmark: ``count_segment`` over N subscribers (default 1,000,000) with tags, JSON
attributes and a history of engagement events.

    python bench/segment_count.py --db postgresql --recipients 1000000
    python bench/segment_count.py --db sqlite --recipients 1000000
    python bench/segment_count.py --db postgresql --try-index "CREATE INDEX ... ON events (...)"  # compare

Data (bulk-loaded, not timed): N subscribers (95% active, 3% unsubscribed, 2% bounced) with
attributes ``{"state", "plan", "member_rating"[, "referrer"]}`` (state OR for ~10%); about 1.4
tags each on average from ketamine 30%, depression 25%, anxiety 20%, ptsd 8%, newsletter 50%,
family 5%, clinician 2%; 12 past campaigns, one every 15 days, each with 5 links of which one
is kind ``cta``; per campaign 25% of subscribers open (a fifth of the opens machine: Apple MPP),
3% click (a tenth machine: link scanners), 0.5% click the CTA. That is about 3.4 M events.

The segment (a YAML file in a temporary audiences folder)::

    rules:
      tags: {any: [ketamine, depression]}
      attributes: {state: {equals: OR}}
      engagement: {opened_within_days: 90}

and a second one with ``clicked_cta_within_days: 90`` instead of the open rule. Each is counted
once to warm up, then 5 times: the median is reported, with the plan (EXPLAIN ANALYZE on
PostgreSQL, EXPLAIN QUERY PLAN on SQLite). Target: < 300 ms on PostgreSQL.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

SCRIPT = Path(__file__).resolve()
STATES = ["OR", "WA", "CA", "ID", "NV", "TX", "NY", "FL", "IL", "AZ"]
PLANS = ["none", "basic", "plus", "clinic"]
CAMPAIGNS = 12
EVERY_DAYS = 15
OPEN_RATE, MACHINE_OPEN, CLICK_RATE, MACHINE_CLICK, CTA_RATE = 0.25, 0.20, 0.03, 0.10, 0.005

SEGMENTS = {
    "bench-opened": """name: bench-opened
description: Oregon readers interested in ketamine or depression who opened in the last 90 days
rules:
  tags: {any: [ketamine, depression]}
  attributes: {state: {equals: OR}}
  engagement: {opened_within_days: 90}
""",
    "bench-cta": """name: bench-cta
description: Oregon readers interested in ketamine or depression who clicked "connect today" in the last 90 days
rules:
  tags: {any: [ketamine, depression]}
  attributes: {state: {equals: OR}}
  engagement: {clicked_cta_within_days: 90}
""",
}


# --------------------------------------------------------------------------- phase: setup


def phase_setup(state: dict) -> dict:
    import datetime as dt

    from newsletter.audiences.queries import SUBSCRIBER_COLUMNS
    from newsletter.db import make_engine, upgrade

    n, url = state["n"], state["url"]
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    rnd = random.Random(20261127)
    now = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()
    counts = {}

    def subscribers():
        for i in range(1, n + 1):
            r = rnd.random()
            status = "active" if r < 0.95 else "unsubscribed" if r < 0.98 else "bounced"
            attrs = {
                "state": "OR" if rnd.random() < 0.10 else STATES[1 + i % 9],
                "plan": PLANS[i % 4],
                "member_rating": str(1 + i % 5),
            }
            if i % 7 == 0:
                attrs["referrer"] = "search"
            created = now - dt.timedelta(days=3 * 365 * (n - i) / n)
            yield (
                i,
                f"reader{i}@example{i % 50}.com",
                "Reader",
                "Test",
                "America/Los_Angeles",
                "en-US",
                json.dumps(attrs),
                status,
                "bench",
                created,
                None,  # consent_text_version
                created,
                created,
                None if status == "active" else created,
            )

    def tags():
        for i in range(1, n + 1):
            for tag, p in c.AUDIENCE_TAGS:
                if rnd.random() < p:
                    yield (i, tag)

    sent_at = [now - dt.timedelta(days=EVERY_DAYS * k + 1) for k in range(CAMPAIGNS)]

    def events():
        k = 0
        for cid in range(1, CAMPAIGNS + 1):
            base = sent_at[cid - 1]
            cta_link = (cid - 1) * 5 + 1
            for sid in range(1, n + 1):
                if rnd.random() >= OPEN_RATE:
                    continue
                k += 1
                machine = rnd.random() < MACHINE_OPEN
                yield (
                    k,
                    f"bench-{k}",
                    "open",
                    "tracking",
                    cid,
                    sid,
                    None,
                    machine,
                    "apple-mpp" if machine else None,
                    base + dt.timedelta(minutes=rnd.random() * 4320),
                )
                if rnd.random() < CLICK_RATE / OPEN_RATE:
                    k += 1
                    machine = rnd.random() < MACHINE_CLICK
                    link = cta_link if rnd.random() < CTA_RATE / CLICK_RATE else cta_link + 1 + rnd.randrange(4)
                    yield (
                        k,
                        f"bench-{k}",
                        "click",
                        "tracking",
                        cid,
                        sid,
                        link,
                        machine,
                        "link-scanner" if machine else None,
                        base + dt.timedelta(minutes=rnd.random() * 4320),
                    )

    with c.progress_bar() as bar:
        task = bar.add_task("subscribers", total=n)
        counts["subscribers"] = c.bulk_load(
            url,
            "subscribers",
            ["id", *SUBSCRIBER_COLUMNS],
            subscribers(),
            advance=lambda k: bar.advance(task, k),
        )
        task = bar.add_task("subscriber_tags", total=int(n * sum(p for _, p in c.AUDIENCE_TAGS)))
        counts["subscriber_tags"] = c.bulk_load(
            url, "subscriber_tags", ["subscriber_id", "tag"], tags(), advance=lambda k: bar.advance(task, k)
        )
        c.bulk_load(
            url,
            "articles",
            ["id", "slug", "title", "source_format", "content", "content_hash", "created_at", "updated_at"],
            iter([(1, "bench", "Bench", "text", "{}", "0" * 64, now, now)]),
        )
        c.bulk_load(
            url,
            "campaigns",
            [
                "id",
                "article_id",
                "name",
                "subject",
                "preheader",
                "segment",
                "template",
                "status",
                "html",
                "text",
                "started_at",
                "finished_at",
                "created_at",
                "updated_at",
            ],
            (
                (
                    cid,
                    1,
                    f"Campaign {cid}",
                    "Subject",
                    "",
                    "all",
                    "newsletter.mjml.j2",
                    "sent",
                    "<p>x</p>",
                    "x",
                    sent_at[cid - 1],
                    sent_at[cid - 1],
                    sent_at[cid - 1],
                    sent_at[cid - 1],
                )
                for cid in range(1, CAMPAIGNS + 1)
            ),
        )
        c.bulk_load(
            url,
            "campaign_links",
            ["id", "campaign_id", "position", "url", "label", "kind"],
            (
                ((cid - 1) * 5 + p, cid, p, f"https://example.org/{p}", f"link {p}", "cta" if p == 1 else "article")
                for cid in range(1, CAMPAIGNS + 1)
                for p in range(1, 6)
            ),
        )
        task = bar.add_task("events", total=int(n * CAMPAIGNS * (OPEN_RATE + CLICK_RATE)))
        counts["events"] = c.bulk_load(
            url,
            "events",
            [
                "id",
                "event_key",
                "type",
                "source",
                "campaign_id",
                "subscriber_id",
                "link_id",
                "is_machine",
                "machine_reason",
                "occurred_at",
            ],
            events(),
            advance=lambda k: bar.advance(task, k),
        )
    c.reset_pg_sequences(url, ["subscribers", "articles", "campaigns", "campaign_links", "events"])
    c.analyze(url)
    return {"load_s": round(time.perf_counter() - t0, 1), "now": now.isoformat(), **counts}


# --------------------------------------------------------------------------- phase: count


def _explain(engine, query) -> str:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    sql = str(query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql)).all()
            return sql + "\n\n" + "\n".join(r[0] for r in rows)
        rows = conn.execute(text("EXPLAIN QUERY PLAN " + sql)).all()
        return sql + "\n\n" + "\n".join(f"{r[0]:>3} {r[1]:>3} {r[3]}" for r in rows)


def phase_count(state: dict) -> dict:
    import datetime as dt

    from sqlalchemy import func, select, text
    from sqlalchemy.orm import Session

    from newsletter.audiences import count_segment, load_segment, segment_condition
    from newsletter.db import make_engine, models

    engine = make_engine(state["url"])
    for sql in state.get("indexes") or []:
        with engine.begin() as conn:
            t0 = time.perf_counter()
            conn.execute(text(sql))
        print(f"  {sql}  ({time.perf_counter() - t0:.1f} s)", flush=True)
    if state.get("indexes") and engine.dialect.name == "postgresql":
        c.analyze(state["url"])
    now = dt.datetime.now(dt.timezone.utc)
    out: dict = {}
    for name in SEGMENTS:
        segment = load_segment(name, state["audiences"])
        times = []
        for run in range(6):
            with Session(engine) as session:
                t0 = time.perf_counter()
                count = count_segment(session, segment, now)
                elapsed = time.perf_counter() - t0
            if run:
                times.append(elapsed)
        query = select(func.count()).select_from(models.Subscriber).where(segment_condition(segment, now))
        out[name] = {
            "count": count,
            "median_ms": round(statistics.median(times) * 1000, 1),
            "runs_ms": [round(t * 1000, 1) for t in times],
            "plan": _explain(engine, query),
        }
    engine.dispose()
    return out


PHASES = {"setup": phase_setup, "count": phase_count}


def _plan_summary(plan: str) -> str:
    lines = plan.split("\n\n", 1)[1].splitlines()
    keep = [
        line
        for line in lines
        if any(
            k in line
            for k in (
                "Scan",
                "Join",
                "Aggregate",
                "Gather",
                "Execution Time",
                "Workers",
                "SEARCH",
                "SCAN",
                "CORRELATED",
                "EXISTS",
                "LIST",
                "USING",
            )
        )
    ]
    return "\n".join(keep)


def main() -> None:
    parser = c.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument(
        "--try-index",
        action="append",
        default=[],
        help="SQL run after the baseline (e.g. CREATE INDEX …); the counts are timed again",
    )
    args = parser.parse_args()
    if c.run_child_phase(args, PHASES):
        return

    from rich.table import Table

    console, info = c.report_console(args.pg_url, width=160)
    n = args.recipients
    results: dict = {
        "benchmark": "segment_count",
        "db": args.db,
        "subscribers": n,
        "machine": info,
        "command": f"python bench/segment_count.py --db {args.db} --recipients {n}",
    }
    with c.bench_store(args.db, args.pg_url, args.keep, prefix="nlbench-segment-") as (url, tmp):
        audiences = tmp / "audiences"
        audiences.mkdir()
        for name, body in SEGMENTS.items():
            (audiences / f"{name}.yaml").write_text(body)
        state = {"url": url, "tmp": str(tmp), "n": n, "audiences": str(audiences)}
        results["setup"] = setup = c.run_phase(SCRIPT, "setup", state, tmp)
        results["db_size_mb"] = round(c.db_size_mb(url), 1)
        console.print(
            f"set-up: {setup['subscribers']:,} subscribers, {setup['subscriber_tags']:,} tags, "
            f"{setup['events']:,} events in {setup['load_s']} s; store {results['db_size_mb']} MB"
        )
        results["baseline"] = c.run_phase(SCRIPT, "count", state, tmp)
        if args.try_index:
            console.print("trying: ")
            results["with_indexes"] = c.run_phase(SCRIPT, "count", dict(state, indexes=args.try_index), tmp)
            results["indexes_tried"] = args.try_index

    t = Table(title=f"segment_count: {n:,} subscribers, {args.db}")
    for col in ("segment", "variant", "count", "median of 5 (ms)", "runs (ms)"):
        t.add_column(col, justify="right" if col != "segment" else "left")
    for variant in ("baseline", "with_indexes"):
        for name, r in (results.get(variant) or {}).items():
            if isinstance(r, dict) and "median_ms" in r:
                t.add_row(name, variant, f"{r['count']:,}", str(r["median_ms"]), ", ".join(map(str, r["runs_ms"])))
    console.print(t)
    for variant in ("baseline", "with_indexes"):
        for name, r in (results.get(variant) or {}).items():
            if isinstance(r, dict) and "plan" in r:
                console.print(f"[bold]plan: {name} ({variant})[/]")
                console.print(r["plan"].split("\n\n", 1)[1], markup=False, highlight=False)
    if args.db == "postgresql":
        console.print(
            "target < 300 ms on PostgreSQL: baseline "
            + ", ".join(
                f"{k} {'met' if r['median_ms'] < 300 else 'MISSED'}"
                for k, r in results["baseline"].items()
                if isinstance(r, dict) and "median_ms" in r
            )
        )
    c.write_json_out(args, results)


if __name__ == "__main__":
    main()

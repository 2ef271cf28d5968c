"""Benchmark: ``campaign_report`` (and ``trends_report``) over a store of 10,000,000+ events, on PostgreSQL.

    python bench/report.py                                    # 100,000 subscribers × 40 weekly newsletters ≈ 11 M events
    python bench/report.py --recipients 500000 --campaigns 8  # the same 11 M events in 8 huge newsletters
    python bench/report.py --keep                             # keep the store, then:
    python bench/report.py --reuse --drop-index ix_events_campaign_people   # the same store without the report index

The default is a clinic's history: a list of 100,000 and a newsletter every week for nine
months. The report of one newsletter should cost the size of that newsletter, not of the store.

The store is the PostgreSQL database ``newsletter_bench_report`` (dropped and re-created; ``--pg-url``
to change it; ``--keep`` to keep it), migrated to head, then filled **inside the server** with
``INSERT … SELECT … FROM generate_series(…)``: no row passes through Python. Probabilities come
from ``hashint8`` of (subscriber, campaign, draw), so every run builds the same store.

Per newsletter (every subscriber is a recipient), with ``--recipients`` N:

* provider: ``processed`` for all, ``delivered`` 99 %, ``bounce`` 1 %, ``deferred`` 2 %;
* opens: 30 % of people open (human), 35 % of them twice; 20 % get a machine open (Apple MPP);
* clicks: 20 % of human openers click, a quarter of them on the CTA (link 1), 30 % click twice;
  2 % get a link-scanner click; 90 % of CTA clickers get a ``lead`` event; 0.2 % unsubscribe;
* 7 tags (1.4 per subscriber on average); leads for everyone with a lead event, a third of
  them booked (with their ``lead_status_changes``).

That is about 2.74 events per recipient per newsletter: 100,000 × 40 ≈ 11 M events and 4 M
ledger rows (500,000 × 8: the same 11 M events and 4 M ledger rows). The secondary indexes of ``events`` and ``deliveries`` are dropped for the load and
rebuilt from the schema's own definitions afterwards, foreign-key triggers are off during the
load (``session_replication_role = replica``), then ``VACUUM ANALYZE``.

Timed (in a child process): ``campaign_report`` of the newest newsletter (every section: funnel,
people and machines, links, tags, the first 72 hours), once to warm up, then 5 times: median.
Each SQL statement is timed too (from SQLAlchemy's cursor events), and the slowest are shown
with ``EXPLAIN (ANALYZE, BUFFERS)``. ``trends_report`` over 12 weeks (all campaigns) is timed the
same way, for information. Target: campaign report < 1 s on PostgreSQL.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

SCRIPT = Path(__file__).resolve()
TARGET_S = 1.0
PG_URL = c.pg_url_for("report")
RUNS = 5

# --------------------------------------------------------------------------- phase: setup (all in SQL)

U = """CREATE FUNCTION u(s bigint, c int, k int) RETURNS float8 IMMUTABLE PARALLEL SAFE LANGUAGE sql AS
$$ SELECT ((hashint8(s * 7919 + c * 104729 + k * 1299709)::bigint + 2147483648) % 1000000) / 1000000.0 $$"""


def _event_sql(
    type_: str,
    source: str,
    *,
    where: str,
    delivery: bool = True,
    link: str = "NULL",
    machine: str = "false",
    reason: str = "NULL",
    at: str,
    suffix: str = "",
) -> str:
    """One INSERT … SELECT for one kind of event across every campaign and subscriber."""
    return f"""
INSERT INTO events (event_key, type, source, campaign_id, delivery_id, subscriber_id, link_id, is_machine,
                    machine_reason, occurred_at)
SELECT 'b' || c || '-' || s || '-{type_}{suffix}', '{type_}', '{source}', c, {"(c - 1) * %(n)s + s" if delivery else "NULL"},
       s, {link}, {machine}, {reason}, start + ({at}) * interval '1 hour'
FROM (SELECT c, %(base)s::timestamptz + (c - 1) * interval '7 days' AS start FROM generate_series(1, %(campaigns)s) c) cs,
     generate_series(1, %(n)s) s
WHERE {where}"""


OPENS = "u(s, c, 3) < 0.30"
CLICKS = f"{OPENS} AND u(s, c, 6) < 0.20"
CTA = f"{CLICKS} AND u(s, c, 7) < 0.25"
# Hours after the start: most engagement early, a long tail to 72 h and beyond.
SOON = "power(u(s, c, {k}), 3) * 80"

EVENTS = [
    _event_sql("processed", "sendgrid", where="true", at="u(s, c, 20) / 3"),
    _event_sql("delivered", "sendgrid", where="u(s, c, 1) >= 0.01", at="u(s, c, 20) / 3 + 0.01"),
    _event_sql("bounce", "sendgrid", where="u(s, c, 1) < 0.01", at="u(s, c, 20) / 3 + 0.02"),
    _event_sql("deferred", "sendgrid", where="u(s, c, 2) < 0.02", at="u(s, c, 20) / 3 + 0.005"),
    _event_sql("open", "tracking", where=OPENS, at=SOON.format(k=13)),
    _event_sql("open", "tracking", where=f"{OPENS} AND u(s, c, 4) < 0.35", at=SOON.format(k=13) + " + 3", suffix="-2"),
    _event_sql(
        "open",
        "tracking",
        where="u(s, c, 5) < 0.20",
        machine="true",
        reason="'apple_mpp'",
        at="u(s, c, 20) / 3 + 0.1",
        suffix="-m",
    ),
    _event_sql(
        "click",
        "tracking",
        where=CLICKS,
        at=SOON.format(k=13) + " + 0.05",
        link="(c - 1) * 5 + CASE WHEN u(s, c, 7) < 0.25 THEN 1 ELSE 2 + floor(u(s, c, 8) * 4)::int END",
    ),
    _event_sql(
        "click",
        "tracking",
        where=f"{CLICKS} AND u(s, c, 9) < 0.30",
        at=SOON.format(k=13) + " + 0.5",
        link="(c - 1) * 5 + 2 + floor(u(s, c, 10) * 4)::int",
        suffix="-2",
    ),
    _event_sql(
        "click",
        "tracking",
        where="u(s, c, 11) < 0.02",
        machine="true",
        reason="'link_scanner'",
        at="u(s, c, 20) / 3 + 0.02",
        link="(c - 1) * 5 + 2",
        suffix="-m",
    ),
    _event_sql(
        "lead",
        "tracking",
        where=f"{CTA} AND u(s, c, 12) < 0.90",
        at=SOON.format(k=13) + " + 0.05",
        link="(c - 1) * 5 + 1",
    ),
    _event_sql("unsubscribe", "tracking", where="u(s, c, 14) < 0.002", at="u(s, c, 15) * 100"),
]

SETUP = [
    U,
    """INSERT INTO articles (id, slug, title, source_format, content, content_hash, created_at, updated_at)
       VALUES (1, 'bench', 'Bench', 'text', '{}', repeat('0', 64), %(base)s, %(base)s)""",
    """INSERT INTO campaigns (id, kind, article_id, name, subject, preheader, segment, template, status, html, text,
                             started_at, finished_at, created_at, updated_at)
       SELECT c, 'newsletter', 1, 'Newsletter ' || c, 'Newsletter ' || c, '', CASE WHEN c %% 2 = 0 THEN 'all' ELSE 'ketamine' END,
              'newsletter.mjml.j2', 'sent', '<p>x</p>', 'x', t, t + interval '20 minutes', t, t
       FROM (SELECT c, %(base)s::timestamptz + (c - 1) * interval '7 days' AS t FROM generate_series(1, %(campaigns)s) c) x""",
    """INSERT INTO campaign_links (id, campaign_id, position, url, label, kind)
       SELECT (c - 1) * 5 + p, c, p, 'https://example.org/' || c || '/' || p,
              CASE p WHEN 1 THEN 'Connect today' ELSE 'Article link ' || p END, CASE p WHEN 1 THEN 'cta' ELSE 'article' END
       FROM generate_series(1, %(campaigns)s) c, generate_series(1, 5) p""",
    """INSERT INTO subscribers (id, email, first_name, last_name, attributes, status, created_at, updated_at, status_changed_at)
       SELECT s, 'reader' || s || '@example.com', 'Reader', 'Test', '{}',
              CASE WHEN u(s, 0, 1) < 0.03 THEN 'unsubscribed' WHEN u(s, 0, 1) < 0.05 THEN 'bounced' ELSE 'active' END,
              t, t, CASE WHEN u(s, 0, 1) < 0.05 THEN t + (%(now)s::timestamptz - t) * u(s, 0, 2) END
       FROM (SELECT s, %(base)s::timestamptz - interval '2 years' + (s::float8 / %(n)s) * (%(now)s::timestamptz - %(base)s::timestamptz + interval '2 years') AS t
             FROM generate_series(1, %(n)s) s) x""",
    "INSERT INTO subscriber_tags (subscriber_id, tag) SELECT s, t.tag FROM generate_series(1, %(n)s) s, (VALUES "
    + ", ".join(f"('{tag}', {p}, {k})" for k, (tag, p) in enumerate(c.AUDIENCE_TAGS))
    + ") t(tag, p, k) WHERE u(s, 0, 10 + t.k) < t.p",
    """INSERT INTO deliveries (id, campaign_id, subscriber_id, status, attempts, message_id, created_at, sent_at, updated_at)
       SELECT (c - 1) * %(n)s + s, c, s, 'sent', 1, 'bench-' || c || '-' || s, t, t + u(s, c, 20) / 3 * interval '1 hour', t
       FROM (SELECT c, %(base)s::timestamptz + (c - 1) * interval '7 days' AS t FROM generate_series(1, %(campaigns)s) c) x,
            generate_series(1, %(n)s) s""",
    *EVENTS,
    # One lead per person, from their first lead event; a third booked (then some clients).
    """INSERT INTO leads (subscriber_id, campaign_id, link_id, status, score, cta_clicks, source, created_at, updated_at,
                          status_changed_at)
       SELECT subscriber_id, min(campaign_id), min(link_id),
              CASE WHEN u(subscriber_id, 0, 30) < 0.22 THEN 'booked' WHEN u(subscriber_id, 0, 30) < 0.33 THEN 'client'
                   WHEN u(subscriber_id, 0, 30) < 0.6 THEN 'contacted' ELSE 'new' END,
              10, count(*), 'cta_click', min(occurred_at), min(occurred_at), min(occurred_at) + interval '2 days'
       FROM events WHERE type = 'lead' GROUP BY subscriber_id""",
    """INSERT INTO lead_status_changes (lead_id, from_status, to_status, changed_by, changed_at)
       SELECT id, NULL, 'new', 'system:cta', created_at FROM leads
       UNION ALL SELECT id, 'new', 'booked', 'staff', status_changed_at FROM leads WHERE status IN ('booked', 'client')
       UNION ALL SELECT id, 'booked', 'client', 'staff', status_changed_at + interval '7 days' FROM leads WHERE status = 'client'""",
    "DROP FUNCTION u",
]


def _secondary_indexes(conn, tables: tuple[str, ...]) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(drop, create) statements for every index of ``tables`` but the primary keys."""
    out = []
    rows = conn.execute(
        """
        SELECT i.relname, t.relname, pg_get_indexdef(i.oid), c.conname, pg_get_constraintdef(c.oid)
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
        LEFT JOIN pg_constraint c ON c.conindid = i.oid AND c.contype = 'u'
        WHERE t.relname = ANY(%s) AND NOT x.indisprimary""",
        (list(tables),),
    ).fetchall()
    for index, table, indexdef, constraint, condef in rows:
        if constraint:
            out.append(
                (
                    f'ALTER TABLE {table} DROP CONSTRAINT "{constraint}"',
                    f'ALTER TABLE {table} ADD CONSTRAINT "{constraint}" {condef}',
                )
            )
        else:
            out.append((f'DROP INDEX "{index}"', indexdef))
    return out


def phase_setup(state: dict) -> dict:
    import datetime as dt

    import psycopg

    from newsletter.db import make_engine, upgrade

    engine = make_engine(state["url"])
    upgrade(engine)
    engine.dispose()
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    base = now - dt.timedelta(days=7 * state["campaigns"] - 1)
    params = {"n": state["n"], "campaigns": state["campaigns"], "base": base, "now": now}
    steps: dict[str, float] = {}
    with psycopg.connect(c._libpq_dsn(state["url"]), autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # no FK triggers during the load
        conn.execute("SET maintenance_work_mem = '512MB'")
        indexes = _secondary_indexes(conn, ("events", "deliveries"))
        for drop, _ in indexes:
            conn.execute(drop)
        for sql in SETUP:
            t0 = time.perf_counter()
            conn.execute(sql, params if "%(" in sql else None)
            label = " ".join(sql.split())[:60]
            steps[label] = round(time.perf_counter() - t0, 1)
            print(f"  {steps[label]:7.1f} s  {label}", flush=True)
        t0 = time.perf_counter()
        for _, create in indexes:
            conn.execute(create)
        steps["rebuild indexes"] = round(time.perf_counter() - t0, 1)
        print(f"  {steps['rebuild indexes']:7.1f} s  rebuild {len(indexes)} indexes", flush=True)
        for table in ("events", "deliveries", "leads", "lead_status_changes"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT coalesce(max(id), 1) FROM {table}))"
            )
        t0 = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        steps["vacuum analyze"] = round(time.perf_counter() - t0, 1)
        counts = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("subscribers", "subscriber_tags", "campaigns", "deliveries", "events", "leads")
        }
        by_type = dict(conn.execute("SELECT type, count(*) FROM events GROUP BY type ORDER BY 2 DESC").fetchall())
    return {
        "steps_s": steps,
        "counts": counts,
        "events_by_type": by_type,
        "now": now.isoformat(),
        "load_s": round(sum(steps.values()), 1),
    }


# --------------------------------------------------------------------------- phase: report (timed)


class StatementTimer:
    """Times every statement run through an engine (SQLAlchemy cursor events)."""

    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        from sqlalchemy import event

        self.records: list[tuple[str, object, float]] = []
        self._started: dict[int, float] = {}
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        self._started[id(cursor)] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        self.records.append((statement, parameters, time.perf_counter() - self._started.pop(id(cursor))))


def _label(statement: str) -> str:
    """A short name for a statement: what it selects and from where."""
    flat = " ".join(statement.split())
    head = flat[7 : flat.find(" FROM ")] if flat.startswith("SELECT") else flat[:40]
    return (head[:70] + "…") if len(head) > 70 else head


def _timed(engine, timer: StatementTimer, work) -> dict:  # type: ignore[no-untyped-def]
    from sqlalchemy.orm import Session

    times, per_statement = [], None
    for run in range(RUNS + 1):
        timer.records.clear()
        with Session(engine) as session:
            t0 = time.perf_counter()
            result = work(session)
            elapsed = time.perf_counter() - t0
        if run:  # the first run warms caches and plans
            times.append(elapsed)
            rows = [(s, p, t) for s, p, t in timer.records]
            if per_statement is None:
                per_statement = [[s, p, [t]] for s, p, t in rows]
            else:
                for entry, (_, _, t) in zip(per_statement, rows, strict=True):
                    entry[2].append(t)
    statements = sorted(
        (
            {"label": _label(s), "sql": s, "params": p, "median_ms": round(statistics.median(ts) * 1000, 1)}
            for s, p, ts in per_statement or []
        ),
        key=lambda e: -e["median_ms"],
    )
    return {
        "median_s": round(statistics.median(times), 3),
        "runs_s": [round(t, 3) for t in times],
        "statements": statements,
        "result": result,
    }


def _explain(engine, statement: str, params) -> str:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        conn.exec_driver_sql("SET jit = off")  # as the report's own transaction (reports.figures.analytics)
        conn.exec_driver_sql("SET work_mem = '64MB'")
        rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, params).all()
    return "\n".join(r[0] for r in rows)


def phase_report(state: dict) -> dict:
    import datetime as dt

    from sqlalchemy import text

    from newsletter.db import make_engine
    from newsletter.reports import campaign_report, trends_report

    engine = make_engine(state["url"])
    for name in state.get("drop_indexes") or []:
        with engine.begin() as conn:
            conn.execute(text(f'DROP INDEX IF EXISTS "{name}"'))
        print(f"  dropped index {name}", flush=True)
    timer = StatementTimer(engine)
    now = dt.datetime.fromisoformat(state["now"])
    campaign = state["campaigns"]
    report = _timed(engine, timer, lambda s: campaign_report(s, campaign))
    trends = _timed(engine, timer, lambda s: trends_report(s, weeks=12, now=now))
    for part in (report, trends):
        for entry in part["statements"][:3]:
            entry["plan"] = _explain(engine, entry["sql"], entry["params"])
        for entry in part["statements"]:
            entry.pop("params")
    data = report.pop("result")
    figures = {
        "recipients": data["recipients"],
        "funnel": data["funnel"],
        "rates": data["rates"],
        "opens": data["opens"],
        "clicks": {k: data["clicks"][k] for k in ("unique", "unique_machine", "total", "cta_unique")},
        "provider": {k: data["provider"][k] for k in ("processed", "delivered", "deferred", "bounced_hard")},
        "links": [
            (link["position"], link["unique_human"], link["unique_machine"], link["total"]) for link in data["links"]
        ],
        "tags": {t["tag"]: t["recipients"] for t in data["by_tag"]},
        "first_72h": data["hourly"]["within"],
    }
    totals = trends.pop("result")["totals"]
    engine.dispose()
    return {
        "campaign_report": report,
        "campaign_figures": figures,
        "trends_report": trends,
        "trends_totals": {"campaigns": totals["campaigns"], "funnel": totals["funnel"]},
    }


PHASES = {"setup": phase_setup, "report": phase_report}


# --------------------------------------------------------------------------- main


def _existing(url: str, campaigns: int) -> dict:
    """The figures of a store a ``--keep`` run left; its "now" is six days after the last newsletter."""
    import datetime as dt

    import psycopg

    with psycopg.connect(c._libpq_dsn(url)) as conn:
        last = conn.execute("SELECT max(id), max(started_at) FROM campaigns").fetchone()
        if last[0] != campaigns:
            raise SystemExit(f"the kept store has {last[0]} newsletters, not {campaigns}: pass --campaigns {last[0]}")
        counts = {
            t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("subscribers", "subscriber_tags", "campaigns", "deliveries", "events", "leads")
        }
        by_type = dict(conn.execute("SELECT type, count(*) FROM events GROUP BY type ORDER BY 2 DESC").fetchall())
    return {"counts": counts, "events_by_type": by_type, "now": (last[1] + dt.timedelta(days=6)).isoformat()}


def main() -> None:
    parser = c.base_parser(__doc__.split("\n\n")[0], default_n=100_000)
    # A database of its own: other benchmarks drop and re-create newsletter_bench while this one loads.
    parser.set_defaults(pg_url=PG_URL, db="postgresql")
    parser.add_argument(
        "--campaigns", type=int, default=40, help="weekly newsletters, each to every subscriber (default %(default)s)"
    )
    parser.add_argument(
        "--drop-index", action="append", default=[], help="drop this index before timing (compare without it)"
    )
    parser.add_argument("--reuse", action="store_true", help="time the store a --keep run left (no set-up; it is kept)")
    args = parser.parse_args()
    if c.run_child_phase(args, PHASES):
        return
    if args.db != "postgresql":
        raise SystemExit(
            "bench/report.py builds its events with PostgreSQL's generate_series and measures PostgreSQL only"
        )

    from rich.table import Table

    console, info = c.report_console(args.pg_url, width=160)
    n, campaigns = args.recipients, args.campaigns
    command = f"python bench/report.py --recipients {n} --campaigns {campaigns}" + "".join(
        f" --drop-index {name}" for name in args.drop_index
    )
    results: dict = {
        "benchmark": "report",
        "db": "postgresql",
        "subscribers": n,
        "campaigns": campaigns,
        "machine": info,
        "command": command,
    }
    if args.reuse:
        command += " --reuse"
        results["command"] = command
        tmp = Path(tempfile.mkdtemp(prefix="nlbench-report-"))
        state = {"url": args.pg_url, "tmp": str(tmp), "n": n, "campaigns": campaigns, "drop_indexes": args.drop_index}
        results["setup"] = setup = _existing(args.pg_url, campaigns)
        results["db_size_mb"] = round(c.db_size_mb(args.pg_url), 1)
        results["report"] = c.run_phase(SCRIPT, "report", dict(state, now=setup["now"]), tmp)
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with c.bench_store("postgresql", args.pg_url, args.keep, prefix="nlbench-report-") as (url, tmp):
            state = {"url": url, "tmp": str(tmp), "n": n, "campaigns": campaigns, "drop_indexes": args.drop_index}
            console.print(f"set-up: {n:,} subscribers × {campaigns} newsletters, generated in the server")
            results["setup"] = c.run_phase(SCRIPT, "setup", state, tmp)
            results["db_size_mb"] = round(c.db_size_mb(url), 1)
            results["report"] = c.run_phase(SCRIPT, "report", dict(state, now=results["setup"]["now"]), tmp)
    setup = results["setup"]
    counts = setup["counts"]
    console.print(
        f"store: {counts['events']:,} events, {counts['deliveries']:,} ledger rows, {counts['subscribers']:,} "
        f"subscribers, {counts['subscriber_tags']:,} tags, {counts['leads']:,} leads; "
        f"{results['db_size_mb']:,} MB" + (f"; loaded in {setup['load_s']} s" if "load_s" in setup else " (reused)")
    )
    console.print("events by type: " + ", ".join(f"{k} {v:,}" for k, v in setup["events_by_type"].items()))

    r = results["report"]
    table = Table(title=f"report over {counts['events']:,} events (PostgreSQL)")
    for col in ("what", "median of 5 (s)", "runs (s)", "statements"):
        table.add_column(col, justify="left" if col == "what" else "right")
    for key, label in (
        ("campaign_report", f"campaign_report({campaigns}): one newsletter, {n:,} recipients"),
        ("trends_report", f"trends_report(weeks=12): {campaigns} newsletters"),
    ):
        part = r[key]
        table.add_row(
            label,
            f"{part['median_s']:.3f}",
            ", ".join(f"{t:.3f}" for t in part["runs_s"]),
            str(len(part["statements"])),
        )
    console.print(table)
    for key in ("campaign_report", "trends_report"):
        slow = Table(title=f"{key}: statements, slowest first (median ms)")
        slow.add_column("ms", justify="right")
        slow.add_column("statement", justify="left")
        for entry in r[key]["statements"]:
            slow.add_row(str(entry["median_ms"]), entry["label"])
        console.print(slow)
    console.print("[bold]figures of the reported campaign[/]")
    console.print_json(json.dumps(r["campaign_figures"]))
    console.print(f"trends totals: {json.dumps(r['trends_totals'])}")
    for key in ("campaign_report", "trends_report"):
        for entry in r[key]["statements"][:3]:
            console.print(f"[bold]plan ({key}, {entry['median_ms']} ms): {entry['label']}[/]")
            console.print(entry["plan"], markup=False, highlight=False)
    median = r["campaign_report"]["median_s"]
    console.print(
        f"target campaign report < {TARGET_S:.0f} s on PostgreSQL: {median:.3f} s, "
        + ("[green]met[/]" if median < TARGET_S else "[red]MISSED[/]")
    )
    c.write_json_out(args, results)


if __name__ == "__main__":
    main()

"""Benchmark: ``import_subscribers`` of an N-row CSV (default 1,000,000) into an empty store.

    python bench/csv_import.py --db sqlite --recipients 1000000
    python bench/csv_import.py --db postgresql --recipients 1000000
    python bench/csv_import.py --db postgresql --recipients 1000000 --profile   # cProfile, both threads

The CSV is in the project's own format (``email,first_name,last_name,timezone,locale,tags``),
with a little real-world mess: 0.5% of rows repeat an earlier address in another case (merged
in the file), 0.1% have an invalid address (rejected). The store is migrated first (not
timed); the import runs in a child process so its peak RSS is the import's own.
"""

from __future__ import annotations

import cProfile
import csv
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402

SCRIPT = Path(__file__).resolve()
FIRST = ["Ann", "Bo", "Chen", "Dana", "Elif", "Femi", "Gus", "Hana", "Ivo", "José", "", "Zoë", "Mary-Kate", "O'Neil"]
LAST = ["Smith", "García", "Nguyen", "Okafor", "Müller", "", "Kowalski", "Tanaka"]
ZONES = ["America/Los_Angeles", "America/New_York", "America/Chicago", "America/Denver", "Europe/London", "", "UTC"]
LOCALES = ["en-US", "en_us", "es-US", "fr-CA", "", "en"]
TAGS = ["ketamine", "depression;anxiety", "ketamine|ptsd", "", "", "newsletter", "Ketamine Therapy, depression"]


def make_csv(path: Path, n: int) -> dict:
    dupes = invalid = 0
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["email", "first_name", "last_name", "timezone", "locale", "tags"])
        for i in range(1, n + 1):
            if i % 200 == 0:  # the same person again, spelled differently: merged, not a new subscriber
                email, dupes = f"Reader{i - 100}@Example{(i - 100) % 50}.COM", dupes + 1
            elif i % 1000 == 1:
                email, invalid = f"reader{i}.example.com", invalid + 1  # no @: rejected
            else:
                email = f"reader{i}@example{i % 50}.com"
            w.writerow(
                [
                    email,
                    FIRST[i % len(FIRST)],
                    LAST[i % len(LAST)],
                    ZONES[i % len(ZONES)],
                    LOCALES[i % len(LOCALES)],
                    TAGS[i % len(TAGS)],
                ]
            )
    return {
        "rows": n,
        "duplicates_planted": dupes,
        "invalid_planted": invalid,
        "csv_mb": round(path.stat().st_size / 1e6, 1),
    }


def phase_migrate(state: dict) -> dict:
    from newsletter.db import make_engine, upgrade

    engine = make_engine(state["url"])
    upgrade(engine)
    engine.dispose()
    return {}


def phase_import(state: dict) -> dict:
    from newsletter.audiences import import_subscribers
    from newsletter.db import make_engine

    engine = make_engine(state["url"])
    profiles: dict[str, cProfile.Profile] = {}
    if state.get("profile"):
        from newsletter.audiences.import_writer import BackgroundWriter

        original_run = BackgroundWriter._run

        def run(self):  # type: ignore[no-untyped-def]  # the writer thread, profiled on its own
            p = profiles["writer thread"] = cProfile.Profile()
            p.enable()
            try:
                original_run(self)
            finally:
                p.disable()

        BackgroundWriter._run = run  # type: ignore[method-assign]
        profiles["main thread"] = cProfile.Profile()
    timings = _instrument_store() if state.get("timings") else None
    rss_before = c.peak_rss_mb()
    cpu0 = c.cpu_seconds()
    t0 = time.perf_counter()
    if "main thread" in profiles:
        profiles["main thread"].enable()
    report = import_subscribers(engine, Path(state["csv"]), progress=sys.stderr.isatty())
    if "main thread" in profiles:
        profiles["main thread"].disable()
    wall = time.perf_counter() - t0
    cpu = c.cpu_seconds() - cpu0
    engine.dispose()
    out = {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "rows_per_s": round(report.total_rows / wall),
        "total_rows": report.total_rows,
        "created": report.created,
        "updated": report.updated,
        "duplicates_merged": report.duplicates_merged,
        "rejected": report.rejected_count,
        "rss_before_import_mb": round(rss_before, 1),
    }
    if timings is not None:
        chunks = timings.pop("chunks")
        tenth = max(len(chunks) // 10, 1)
        out["store_timings_s"] = {k: round(v, 2) for k, v in timings.items()}
        out["chunk_ms_first_tenth"] = round(sum(chunks[:tenth]) / tenth * 1000, 1)
        out["chunk_ms_last_tenth"] = round(sum(chunks[-tenth:]) / tenth * 1000, 1)
    if profiles:
        out["profile"] = {}
        for name, p in profiles.items():
            buf = io.StringIO()
            pstats.Stats(p, stream=buf).strip_dirs().sort_stats("tottime").print_stats(25)
            out["profile"][name] = buf.getvalue()
    return out


def _instrument_store() -> dict:
    """Time each statement of a chunk (writer thread) by wrapping the store's methods."""
    from newsletter.audiences import import_stores, import_writer

    timings: dict = {
        "lookup": 0.0,
        "write (PostgreSQL: COPY + one statement)": 0.0,
        "upsert (SQLite)": 0.0,
        "add_tags (SQLite)": 0.0,
        "write (whole chunk incl. commit)": 0.0,
        "chunks": [],
    }

    def wrap(cls, name, key):  # type: ignore[no-untyped-def]
        original = getattr(cls, name)

        def timed(self, *a, **k):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return original(self, *a, **k)
            finally:
                dt_ = time.perf_counter() - t0
                timings[key] += dt_
                if key.startswith("write"):
                    timings["chunks"].append(dt_)

        setattr(cls, name, timed)

    wrap(import_stores.ChunkStore, "lookup", "lookup")
    wrap(import_stores.PostgresStore, "lookup", "lookup")
    wrap(import_stores.PostgresStore, "write", "write (PostgreSQL: COPY + one statement)")
    wrap(import_stores.SqliteStore, "upsert", "upsert (SQLite)")
    wrap(import_stores.SqliteStore, "add_tags", "add_tags (SQLite)")
    wrap(import_writer.ChunkWriter, "write", "write (whole chunk incl. commit)")
    return timings


def phase_count(state: dict) -> dict:
    from sqlalchemy import func, select

    from newsletter.db import make_engine, models

    engine = make_engine(state["url"])
    with engine.connect() as conn:
        subs = conn.scalar(select(func.count()).select_from(models.Subscriber))
        tags = conn.scalar(select(func.count()).select_from(models.SubscriberTag))
    engine.dispose()
    return {"subscribers": subs, "subscriber_tags": tags}


PHASES = {"migrate": phase_migrate, "import": phase_import, "count": phase_count}


def main() -> None:
    parser = c.base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--profile", action="store_true", help="cProfile the import (main and writer threads)")
    parser.add_argument("--timings", action="store_true", help="time each store statement per chunk (writer thread)")
    args = parser.parse_args()
    if c.run_child_phase(args, PHASES):
        return

    console, info = c.report_console(args.pg_url, width=140)
    n = args.recipients
    results: dict = {
        "benchmark": "csv_import",
        "db": args.db,
        "rows": n,
        "machine": info,
        "command": f"python bench/csv_import.py --db {args.db} --recipients {n}"
        + (" --profile" if args.profile else ""),
    }
    with c.bench_store(args.db, args.pg_url, args.keep, prefix="nlbench-import-") as (url, tmp):
        csv_path = tmp / "subscribers.csv"
        with console.status(f"writing a {n:,}-row CSV"):
            results["csv"] = make_csv(csv_path, n)
        console.print(f"CSV: {results['csv']}")
        state = {"url": url, "tmp": str(tmp), "csv": str(csv_path), "profile": args.profile, "timings": args.timings}
        c.run_phase(SCRIPT, "migrate", state, tmp)
        console.print(f"importing into an empty {args.db} store (child process)…")
        imp = c.run_phase(SCRIPT, "import", state, tmp)
        results["import"] = imp
        results["store"] = c.run_phase(SCRIPT, "count", state, tmp)
        results["store"]["db_size_mb"] = round(c.db_size_mb(url), 1)
    profile = imp.pop("profile", None)

    t = c.figures_table(f"csv_import: {n:,} rows, {args.db}")
    t.add_row("import_subscribers wall", f"{imp['wall_s']} s")
    t.add_row("rows/s", c.fmt_rate(imp["rows_per_s"]))
    t.add_row("CPU (user+sys, both threads)", f"{imp['cpu_s']} s")
    t.add_row("peak RSS, import process", f"{imp['peak_rss_mb']} MB (before import {imp['rss_before_import_mb']} MB)")
    t.add_row(
        "created / updated / merged / rejected",
        f"{imp['created']:,} / {imp['updated']:,} / {imp['duplicates_merged']:,} / {imp['rejected']:,}",
    )
    t.add_row(
        "rows in store: subscribers / tags",
        f"{results['store']['subscribers']:,} / {results['store']['subscriber_tags']:,}",
    )
    t.add_row("store size", f"{results['store']['db_size_mb']} MB")
    if "store_timings_s" in imp:
        for k, v in imp["store_timings_s"].items():
            t.add_row(f"  writer thread: {k}", f"{v} s")
        t.add_row(
            "  chunk time, first → last tenth", f"{imp['chunk_ms_first_tenth']} → {imp['chunk_ms_last_tenth']} ms"
        )
    console.print(t)
    console.print(
        f"targets: < 30 s: {'met' if imp['wall_s'] < 30 else '[red]MISSED[/]'}; "
        f"peak RSS < 200 MB: {'met' if imp['peak_rss_mb'] < 200 else '[red]MISSED[/]'}"
    )
    if profile:
        for name, text in profile.items():
            console.print(f"[bold]cProfile, {name}, by tottime[/]")
            console.print(text, markup=False, highlight=False)
    c.write_json_out(args, dict(results, profile=profile))


if __name__ == "__main__":
    main()

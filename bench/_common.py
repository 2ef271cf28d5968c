"""Shared helpers for the benchmarks: machine description, a throw-away store, peak RSS, phases.

Not a test and not part of the package. Each benchmark script runs its measured work in child
processes (``python bench/X.py --phase NAME ...``) so each phase's peak RSS is its own.

Longer than the ~400 lines a module should be: it is the one toolbox every script imports as
``c``, and its sections (machine, memory, stores, phases, bulk loading) are short and separate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
for extra in (str(REPO_DIR), str(REPO_DIR / "tests"), str(BENCH_DIR)):
    if extra not in sys.path:
        sys.path.insert(0, extra)

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/newsletter_bench"
FORBIDDEN_DB = ("test", "postgres", "template0", "template1")
SECRET = "bench-secret-key-not-for-production"
PUBLIC_URL = "https://news.example.test"


# --------------------------------------------------------------------------- arguments


def pg_url_for(script: str) -> str:
    """Each script has a database of its own, so two benchmarks never drop each other's store."""
    return f"{PG_DEFAULT}_{script}"


def base_parser(description: str, default_n: int = 1_000_000) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--recipients", "-n", type=int, default=default_n, help="size (default %(default)s)")
    p.add_argument(
        "--pg-url",
        default=pg_url_for(Path(sys.argv[0]).stem),
        help="PostgreSQL URL of the bench database (created and dropped)",
    )
    p.add_argument("--keep", action="store_true", help="keep the store and temp files (for inspection)")
    p.add_argument("--json", dest="json_out", help="also write the results as JSON to this file")
    # internal: phases run as child processes
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--state", help=argparse.SUPPRESS)
    return p


# --------------------------------------------------------------------------- the machine


def write_json_out(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """``--json`` (every script's, from :func:`base_parser`): the results as JSON too."""
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1, default=str))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def pg_server_version(url: str = PG_DEFAULT) -> str:
    try:
        import psycopg

        with psycopg.connect(_libpq_dsn(url, "postgres"), connect_timeout=3) as conn:
            return conn.execute("SHOW server_version").fetchone()[0]
    except Exception as error:  # noqa: BLE001 - a description, not a failure
        return f"unavailable ({type(error).__name__})"


def machine_info(pg_url: str = PG_DEFAULT) -> dict[str, Any]:
    import sqlalchemy

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(_ram_gib(), 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg_server_version(pg_url),
        "sqlalchemy": sqlalchemy.__version__,
        "os": f"{platform.system()} {platform.release()}",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "speed_probe_s": speed_probe_s(),
        "commit": _git_commit(),
    }


def speed_probe_s(steps: int = 20_000_000) -> float:
    """Seconds for a bare Python loop of ``steps`` steps at module level, as ``python -c`` runs
    it (best of two): how fast this machine's cores are right now. The same "AMD EPYC" took 0.7 s
    one minute and 1.1 s the next (an Intel Xeon, 2.4-3.9 s), so a figure is only comparable
    with another taken at a similar probe."""
    loop = compile(f"for _ in range({steps}):\n    pass\n", "<speed probe>", "exec")
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        exec(loop, {})  # module-level names: the loop the RESULTS' earlier probes ran
        best = min(best, time.perf_counter() - started)
    return round(best, 2)


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "newsletter"],
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return head + (" + uncommitted changes in newsletter/" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def print_machine(console, info: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    console.print(
        f"[bold]machine[/]: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM; "
        f"Python {info['python']}, SQLite {info['sqlite']}, PostgreSQL {info['postgresql']}, "
        f"SQLAlchemy {info['sqlalchemy']}; {info['os']}; {info['date']}; "
        f"load average at start {info['loadavg_at_start']}; speed probe {info.get('speed_probe_s')} s "
        f"(20M-step Python loop); code {info.get('commit')}"
    )


def report_console(pg_url: str, width: int | None = None) -> tuple[Any, dict[str, Any]]:
    """(a rich console, the machine) with the machine already printed: every figure a script
    prints is read beside the machine it ran on. ``width`` is the console's width when the
    output is not a terminal (a log or a pipe), where rich would otherwise guess 80."""
    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else width)
    info = machine_info(pg_url)
    print_machine(console, info)
    return console, info


def figures_table(title: str) -> Any:
    """A two-column rich table, measure and value (right-aligned), for a script's figures."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    return table


# --------------------------------------------------------------------------- memory


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """ru_maxrss is KiB on Linux."""
    return resource.getrusage(who).ru_maxrss / 1024


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def process_cpu_seconds(pid: int, *, with_children: bool = False) -> float | None:
    """User + system CPU seconds of a process, all its threads (Linux ``/proc``); with
    ``with_children``, also what it collected from children that have exited. ``None`` if gone."""
    stat = _proc_stat(pid)
    if stat is None:
        return None
    fields = stat[1]
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if with_children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float | None:
    """CPU seconds of the whole local PostgreSQL server so far: every ``postgres`` process, plus
    what the postmaster collected from backends that have exited, so a backend that ends between
    two readings is still counted. Includes the server's background writers and any other
    database's work, which on a quiet machine is noise. ``None`` where ``/proc`` shows no server
    (another host, not Linux)."""
    total, seen = 0.0, False
    for entry in Path("/proc").glob("[0-9]*"):
        stat = _proc_stat(int(entry.name))
        if stat is None or stat[0] != "postgres":
            continue
        seen = True
        parent = _proc_stat(int(stat[1][1]))
        is_postmaster = parent is None or parent[0] != "postgres"  # its reaped children are its backends
        total += process_cpu_seconds(int(entry.name), with_children=is_postmaster) or 0.0
    return total if seen else None


def _proc_stat(pid: int) -> tuple[str, list[str]] | None:
    """``(command name, the fields after it)`` of ``/proc/<pid>/stat``, or ``None`` if gone."""
    try:
        head, _, rest = Path(f"/proc/{pid}/stat").read_text().rpartition(")")
    except OSError:
        return None
    return head.partition("(")[2], rest.split()


# --------------------------------------------------------------------------- a throw-away store


def _libpq_dsn(url: str, database: str | None = None) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    parts = [
        f"host={u.host or '127.0.0.1'}",
        f"port={u.port or 5432}",
        f"user={u.username or 'postgres'}",
        f"dbname={database or u.database}",
    ]
    if u.password:
        parts.append(f"password={u.password}")
    return " ".join(parts)


def _check_bench_name(name: str) -> None:
    if not name or name in FORBIDDEN_DB or name.startswith("newsletter_test"):
        raise SystemExit(f"refusing to create/drop database {name!r}: use a bench database")


def pg_recreate(url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    _check_bench_name(name)
    with psycopg.connect(_libpq_dsn(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def pg_drop(url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    _check_bench_name(name)
    with psycopg.connect(_libpq_dsn(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def bench_store(kind: str, pg_url: str, keep: bool = False, prefix: str = "nlbench-") -> Iterator[tuple[str, Path]]:
    """Yields (database URL, temp dir). Empty and unmigrated; removed afterwards unless ``keep``."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        if kind == "sqlite":
            yield f"sqlite:///{tmp / 'bench.db'}", tmp
        else:
            pg_recreate(pg_url)
            try:
                yield pg_url, tmp
            finally:
                if not keep:
                    pg_drop(pg_url)
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def db_size_mb(url: str) -> float:
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1e6
    import psycopg

    with psycopg.connect(_libpq_dsn(url)) as conn:
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 1e6


# --------------------------------------------------------------------------- phases


def run_phase(
    script: Path, phase: str, state: dict[str, Any], state_dir: Path, *, log_prefix: str = ""
) -> dict[str, Any]:
    """Run ``script --phase phase`` in a child process; it writes its results as JSON."""
    state_file = state_dir / f"state-{phase}.json"
    out_file = state_dir / f"result-{phase}.json"
    state = dict(state, result_file=str(out_file))
    state_file.write_text(json.dumps(state))
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    proc = subprocess.run(
        [sys.executable, str(script), "--phase", phase, "--state", str(state_file)], cwd=str(state_dir)
    )
    if proc.returncode != 0:
        raise SystemExit(f"{log_prefix}phase {phase} failed with exit code {proc.returncode}")
    result = json.loads(out_file.read_text())
    result.setdefault("phase_wall_s", round(time.perf_counter() - started, 2))
    result["loadavg_1min_before_after"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return result


def run_child_phase(args: argparse.Namespace, phases: dict[str, Any]) -> bool:
    """In a child process (``--phase NAME``): run that phase and write its result; True if so."""
    if not args.phase:
        return False
    state = load_state(args.state)
    write_result(state, phases[args.phase](state))
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a server child."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def uvicorn_server(app: Any, port: int) -> Any:
    """uvicorn as every benchmark serves: one process on 127.0.0.1, the asyncio loop and h11
    (uvloop and httptools are not dependencies of the project), no access log, no lifespan."""
    import uvicorn

    return uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            server_header=False,
        )
    )


def wait_until_serving(proc: subprocess.Popen[bytes], probe: Any, what: str, timeout: float = 30.0) -> None:
    """Wait for the server child ``proc`` to answer ``probe()`` (which raises OSError until it
    does); give up when it has exited or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            probe()
            return
        except OSError as exc:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"the {what} did not start") from exc
            time.sleep(0.1)


def timed_threads(target: Any, count: int) -> float:
    """Run ``target`` in ``count`` threads at once; the wall seconds until the last one ends."""
    import threading

    threads = [threading.Thread(target=target) for _ in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def load_state(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def write_result(state: dict[str, Any], result: dict[str, Any]) -> None:
    result.setdefault("peak_rss_mb", round(peak_rss_mb(), 1))
    Path(state["result_file"]).write_text(json.dumps(result, indent=1, default=str))


# --------------------------------------------------------------------------- the fake SendGrid, in its own process


class FakeProcess:
    """``bench/fake_sendgrid_server.py`` in a child process: ``url``, ``stats()``, ``reset()``, ``stop()``."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH_DIR / "fake_sendgrid_server.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        hello = json.loads(self.proc.stdout.readline())
        self.url: str = hello["url"]
        self.api_key: str = hello["api_key"]
        self.pid: int = self.proc.pid

    def _ask(self, command: str) -> dict[str, Any]:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stats(self) -> dict[str, Any]:
        return self._ask("stats")

    def reset(self) -> dict[str, Any]:
        return self._ask("reset")

    def stop(self) -> dict[str, Any]:
        try:
            final = self._ask("quit")
        finally:
            self.proc.wait(timeout=30)
        return final

    def __enter__(self) -> FakeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            try:
                self.stop()
            except Exception:  # noqa: BLE001
                self.proc.kill()  # our own child, by handle
                self.proc.wait()


def fmt_rate(n: float) -> str:
    return f"{n:,.0f}"


#: The clinic's tags and the share of subscribers carrying each (1.4 per subscriber on average):
#: the segment and report benches draw the same audience.
AUDIENCE_TAGS = [
    ("ketamine", 0.30),
    ("depression", 0.25),
    ("anxiety", 0.20),
    ("ptsd", 0.08),
    ("newsletter", 0.50),
    ("family", 0.05),
    ("clinician", 0.02),
]


# --------------------------------------------------------------------------- fast bulk loading (set-up, not the product's path)


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite DateTime storage format
    return value


def bulk_load(
    url: str, table: str, columns: list[str], rows: Iterator[tuple[Any, ...]], chunk: int = 50_000, advance=None
) -> int:  # type: ignore[no-untyped-def]
    """COPY on PostgreSQL, executemany on SQLite. Values: str/int/bool/None/aware datetime/JSON text."""
    n = 0
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        conn = sqlite3.connect(path)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
            batch: list[tuple[Any, ...]] = []
            for row in rows:
                batch.append(tuple(_sqlite_value(v) for v in row))
                if len(batch) >= chunk:
                    conn.executemany(sql, batch)
                    conn.commit()
                    n += len(batch)
                    if advance:
                        advance(len(batch))
                    batch = []
            if batch:
                conn.executemany(sql, batch)
                conn.commit()
                n += len(batch)
                if advance:
                    advance(len(batch))
        finally:
            conn.close()
        return n
    import psycopg

    with psycopg.connect(_libpq_dsn(url)) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
                if advance and n % chunk == 0:
                    advance(chunk)
        conn.commit()
    if advance and n % chunk:
        advance(n % chunk)
    return n


def analyze(url: str) -> None:
    """PostgreSQL only: autovacuum would get there; do it now so plans are stable."""
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(_libpq_dsn(url), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")


def reset_pg_sequences(url: str, tables: list[str]) -> None:
    """After COPY with explicit ids: move each table's id sequence past the highest id."""
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(_libpq_dsn(url), autocommit=True) as conn:
            for t in tables:
                conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{t}', 'id'), COALESCE((SELECT max(id) FROM {t}), 1))"
                )


def progress_bar(console=None):  # type: ignore[no-untyped-def]
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        refresh_per_second=2,
    )

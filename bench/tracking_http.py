"""Benchmark: the open pixel and the click redirect over HTTP, with wrk, against uvicorn on
127.0.0.1, as a ratio to a bare ASGI endpoint served the same way in the same run.

    python bench/tracking_http.py --db sqlite
    python bench/tracking_http.py --db postgresql
    python bench/tracking_http.py --db sqlite --duration 20 --connections 32
    python bench/tracking_http.py --db sqlite --profile      # cProfile of the per-request work, in process

Needs ``wrk`` (Debian package ``wrk``). Phases, each in its own child process:

1. setup: a store with ``--recipients`` deliveries (default 20,000) of one campaign, sent a day
   ago, with its links; the signed tokens are written to a wrk Lua script that walks them
   (each request a different reader: no cache helps).
2. serve, four times, one after the other: a bare ASGI callable answering the same bytes as
   the pixel (the 42-byte GIF and the same eleven headers: the ceiling of uvicorn + h11 on this
   machine for that response), then the real app (``create_app``) for ``GET /o/{token}.gif``
   and for ``GET /c/{token}/1`` (an article link: 302), then, for context only, a bare callable
   with three headers (h11 validates every header: eight more cost it ~40%). Same uvicorn
   settings each time (one process, no access log, ``--http h11 --loop asyncio``: uvloop and
   httptools are not dependencies of the project). A small ASGI wrapper counts the responses
   the server finished, so "events stored == requests answered" is checked exactly (wrk's own
   count misses the requests in flight when it stops).

wrk runs with ``-t1 -c{connections} -d{duration}s`` and a browser's User-Agent and
Accept-Language, on the same 2 cores as the server: the figures are for this machine only, and
the ratio is what carries over.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c  # noqa: E402
from _sent_campaign import bench_settings, event_count, load_sent_campaign  # noqa: E402

SCRIPT = Path(__file__).resolve()
BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15"
)
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c000000000100010000020144003b")
STATS_PATH = "/__bench_stats"


# --------------------------------------------------------------------------- phase: setup


def phase_setup(state: dict) -> dict:
    import datetime as dt

    from newsletter.tracking import TokenSigner

    n, url = state["n"], state["url"]
    load_sent_campaign(
        url,
        n,
        links=[(1, "https://example.test/article", "article"), (2, "https://example.test/book", "cta")],
        sent_ago=dt.timedelta(days=1),
        message_id=lambda i: "MSG",
    )
    signer = TokenSigner(c.SECRET)
    tokens = [signer.sign(i) for i in range(1, n + 1)]
    for name, template in (("pixel", "/o/{}.gif"), ("click", "/c/{}/1"), ("bare", "/o/{}.gif")):
        paths = ",\n".join(f'"{template.format(t)}"' for t in tokens)
        Path(state["tmp"], f"{name}.lua").write_text(
            f"local paths = {{\n{paths}\n}}\nlocal i = math.random(#paths)\n"
            "request = function()\n  i = i + 1\n  if i > #paths then i = 1 end\n"
            '  return wrk.format("GET", paths[i])\nend\n'
        )
    result = {"deliveries": n}
    c.write_result(state, result)
    return result


# --------------------------------------------------------------------------- phase: serve (a child process)


class Counting:
    """Counts finished responses by status; ``GET /__bench_stats`` answers the counts (not counted)."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.answered: dict[int, int] = {}

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and scope["path"] == STATS_PATH:
            body = json.dumps(self.answered).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        status = 0

        async def counting_send(message) -> None:  # type: ignore[no-untyped-def]
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.answered[status] = self.answered.get(status, 0) + 1

        await self.app(scope, receive, counting_send)


def _pixel_headers() -> list[tuple[bytes, bytes]]:
    """The exact header list the product sends with the pixel (no-cache, no-index, security)."""
    from newsletter.web.tracking_routes import _PIXEL_START

    return list(_PIXEL_START["headers"])


BARE_HEADERS: list[tuple[bytes, bytes]] = []  # filled in the serving process


async def bare_app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """The ceiling: an ASGI callable that answers the same bytes as the pixel (the 42-byte GIF
    and the product's eleven headers: h11 validates each header, so their number is part of the
    server's cost) and does nothing else."""
    await send({"type": "http.response.start", "status": 200, "headers": BARE_HEADERS})
    await send({"type": "http.response.body", "body": PIXEL})


async def bare_minimal_app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """For context: the GIF with three headers only."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"image/gif"), (b"content-length", b"42"), (b"cache-control", b"no-store")],
        }
    )
    await send({"type": "http.response.body", "body": PIXEL})


def phase_serve(state: dict) -> dict:
    if state["target"] == "bare":
        BARE_HEADERS[:] = _pixel_headers()
        app = bare_app
    elif state["target"] == "bare_minimal":
        app = bare_minimal_app
    else:
        from newsletter.db import make_engine
        from newsletter.web import create_app
        from newsletter.web.server import settle_memory

        app = create_app(bench_settings(state), make_engine(state["url"]))
        settle_memory()  # as `newsletter serve` does
    c.uvicorn_server(Counting(app), state["port"]).run()
    result = {"stopped": True}
    c.write_result(state, result)
    return result


# --------------------------------------------------------------------------- the runner


def _get_json(port: int, path: str):  # type: ignore[no-untyped-def]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


_WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(m?s)")
_WRK_LAT = re.compile(r"Latency\s+([\d.]+\w+)\s+([\d.]+\w+)\s+([\d.]+\w+)")


def run_target(state: dict, target: str, args) -> dict:  # type: ignore[no-untyped-def]
    port = c.free_port()
    before = event_count(state["url"]) if not target.startswith("bare") else 0
    child_state = dict(state, target=target, port=port, result_file=str(Path(state["tmp"]) / f"serve-{target}.json"))
    state_file = Path(state["tmp"]) / f"state-serve-{target}.json"
    state_file.write_text(json.dumps(child_state))
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--phase", "serve", "--state", str(state_file)], cwd=state["tmp"]
    )
    try:
        c.wait_until_serving(proc, lambda: _get_json(port, STATS_PATH), f"{target} server")
        headers = ["-H", f"User-Agent: {BROWSER}", "-H", "Accept-Language: en-US,en;q=0.9"]
        lua = str(Path(state["tmp"]) / f"{'bare' if target.startswith('bare') else target}.lua")
        # a short warm-up (imports, connection pool, first compilations), not counted in wrk's figures
        subprocess.run(
            ["wrk", "-t1", f"-c{args.connections}", "-d2s", "-s", lua, *headers, f"http://127.0.0.1:{port}"],
            capture_output=True,
            check=True,
        )
        warm = _get_json(port, STATS_PATH)
        cpu_before = c.process_cpu_seconds(proc.pid) or 0.0
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{args.connections}",
                f"-d{args.duration}s",
                "--latency",
                "-s",
                lua,
                *headers,
                f"http://127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        time.sleep(0.5)  # let the last in-flight requests finish
        answered = _get_json(port, STATS_PATH)
        cpu = (c.process_cpu_seconds(proc.pid) or 0.0) - cpu_before
    finally:
        proc.send_signal(signal.SIGTERM)  # our own child, by handle: uvicorn shuts down cleanly
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    rps = float(_WRK_RPS.search(out).group(1))
    total = _WRK_TOTAL.search(out)
    lat = _WRK_LAT.search(out)
    non_ok = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    answered_total = sum(answered.values())
    result = {
        "target": target,
        "requests_per_s": rps,
        "wrk_requests": int(total.group(1)),
        "latency_avg_stdev_max": list(lat.groups()) if lat else None,
        "non_2xx_3xx": int(non_ok.group(1)) if non_ok else 0,
        "socket_errors": errors.group(1) if errors else None,
        "server_answered_by_status": answered,
        "server_answered": answered_total,
        "server_answered_warmup": sum(warm.values()),
        # the server's own CPU (all threads) per request of the measured run: moves far less than
        # req/s when other work shares the machine
        "server_cpu_us_per_request": round(cpu / max(answered_total - sum(warm.values()), 1) * 1e6, 1),
    }
    if not target.startswith("bare"):
        stored = event_count(state["url"]) - before
        result["events_stored"] = stored
        result["events_stored_equals_answered"] = stored == answered_total
    return result


def profile_in_process(state: dict, n: int = 5000, batch: int = 64) -> str:
    """The writer's own work (no HTTP): what one transaction of the web app's recorder does for
    ``batch`` requests (``record_opens`` / ``record_clicks`` + commit), and, for comparison, the
    library's one-call-per-event form (``session_scope`` + ``record_open``), as a route would
    call it without the recorder."""
    from newsletter.db import make_engine, session_scope
    from newsletter.db.models import utcnow
    from newsletter.tracking import RequestInfo, TrackingOptions, record_clicks, record_open, record_opens
    from newsletter.tracking.clicks import LinkCache

    engine = make_engine(state["url"])
    info = RequestInfo("203.0.113.7", BROWSER, "GET", "en-US")
    options = TrackingOptions()
    links = LinkCache()
    size = state["n"]

    def opens(k: int) -> None:
        with engine.begin() as conn:
            record_opens(conn, [((k * batch + i) % size + 1, info, utcnow()) for i in range(batch)], options=options)

    def clicks(k: int) -> None:
        with engine.begin() as conn:
            record_clicks(
                conn,
                [((k * batch + i) % size + 1, 1, info, utcnow()) for i in range(batch)],
                options=options,
                link_cache=links,
            )

    def single(k: int) -> None:
        with session_scope(engine) as s:
            record_open(s, k % size + 1, info, options=options)

    out = []
    for name, call, per_call in (
        (f"record_opens, batches of {batch}", opens, batch),
        (f"record_clicks, batches of {batch}", clicks, batch),
        ("record_open one by one (session_scope each)", single, 1),
    ):
        calls = max(n // per_call, 20)
        for k in range(5):
            call(k)
        started = time.perf_counter()
        for k in range(calls):
            call(k + 5)
        per_event = (time.perf_counter() - started) / (calls * per_call) * 1e6
        profiler = cProfile.Profile()
        profiler.enable()
        for k in range(calls):
            call(k + 5 + calls)
        profiler.disable()
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("tottime").print_stats(12)
        out.append(f"--- {name}: {per_event:.0f} µs per event, in process\n" + buffer.getvalue())
    engine.dispose()
    return "\n".join(out)


def main() -> None:
    parser = c.base_parser(__doc__.split("\n\n")[0], default_n=20_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per target (default %(default)s)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default %(default)s)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="bare, pixel and click again this many times, alternating (default %(default)s)",
    )
    parser.add_argument("--profile", action="store_true", help="also profile the per-request work in process")
    # a database of its own: other benchmarks (send.py, ...) use newsletter_bench and may run at the same time
    parser.set_defaults(pg_url=c.pg_url_for("http"))
    args = parser.parse_args()
    if args.phase:
        state = c.load_state(args.state)
        {"setup": phase_setup, "serve": phase_serve}[args.phase](state)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    console, info = c.report_console(args.pg_url)
    results: dict = {
        "machine": info,
        "db": args.db,
        "deliveries": args.recipients,
        "duration_s": args.duration,
        "connections": args.connections,
        "server": "uvicorn, 1 process, asyncio loop, h11, no access log",
    }
    with c.bench_store(args.db, args.pg_url, keep=args.keep, prefix="nlbench-http-") as (url, tmp):
        state = {"url": url, "tmp": str(tmp), "n": args.recipients}
        c.run_phase(SCRIPT, "setup", state, tmp)
        rounds: list[dict] = []
        for number in range(1, args.rounds + 1):
            # bare, pixel and click back to back, round after round: each ratio compares runs a few
            # seconds apart, so other work on the machine moves both sides of it alike
            this = {}
            for target in ("bare", "pixel", "click") + (("bare_minimal",) if number == 1 else ()):
                r = this[target] = run_target(state, target, args)
                console.print(
                    f"round {number} {target:>5}: {r['requests_per_s']:>8,.0f} req/s  (wrk "
                    f"{r['wrk_requests']:,} requests, server answered {r['server_answered']:,}"
                    + (f", events stored {r['events_stored']:,}" if "events_stored" in r else "")
                    + f"; server CPU {r['server_cpu_us_per_request']} µs/request"
                    + f"; latency avg/stdev/max {r['latency_avg_stdev_max']})"
                )
            for target in ("pixel", "click"):
                this[target]["ratio_to_bare"] = round(
                    this[target]["requests_per_s"] / this["bare"]["requests_per_s"], 3
                )
                this[target]["cpu_ratio_to_bare"] = round(
                    this["bare"]["server_cpu_us_per_request"] / this[target]["server_cpu_us_per_request"], 3
                )
            rounds.append(this)
        results.update(rounds[0])  # the first round's runs under their names, as before
        results["rounds"] = rounds
        for target in ("pixel", "click"):
            ratios = sorted(r[target]["ratio_to_bare"] for r in rounds)
            cpu_ratios = sorted(r[target]["cpu_ratio_to_bare"] for r in rounds)
            ok = all(r[target]["events_stored_equals_answered"] for r in rounds)
            results[f"{target}_ratio_median"] = ratios[len(ratios) // 2]
            console.print(
                f"{target}: {', '.join(f'{x:.0%}' for x in ratios)} of bare (median "
                f"{ratios[len(ratios) // 2]:.0%}; target ≥ 60%); by server CPU per request "
                f"{', '.join(f'{x:.0%}' for x in cpu_ratios)}; events stored == requests answered: {ok}"
            )
        if args.profile:
            text = profile_in_process(state)
            results["profile"] = text
            console.print(text)
    c.write_json_out(args, results)


if __name__ == "__main__":
    main()

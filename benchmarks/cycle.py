"""Measure check cycles: `python -m benchmarks.cycle [--pages N ...] [--backend sqlite|postgresql ...]
[--urlwatch] [--changedetection] [--daemon-watches N] [--extraction] [--profile N] [--out FILE]`.

With no --pages it runs 100, 1,000 and 10,000 pages; with no --backend, SQLite. See benchmarks/README.md for
what each figure means. Every measurement runs in a fresh subprocess (clean peak RSS, fresh database)
against a page server in another process. Results print as tables and are saved as JSON and Markdown
under benchmarks/results/ (and to --out).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RESULTS = HERE / "results"
URLWATCH_VENV = HERE / ".venv-urlwatch"
CYCLES = ("first", "unchanged", "changed_10pct")
DEFAULT_PAGES = (100, 1000, 10000)
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/watcher_bench"
CLK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def page_server(pages: int) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.server", "--pages", str(pages), "--port", str(port)],
                            cwd=HERE.parent, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "serving ..."
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def control(base: str, path: str) -> str:
    with urllib.request.urlopen(base + path, timeout=30) as r:
        return r.read().decode()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_self_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_of_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK


def proc_kb(pid: int, key: str) -> int:
    """A /proc/<pid>/status field in kB (VmRSS, VmHWM), 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid: int) -> int:
    """Proportional set size: shared pages (libraries, the interpreter) divided among the processes sharing
    them, so the sum over a process tree does not count them twice."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine() -> dict[str, Any]:
    return {"cores": len(os.sched_getaffinity(0)), "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "at": time.strftime("%Y-%m-%d %H:%M:%S")}


# --------------------------------------------------------------------------- watcher, one process per N


def config_for(base: str, pages: int, database_url: str, *, interval: str = "6h") -> Any:
    from watcher.config import Config, FetchConfig

    fetch: dict[str, Any] = {
        # All pages live on one host here; a real deployment spreads over many hosts and keeps the
        # per-domain default of 2. The same parallelism is what urlwatch gets (its thread pool).
        "concurrency": 32, "concurrency_per_domain": 32, "autothrottle": False, "retries": 0, "timeout": "60s"}
    if "allow_private" in FetchConfig.model_fields:  # the egress policy must let the local page server through
        fetch["allow_private"] = [base.split("://", 1)[1]]
    return Config.model_validate({
        "watcher": {"database_url": database_url},
        "fetch": fetch,
        "watch": [{"name": f"p{i}", "url": f"{base}/page/{i}", "interval": interval, "jitter": "0s"}
                  for i in range(pages)],
    })


def db_bytes(store: Any) -> int:
    from sqlalchemy import text

    with store.engine.connect() as c:
        if store.dialect == "sqlite":
            c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            path = store.engine.url.database
            return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
        return int(c.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


@contextlib.contextmanager
def sampled(path: Path | None) -> Iterator[None]:
    """py-spy sampling this process and its children while the block runs (raw collapsed stacks)."""
    if path is None:
        yield
        return
    import signal

    spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(os.getpid()),
                            "-r", "250", "-f", "raw", "--subprocesses", "-o", str(path)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let py-spy attach
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)


def measure_watcher(pages: int, database_url: str | None, profile_dir: Path | None = None) -> dict[str, Any]:
    from watcher.pipeline import run_cycle
    from watcher.processing import shared_processor
    from watcher.runtime import install_reactor, run_sync
    from watcher.store import Store

    install_reactor()
    tmp = tempfile.mkdtemp(prefix="watcher-bench-")
    url = database_url or f"sqlite:///{tmp}/bench.db"
    out: dict[str, Any] = {"tool": "watcher", "pages": pages, "database": url.split(":")[0].split("+")[0],
                           "machine_before": machine()}
    processor = shared_processor(None)
    try:
        if database_url:
            _reset_pg(database_url)
        with page_server(pages) as base:
            store = Store.open(url)
            config = config_for(base, pages, url)
            store.sync_watches(config.watch)
            empty = db_bytes(store)

            def cycle(label: str) -> None:
                workers_cpu = sum(cpu_of_s(p) for p in processor.pids())
                cpu, stats = cpu_self_s(), json.loads(control(base, "/_stats"))
                with sampled(profile_dir / f"profile-{pages}-{label}.txt" if profile_dir else None):
                    started = time.perf_counter()
                    report = run_sync(lambda: run_cycle(store, config))
                    seconds = time.perf_counter() - started
                cpu = cpu_self_s() - cpu
                workers_cpu = sum(cpu_of_s(p) for p in processor.pids()) - workers_cpu
                after = json.loads(control(base, "/_stats"))
                outcomes: dict[str, int] = {}
                for r in report.results:
                    outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
                out[label] = {"seconds": round(seconds, 2), "pages_per_s": round(pages / seconds, 1),
                              "ms_per_page": round(1000 * seconds / pages, 3),
                              "cpu_s": round(cpu + workers_cpu, 2), "cpu_checking_process_s": round(cpu, 2),
                              "cpu_processing_workers_s": round(workers_cpu, 2), "outcomes": outcomes,
                              "requests": after["hits"] - stats["hits"] - 1,
                              "connections": after["connections"] - stats["connections"] - 1,
                              "db_bytes": db_bytes(store)}

            cycle("first")
            out["first"]["db_bytes_per_page"] = round((out["first"]["db_bytes"] - empty) / pages)
            cycle("unchanged")
            out["unchanged"]["growth_per_page"] = round((out["unchanged"]["db_bytes"] - out["first"]["db_bytes"])
                                                        / pages, 1)
            control(base, "/_mutate?fraction=0.1")
            cycle("changed_10pct")
            out["changed_10pct"]["growth_per_page"] = round(
                (out["changed_10pct"]["db_bytes"] - out["unchanged"]["db_bytes"]) / pages, 1)
            store.close()
        out["peak_rss_mb_checking_process"] = round(peak_rss_mb(), 1)
        out["peak_rss_mb_processing_workers"] = round(sum(proc_kb(p, "VmHWM") for p in processor.pids()) / 1024, 1)
        out["peak_rss_mb"] = round(out["peak_rss_mb_checking_process"] + out["peak_rss_mb_processing_workers"], 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if database_url:
            _reset_pg(database_url)
    out["machine_after"] = machine()
    return out


def ensure_pg(url: str) -> str:
    """Create the scratch database if it does not exist yet; returns the URL."""
    import sqlalchemy as sa

    from watcher.store.db import normalise_url

    parsed = sa.make_url(normalise_url(url))
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            if not c.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}).first():
                c.execute(sa.text(f'CREATE DATABASE "{parsed.database}"'))
    finally:
        admin.dispose()
    return url


def _reset_pg(url: str) -> None:
    import sqlalchemy as sa

    eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with eng.begin() as c:
        c.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    eng.dispose()


def measure_daemon(watches: int, seconds: float, *, restart: bool = False) -> dict[str, Any]:
    """Memory of the daemon with `watches` watches loaded and scheduled (their first runs spread over 30 s,
    so the window includes the first checks of the pages the server answers). Sampled every 0.5 s over the
    whole process tree: the checking process and its processing workers. `restart`: the database was created
    by an earlier start (another process), as for every start after a daemon's first; the daemon then does not
    migrate, and does not load Alembic."""
    import asyncio

    from watcher.processing import shared_processor
    from watcher.runtime import install_reactor, reactor_loop, run_sync
    from watcher.scheduler import run_daemon
    from watcher.store import Store

    install_reactor()
    tmp = tempfile.mkdtemp(prefix="watcher-daemon-")
    samples: list[tuple[float, float, float]] = []  # (checking process RSS, tree RSS, tree PSS) in MB
    processor = shared_processor(None, daemon=True)  # the daemon's own pool (its size for a daemon)

    def sample() -> None:
        pids = [os.getpid(), *processor.pids()]
        samples.append((proc_kb(os.getpid(), "VmRSS") / 1024, sum(proc_kb(p, "VmRSS") for p in pids) / 1024,
                        sum(pss_kb(p) for p in pids) / 1024))

    try:
        with page_server(watches) as base:
            url = f"sqlite:///{tmp}/daemon.db"
            if restart:
                subprocess.run([sys.executable, "-c", "import sys; from watcher.store import Store; "
                                "Store.open(sys.argv[1]).close()", url], cwd=HERE.parent, check=True)
            store = Store.open(url, migrate_apart=True)  # as `watcher run` opens it
            config = config_for(base, watches, url)
            started = time.perf_counter()
            stop = asyncio.Event()
            reactor_loop()

            async def go() -> None:
                async def sampler() -> None:
                    while not stop.is_set():
                        sample()
                        await asyncio.sleep(0.5)
                    sample()

                async def stopper() -> None:
                    await asyncio.sleep(seconds)
                    stop.set()

                await asyncio.gather(run_daemon(store, config, stop=stop, sender=False), sampler(), stopper())

            run_sync(go)
            from sqlalchemy import func, select

            from watcher.store.models import Check

            with store.session() as s:
                checked = s.scalar(select(func.count()).select_from(Check))
            elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"tool": "watcher-daemon", "watches": watches, "database": "existing" if restart else "new",
            "seconds": round(elapsed, 1), "checks_done": checked,
            "processing_workers": len(processor.pids()),
            "rss_mb_checking_process_peak": round(max(s[0] for s in samples), 1),
            "rss_mb_tree_peak": round(max(s[1] for s in samples), 1),
            "pss_mb_tree_peak": round(max(s[2] for s in samples), 1),
            "rss_mb_tree_end": round(samples[-1][1], 1), "machine": machine()}


def measure_extraction(pages: int = 300) -> dict[str, Any]:
    """Normalise and extract per generated page, in CPU time of this process (thread_time: what other
    processes on a shared machine do barely moves it), each page read cold (the rules' caches emptied)."""
    from benchmarks.pages import page
    from spiders.parsers import parse_body
    from watcher.document import normalise
    from watcher.extract import clear_caches, extract

    norm, ext = [], []
    extract(normalise(parse_body(page(0).encode(), "http://bench/page/0", "html")[0]))  # imports, name lists
    for i in range(pages):
        raw = parse_body(page(i).encode(), f"http://bench/page/{i}", "html")[0]
        clear_caches()
        t0 = time.thread_time()
        doc = normalise(raw)
        t1 = time.thread_time()
        extract(doc)
        t2 = time.thread_time()
        norm.append((t1 - t0) * 1000)
        ext.append((t2 - t1) * 1000)
    both = sorted(a + b for a, b in zip(norm, ext, strict=True))
    return {"tool": "extraction", "pages": pages, "clock": "CPU (thread_time)",
            "normalise_median_ms": round(statistics.median(norm), 2),
            "extract_median_ms": round(statistics.median(ext), 2),
            "both_median_ms": round(statistics.median(both), 2), "both_mean_ms": round(statistics.fmean(both), 2),
            "both_p95_ms": round(both[int(pages * 0.95)], 2)}


# --------------------------------------------------------------------------- urlwatch


def ensure_urlwatch() -> Path:
    exe = URLWATCH_VENV / "bin" / "urlwatch"
    if not exe.exists():
        print("installing urlwatch into benchmarks/.venv-urlwatch ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(URLWATCH_VENV)], check=True)
        subprocess.run([str(URLWATCH_VENV / "bin" / "pip"), "install", "-q", "urlwatch", "html2text"], check=True)
    return exe


def measure_urlwatch(pages: int) -> dict[str, Any]:
    """urlwatch on the same pages: one url job per page with its html2text filter (the nearest thing to
    our main-text extraction), reports off. Cycle 1 fills its cache; cycle 2 is the unchanged re-check."""
    exe = ensure_urlwatch()
    tmp = Path(tempfile.mkdtemp(prefix="urlwatch-bench-"))
    out: dict[str, Any] = {"tool": "urlwatch", "pages": pages}
    try:
        with page_server(pages) as base:
            jobs = tmp / "urls.yaml"
            jobs.write_text("\n---\n".join(f"name: p{i}\nurl: {base}/page/{i}\nfilter:\n  - html2text\n"
                                           for i in range(pages)))
            cfg = tmp / "urlwatch.yaml"
            cfg.write_text("display:\n  new: true\n  error: true\n  unchanged: false\n"
                           "report:\n  stdout:\n    enabled: false\n  text:\n    details: true\n")
            cmd = [str(exe), "--urls", str(jobs), "--config", str(cfg), "--cache", str(tmp / "cache.db"),
                   "--hooks", str(tmp / "hooks.py")]
            for label in ("first", "unchanged", "changed_10pct"):
                if label == "changed_10pct":
                    control(base, "/_mutate?fraction=0.1")
                started, cpu = time.perf_counter(), cpu_children_s()
                proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HOME": str(tmp)})
                seconds = time.perf_counter() - started
                out[label] = {"seconds": round(seconds, 2), "pages_per_s": round(pages / seconds, 1),
                              "ms_per_page": round(1000 * seconds / pages, 3),
                              "cpu_s": round(cpu_children_s() - cpu, 2),
                              "rc": proc.returncode, "db_bytes": (tmp / "cache.db").stat().st_size}
            # Before the page server exits: the largest urlwatch process so far, not the server.
            out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def cpu_children_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime



# --------------------------------------------------------------------------- profile


IDLE = ("Condition.wait", "EpollSelector.select", "_worker (concurrent", "Event.wait", "Queue.get",
        "_wait_for_tstate_lock", "_PollLikeSelector.select", "SocketIO.readinto", "_recv_bytes",
        "_recv (multiprocessing", "wait (threading")
CATEGORIES = [  # first match, checking each sampled stack from the innermost frame outwards
    ("database", ("sqlalchemy", "sqlite3", "psycopg", "alembic")),
    ("extraction", ("watcher/extract/",)),
    ("parsing/normalising", ("trafilatura", "lxml", "watcher/document.py", "spiders/parsers.py", "justext",
                             "htmldate", "courlan", "charset_normalizer")),
    ("fetching (scrapy/twisted)", ("scrapy", "twisted", "spiders/")),
    ("diff/changes", ("watcher/diff.py", "watcher/changes.py", "watcher/topic.py")),
    ("process pool (pickling, pipes)", ("multiprocessing", "concurrent/futures/process.py", "pickle")),
]


def profile(pages: int) -> dict[str, Any]:
    """py-spy samples each cycle of a `--one` run separately, the checking process and its processing
    workers (the page server, a child too, is left out); a sample counts for the innermost frame that
    belongs to a known category."""
    RESULTS.mkdir(exist_ok=True)
    _child("--one", str(pages), "--one-profile", str(RESULTS))
    out: dict[str, Any] = {"tool": "profile", "pages": pages}
    for label in CYCLES:
        raw = RESULTS / f"profile-{pages}-{label}.txt"
        out[label] = summarise_profile(raw)
    return out


def _role(frames: list[str]) -> str:
    process = [f for f in frames if f.startswith("process ")]
    last = process[-1] if process else ""
    if "benchmarks.server" in last:
        return "page server"
    return "processing workers" if "spawn_main" in last else "checking process"


def summarise_profile(raw: Path) -> dict[str, Any]:
    totals: dict[str, int] = {}
    roles: dict[str, int] = {}
    functions: dict[str, int] = {}
    idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        role = _role(frames)
        frames = [f for f in frames if not f.startswith("process ")]
        if role == "page server":
            continue
        if frames and any(k in frames[-1] for k in IDLE):  # a thread waiting (pool, I/O), not working
            idle += int(count)
            continue
        roles[role] = roles.get(role, 0) + int(count)
        category = "other python"
        for frame in reversed(frames):
            hit = next((name for name, keys in CATEGORIES if any(k in frame for k in keys)), None)
            if hit:
                category = hit
                break
        totals[category] = totals.get(category, 0) + int(count)
        if frames:
            functions[frames[-1]] = functions.get(frames[-1], 0) + int(count)
    total = sum(totals.values()) or 1
    top = sorted(functions.items(), key=lambda kv: -kv[1])[:8]
    return {"busy_samples": total, "idle_samples": idle, "raw": str(raw.relative_to(HERE.parent)),
            "busy_by_process_pct": {k: round(100 * v / total, 1) for k, v in roles.items()},
            "share_pct": {k: round(100 * v / total, 1) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])},
            "top_frames_pct": {k: round(100 * v / total, 1) for k, v in top}}


# --------------------------------------------------------------------------- targets (the "Must show")


def targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, checked on the figures of this run (where the run has them)."""
    def find(tool: str, pages: int, database: str | None = None) -> dict[str, Any] | None:
        return next((r for r in results if r.get("tool") == tool and r.get("pages") == pages
                     and (database is None or r.get("database") == database)), None)

    checks: list[dict[str, Any]] = []

    def add(what: str, value: float | None, op: str, bound: float) -> None:
        if value is None:
            return
        ok = value >= bound if op == ">=" else value <= bound
        checks.append({"target": what, "value": round(value, 2), "bound": f"{op} {bound}", "ok": ok})

    for db in ("sqlite", "postgresql"):
        for n in sorted({r["pages"] for r in results if r.get("tool") == "watcher"}):
            ours, uw, cd = find("watcher", n, db), find("urlwatch", n), find("changedetection.io", n)
            if ours is None:
                continue
            if uw:
                ratio = {c: uw[c]["seconds"] / max(ours[c]["seconds"], 1e-9) for c in CYCLES}
                if n == 1000:
                    add(f"{db} N=1000 unchanged: urlwatch/watcher", ratio["unchanged"], ">=", 3.0)
                    add(f"{db} N=1000 10% changed: urlwatch/watcher", ratio["changed_10pct"], ">=", 1.5)
                    add(f"{db} N=1000 first: watcher/urlwatch", 1 / ratio["first"], "<=", 4.0)
                if n == 10000:
                    add(f"{db} N=10000 unchanged: urlwatch/watcher", ratio["unchanged"], ">=", 5.0)
            if cd:
                for c in CYCLES:
                    add(f"{db} N={n} {c}: changedetection.io/watcher", cd[c]["seconds"] / ours[c]["seconds"], ">=", 1.0)
            add(f"{db} N={n} unchanged: database bytes added per re-check", ours["unchanged"].get("growth_per_page"),
                "<=", 80)
        small, large = find("watcher", 1000, db), find("watcher", 10000, db)
        if small and large:
            for c in CYCLES:
                add(f"{db} {c}: cost per page at 10,000 / at 1,000", large[c]["ms_per_page"] / small[c]["ms_per_page"],
                    "<=", 1.3)
    for r in results:
        if r.get("tool") == "watcher-daemon" and r["watches"] >= 10000:
            add(f"daemon {r['watches']} watches, {r.get('database', 'new')} database: peak RSS of the process tree, MB",
                r["rss_mb_tree_peak"], "<=", 200)
    return checks


# --------------------------------------------------------------------------- driver


def _child(*args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.cycle", *args], cwd=HERE.parent, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child {args} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cycle", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, action="append",
                    help="number of pages/watches (repeatable; default 100, 1000 and 10000)")
    ap.add_argument("--backend", choices=["sqlite", "postgresql"], action="append",
                    help="database backend (repeatable; default sqlite)")
    ap.add_argument("--postgres", metavar="URL", help=f"the PostgreSQL database for --backend postgresql "
                    f"(created if missing, wiped before and after each run; default {DEFAULT_PG})")
    ap.add_argument("--urlwatch", action="store_true", help="run urlwatch on the same pages for comparison")
    ap.add_argument("--changedetection", action="store_true",
                    help="run changedetection.io on the same pages for comparison (installed into .cdbench/venv)")
    ap.add_argument("--cd-workers", default="default", help="changedetection.io FETCH_WORKERS (default: its own, 5)")
    ap.add_argument("--daemon-watches", type=int, help="measure daemon memory with this many watches loaded")
    ap.add_argument("--daemon-seconds", type=float, default=45.0)
    ap.add_argument("--daemon-restart", action="store_true", help="also measure the daemon started on a database "
                    "an earlier start created (its every start after the first)")
    ap.add_argument("--extraction", action="store_true", help="median extraction time on generated pages")
    ap.add_argument("--profile", type=int, metavar="PAGES", help="py-spy profile of a run with PAGES pages")
    ap.add_argument("--out", type=Path, help="also write the results (JSON) to this file, and a Markdown table "
                    "next to it")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--one-db", help=argparse.SUPPRESS)
    ap.add_argument("--one-profile", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--one-urlwatch", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--one-cd", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--one-daemon", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--one-daemon-restart", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.one is not None:
        print(json.dumps(measure_watcher(args.one, args.one_db, args.one_profile)))
        return
    if args.one_urlwatch is not None:
        print(json.dumps(measure_urlwatch(args.one_urlwatch)))
        return
    if args.one_cd is not None:
        from benchmarks.changedetection import measure_changedetection

        print(json.dumps(measure_changedetection(args.one_cd, workers=args.cd_workers)))
        return
    if args.one_daemon is not None:
        print(json.dumps(measure_daemon(args.one_daemon, args.daemon_seconds, restart=args.one_daemon_restart)))
        return

    only_other = args.daemon_watches or args.extraction or args.profile
    pages = args.pages or ([] if only_other else list(DEFAULT_PAGES))
    backends = args.backend or (["sqlite", "postgresql"] if args.postgres else ["sqlite"])
    pg = ensure_pg(args.postgres or DEFAULT_PG) if "postgresql" in backends else None
    results: list[dict[str, Any]] = [{"tool": "machine", **machine(), "argv": sys.argv[1:]}]
    for n in pages:
        for backend in backends:
            results.append(_child("--one", str(n), *(["--one-db", pg] if backend == "postgresql" and pg else [])))
            _print(results[-1])
        if args.urlwatch:
            results.append(_child("--one-urlwatch", str(n)))
            _print(results[-1])
        if args.changedetection:
            results.append(_child("--one-cd", str(n), "--cd-workers", args.cd_workers))
            _print(results[-1])
        _print_ratios(results, n)
    if args.daemon_watches:
        for restart in (False, True) if args.daemon_restart else (False,):
            results.append(_child("--one-daemon", str(args.daemon_watches), "--daemon-seconds",
                                  str(args.daemon_seconds), *(["--one-daemon-restart"] if restart else [])))
            _print(results[-1])
    if args.extraction:
        results.append(measure_extraction())
        _print(results[-1])
    if args.profile:
        results.append(profile(args.profile))
        _print(results[-1])
    checks = targets(results)
    if checks:
        results.append({"tool": "targets", "checks": checks})
        print("\ntargets (the issue's 'Must show', on this run's figures):")
        for c in checks:
            print(f"  {'ok  ' if c['ok'] else 'MISS'} {c['target']}: {c['value']} (needs {c['bound']})")
    results.append({"tool": "machine-end", **machine()})
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("cycle-%Y%m%d-%H%M%S")
    paths = [RESULTS / f"{stamp}.json"] + ([args.out] if args.out else [])
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2))
        path.with_suffix(".md").write_text(markdown(results))
    print("saved " + ", ".join(str(p) for p in paths) + " (and .md)")


def _print(r: dict[str, Any]) -> None:
    if r["tool"] in ("watcher", "urlwatch", "changedetection.io"):
        head = f"{r['tool']:18} {r.get('database', ''):10} N={r['pages']:>6}"
        for label in CYCLES:
            c = r[label]
            extra = f", +{c['growth_per_page']} B/page" if "growth_per_page" in c else ""
            cpu = f"  cpu {c['cpu_s']:7.2f} s" if "cpu_s" in c else ""
            print(f"{head}  {label:13} {c['seconds']:8.2f} s  {c['ms_per_page']:7.3f} ms/page{cpu}"
                  f"  db {c.get('db_bytes', 0) / 1e6:7.2f} MB{extra}", flush=True)
        if "peak_rss_mb" in r:
            print(f"{head}  peak RSS {r['peak_rss_mb']} MB", flush=True)
    else:
        print(json.dumps(r), flush=True)


def _print_ratios(results: list[dict[str, Any]], n: int) -> None:
    rows = [r for r in results if r.get("pages") == n]
    ours = [r for r in rows if r["tool"] == "watcher"]
    for other in (r for r in rows if r["tool"] in ("urlwatch", "changedetection.io")):
        for r in ours:
            ratios = ", ".join(f"{c} {other[c]['seconds'] / max(r[c]['seconds'], 1e-9):.2f}x" for c in CYCLES)
            print(f"  N={n} {other['tool']}/watcher ({r['database']}): {ratios}", flush=True)


def markdown(results: list[dict[str, Any]]) -> str:
    """The run as Markdown tables: seconds and ms/page per cycle and tool, ratios, targets."""
    lines = []
    m = results[0] if results and results[0].get("tool") == "machine" else {}
    if m:
        lines.append(f"Run at {m['at']} on {m['cores']} cores, load average {m['load_avg_1_5_15']} at start; "
                     f"`python -m benchmarks.cycle {' '.join(m.get('argv', []))}`.\n")
    runs = [r for r in results if r.get("tool") in ("watcher", "urlwatch", "changedetection.io")]
    if runs:
        lines += ["| tool | db | pages | cycle | seconds | ms/page | CPU s | +B/page | peak RSS MB |",
                  "|---|---|---:|---|---:|---:|---:|---:|---:|"]
        for r in runs:
            for c in CYCLES:
                x = r[c]
                lines.append(f"| {r['tool']} | {r.get('database', '')} | {r['pages']:,} | {c} | {x['seconds']:.2f} | "
                             f"{x['ms_per_page']:.3f} | {x.get('cpu_s', '')} | {x.get('growth_per_page', '')} | "
                             f"{r.get('peak_rss_mb', '')} |")
        lines.append("")
        ratio_rows = []
        for n in sorted({r["pages"] for r in runs}):
            others = [r for r in runs if r["pages"] == n and r["tool"] != "watcher"]
            for ours in (r for r in runs if r["pages"] == n and r["tool"] == "watcher"):
                for o in others:
                    ratio_rows.append(f"| {n:,} | {ours['database']} | {o['tool']}/watcher | " + " | ".join(
                        f"{o[c]['seconds'] / max(ours[c]['seconds'], 1e-9):.2f}x" for c in CYCLES) + " |")
        if ratio_rows:
            lines += ["| pages | db | ratio | first | unchanged | 10% changed |", "|---:|---|---|---:|---:|---:|",
                      *ratio_rows, ""]
    for r in results:
        if r.get("tool") == "watcher-daemon":
            lines.append(f"Daemon with {r['watches']:,} watches, {r.get('database', 'new')} database, for "
                         f"{r['seconds']} s ({r['checks_done']} checks): "
                         f"peak RSS {r['rss_mb_tree_peak']} MB for the process tree "
                         f"({r['rss_mb_checking_process_peak']} MB checking process + {r['processing_workers']} "
                         f"processing workers), peak PSS {r['pss_mb_tree_peak']} MB.\n")
        if r.get("tool") == "targets":
            lines += ["| target | value | needs | |", "|---|---:|---|---|"]
            lines += [f"| {c['target']} | {c['value']} | {c['bound']} | {'ok' if c['ok'] else 'MISS'} |"
                      for c in r["checks"]]
            lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

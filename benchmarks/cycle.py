"""Measure a check cycle: `python -m benchmarks.cycle --pages 100 --pages 1000 [--urlwatch] [--postgres URL]
[--daemon-watches 10000] [--profile]`. See benchmarks/README.md for what each figure means.

Every measurement runs in a fresh subprocess (clean peak RSS, fresh database), against a page server in
another process. Results print as a table and are saved as JSON under benchmarks/results/.
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


# --------------------------------------------------------------------------- watcher, one process per N


def config_for(base: str, pages: int, database_url: str, *, interval: str = "6h") -> Any:
    from watcher.config import Config

    return Config.model_validate({
        "watcher": {"database_url": database_url},
        # All pages live on one host here; a real deployment spreads over many hosts and keeps the
        # per-domain default of 2. The same parallelism is what urlwatch gets (its thread pool).
        "fetch": {"concurrency": 32, "concurrency_per_domain": 32, "autothrottle": False, "retries": 0,
                  "timeout": "60s"},
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
    """py-spy sampling this process while the block runs (raw collapsed stacks into `path`)."""
    if path is None:
        yield
        return
    import signal

    spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(os.getpid()),
                            "-r", "250", "-f", "raw", "-o", str(path)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # let py-spy attach
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)


def measure_watcher(pages: int, database_url: str | None, profile_dir: Path | None = None) -> dict[str, Any]:
    from watcher.pipeline import run_cycle
    from watcher.runtime import install_reactor, run_sync
    from watcher.store import Store

    install_reactor()
    tmp = tempfile.mkdtemp(prefix="watcher-bench-")
    url = database_url or f"sqlite:///{tmp}/bench.db"
    out: dict[str, Any] = {"tool": "watcher", "pages": pages, "database": url.split(":")[0]}
    try:
        with page_server(pages) as base:
            store = Store.open(url)
            config = config_for(base, pages, url)
            store.sync_watches(config.watch)
            empty = db_bytes(store)

            def cycle(label: str) -> None:
                with sampled(profile_dir / f"profile-{pages}-{label}.txt" if profile_dir else None):
                    started = time.perf_counter()
                    report = run_sync(lambda: run_cycle(store, config))
                    seconds = time.perf_counter() - started
                outcomes: dict[str, int] = {}
                for r in report.results:
                    outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
                out[label] = {"seconds": round(seconds, 2), "pages_per_s": round(pages / seconds, 1),
                              "outcomes": outcomes, "db_bytes": db_bytes(store)}

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
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if database_url:
            _reset_pg(database_url)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return out


def _reset_pg(url: str) -> None:
    import sqlalchemy as sa

    eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with eng.begin() as c:
        c.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    eng.dispose()


def measure_daemon(watches: int, seconds: float) -> dict[str, Any]:
    """RSS of the daemon with `watches` watches loaded and scheduled (their first runs spread over 30 s,
    so the window includes the first checks of the pages the server answers)."""
    import asyncio

    from watcher.runtime import install_reactor, reactor_loop, run_sync
    from watcher.scheduler import run_daemon
    from watcher.store import Store

    install_reactor()
    tmp = tempfile.mkdtemp(prefix="watcher-daemon-")
    samples: list[float] = []
    try:
        with page_server(watches) as base:
            url = f"sqlite:///{tmp}/daemon.db"
            store = Store.open(url)
            config = config_for(base, watches, url)
            started = time.perf_counter()
            stop = asyncio.Event()
            reactor_loop()

            async def go() -> None:
                async def sampler() -> None:
                    while not stop.is_set():
                        samples.append(_rss_now_mb())
                        await asyncio.sleep(0.5)
                    samples.append(_rss_now_mb())

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
    return {"tool": "watcher-daemon", "watches": watches, "seconds": round(elapsed, 1), "checks_done": checked,
            "rss_mb_after_load": round(samples[1] if len(samples) > 1 else samples[0], 1),
            "rss_mb_peak": round(peak_rss_mb(), 1), "rss_mb_end": round(samples[-1], 1)}


def _rss_now_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure_extraction(pages: int = 300) -> dict[str, Any]:
    from benchmarks.pages import page
    from spiders.parsers import parse_body
    from watcher.document import normalise
    from watcher.extract import extract

    norm, ext = [], []
    for i in range(pages):
        raw = parse_body(page(i).encode(), f"http://bench/page/{i}", "html")[0]
        t0 = time.perf_counter()
        doc = normalise(raw)
        t1 = time.perf_counter()
        extract(doc)
        t2 = time.perf_counter()
        norm.append((t1 - t0) * 1000)
        ext.append((t2 - t1) * 1000)
    return {"tool": "extraction", "pages": pages, "normalise_median_ms": round(statistics.median(norm), 2),
            "extract_median_ms": round(statistics.median(ext), 2),
            "both_median_ms": round(statistics.median(a + b for a, b in zip(norm, ext, strict=True)), 2),
            "both_p95_ms": round(sorted(a + b for a, b in zip(norm, ext, strict=True))[int(pages * 0.95)], 2)}


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
                started = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HOME": str(tmp)})
                seconds = time.perf_counter() - started
                out[label] = {"seconds": round(seconds, 2), "pages_per_s": round(pages / seconds, 1),
                              "rc": proc.returncode, "db_bytes": (tmp / "cache.db").stat().st_size}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# --------------------------------------------------------------------------- profile


IDLE = ("Condition.wait", "EpollSelector.select", "_worker (concurrent", "Event.wait", "Queue.get",
        "_wait_for_tstate_lock")
CATEGORIES = [  # first match, checking each sampled stack from the innermost frame outwards
    ("database", ("sqlalchemy", "sqlite3", "psycopg", "alembic")),
    ("extraction", ("watcher/extract/",)),
    ("parsing/normalising", ("trafilatura", "lxml", "watcher/document.py", "spiders/parsers.py", "justext",
                             "htmldate", "courlan", "charset_normalizer")),
    ("fetching (scrapy/twisted)", ("scrapy", "twisted", "spiders/")),
    ("diff/changes", ("watcher/diff.py", "watcher/changes.py", "watcher/topic.py")),
]


def profile(pages: int) -> dict[str, Any]:
    """py-spy samples each cycle of a `--one` run separately; a sample counts for the innermost frame that
    belongs to a known category. Idle threads are not sampled (py-spy leaves them out by default)."""
    RESULTS.mkdir(exist_ok=True)
    _child("--one", str(pages), "--one-profile", str(RESULTS))
    out: dict[str, Any] = {"tool": "profile", "pages": pages}
    for label in ("first", "unchanged", "changed_10pct"):
        raw = RESULTS / f"profile-{pages}-{label}.txt"
        out[label] = summarise_profile(raw)
    return out


def summarise_profile(raw: Path) -> dict[str, Any]:
    totals: dict[str, int] = {}
    functions: dict[str, int] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        category = "other python"
        if frames and any(k in frames[-1] for k in IDLE):  # a thread waiting (pool, I/O), not working
            totals["idle/waiting"] = totals.get("idle/waiting", 0) + int(count)
            continue
        for frame in reversed(frames):
            hit = next((name for name, keys in CATEGORIES if any(k in frame for k in keys)), None)
            if hit:
                category = hit
                break
        totals[category] = totals.get(category, 0) + int(count)
        if frames:
            functions[frames[-1]] = functions.get(frames[-1], 0) + int(count)
    idle = totals.pop("idle/waiting", 0)
    total = sum(totals.values()) or 1
    top = sorted(functions.items(), key=lambda kv: -kv[1])[:8]
    return {"busy_samples": total, "idle_samples": idle, "raw": str(raw.relative_to(HERE.parent)),
            "share_pct": {k: round(100 * v / total, 1) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])},
            "top_frames_pct": {k: round(100 * v / total, 1) for k, v in top}}


# --------------------------------------------------------------------------- driver


def _child(*args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.cycle", *args], cwd=HERE.parent, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cycle", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, action="append", help="number of pages/watches (repeatable)")
    ap.add_argument("--postgres", metavar="URL", help="also run against this PostgreSQL database (it is wiped)")
    ap.add_argument("--urlwatch", action="store_true", help="run urlwatch on the same pages for comparison")
    ap.add_argument("--daemon-watches", type=int, help="measure daemon RSS with this many watches loaded")
    ap.add_argument("--daemon-seconds", type=float, default=45.0)
    ap.add_argument("--extraction", action="store_true", help="median extraction time on generated pages")
    ap.add_argument("--profile", type=int, metavar="PAGES", help="py-spy profile of a run with PAGES pages")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--one-db", help=argparse.SUPPRESS)
    ap.add_argument("--one-profile", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--one-urlwatch", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--one-daemon", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.one is not None:
        print(json.dumps(measure_watcher(args.one, args.one_db, args.one_profile)))
        return
    if args.one_urlwatch is not None:
        print(json.dumps(measure_urlwatch(args.one_urlwatch)))
        return
    if args.one_daemon is not None:
        print(json.dumps(measure_daemon(args.one_daemon, args.daemon_seconds)))
        return

    results: list[dict[str, Any]] = []
    for n in args.pages or []:
        results.append(_child("--one", str(n)))
        _print(results[-1])
        if args.postgres:
            results.append(_child("--one", str(n), "--one-db", args.postgres))
            _print(results[-1])
        if args.urlwatch:
            results.append(_child("--one-urlwatch", str(n)))
            _print(results[-1])
            ours, theirs = results[-2 if not args.postgres else -3], results[-1]
            for label in ("first", "unchanged", "changed_10pct"):
                ratio = theirs[label]["seconds"] / max(ours[label]["seconds"], 1e-9)
                print(f"  urlwatch/watcher {label}: {ratio:.2f}x")
                ours.setdefault("urlwatch_ratio", {})[label] = round(ratio, 2)
    if args.daemon_watches:
        results.append(_child("--one-daemon", str(args.daemon_watches), "--daemon-seconds",
                              str(args.daemon_seconds)))
        _print(results[-1])
    if args.extraction:
        results.append(measure_extraction())
        _print(results[-1])
    if args.profile:
        results.append(profile(args.profile))
        _print(results[-1])
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / time.strftime("cycle-%Y%m%d-%H%M%S.json")
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out.relative_to(HERE.parent)}")


def _print(r: dict[str, Any]) -> None:
    if r["tool"] in ("watcher", "urlwatch"):
        head = f"{r['tool']:8} {r.get('database', ''):10} N={r['pages']:>6}"
        for label in ("first", "unchanged", "changed_10pct"):
            c = r[label]
            extra = f", +{c['growth_per_page']} B/page" if "growth_per_page" in c else ""
            print(f"{head}  {label:13} {c['seconds']:8.2f} s  {c['pages_per_s']:8.1f} pages/s"
                  f"  db {c['db_bytes'] / 1e6:7.2f} MB{extra}")
        if "peak_rss_mb" in r:
            print(f"{head}  peak RSS {r['peak_rss_mb']} MB")
    else:
        print(json.dumps(r))


if __name__ == "__main__":
    main()

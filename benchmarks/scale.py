"""The scaled-out roles: throughput, and what Redis holds.

    python -m benchmarks.scale --workers 1 --workers 2 --workers 4 --pages 1000 \\
        --postgres postgresql://postgres@127.0.0.1:5432/watcher_bench --redis redis://127.0.0.1:6379/9
    python -m benchmarks.scale --memory --pages 1000 --due-times 50 --redis redis://127.0.0.1:6379/9

Throughput: one active scheduler fires N watches every `--interval` (more than the workers can do, so the
figure is capacity while the queue never runs dry: `waiting` at the end says so; `fired_per_s` is how many
due times the scheduler handed over per second, coalesced ones included). `--workers K` worker processes
check them through the Redis stream, with per-domain politeness shared in Redis (all pages on one host,
allowed 32 at once across all workers). Pages are unchanged re-checks after a baseline cycle, the steady
state of a deployment. The figure is checks stored per second over the window, counted in the database.
The machine's load average (`/proc/loadavg`) is recorded before and after each run: other processes share
these cores. Redis's `used_memory` and key count are read at the end of each run.

`--feeder` replaces the scheduler process by a thread here that puts every watch on the queue every
`--interval` with the scheduler's own enqueue script: the figure is then the workers' alone (one
scheduler fires only so many due times per second: each costs APScheduler a PostgreSQL commit).

Memory (`--memory`): N watches through D due times each, by the same scripts the scheduler and workers run
(enqueue, read, claim, complete), no fetching; Redis `INFO memory` used_memory (the whole server's), the
key count and the bytes of this database's keys (`MEMORY USAGE`) are sampled as due times accumulate. They
stay flat: Redis holds per-watch state, not per-due-time state.

The PostgreSQL database given is created if missing and wiped; the Redis database given is flushed (use
one of your own).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.cycle import HERE, RESULTS, _reset_pg, ensure_pg, page_server


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def redis_figures(redis_url: str) -> dict[str, Any]:
    import redis

    r = redis.Redis.from_url(redis_url)
    try:
        # used_memory is the whole server's (other databases too); MEMORY USAGE sums this database's keys.
        keys = list(r.scan_iter(count=1000))
        return {"used_memory": r.info("memory")["used_memory"], "keys": len(keys),
                "keys_bytes": sum(r.memory_usage(k, samples=0) or 0 for k in keys),
                "stream_entries": r.xlen("watcher:jobs") if r.exists("watcher:jobs") else 0}
    finally:
        r.close()


def fired(redis_url: str) -> int:
    """Due times the active scheduler has handed to the queue so far (queued, coalesced or stale)."""
    import redis

    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        for raw in r.hgetall("watcher:members").values():
            m = json.loads(raw)
            if m.get("role") == "active":
                return int(m.get("queued", 0) + m.get("coalesced", 0) + m.get("stale", 0))
        return 0
    finally:
        r.close()


class Feeder:
    """Stands in for the scheduler (`--feeder`): every watch due every `interval`, put on the queue by the
    scheduler's own enqueue script from a thread here, so the figure is the workers' alone."""

    def __init__(self, redis_url: str, names: list[str], interval: float) -> None:
        import redis

        from watcher.scale import _ENQUEUE, DONE, QUEUED, STREAM

        self.r = redis.Redis.from_url(redis_url, decode_responses=True)
        self.script, self.keys = self.r.register_script(_ENQUEUE), [STREAM, QUEUED, DONE]
        self.names, self.interval, self.fired = names, interval, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            due = int(time.time() * 1000)
            for i in range(0, len(self.names), 500):
                args: list[Any] = [100_000]
                for name in self.names[i:i + 500]:
                    args += [name, due]
                self.script(keys=self.keys, args=args)
            self.fired += len(self.names)


def measure(workers: int, pages: int, seconds: float, interval: float, pg: str, redis_url: str, *,
            feeder: bool = False) -> dict[str, Any]:
    import redis
    import sqlalchemy as sa

    _reset_pg(pg)
    redis.Redis.from_url(redis_url).flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="watcher-scale-"))
    load_before = loadavg()
    with page_server(pages) as base:
        watches = "\n".join(f'[[watch]]\nname = "p{i}"\nurl = "{base}/page/{i}"\ninterval = "{interval}s"\n'
                            f'jitter = "0s"\n' for i in range(pages))
        cfg = tmp / "watcher.toml"
        cfg.write_text(f'[watcher]\ndatabase_url = "{pg}"\nreload_on_change = false\n[redis]\nurl = "{redis_url}"\n'
                       f'[fetch]\nautothrottle = false\nretries = 0\nconcurrency = 32\nconcurrency_per_domain = 32\n'
                       f'allow_private = ["{base.split("//")[1]}"]\n{watches}')
        cmd = [sys.executable, "-m", "watcher", "-c", str(cfg)]
        subprocess.run([*cmd, "check", "--json"], capture_output=True, timeout=1800, cwd=HERE.parent)  # baseline
        feed = None
        if feeder:
            from watcher.scale import GROUP, STREAM

            redis.Redis.from_url(redis_url).xgroup_create(STREAM, GROUP, id="0", mkstream=True)
            feed = Feeder(redis_url, [f"p{i}" for i in range(pages)], interval)
            feed.thread.start()
            procs = []
        else:
            procs = [subprocess.Popen([*cmd, "run", "--role", "scheduler"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)]
        procs += [subprocess.Popen([*cmd, "worker"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                  for _ in range(workers)]
        engine = sa.create_engine(pg.replace("postgresql://", "postgresql+psycopg://", 1))
        count = sa.text("SELECT count(*) FROM checks WHERE due IS NOT NULL")
        try:
            time.sleep(max(8.0, interval + 3))  # processes start, first due times come, queue fills
            # A scheduler first writes every watch's job to PostgreSQL, one commit each: on a loaded machine
            # that alone can outlast the sleep. The window opens once due times flow and checks get stored.
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                with engine.connect() as c:
                    stored = c.execute(count).scalar_one()
                if stored and (feed is not None or fired(redis_url)):
                    break
                time.sleep(1.0)
            with engine.connect() as c:
                before, t0 = c.execute(count).scalar_one(), time.perf_counter()
                fired0 = feed.fired if feed else fired(redis_url)
            time.sleep(seconds)
            with engine.connect() as c:
                after, t1 = c.execute(count).scalar_one(), time.perf_counter()
                fired1 = feed.fired if feed else fired(redis_url)
            status = json.loads(subprocess.run([*cmd, "status", "--json"], capture_output=True, text=True,
                                               timeout=120).stdout or "{}").get("scale", {})
            figures = redis_figures(redis_url)
        finally:
            if feed is not None:
                feed.stop.set()
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(60)
            engine.dispose()
    queue = status.get("queue") or {}
    return {"workers": workers, "fed_by": "feeder" if feeder else "scheduler", "pages": pages,
            "interval_s": interval, "due_per_s": round(pages / interval, 1),
            "fired_per_s": round((fired1 - fired0) / (t1 - t0), 1),
            "checks_per_s": round((after - before) / (t1 - t0), 1), "load_before": load_before,
            "load_after": loadavg(), "waiting": queue.get("waiting"), "in_progress": queue.get("in_progress"),
            "redis_used_memory": figures["used_memory"], "redis_keys": figures["keys"],
            "redis_keys_bytes": figures["keys_bytes"]}


def memory(pages: int, due_times: int, redis_url: str) -> list[dict[str, Any]]:
    """N watches x D due times through the queue's own scripts; Redis figures as due times accumulate."""
    import redis.asyncio as aredis

    from watcher.runtime import run_sync
    from watcher.scale import JobQueue

    async def go() -> list[dict[str, Any]]:
        r = aredis.from_url(redis_url, decode_responses=True)
        await r.flushdb()
        q = JobQueue(r, lease=60)
        await q.ensure_group()
        samples = [{"due_times": 0, **redis_figures(redis_url)}]
        for n in range(1, due_times + 1):
            await q.enqueue({f"p{i}": 1_800_000_000_000 + n * 60_000 for i in range(pages)})
            done = 0
            while done < pages:
                for job in await q.read("bench-worker", 500, block_ms=100):
                    status, _, _ = await q.claim(job, "bench-worker")
                    assert status == "ok", status
                    await q.complete(job, "bench-worker")
                    done += 1
            if n in (1, 10, 25, due_times) or n % 100 == 0:
                samples.append({"due_times": n, "completed": n * pages, **redis_figures(redis_url)})
        await r.aclose()
        return samples

    return run_sync(go)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, action="append", default=[])
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--interval", type=float, default=2.0, help="each watch's interval, seconds")
    ap.add_argument("--feeder", action="store_true",
                    help="enqueue due watches from here instead of a scheduler process (workers' capacity alone)")
    ap.add_argument("--memory", action="store_true", help="Redis memory over --due-times due times")
    ap.add_argument("--due-times", type=int, default=50)
    ap.add_argument("--postgres", metavar="URL", help="a scratch database (it is wiped)")
    ap.add_argument("--redis", required=True, metavar="URL", help="a scratch Redis database (it is flushed)")
    args = ap.parse_args()
    results: list[dict[str, Any]] = []
    if args.memory:
        for sample in memory(args.pages, args.due_times, args.redis):
            results.append(sample)
            print(json.dumps(sample), flush=True)
    if args.workers and not args.postgres:
        ap.error("--workers needs --postgres")
    if args.workers:
        ensure_pg(args.postgres)  # created if missing, as benchmarks.cycle does
    for k in args.workers:
        results.append(measure(k, args.pages, args.seconds, args.interval, args.postgres, args.redis,
                               feeder=args.feeder))
        print(json.dumps(results[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / time.strftime("scale-%Y%m%d-%H%M%S.json")
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()

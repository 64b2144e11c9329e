"""Throughput of the scaled-out roles: `python -m benchmarks.scale --workers 1 --workers 2 --workers 4
--postgres URL --redis URL [--pages 400] [--seconds 20]`.

One active scheduler enqueues N watches every second (more than the workers can do, so the figure is
capacity); `--workers K` worker processes check them. Pages are unchanged re-checks after a baseline
cycle (the steady state of a real deployment). The figure is checks stored per second over the window,
counted in the database. The PostgreSQL database given is wiped; Redis's current database is flushed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.cycle import HERE, RESULTS, _reset_pg, page_server


def measure(workers: int, pages: int, seconds: float, pg: str, redis_url: str) -> dict[str, float]:
    import redis
    import sqlalchemy as sa

    _reset_pg(pg)
    redis.Redis.from_url(redis_url).flushdb()
    tmp = Path(tempfile.mkdtemp(prefix="watcher-scale-"))
    with page_server(pages) as base:
        watches = "\n".join(f'[[watch]]\nname = "p{i}"\nurl = "{base}/page/{i}"\ninterval = "1s"\njitter = "0s"\n'
                            for i in range(pages))
        cfg = tmp / "watcher.toml"
        cfg.write_text(f'[watcher]\ndatabase_url = "{pg}"\n[redis]\nurl = "{redis_url}"\n[fetch]\n'
                       f'autothrottle = false\nretries = 0\nconcurrency = 32\nconcurrency_per_domain = 32\n{watches}')
        cmd = [sys.executable, "-m", "watcher", "-c", str(cfg)]
        subprocess.run([*cmd, "check", "--json"], capture_output=True, timeout=1800, cwd=HERE.parent)  # baseline
        procs = [subprocess.Popen([*cmd, "run", "--role", "scheduler"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)]
        procs += [subprocess.Popen([*cmd, "worker"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                  for _ in range(workers)]
        engine = sa.create_engine(pg.replace("postgresql://", "postgresql+psycopg://", 1))
        count = sa.text("SELECT count(*) FROM checks")
        try:
            time.sleep(8)  # processes start, queue fills
            with engine.connect() as c:
                before, t0 = c.execute(count).scalar_one(), time.perf_counter()
            time.sleep(seconds)
            with engine.connect() as c:
                after, t1 = c.execute(count).scalar_one(), time.perf_counter()
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(30)
            engine.dispose()
    return {"workers": workers, "pages": pages, "checks_per_s": round((after - before) / (t1 - t0), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, action="append", required=True)
    ap.add_argument("--pages", type=int, default=400)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--postgres", required=True, metavar="URL", help="a scratch database (it is wiped)")
    ap.add_argument("--redis", required=True, metavar="URL", help="a scratch Redis database (it is flushed)")
    args = ap.parse_args()
    results = []
    for k in args.workers:
        results.append(measure(k, args.pages, args.seconds, args.postgres, args.redis))
        print(json.dumps(results[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / time.strftime("scale-%Y%m%d-%H%M%S.json")
    out.write_text(json.dumps(results, indent=2))
    print(f"saved {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()

"""changedetection.io on the benchmark's pages: `python -m benchmarks.cycle --changedetection` runs this.

Folded in from ../shared/tools/cdbench.py (same method, so figures compare with the issue's): one fresh
page server and one fresh changedetection.io process with its own datastore, watches added through the
REST import endpoint, every cycle triggered by `GET /api/v1/watch?recheck_all=1`. A cycle is done when
every watch's `check_count` has advanced (read from `<datastore>/<uuid>/watch.json`, which it rewrites at
the end of each check) and its queue is empty; the cycle's time is the newest watch.json mtime minus the
trigger time, so it does not depend on how often we poll.

changedetection.io is installed on first use into `.cdbench/venv` (or `$CDBENCH_DIR/venv`):
`python3 -m venv .cdbench/venv && .cdbench/venv/bin/pip install changedetection-io`. Its default of 5
fetch workers is kept (`--cd-workers N` sets FETCH_WORKERS).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CD = Path(os.environ.get("CDBENCH_DIR", ROOT / ".cdbench")).resolve()
DATASTORE = CD / "datastore"
CLK = os.sysconf("SC_CLK_TCK")


def ensure_changedetection() -> Path:
    exe = CD / "venv" / "bin" / "changedetection.py"
    if not exe.exists():
        print(f"installing changedetection.io into {CD / 'venv'} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(CD / "venv")], check=True)
        subprocess.run([str(CD / "venv" / "bin" / "pip"), "install", "-q", "changedetection-io"], check=True)
    return exe


def _http(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None,
          timeout: float = 60, method: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _proc_status(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def _du(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout.split()[0])


def _watch_files() -> list[str]:
    return glob.glob(str(DATASTORE / "*" / "watch.json"))


def _read_watch(path: str) -> dict[str, Any] | None:
    for _ in range(5):
        try:
            with open(path, "rb") as f:
                data: dict[str, Any] = json.loads(f.read())
                return data
        except (json.JSONDecodeError, FileNotFoundError):
            time.sleep(0.01)
    return None


def measure_changedetection(pages: int, *, workers: str = "default", poll: float = 1.0,
                            cycle_timeout: float = 3600) -> dict[str, Any]:
    from benchmarks.cycle import control, free_port, page_server

    exe = ensure_changedetection()
    (CD / "logs").mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"tool": "changedetection.io", "pages": pages, "fetch_workers": workers}
    with page_server(pages) as base:
        shutil.rmtree(DATASTORE, ignore_errors=True)
        port = free_port()
        env = {**os.environ, "ALLOW_IANA_RESTRICTED_ADDRESSES": "true", "DISABLE_VERSION_CHECK": "yes"}
        env.pop("FETCH_WORKERS", None)
        if workers != "default":
            env["FETCH_WORKERS"] = str(workers)
        cmd = [str(exe), "-d", str(DATASTORE), "-C", "-h", "127.0.0.1", "-p", str(port), "-P", "true", "-l", "INFO"]
        log = open(CD / "logs" / f"cd-{pages}.log", "w")  # noqa: SIM115 - closed in finally
        started = time.time()
        cd = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        api = f"http://127.0.0.1:{port}/api/v1"
        try:
            token = _wait_for_api(cd, api, log.name)
            out["startup_s"] = round(time.time() - started, 2)
            headers = {"x-api-key": token}
            # A fresh datastore comes with two default watches on public hosts: delete them.
            _, body = _http(f"{api}/watch", headers=headers)
            for uuid in json.loads(body):
                _http(f"{api}/watch/{uuid}", headers=headers, method="DELETE", timeout=30)
            urls = "\n".join(f"{base}/page/{i}" for i in range(pages))
            _http(f"{api}/import", data=urls.encode(), headers={**headers, "Content-Type": "text/plain"}, timeout=600)
            while len(json.loads(_http(f"{api}/watch", headers=headers)[1])) < pages:
                time.sleep(0.5)
            while len(_watch_files()) < pages:
                time.sleep(0.2)
            time.sleep(2)
            previous_du = _du(DATASTORE)
            files = _watch_files()
            for k, label in enumerate(("first", "unchanged", "changed_10pct"), start=1):
                if label == "changed_10pct":
                    control(base, "/_mutate?fraction=0.1")
                out[label] = _cycle(cd.pid, api, headers, files, pages, k, poll, cycle_timeout)
                d = _du(DATASTORE)
                out[label]["db_bytes"] = d
                out[label]["growth_per_page"] = round((d - previous_du) / pages, 1)
                previous_du = d
                time.sleep(2)
            out["peak_rss_mb"] = round(_proc_status(cd.pid)["VmHWM"] / 1024, 1)
        finally:
            cd.send_signal(signal.SIGTERM)
            try:
                cd.wait(30)
            except subprocess.TimeoutExpired:
                cd.kill()
            log.close()
    return out


def _wait_for_api(cd: subprocess.Popen[bytes], api: str, log_name: str) -> str:
    token = None
    settings = DATASTORE / "changedetection.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        if cd.poll() is not None:
            raise SystemExit(f"changedetection.io exited rc={cd.returncode}, see {log_name}")
        if token is None and settings.exists():
            try:
                token = json.loads(settings.read_text())["settings"]["application"]["api_access_token"]
            except (ValueError, KeyError):
                token = None
        if token:
            try:
                if _http(f"{api}/systeminfo", headers={"x-api-key": token}, timeout=5)[0] == 200:
                    return token
            except OSError:
                pass
        time.sleep(0.25)
    raise SystemExit(f"changedetection.io did not start in 300 s, see {log_name}")


def _cycle(pid: int, api: str, headers: dict[str, str], files: list[str], pages: int, k: int, poll: float,
           timeout: float) -> dict[str, Any]:
    cpu0 = _cpu_s(pid)
    t_trig = time.time()
    status, _ = _http(f"{api}/watch?recheck_all=1", headers=headers)
    assert status in (200, 202), status
    floor = int(t_trig)  # last_checked is whole seconds
    all_started = None
    done: set[str] = set()
    last_api = 0.0
    while True:
        now = time.time()
        if now - t_trig > timeout:
            raise SystemExit(f"changedetection.io: cycle {k} timed out")
        if all_started is None and now - last_api >= poll:
            last_api = now
            listing = json.loads(_http(f"{api}/watch", headers=headers)[1])
            if sum(1 for w in listing.values() if (w.get("last_checked") or 0) >= floor) >= pages:
                all_started = time.time() - t_trig
        for p in files:
            if p in done or os.path.getmtime(p) < t_trig:
                continue
            w = _read_watch(p)
            if w and w.get("check_count", 0) >= k:
                done.add(p)
        if len(done) >= pages and all_started is not None and \
                json.loads(_http(f"{api}/systeminfo", headers=headers)[1])["queue_size"] == 0:
            break
        time.sleep(0.5)
    seconds = max(os.path.getmtime(p) for p in done) - t_trig
    listing = json.loads(_http(f"{api}/watch", headers=headers)[1])
    return {"seconds": round(seconds, 2), "pages_per_s": round(pages / seconds, 1),
            "ms_per_page": round(1000 * seconds / pages, 2), "cpu_s": round(_cpu_s(pid) - cpu0, 2),
            "errors": sum(1 for w in listing.values() if w.get("last_error")),
            "changed": sum(1 for w in listing.values() if (w.get("last_changed") or 0) >= floor)}

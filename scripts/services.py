"""Make sure a local PostgreSQL / Redis named by a test URL is up; start the machine's own if not.

Used by `scripts/dev test` only for the URLs the environment sets (as `.ci/run` does). Remote servers
are never started, only checked.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import time
from urllib.parse import urlsplit

LOCAL = {"127.0.0.1", "localhost", "::1", ""}


def _wait(check, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    sys.exit(f"services: {what} did not come up within {seconds:.0f}s")


def postgres(url: str) -> None:
    import sqlalchemy as sa

    from watcher.store.db import normalise_url

    u = sa.make_url(normalise_url(url))

    def up() -> bool:
        try:
            eng = sa.create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
            with eng.connect() as c:
                exists = c.execute(sa.text("SELECT 1 FROM pg_database WHERE datname=:n"),
                                   {"n": u.database}).scalar()
                if not exists:
                    c.execute(sa.text(f'CREATE DATABASE "{u.database}"'))
            eng.dispose()
            return True
        except sa.exc.OperationalError:
            return False

    if up():
        return
    if (u.host or "") in LOCAL and os.geteuid() == 0:
        for version in sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []:
            subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=False)
        _wait(up, "PostgreSQL")
        return
    sys.exit(f"services: PostgreSQL at {u.render_as_string(hide_password=True)} is unreachable")


def redis(url: str) -> None:
    import redis as redislib

    def up() -> bool:
        try:
            return bool(redislib.Redis.from_url(url, socket_connect_timeout=1).ping())
        except redislib.RedisError:
            return False

    if up():
        return
    host = urlsplit(url).hostname or ""
    if host in LOCAL and glob.glob("/usr/bin/redis-server"):
        os.makedirs("/var/lib/redis", exist_ok=True)
        os.makedirs("/var/log/redis", exist_ok=True)
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port",
                        str(urlsplit(url).port or 6379), "--save", "", "--appendonly", "no",
                        "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"], check=False)
        _wait(up, "Redis")
        return
    sys.exit(f"services: Redis at {url} is unreachable")


if __name__ == "__main__":
    {"postgres": postgres, "redis": redis}[sys.argv[1]](sys.argv[2])

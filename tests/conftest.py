"""Shared fixtures. Databases: every store test runs on SQLite and, when WATCHER_TEST_DATABASE_URL is set,
on PostgreSQL too (a database of its own per test process, so concurrent runs do not collide).
WATCHER_REQUIRE_SERVICES=1 (set by .ci/run) turns "skipped: server absent" into a failure."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
CORPUS = FIXTURES / "corpus"
PG_ENV = "WATCHER_TEST_DATABASE_URL"
REDIS_ENV = "WATCHER_TEST_REDIS_URL"


def pytest_configure(config: pytest.Config) -> None:
    # Before any test module can import twisted.internet.reactor (which would install the default one).
    from watcher.runtime import install_reactor

    install_reactor()


def require_or_skip(reason: str) -> None:
    if os.environ.get("WATCHER_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database for this test session, dropped at the end; None when not configured."""
    base = os.environ.get(PG_ENV)
    if not base:
        yield None
        return
    import sqlalchemy as sa

    from watcher.store.db import normalise_url

    base = normalise_url(base)
    url = sa.make_url(base)
    name = f"{url.database or 'watcher_test'}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as e:
        admin.dispose()
        yield f"unreachable: {e.__class__.__name__}"
        return
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _reset_pg(url: str) -> None:
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    eng.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated-from-empty database URL, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'watcher.db'}"
    pg = request.getfixturevalue("pg_server_url")
    if pg is None:
        require_or_skip(f"PostgreSQL tests need {PG_ENV} (e.g. postgresql://postgres@127.0.0.1:5432/watcher_test)")
    if pg.startswith("unreachable"):
        require_or_skip(f"PostgreSQL at {PG_ENV} is {pg}")
    _reset_pg(pg)
    return pg


@pytest.fixture
def store(database_url: str) -> Iterator[object]:
    from watcher.store import Store

    s = Store.open(database_url)
    yield s
    s.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """SQLite only, for tests whose subject is not the backend."""
    return f"sqlite:///{tmp_path / 'watcher.db'}"


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        require_or_skip(f"Redis tests need {REDIS_ENV} (e.g. redis://127.0.0.1:6379/15)")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as e:
        require_or_skip(f"Redis at {REDIS_ENV} unreachable: {e}")
    return url


@pytest.fixture
def corpus() -> Path:
    return CORPUS


@pytest.fixture
def hook():
    """A real local webhook receiver (tests/receivers.py)."""
    from tests.receivers import HookReceiver

    receiver = HookReceiver()
    yield receiver
    receiver.close()

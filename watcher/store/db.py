"""Engine and migrations. SQLite (WAL) is the embedded default; PostgreSQL is the production backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from watcher.errors import StoreError

MIGRATIONS = Path(__file__).with_name("migrations")


_XACT_LOCK = {1: text("SELECT pg_advisory_xact_lock(:a)"), 2: text("SELECT pg_advisory_xact_lock(:a, :b)")}


def pg_xact_lock(on: Session | Connection, *key: int) -> None:
    """Serialise with other transactions taking the same lock (one 64-bit key, or a namespace and a 32-bit key)
    until this transaction ends, on PostgreSQL. SQLite's single writer serialises transactions already."""
    dialect = on.dialect if isinstance(on, Connection) else on.get_bind().dialect
    if dialect.name == "postgresql":
        on.execute(_XACT_LOCK[len(key)], dict(zip("ab", key, strict=False)))


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def safe_url(url: str) -> str:
    """The URL with any password hidden, for logs and errors."""
    try:
        return make_url(normalise_url(url)).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # Takes effect only in a new, empty file (an older one switches at `watcher db prune --vacuum`):
            # space that retention frees can then go back to the file system without a full VACUUM.
            cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # An unreachable server fails a connection attempt in seconds instead of the minutes of a TCP timeout,
    # so a scheduler wakeup or a check reports the outage rather than hanging (watcher.health).
    kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", 10)
    return create_engine(url, **kwargs)


def alembic_config(url: str) -> Any:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return cfg


# PostgreSQL advisory lock key held while migrating ("watcher" in ASCII).
_MIGRATION_LOCK = 0x77617463686572


# The newest migration's revision (tests/test_migrations.py checks that it is Alembic's head). A process opening
# a database already at it never imports Alembic: Alembic and Mako are about 12 MB that a daemon restarting on
# its database would otherwise keep for its whole life.
SCHEMA_HEAD = "0010"


def schema_is_current(engine: Engine) -> bool:
    """The database's schema is at SCHEMA_HEAD (read from Alembic's version table, without Alembic)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        return list(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars()) == [SCHEMA_HEAD]


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply Alembic migrations on this engine (run at every start; a no-op when up to date)."""
    try:
        if revision == "head" and schema_is_current(engine):
            return
        from alembic import command

        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            # processes starting together (a scheduler and its workers) migrate one at a time: the others wait
            # here and then find the schema current, instead of racing to create the same tables
            pg_xact_lock(conn, _MIGRATION_LOCK)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except SQLAlchemyError as e:
        raise StoreError(f"cannot migrate database {safe_url(str(engine.url))}: {e.__class__.__name__}: "
                         f"{str(e).splitlines()[0]}") from e


# The child process that migrates for a long-running one reads the URL here (not from its argv, which `ps` shows).
_MIGRATE_URL_ENV = "WATCHER_MIGRATE_URL"


def upgrade_apart(engine: Engine) -> None:
    """Migrate in a short-lived child process, so a long-running one (the daemon, the scale-out roles) never
    imports Alembic and Mako (about 12 MB it would keep for its whole life). Nothing to do when the schema is
    current; an in-memory database, which another process cannot see, is migrated here."""
    import os
    import subprocess
    import sys

    if schema_is_current(engine):
        return
    url = engine.url.render_as_string(hide_password=False)
    if engine.url.get_backend_name() == "sqlite" and engine.url.database in (None, "", ":memory:"):
        upgrade(engine)
        return
    done = subprocess.run([sys.executable, "-c", "from watcher.store.db import _upgrade_from_env; _upgrade_from_env()"],
                          env={**os.environ, _MIGRATE_URL_ENV: url}, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise StoreError(f"cannot migrate database {safe_url(url)}: {last}")


def _upgrade_from_env() -> None:
    import os
    import sys

    engine = make_engine(os.environ[_MIGRATE_URL_ENV])
    try:
        upgrade(engine)
    except StoreError as e:
        sys.exit(str(e).removeprefix(f"cannot migrate database {safe_url(str(engine.url))}: "))
    finally:
        engine.dispose()


def open_database(url: str, *, migrate: bool = True, migrate_apart: bool = False,
                  **kwargs: Any) -> tuple[Engine, sessionmaker[Session]]:
    """Create the engine, apply migrations (in a child process with `migrate_apart`), and return it with a
    session factory."""
    try:
        engine = make_engine(url, **kwargs)
        if migrate:
            (upgrade_apart if migrate_apart else upgrade)(engine)
    except StoreError:
        raise
    except (SQLAlchemyError, OSError) as e:
        raise StoreError(f"cannot open database {safe_url(url)}: {e}") from e
    return engine, sessionmaker(engine, expire_on_commit=False)

"""The Alembic migrations build exactly the schema the models describe, on both backends, with one head."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from watcher.store.db import SCHEMA_HEAD, alembic_config
from watcher.store.models import Base


def test_migrations_match_the_models(store):
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = [d for d in compare_metadata(ctx, Base.metadata)
                if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "apscheduler_jobs")]
    assert diff == []


def test_one_head():
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert heads == [SCHEMA_HEAD], f"the newest migration is {heads}: set watcher.store.db.SCHEMA_HEAD to it"


def test_a_current_database_opens_without_alembic(database_url):
    """Opening a database that a first start migrated reads its version and imports no Alembic; a database one
    migration behind is brought to the head."""
    import subprocess
    import sys

    from sqlalchemy import text

    from watcher.store import Store

    code = ("import sys; from watcher.store import Store; Store.open(sys.argv[1]).close(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))")

    def modules_after_open() -> str:
        out = subprocess.run([sys.executable, "-c", code, database_url], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert modules_after_open() != "[]"  # a new database: migrated with Alembic
    assert modules_after_open() == "[]"  # current: no Alembic
    from alembic import command

    store = Store.open(database_url)
    try:
        with store.engine.begin() as conn:  # one migration behind
            cfg = alembic_config(database_url)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "-1")
    finally:
        store.close()
    assert modules_after_open() != "[]"
    store = Store.open(database_url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_HEAD
    finally:
        store.close()


def test_processes_starting_together_migrate_an_empty_database_once(database_url):
    """A scheduler and its workers start at once on a new database: each migrates, none fails (on PostgreSQL
    they take turns under an advisory lock instead of racing to create the same tables)."""
    import subprocess
    import sys

    import pytest

    if database_url.startswith("sqlite"):
        pytest.skip("several processes on one database are the scale-out roles, which need PostgreSQL")
    code = "import sys; from watcher.store.db import open_database; open_database(sys.argv[1])[0].dispose()"
    procs = [subprocess.Popen([sys.executable, "-c", code, database_url], stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors


def test_processes_starting_together_sync_the_same_watches_once(database_url):
    """A scheduler and its workers start at once on a new database and each syncs the config: none dies on
    the unique name of a watch another one inserted meanwhile (on PostgreSQL they sync one at a time), and
    every watch is there once."""
    import subprocess
    import sys

    import pytest
    from sqlalchemy import func, select

    from watcher.store import Store, Subscriber, Watch

    if database_url.startswith("sqlite"):
        pytest.skip("several processes on one database are the scale-out roles, which need PostgreSQL")
    Store.open(database_url).close()  # migrated (the test above covers migrating together)
    code = ("import sys; from watcher.config import SubscriberConfig, WatchConfig; from watcher.store import Store; "
            "s = Store.open(sys.argv[1]); "
            "s.sync_watches([WatchConfig(name=f'w{i}', url=f'https://example.org/{i}', interval='1h') "
            "for i in range(300)]); "
            "s.sync_subscribers([SubscriberConfig(name='m', email='m@example.org')]); s.close()")
    procs = [subprocess.Popen([sys.executable, "-c", code, database_url], stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    store = Store.open(database_url, migrate=False)
    try:
        with store.session() as session:
            assert session.scalar(select(func.count()).select_from(Watch)) == 300
            assert session.scalar(select(func.count()).select_from(Subscriber)) == 1
    finally:
        store.close()


def test_a_long_running_process_migrates_in_a_child(database_url, tmp_path):
    """`watcher run` and the scale-out roles open a new database with `migrate_apart`: a child process
    migrates it, and the long-running process itself never imports Alembic."""
    import subprocess
    import sys

    from sqlalchemy import text

    from watcher.store import Store

    code = ("import sys; from watcher.store import Store; s = Store.open(sys.argv[1], migrate_apart=True); "
            "s.close(); print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))")
    out = subprocess.run([sys.executable, "-c", code, database_url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    store = Store.open(database_url, migrate=False)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_HEAD
    finally:
        store.close()
    # a database the child cannot migrate (a schema version this code does not know): the reason comes back
    import sqlite3

    import pytest

    from watcher.errors import StoreError

    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('9999')")
    with pytest.raises(StoreError, match=r"cannot migrate database .*9999"):
        Store.open(f"sqlite:///{newer}", migrate_apart=True)

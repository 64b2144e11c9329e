"""The Alembic migrations build exactly the schema the models describe, on both backends, with one head."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from watcher.store.db import alembic_config
from watcher.store.models import Base


def test_migrations_match_the_models(store):
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = [d for d in compare_metadata(ctx, Base.metadata)
                if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "apscheduler_jobs")]
    assert diff == []


def test_one_head():
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, heads


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

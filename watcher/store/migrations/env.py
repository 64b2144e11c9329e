"""Alembic environment: runs on the connection `watcher.store.db.upgrade` passes in."""

from alembic import context
from sqlalchemy import create_engine

from watcher.store.models import Base

config = context.config
target_metadata = Base.metadata


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    # APScheduler owns its job table; Alembic must not drop it.
    return not (type_ == "table" and name == "apscheduler_jobs")


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is None:
        engine = create_engine(config.get_main_option("sqlalchemy.url"))
        with engine.begin() as conn:
            _migrate(conn)
    else:
        _migrate(conn)


def _migrate(conn) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=conn,
        target_metadata=target_metadata,
        include_object=include_object,
        render_as_batch=conn.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run()

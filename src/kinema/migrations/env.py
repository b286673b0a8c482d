"""Alembic environment for kinema.

``kinema.db.migrate`` runs migrations on a connection it already holds (passed in
``config.attributes["connection"]``) so that its lock and the migration share one
transaction. Run by hand (``alembic -c src/kinema/migrations/alembic.ini upgrade head``),
the database comes from ``-x url=...`` or else from kinema's settings.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from kinema.schema import metadata

config = context.config


def _kinema_object(name: str | None, type_: str, _parent_names: object) -> bool:
    """Leave procrastinate's tables (scale-out dispatch installs them) out of comparisons."""
    return not (type_ == "table" and name is not None and name.startswith("procrastinate_"))


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_name=_kinema_object,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        # kinema's SQLite engine emits its own BEGIN, so DDL there is transactional too.
        transactional_ddl=True,
    )


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return url
    from kinema.settings import Settings

    return Settings().resolved_database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    shared: Connection | None = config.attributes.get("connection")
    if shared is not None:
        _configure(shared)
        with context.begin_transaction():
            context.run_migrations()
        return

    from kinema.db import make_engine

    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

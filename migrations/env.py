"""Alembic environment for the securitynet catalogue.

Used by ``securitynet db upgrade`` (which passes an open connection in
``config.attributes['connection']``) and by plain ``alembic -c migrations/alembic.ini``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from securitynet.catalogue.engine import create_catalogue_engine
from securitynet.catalogue.models import Base
from securitynet.catalogue.textsearch import include_name
from securitynet.settings import get_settings

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,  # the text-search index is the migrations' alone
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    url = context.config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url
    context.configure(
        url=url, target_metadata=target_metadata, literal_binds=True, compare_type=True, include_name=include_name
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url
    engine = create_catalogue_engine(url)
    with engine.begin() as conn:
        _run(conn)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

"""Alembic environment: runs on the connection that :func:`matcher.store.db.upgrade` passes in."""

from alembic import context

from matcher.store.schema import Base

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `matcher db upgrade`")
context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

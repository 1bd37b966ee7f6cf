"""``matcher keys``: API keys: create (shown once), list, revoke."""

from __future__ import annotations

import click

from matcher.cli.library import cli_actor, store_url


@click.group()
def keys() -> None:
    """API keys: create (shown once, stored as a SHA-256), list, revoke."""


@keys.command("create")
@click.option("--name", required=True, help="Who or what uses the key.")
@click.option("--role", required=True, type=click.Choice(["coordinator", "analyst", "admin"]))
def keys_create(name: str, role: str) -> None:
    """Create a key and print it (the only time it is shown)."""
    from matcher.store import audit
    from matcher.store import keys as stored_keys
    from matcher.store.transactions import transaction

    with transaction(store_url()) as session:
        token, item = stored_keys.create_key(session, name, role, created_by=cli_actor())
        audit.record(
            session,
            actor=cli_actor(),
            action="key_create",
            kind="api_keys",
            record_id=item["id"],
            detail={"role": role},
        )
    click.echo(token)
    click.echo(f"created key {item['id']} ({role}, {item['name']}); store it now: it is not shown again", err=True)


@keys.command("list")
def keys_list() -> None:
    """Every key (never the key itself), revoked ones included."""
    from matcher.store import keys as stored_keys
    from matcher.store.transactions import transaction

    with transaction(store_url()) as session:
        items = stored_keys.list_keys(session)
    if not items:
        click.echo("no keys: the server serves keyless loopback requests as the local coordinator")
    for item in items:
        state = f"revoked {item['revoked_at']}" if item["revoked_at"] else "active"
        click.echo(f"{item['id']}  {item['role']:<11}  {item['name']}  created {item['created_at']}  {state}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke the key KEY_ID (running servers refuse it within a few seconds)."""
    from matcher.store import audit
    from matcher.store import keys as stored_keys
    from matcher.store.transactions import transaction

    with transaction(store_url()) as session:
        stored_keys.revoke_key(session, key_id)
        audit.record(session, actor=cli_actor(), action="key_revoke", kind="api_keys", record_id=key_id)
    click.echo(f"revoked key {key_id}")

"""``kiln keys generate [NAME]`` and ``kiln keys list``."""

from __future__ import annotations

import os

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_option


@click.group()
def keys() -> None:
    """Make and list the Ed25519 keys that sign attestations."""


@keys.command()
@click.argument("name", required=False, default="default")
@output_option
@click.pass_obj
def generate(app: App, name: str, output: str | None) -> None:
    """Make a new key pair NAME.key (mode 0600) and NAME.pub in the state directory.

    Prints the key id (hex SHA-256 of the public key), the id trust.yaml and
    DSSE signatures use. Never overwrites an existing key.
    """
    from kiln.bootstrap import trust
    from kiln.services.attest import actor_from, generate_key

    state = app.state_dir()
    info = generate_key(
        name,
        keys_dir=trust.keys_dir(state),
        generate=trust.key_generator(),
        recorder=trust.recorder(state),
        actor=actor_from(os.environ),
    )
    data = {"name": info.name, "keyId": info.key_id, "publicKey": str(info.public_path)}

    def human() -> None:
        click.echo(f"key {info.name}: {info.key_id}")
        click.echo(f"public key: {info.public_path}")
        click.echo("trust it: add the public key under `keys:` in trust.yaml")

    emit(app, output or "text", data, human)


@keys.command(name="list")
@output_option
@click.pass_obj
def list_(app: App, output: str | None) -> None:
    """List the keys in the state directory with their key ids."""
    from kiln.bootstrap import trust
    from kiln.services.attest import list_keys

    found = list_keys(trust.keys_dir(app.state_dir()))
    data = [
        {
            "name": k.name,
            "keyId": k.key_id,
            "publicKey": str(k.public_path),
            "private": k.has_private,
        }
        for k in found
    ]

    def human() -> None:
        if not found:
            click.echo("no keys; make one with `kiln keys generate`")
        for k in found:
            mark = "" if k.has_private else "  (public only)"
            click.echo(f"{k.name}  {k.key_id}{mark}")

    emit(app, output or "text", data, human)

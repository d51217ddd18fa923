"""``kiln drift`` and ``kiln reconcile``: what differs from the declared state, and healing it.

Both go through the controller (started on demand) so they see the same
providers and routers it drives. ``kiln drift`` exits 0 when every environment
is clean and 1 when it finds drift, for CI.
"""

from __future__ import annotations

from typing import Any

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_option
from kiln.errors import ExitCode


def _client(app: App) -> Any:
    from kiln.bootstrap.controller import connect

    return connect(app.state_dir(), app.settings().get("controller"))


def _human(app: App, report: dict[str, Any], *, healing: bool) -> None:
    console = app.console()
    for env in report["environments"]:
        name = env["environment"]
        if env.get("note"):
            console.print(f"{name}: {env['note']}")
            continue
        if env["clean"]:
            console.print(f"{name}: clean")
            continue
        console.print(f"{name}: {len(env['findings'])} finding(s)")
        for finding in env["findings"]:
            console.print(f"  {finding['kind']:<15} {finding['reason']}", highlight=False)
        done = env.get("healed") or []
        if healing and done:
            for action in done:
                console.print(f"  healed: {_action(action)}", highlight=False)
        else:
            for action in env["actions"]:
                console.print(f"  would {_action(action)}", highlight=False)


def _action(action: dict[str, Any]) -> str:
    kind = action["kind"]
    if kind == "replace":
        return f"replace {action['instance']} ({action['reason']})"
    if kind == "provision":
        return f"provision {action['count']} instance(s) of {action['release']}"
    if kind == "destroy":
        return f"destroy {action['instance']} ({action['reason']})"
    if kind == "reunpack":
        return f"unpack {action['artifact']} afresh"
    if kind == "reapply-route":
        return f"re-apply the declared route table of {action['release']}"
    return f"report only: {action.get('reason', '')}"


@click.command()
@click.argument("environment", required=False)
@output_option
@click.pass_obj
def drift(app: App, environment: str | None, output: str | None) -> int:
    """Report drift from the declared state in ENVIRONMENT (default: all).

    Exit 0 when clean, 1 when drift was found. Every finding is recorded in the
    ledger (once, until it goes away).
    """
    client = _client(app)
    try:
        path = "/v1/drift" + (f"?environment={environment}" if environment else "")
        report = client.get(path)
    finally:
        client.close()
    emit(app, output or "text", report, lambda: _human(app, report, healing=False))
    return int(ExitCode.OK if report["clean"] else ExitCode.FAILED)


@click.command()
@click.argument("environment", required=False)
@click.option("--dry-run", is_flag=True, help="Show what would be healed; change nothing.")
@output_option
@click.pass_obj
def reconcile(app: App, environment: str | None, dry_run: bool, output: str | None) -> int:
    """Heal drift in ENVIRONMENT (default: all) by replacement.

    Paused environments and those with `selfHeal: false` are reported, not healed;
    an environment with a rollout in progress is left to the rollout.
    """
    client = _client(app)
    try:
        body: dict[str, Any] = {"dryRun": dry_run}
        if environment:
            body["environment"] = environment
        report = client.post("/v1/reconcile", body)
    finally:
        client.close()
    emit(app, output or "text", report, lambda: _human(app, report, healing=not dry_run))
    return int(ExitCode.OK)

"""``kiln serve`` (run the controller) and ``kiln controller status|stop``."""

from __future__ import annotations

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_option


@click.command()
@click.option(
    "--listen",
    default=None,
    help="unix (default: .kiln/run/controller.sock, mode 0600) or HOST:PORT (token required).",
)
@click.option(
    "--http",
    default=None,
    metavar="HOST:PORT",
    help="Also open the browser listener for the dashboard now (read-only; port 0 picks one).",
)
@click.pass_obj
def serve(app: App, listen: str | None, http: str | None) -> None:
    """Run the controller in the foreground: API, dashboard, rollout workers, supervision."""
    from kiln.api.server import serve as run

    spec = app.spec() if app.spec_file.exists() else None
    settings = app.settings()
    run(
        app.state_dir(),
        spec,
        listen=listen,
        policy=settings.trust_policy,
        http=http,
        database=settings.get("database"),
    )


@click.group()
def controller() -> None:
    """Inspect or stop the controller."""


@controller.command("status")
@output_option
@click.option("--no-start", is_flag=True, help="Do not start a local controller.")
@click.pass_obj
def controller_status(app: App, output: str | None, no_start: bool) -> None:
    """Show the controller's address, version and the environments it leads."""
    from kiln.bootstrap.controller import connect

    configured = app.settings().get("controller")
    if not configured:
        app.spec()  # a local controller serves the kiln.yaml here; none here is an error
    client = connect(app.state_dir(), configured, start=not no_start)
    try:
        info = client.get("/v1/status")
        who = client.get("/v1/whoami")
    finally:
        client.close()

    def human() -> None:
        console = app.console()
        console.print(f"controller {info['address']} · kiln {info['version']} · pid {info['pid']}")
        console.print(f"you are {who['name']} ({who['role']})")
        for env in info["environments"]:
            lead = "leader" if env["leader"] else "follower"
            if env.get("term") is not None:
                lead += f" (term {env['term']})"
            console.print(f"  {env['name']}: {lead}")

    emit(app, output or "text", {"controller": info, "identity": who}, human)


@controller.command("stop")
@click.pass_obj
def controller_stop(app: App) -> None:
    """Stop the local controller (SIGTERM, then SIGKILL after 10 s)."""
    from kiln.bootstrap.controller import stop

    stopped = stop(app.state_dir())
    app.console().print("controller stopped" if stopped else "no local controller was running")


@click.command()
@output_option
@click.pass_obj
def down(app: App, output: str | None) -> None:
    """Stop the controller, every router and every instance of this state directory.

    Desired state and the ledger are kept; `kiln deploy` brings it all back.
    """
    from kiln.bootstrap.down import down as stop_all

    stopped = stop_all(app.state_dir(), app.spec())
    data = {
        "controller": stopped.controller,
        "routers": stopped.routers,
        "instances": stopped.instances,
    }

    def human() -> None:
        console = app.console()
        console.print(f"controller: {'stopped' if stopped.controller else 'was not running'}")
        console.print(f"routers stopped: {', '.join(stopped.routers) or 'none'}")
        console.print(f"instances stopped: {len(stopped.instances)}")

    emit(app, output or "text", data, human)

"""``kiln router`` (run the embedded data plane) and ``kiln routes show`` (read it).

By default an environment's router keeps its admin socket at
``.kiln/run/router-ENV.sock`` and its last applied table at
``.kiln/run/router-ENV.json``; flags override both.
"""

from __future__ import annotations

from pathlib import Path

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_format, output_option


def _paths(
    app: App, env: str, admin_socket: str | None, state_file: str | None
) -> tuple[Path, Path]:
    if admin_socket and state_file:
        return Path(admin_socket), Path(state_file)
    run = app.state_dir() / "run"
    return (
        Path(admin_socket) if admin_socket else run / f"router-{env}.sock",
        Path(state_file) if state_file else run / f"router-{env}.json",
    )


@click.command()
@click.option("--env", "env", default="default", show_default=True, help="Environment name.")
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    help="host:port of the data listener (loopback unless you say so).",
)
@click.option("--admin-socket", help="Unix socket of the admin API (mode 0600).")
@click.option("--state-file", help="Where the last applied route table is kept.")
@click.option("--metrics-listen", help="Optional host:port serving /metrics for Prometheus.")
@click.pass_obj
def router(
    app: App,
    env: str,
    listen: str,
    admin_socket: str | None,
    state_file: str | None,
    metrics_listen: str | None,
) -> int:
    """Run the embedded router (data plane) in the foreground until SIGTERM."""
    from kiln.adapters.traffic.embedded.server import RouterConfig, parse_address, run

    admin_path, state_path = _paths(app, env, admin_socket, state_file)
    host, port = parse_address(listen, "--listen")
    m_host, m_port = (
        parse_address(metrics_listen, "--metrics-listen") if metrics_listen else (None, None)
    )
    return run(
        RouterConfig(
            listen_host=host,
            listen_port=port,
            admin_socket=admin_path,
            state_file=state_path,
            metrics_host=m_host,
            metrics_port=m_port,
        )
    )


@click.group()
def routes() -> None:
    """Read route tables served by a router."""


@routes.command("show")
@click.argument("env")
@click.option("--admin-socket", help="Unix socket of the router's admin API.")
@output_option
@click.pass_obj
def show(app: App, env: str, admin_socket: str | None, output: str | None) -> None:
    """Show the route table ENV's router is serving."""
    from kiln.adapters.traffic.embedded.client import EmbeddedRouterClient
    from kiln.errors import NotFound

    sock, _ = _paths(app, env, admin_socket, "-")
    with EmbeddedRouterClient(socket_path=sock) as client:
        table = client.current()
    if table is None:
        raise NotFound(
            f"the router of {env!r} serves no route table yet",
            hint="a deploy applies one; until then it answers 503",
        )
    fmt = output_format(app, output)

    def human() -> None:
        from rich.table import Table

        console = app.console()
        console.print(f"environment {table.environment}  generation {table.generation}")
        grid = Table("release", "weight", "backends", box=None)
        for rel in table.releases:
            grid.add_row(
                rel.name, f"{rel.weight}%", " ".join(b.address for b in rel.backends) or "-"
            )
        console.print(grid)
        for rule in table.rules:
            kind = type(rule).__name__.removesuffix("Match").lower()
            console.print(f"rule: {kind} {rule.name}={rule.value} -> {rule.release}")
        for listener in table.listeners:
            console.print(f"listener: port {listener.port} -> {listener.release} only")
        if table.sticky:
            console.print(f"sticky: cookie {table.sticky.cookie} (max-age {table.sticky.max_age}s)")
        if table.mirror:
            console.print(
                f"mirror: {table.mirror.percent}% of bodiless requests -> {table.mirror.release}"
            )

    emit(app, fmt, table.to_dict(), human)

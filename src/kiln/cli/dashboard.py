"""``kiln dashboard``: the link that opens the controller's dashboard in a browser."""

from __future__ import annotations

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_option


@click.command()
@click.option("--open", "open_browser", is_flag=True, help="Also open it in the default browser.")
@output_option
@click.pass_obj
def dashboard(app: App, open_browser: bool, output: str | None) -> None:
    """Print the dashboard's URL, logged in read-only (starts the controller if needed).

    The read-only token is in the URL's fragment (after `#`), which browsers never
    send to a server; the page keeps it for the tab's session only. Treat the
    link like the token: anyone holding it can read this controller's status.
    """
    from kiln.bootstrap.dashboard import login

    configured = app.settings().get("controller")
    if not configured:
        app.spec()  # a local controller serves the kiln.yaml here; none here is an error
    link = login(app.state_dir(), configured)
    data = {"url": link.url, "login": link.login, "identity": link.identity}

    def human() -> None:
        console = app.console()
        if link.login is None:
            console.print(link.url)
            console.print(
                "no local read-only token: append #token=<a read token> to the URL",
                style="yellow",
            )
            return
        console.print(link.login, soft_wrap=True)

    emit(app, output or "text", data, human)
    if open_browser:
        import webbrowser

        webbrowser.open(link.login or link.url)

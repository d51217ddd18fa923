"""``kiln deploy``, ``promote``, ``abort``, ``rollback`` and ``status``: the rollout CLI.

Each talks to the controller (started on demand). ``deploy`` and ``rollback``
follow the rollout until it ends unless ``--no-wait``; they exit 0 when the new
release took all traffic and 1 when the rollout was rolled back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_option
from kiln.errors import ExitCode

POLL = 0.25


def _client(app: App) -> Any:
    from kiln.bootstrap.controller import connect

    app.spec()  # a controller serves one service: no kiln.yaml here is an error, not a new one
    return connect(app.state_dir(), app.settings().get("controller"))


def _follow(
    app: App, client: Any, environment: str, output: str | None, wanted: str = "succeeded"
) -> int:
    """Poll the environment until its rollout ends; print each new step once.

    Exit 0 when it ended ``wanted``: ``succeeded`` for a deploy or a fast-track
    rollback, ``rolled-back`` for a rollback that aborted a rollout in progress."""
    seen: tuple[object, ...] = ()
    while True:
        env = client.get(f"/v1/environments/{environment}")
        rollout = env.get("rollout") or {}
        key = (rollout.get("phase"), rollout.get("step"), rollout.get("weight"), env.get("note"))
        if key != seen and output != "json":
            seen = key
            _line(app, env)
        if rollout.get("phase") in {"succeeded", "rolled-back"}:
            if output == "json":
                emit(app, "json", env, lambda: None)
            return int(ExitCode.OK if rollout["phase"] == wanted else ExitCode.FAILED)
        time.sleep(POLL)


def _line(app: App, env: dict[str, Any]) -> None:
    rollout = env.get("rollout") or {}
    steps = rollout.get("steps") or []
    step = min(rollout.get("step", 0), len(steps))
    current = steps[step] if step < len(steps) else "done"
    candidate = (rollout.get("candidate") or {}).get("id", "?")
    phase = rollout.get("phase", "?")
    weight = rollout.get("weight", 0)
    app.console().print(
        f"{env['name']}: {phase:<12} step {min(step + 1, len(steps))}/{len(steps)} "
        f"{current:<32} {candidate} at {weight:>3}%"
    )
    if phase == "rolled-back":
        app.console().print(f"  rolled back: {rollout.get('reason', '')}")


@click.command()
@click.argument("environment")
@click.argument("artifact", required=False, default="latest")
@click.option("--wait/--no-wait", default=True, help="Follow the rollout until it ends.")
@output_option
@click.pass_obj
def deploy(app: App, environment: str, artifact: str, wait: bool, output: str | None) -> int:
    """Roll ARTIFACT (digest, tag, or the latest build) out to ENVIRONMENT.

    Fresh instances, readiness first, then the environment's strategy; any failure
    rolls back to the stable release automatically. Exit 1 if it was rolled back.
    """
    client = _client(app)
    try:
        started = client.post(f"/v1/environments/{environment}/deploy", {"artifact": artifact})
        if not wait:
            emit(app, output or "text", started, lambda: _started(app, started))
            return int(ExitCode.OK)
        return _follow(app, client, environment, output)
    finally:
        client.close()


def _started(app: App, rollout: dict[str, Any]) -> None:
    candidate = (rollout.get("candidate") or {}).get("id", "?")
    app.console().print(
        f"{rollout['environment']}: rolling out {candidate} ({rollout['deployment']})"
    )
    app.console().print(f"follow it with `kiln status {rollout['environment']} --watch`")


def _signal(app: App, environment: str, action: str) -> None:
    client = _client(app)
    try:
        client.post(f"/v1/environments/{environment}/{action}")
    finally:
        client.close()
    app.console().print(f"{environment}: {action} requested")


@click.command()
@click.argument("environment")
@click.pass_obj
def promote(app: App, environment: str) -> None:
    """Let a paused rollout (or an inconclusive analysis) continue."""
    _signal(app, environment, "promote")


@click.command()
@click.argument("environment")
@click.pass_obj
def abort(app: App, environment: str) -> None:
    """Stop the rollout and return all traffic to the stable release."""
    _signal(app, environment, "abort")


@click.command()
@click.argument("environment")
@click.option("--to", "target", help="Artifact digest or tag this environment ran before.")
@click.option("--wait/--no-wait", default=True, help="Follow the rollback until it ends.")
@output_option
@click.pass_obj
def rollback(app: App, environment: str, target: str | None, wait: bool, output: str | None) -> int:
    """Return ENVIRONMENT to its previous good release now: no analysis, ready instances only."""
    client = _client(app)
    try:
        state = client.post(f"/v1/environments/{environment}/rollback", {"to": target})
        if not wait:
            emit(app, output or "text", state, lambda: _started(app, state))
            return int(ExitCode.OK)
        wanted = "succeeded" if state.get("fastTrack") else "rolled-back"
        return _follow(app, client, environment, output, wanted)
    finally:
        client.close()


@click.command()
@click.argument("environment", required=False)
@click.option("--watch", is_flag=True, help="Keep refreshing until interrupted.")
@output_option
@click.pass_obj
def status(app: App, environment: str | None, watch: bool, output: str | None) -> None:
    """What each environment runs: stable release, rollout step, weights, analysis."""
    client = _client(app)

    def fetch() -> list[dict[str, Any]]:
        info = client.get("/v1/status")
        envs = [e for e in info["environments"] if environment in (None, e["name"])]
        if environment and not envs:
            from kiln.errors import NotFound

            raise NotFound(f"no environment {environment!r}")
        return envs

    try:
        if watch and output != "json" and app.console().is_terminal:
            _watch_live(app, fetch)
            return
        seen: list[str] = []
        while True:
            envs = fetch()
            if watch and output != "json":
                # Not a terminal: one line per environment each time it changes.
                lines = [watch_line(env) for env in envs]
                for line in lines:
                    if line not in seen:
                        app.console().print(line)
                seen = lines
            else:
                emit(app, output or "text", {"environments": envs}, _table_of(app, envs))
            if not watch:
                return
            time.sleep(WATCH_EVERY)
    finally:
        client.close()


WATCH_EVERY = 0.5


def _watch_live(app: App, fetch: Callable[[], list[dict[str, Any]]]) -> None:
    from rich.live import Live

    with Live(watch_view(fetch()), console=app.console(), refresh_per_second=4) as live:
        try:
            while True:
                time.sleep(WATCH_EVERY)
                live.update(watch_view(fetch()))
        except KeyboardInterrupt:
            return


def watch_line(env: dict[str, Any]) -> str:
    """One plain line: the step, the weights, the analysis figures and the verdict."""
    rollout = env.get("rollout") or {}
    if not rollout:
        stable = (env.get("stable") or {}).get("id", "-")
        return f"{env['name']}: stable {stable}, no rollout"
    steps = rollout.get("steps") or []
    step = rollout.get("step", 0)
    current = steps[step] if 0 <= step < len(steps) else "done"
    weight = rollout.get("weight", 0)
    figures = "; ".join(
        f"{name} " + " ".join(f"{k}={_num(v)}" for k, v in sorted(values.items()))
        for name, values in sorted((rollout.get("analysis") or {}).items())
    )
    verdict = rollout.get("reason") or env.get("error") or env.get("note") or ""
    split = f"new {weight}% / stable {100 - weight}%"
    baseline = rollout.get("baseline") or {}
    if baseline.get("kind") == "fresh":  # the fresh baseline group's share comes from stable's
        share = min(weight, 100 - weight)
        split = (
            f"new {weight}% / fresh baseline {share}% ({baseline.get('instances', 0)} "
            f"instance(s)) / stable {100 - weight - share}%"
        )
    parts = [
        f"{env['name']}: {rollout.get('phase', '?')}",
        f"step {min(step + 1, len(steps))}/{len(steps)} {current}",
        split,
    ]
    if figures:
        parts.append(figures)
    if env.get("previewUrl"):
        parts.append(f"preview {env['previewUrl']}")
    if verdict:
        parts.append(verdict)
    return ", ".join(parts)


def _num(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def watch_view(envs: list[dict[str, Any]]) -> Any:
    """The live display: per environment, the step list (current one marked), the
    weights, the analysis figures and the verdict."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    for env in envs:
        rollout = env.get("rollout") or {}
        parts.append(Text(watch_line(env), style="bold"))
        steps = rollout.get("steps") or []
        step = rollout.get("step", 0)
        terminal = rollout.get("phase") in {"succeeded", "rolled-back"}
        for index, name in enumerate(steps):
            if index < step or (terminal and rollout.get("phase") == "succeeded"):
                parts.append(Text(f"  ✓ {name}", style="green"))
            elif index == step and not terminal:
                parts.append(Text(f"  ▶ {name}", style="reverse"))
            else:
                parts.append(Text(f"    {name}", style="dim"))
        analysis = rollout.get("analysis") or {}
        if analysis:
            table = Table("metric", "figures", box=None, padding=(0, 2))
            for metric, values in sorted(analysis.items()):
                table.add_row(metric, " ".join(f"{k}={_num(v)}" for k, v in sorted(values.items())))
            parts.append(table)
    return Group(*parts)


def _table_of(app: App, envs: list[dict[str, Any]]) -> Callable[[], None]:
    return lambda: _table(app, envs)


def _table(app: App, envs: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table("environment", "url", "stable", "rollout", "step", "weight", "note", box=None)
    for env in envs:
        stable = (env.get("stable") or {}).get("id", "-")
        rollout = env.get("rollout") or {}
        steps = rollout.get("steps") or []
        step = rollout.get("step", 0)
        table.add_row(
            env["name"],
            env.get("url") or "-",
            stable,
            f"{(rollout.get('candidate') or {}).get('id', '-')} {rollout.get('phase', '')}",
            steps[step] if 0 <= step < len(steps) else "done" if rollout else "-",
            f"{rollout.get('weight', 0)}%" if rollout else "-",
            env.get("error") or env.get("note") or "",
        )
    app.console().print(table)
    for env in envs:
        if env.get("previewUrl"):
            url = env["previewUrl"]
            app.console().print(f"{env['name']} preview: {url} (the new release only)")

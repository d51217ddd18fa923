"""Entry point of the ``kiln`` command.

Commands are registered in ``COMMANDS`` by import path and loaded only when run,
so ``kiln --help`` stays fast (see ``benchmarks/bench_cli_help.py``). Each area
keeps its commands in its own module under ``kiln.cli``; adding one is one line here.

Exit codes (documented in docs/reference/cli.md): 0 ok, 1 failed or refused, 2 usage or
invalid input, 3 internal error (traceback written under ``.kiln/logs/``).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from kiln import __version__
from kiln.cli.context import App
from kiln.errors import ExitCode

# name -> (module:attribute, one-line help). Keep sorted by area.
COMMANDS: dict[str, tuple[str, str]] = {
    # foundation
    "init": ("kiln.cli.spec:init", "Write a commented kiln.yaml for the app in this directory."),
    "validate": ("kiln.cli.spec:validate", "Check kiln.yaml and report every mistake at once."),
    "schema": ("kiln.cli.spec:schema", "Print the JSON Schema of kiln.yaml."),
    "config": ("kiln.cli.config:config", "Show each setting and where its value came from."),
    "completion": ("kiln.cli.config:completion", "Print a shell completion script."),
    # artifacts
    "build": ("kiln.cli.artifacts:build", "Build the service into a reproducible OCI artifact."),
    "rebuild": ("kiln.cli.artifacts:rebuild", "Rebuild an artifact from its revision and compare."),
    "artifacts": (
        "kiln.cli.artifacts:artifacts",
        "List, show, verify, tag, revoke, gc artifacts.",
    ),
    "push": ("kiln.cli.artifacts:push", "Push an artifact and its tags to an OCI registry."),
    "pull": ("kiln.cli.artifacts:pull", "Pull an artifact from an OCI registry, verified."),
    # ledger
    "audit": ("kiln.cli.audit:audit", "Verify, export, query and prove the tamper-evident ledger."),
    "history": ("kiln.cli.audit:history", "Deployments of an environment: who, when, outcome."),
    "diff": ("kiln.cli.audit:diff", "Compare two releases or artifacts as the ledger links them."),
    "report": ("kiln.cli.report:report", "Reports from the ledger (DORA metrics)."),
    # data plane
    "router": ("kiln.cli.router:router", "Run the embedded router (an environment's data plane)."),
    "routes": ("kiln.cli.router:routes", "Show the route table a router is serving."),
    # trust
    "keys": ("kiln.cli.keys:keys", "Make and list the Ed25519 keys that sign attestations."),
    "attest": ("kiln.cli.attest:attest", "Sign attestations about an artifact and list them."),
    "verify": ("kiln.cli.verify:verify", "Check an artifact's attestations against trust.yaml."),
    # controller
    "serve": ("kiln.cli.serve:serve", "Run the controller (API, rollout workers, supervision)."),
    "controller": ("kiln.cli.serve:controller", "Show the controller's status, or stop it."),
    "down": ("kiln.cli.serve:down", "Stop the controller, routers and instances (state is kept)."),
    "dashboard": ("kiln.cli.dashboard:dashboard", "Print the read-only dashboard's login URL."),
    # rollouts
    "deploy": (
        "kiln.cli.deploy:deploy",
        "Roll an artifact out to an environment (fresh instances).",
    ),
    "promote": ("kiln.cli.deploy:promote", "Let a paused rollout continue."),
    "abort": ("kiln.cli.deploy:abort", "Stop a rollout; all traffic back to the stable release."),
    "rollback": ("kiln.cli.deploy:rollback", "Return an environment to its previous good release."),
    "status": ("kiln.cli.deploy:status", "What each environment runs, and its rollout."),
    "drift": ("kiln.cli.drift:drift", "Report drift from the declared state; exit 1 if any."),
    "reconcile": ("kiln.cli.drift:reconcile", "Heal drift by replacing instances and routes."),
    # runtime
    "instances": ("kiln.cli.instances:instances", "List running instances; read their logs."),
    "secrets": (
        "kiln.cli.secrets:secrets",
        "Store secrets (value on stdin); list names and versions.",
    ),
    # gates
    "gate": ("kiln.cli.gates:gate", "Evaluate an environment's gates; exit 1 if any blocks."),
    "policy": ("kiln.cli.gates:policy", "Check the spec's policies: rules, licenses, OSV data."),
    "perf": ("kiln.cli.gates:perf", "Load-test a release against the last good one, side by side."),
    # pipeline
    "test": ("kiln.cli.pipeline:test", "Run the spec's tests against the artifact; sign results."),
    "approve": ("kiln.cli.pipeline:approve", "Sign a manual approval of an artifact for an env."),
    "pipeline": ("kiln.cli.pipeline:pipeline", "Run build → test → gates → deploy along the path."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module_name, attr = entry[0].split(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):  # pragma: no cover - registry bug
            raise TypeError(f"{entry[0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and name not in COMMANDS and not name.startswith("-"):
            import difflib

            guess = difflib.get_close_matches(name, list(COMMANDS), n=1)
            hint = f" Did you mean `kiln {guess[0]}`?" if guess else ""
            raise click.UsageError(f"no such command {name!r}.{hint}", ctx)
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-f",
    "--spec",
    "spec",
    type=click.Path(dir_okay=False),
    envvar="KILN_SPEC",
    default="kiln.yaml",
    show_default=True,
    help="Path of the service spec.",
)
@click.option(
    "--state-dir", type=click.Path(file_okay=False), help="State directory [KILN_STATE_DIR]."
)
@click.option("--no-color", is_flag=True, help="Plain output (also NO_COLOR=1).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and results.")
@click.option("-v", "--verbose", count=True, help="More detail; repeat for debug.")
@click.version_option(__version__, prog_name="kiln")
@click.pass_context
def cli(
    ctx: click.Context,
    spec: str,
    state_dir: str | None,
    no_color: bool,
    quiet: bool,
    verbose: int,
) -> None:
    """kiln: immutable deployments. Build once, sign, prove, shift traffic, roll back."""
    color = not no_color and not os.environ.get("NO_COLOR")
    ctx.obj = App(
        spec_path=spec,
        flags={"state_dir": state_dir},
        color=color,
        verbosity=-1 if quiet else verbose,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return (and in console-script use, exit with) a documented code."""
    from kiln.cli.errors import handle

    args = sys.argv[1:] if argv is None else argv
    try:
        result: Any = cli.main(args=args, prog_name="kiln", standalone_mode=False)
    except BaseException as exc:
        code = handle(exc, args)
        if argv is None:
            sys.exit(code)
        return code
    code = int(result) if isinstance(result, int) else int(ExitCode.OK)
    if argv is None:
        sys.exit(code)
    return code

"""``kiln verify DIGEST [--policy trust.yaml] [--environment ENV]``: is this artifact trusted?"""

from __future__ import annotations

import click

from kiln.cli.context import App
from kiln.cli.render import emit, output_option


@click.command()
@click.argument("digest")
@click.option(
    "--policy",
    type=click.Path(dir_okay=False),
    help="trust.yaml to verify against [KILN_TRUST_POLICY; default beside kiln.yaml].",
)
@click.option(
    "--environment",
    "-e",
    help="Run the admission check of this environment of kiln.yaml (approvals, allowUnsigned).",
)
@output_option
@click.pass_obj
def verify(
    app: App, digest: str, policy: str | None, environment: str | None, output: str | None
) -> int:
    """Check the artifact's attestations against the trust policy.

    Checks every signature against the trusted keys, every subject digest, and
    every required predicate, and prints every reason that fails. Exits 0 when
    verified, 1 when refused (an empty policy or an unknown key never passes).
    With --environment it runs exactly the admission step a deploy runs.
    """
    from pathlib import Path

    from kiln.bootstrap import trust
    from kiln.core.attest.predicates import short_name
    from kiln.core.attest.verify import Verified
    from kiln.core.digest import parse_digest
    from kiln.services.verify import (
        AdmittedUnsigned,
        NotAdmitted,
        admit,
        find_environment,
        read_policy,
        verdict_json,
        verify_artifact,
    )

    subject = parse_digest(digest, what="artifact digest")
    policy_path = Path(policy) if policy else app.settings().trust_policy
    store = trust.attestation_store(app.state_dir())
    loaded = read_policy(policy_path)
    data: dict[str, object]
    if environment is None:
        verdict = verify_artifact(subject, store=store, policy=loaded)
        data = verdict_json(verdict)
        unsigned = False
    else:
        env = find_environment(app.spec(), environment)
        admission = admit(subject, env, store=store, policy=loaded)
        verdict = admission.verdict
        unsigned = isinstance(admission, AdmittedUnsigned)
        state = {AdmittedUnsigned: "admitted-unsigned", NotAdmitted: "refused"}
        data = {
            **verdict_json(verdict),
            "environment": env.name,
            "admission": state.get(type(admission), "admitted"),
        }

    def human() -> None:
        if isinstance(verdict, Verified):
            where = f" for {environment}" if environment else ""
            click.echo(f"verified {subject}{where} against {policy_path}")
            for item in verdict.satisfied:
                click.echo(f"  ok  {item}")
            return
        head = f"refused {subject}"
        if unsigned:
            head = (
                f"admitted UNSIGNED to {environment} (allowUnsigned: true);"
                " the deploy is recorded as deploy.unsigned"
            )
        click.echo(f"{head}: {len(verdict.reasons)} reason(s)", err=True)
        for reason in verdict.reasons:
            click.echo(f"  - {reason.render()}", err=True)
        for accepted in verdict.accepted:
            signers = ", ".join(accepted.signers)
            click.echo(f"  ok  {short_name(accepted.predicate_type)} signed by {signers}", err=True)

    emit(app, output or "text", data, human)
    return 0 if isinstance(verdict, Verified) or unsigned else 1

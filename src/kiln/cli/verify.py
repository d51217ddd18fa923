"""``kiln verify DIGEST [--policy trust.yaml]``: is this artifact trusted, and if not, why."""

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
@output_option
@click.pass_obj
def verify(app: App, digest: str, policy: str | None, output: str | None) -> int:
    """Check the artifact's attestations against the trust policy.

    Checks every signature against the trusted keys, every subject digest, and
    every required predicate, and prints every reason that fails. Exits 0 when
    verified, 1 when refused (an empty policy or an unknown key never passes).
    """
    from pathlib import Path

    from kiln.bootstrap import trust
    from kiln.core.attest.predicates import short_name
    from kiln.core.attest.verify import Verified
    from kiln.core.digest import parse_digest
    from kiln.services.verify import read_policy, verdict_json, verify_artifact

    subject = parse_digest(digest, what="artifact digest")
    policy_path = Path(policy) if policy else app.settings().trust_policy
    verdict = verify_artifact(
        subject, store=trust.attestation_store(app.state_dir()), policy=read_policy(policy_path)
    )

    def human() -> None:
        if isinstance(verdict, Verified):
            click.echo(f"verified {subject} against {policy_path}")
            for item in verdict.satisfied:
                click.echo(f"  ok  {item}")
            return
        click.echo(f"refused {subject}: {len(verdict.reasons)} reason(s)", err=True)
        for reason in verdict.reasons:
            click.echo(f"  - {reason.render()}", err=True)
        for accepted in verdict.accepted:
            signers = ", ".join(accepted.signers)
            click.echo(f"  ok  {short_name(accepted.predicate_type)} signed by {signers}", err=True)

    emit(app, output or "text", verdict_json(verdict), human)
    return 0 if isinstance(verdict, Verified) else 1

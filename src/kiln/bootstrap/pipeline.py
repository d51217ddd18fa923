"""Wiring for tests, promotion and the pipeline: file adapters handed to the services.

Test instances run under their own provider state directory
(``<state>/testing``), so they never mix with an environment's instances and a
cleanup check is simply "that provider lists nothing".
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from kiln.bootstrap import artifacts as artifacts_boot
from kiln.bootstrap import runtime as runtime_boot
from kiln.bootstrap import trust as trust_boot
from kiln.bootstrap.controller import ControllerClient
from kiln.bootstrap.ledger import recorder as ledger_recorder
from kiln.core.digest import Digest
from kiln.core.spec.models import ServiceSpec
from kiln.errors import KilnError, Refused, Temporary
from kiln.ports.clock import SystemClock
from kiln.ports.keys import Signer
from kiln.ports.runtime import Provider
from kiln.services import artifacts as artifact_service
from kiln.services import benchmark, checkout, pipeline, promotion, testing
from kiln.services.attest import DEFAULT_KEY, actor_from
from kiln.services.unpack import unpack
from kiln.services.verify import read_policy


def state_dir_for_tests(state_dir: Path) -> Path:
    return state_dir / "testing"


def provider_for_tests(state_dir: Path) -> Provider:
    return runtime_boot.provider("process", state_dir_for_tests(state_dir))


def resolve(state_dir: Path, ref: str) -> Digest:
    store = artifacts_boot.store(state_dir)
    if ref == "latest":
        newest = sorted(store.artifacts(), key=lambda a: a.created)
        if not newest:
            from kiln.errors import NotFound

            raise NotFound("no artifact has been built yet", hint="run `kiln build`")
        return newest[-1].digest
    return artifact_service.resolve_ref(store, ref)


def target(state_dir: Path, spec: ServiceSpec, digest: Digest) -> testing.Target:
    store = artifacts_boot.store(state_dir)
    manifest = artifact_service.ensure_deployable(store, digest)
    return testing.Target(
        service=spec.service,
        digest=digest,
        root=unpack(store, digest, state_dir / "instances"),
        image_config=artifact_service.load_config(store, manifest),
    )


def default_signer(state_dir: Path, key: str = DEFAULT_KEY) -> Signer | None:
    path = trust_boot.keys_dir(state_dir) / f"{key}.key"
    return trust_boot.signer(state_dir, key) if path.exists() else None


def run_tests(
    state_dir: Path,
    spec: ServiceSpec,
    digest: Digest,
    *,
    key: str = DEFAULT_KEY,
    on_done: Callable[[testing.Outcome], None] | None = None,
) -> list[testing.Outcome]:
    """Run the spec's tests against ``digest`` and sign each result with ``key``."""
    signer = trust_boot.signer(state_dir, key)  # fail before running anything
    tgt = target(state_dir, spec, digest)
    outcomes = testing.run_tests(
        spec.tests,
        tgt,
        provider=provider_for_tests(state_dir),
        scratch=state_dir_for_tests(state_dir) / "scratch",
        clock=SystemClock(),
        workers=max(1, min(4, os.cpu_count() or 2)),
        on_done=on_done,
    )
    testing.attest_results(
        outcomes,
        tgt,
        signer=signer,
        store=trust_boot.attestation_store(state_dir),
        recorder=ledger_recorder(state_dir),
        actor=actor_from(os.environ),
    )
    return outcomes


def measure(
    state_dir: Path,
    spec: ServiceSpec,
    digest: Digest,
    environment: str,
    *,
    signer: Signer,
    actor: str,
    on_progress: Callable[[str], None] | None = None,
) -> benchmark.Measurement:
    """Benchmark ``digest`` against what serves ``environment`` now; sign the figures."""
    measured, _ = benchmark.measure_for_promotion(
        spec,
        environment,
        digest,
        log=ledger_recorder(state_dir),
        target_of=lambda d: target(state_dir, spec, d),
        provider=provider_for_tests(state_dir),
        clock=SystemClock(),
        signer=signer,
        store=trust_boot.attestation_store(state_dir),
        recorder=ledger_recorder(state_dir),
        actor=actor,
        on_progress=on_progress,
    )
    return measured


@contextmanager
def revision_source(state_dir: Path, spec_file: Path, revision: str) -> Iterator[tuple[str, Path]]:
    """``revision`` of the repository holding ``spec_file``, checked out in a fresh
    worktree under ``<state>/checkouts`` for the block; (full commit id, its spec file)."""
    repo, prefix = checkout.toplevel(spec_file.resolve().parent)
    commit = checkout.resolve_commit(repo, revision)
    with checkout.worktree(repo, commit, state_dir / "checkouts") as tree:
        yield commit, tree / prefix / spec_file.name


def evidence(state_dir: Path, policy_path: Path) -> promotion.Evidence:
    return promotion.Evidence(
        artifacts=artifacts_boot.store(state_dir),
        attestations=trust_boot.attestation_store(state_dir),
        policy=read_policy(policy_path),
        log=ledger_recorder(state_dir),
    )


def check(
    state_dir: Path, spec: ServiceSpec, spec_dir: Path, policy: Path, digest: Digest, env: str
) -> promotion.Decision:
    return promotion.check(
        spec, spec_dir, digest, env, evidence(state_dir, policy), clock=SystemClock()
    )


def promote(
    state_dir: Path,
    spec: ServiceSpec,
    spec_dir: Path,
    policy: Path,
    digest: Digest,
    env: str,
    *,
    actor: str,
) -> promotion.Decision:
    return promotion.promote(
        spec,
        spec_dir,
        digest,
        env,
        evidence(state_dir, policy),
        clock=SystemClock(),
        signer=default_signer(state_dir),
        recorder=ledger_recorder(state_dir),
        actor=actor,
    )


def signer_for(state_dir: Path, key: str) -> Signer:
    """A key name in ``<state>/keys`` or the path of a PEM private key file (CI secrets)."""
    from kiln.adapters.keys.file import FileSigner

    path = Path(key)
    if "/" in key or path.suffix in {".pem", ".key"}:
        return FileSigner.from_file(path)
    return trust_boot.signer(state_dir, key)


class Stages:
    """The real stages of ``kiln pipeline run`` for one service checkout."""

    def __init__(
        self,
        state_dir: Path,
        spec: ServiceSpec,
        spec_dir: Path,
        spec_file: Path,
        policy: Path,
        *,
        key: str,
        actor: str,
        controller: str | None,
        on_test: Callable[[testing.Outcome], None] | None = None,
        on_rollout: Callable[[str, dict[str, object]], None] | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.spec = spec
        self.spec_dir = spec_dir
        self.spec_file = spec_file
        self.policy = policy
        self.key = key
        self.actor = actor
        self.controller = controller
        self.on_test = on_test
        self.on_rollout = on_rollout
        self.on_progress = on_progress

    def _signer(self) -> Signer:
        return signer_for(self.state_dir, self.key)

    def build(self) -> pipeline.Built:
        from kiln.services.build import run_build

        made = artifacts_boot.builder(self.state_dir)
        result = run_build(
            made, self.spec, self.spec_dir, allow_dirty=False, actor=self.actor,
            spec_file=self.spec_file,
        )  # fmt: skip
        return pipeline.Built(result.digest, str(result.tag) if result.tag else None)

    def attest(self, digest: Digest) -> list[str]:
        from kiln.core.attest.sbom import parse_pinned_requirements
        from kiln.services.attest import (
            attest,
            build_facts,
            git_source,
            provenance_statement,
            sbom_for,
        )

        signer = self._signer()
        now = SystemClock().now()
        locks = []
        deps = []
        if self.spec.build.requirements:
            lock = self.spec_dir / str(self.spec.build.requirements)
            locks.append(lock)
            deps = parse_pinned_requirements(lock.read_text(encoding="utf-8"), source=str(lock))
        facts = build_facts(
            subject_name=self.spec.service,
            subject=digest,
            spec_path=self.spec_file.name,
            lock_files=locks,
            env=os.environ,
            started_on=now,
            finished_on=now,
            source=git_source(self.spec_dir),
        )
        made = []
        for stmt in (
            provenance_statement(facts, os.environ),
            sbom_for(self.spec.service, digest, deps, timestamp=now),
        ):
            signed = attest(
                stmt,
                signer=signer,
                store=trust_boot.attestation_store(self.state_dir),
                recorder=ledger_recorder(self.state_dir),
                actor=self.actor,
            )
            made.append(str(signed.digest))
        return made

    def test(self, digest: Digest) -> list[testing.Outcome]:
        signer = self._signer()
        tgt = target(self.state_dir, self.spec, digest)
        outcomes = testing.run_tests(
            self.spec.tests,
            tgt,
            provider=provider_for_tests(self.state_dir),
            scratch=state_dir_for_tests(self.state_dir) / "scratch",
            clock=SystemClock(),
            workers=2,
            on_done=self.on_test,
        )
        testing.attest_results(
            outcomes,
            tgt,
            signer=signer,
            store=trust_boot.attestation_store(self.state_dir),
            recorder=ledger_recorder(self.state_dir),
            actor=self.actor,
        )
        return outcomes

    def measure(self, digest: Digest, environment: str) -> dict[str, object]:
        measured = measure(
            self.state_dir, self.spec, digest, environment,
            signer=self._signer(), actor=self.actor, on_progress=self.on_progress,
        )  # fmt: skip
        return measured.summary()

    def check(self, digest: Digest, environment: str) -> promotion.Decision:
        return check(self.state_dir, self.spec, self.spec_dir, self.policy, digest, environment)

    def refuse(self, digest: Digest, environment: str) -> KilnError:
        try:
            promote(
                self.state_dir, self.spec, self.spec_dir, self.policy, digest, environment,
                actor=self.actor,
            )  # fmt: skip
        except KilnError as exc:
            return exc
        return Refused(f"{digest} was refused entry to {environment}")

    def deploy(self, digest: Digest, environment: str) -> str:
        """Deploy through the controller (its admission records the promotion); follow it."""
        client = self._client()
        try:
            started = client.post(f"/v1/environments/{environment}/deploy", {"artifact": digest})
            deployment = started.get("deployment")
            while True:
                env = client.get(f"/v1/environments/{environment}")
                rollout = env.get("rollout") or {}
                if self.on_rollout is not None:
                    self.on_rollout(environment, env)
                phase = str(rollout.get("phase", ""))
                if rollout.get("deployment") == deployment and phase in TERMINAL:
                    return phase
                time.sleep(0.25)
        finally:
            client.close()

    def _client(self) -> ControllerClient:
        """The controller, started on demand; on a loaded machine its start may take
        longer than ``connect`` waits, so keep waiting (without starting a second one)."""
        from kiln.bootstrap.controller import connect

        try:
            return connect(self.state_dir, self.controller)
        except Temporary:
            deadline = time.monotonic() + CONTROLLER_START_GRACE
            while True:
                try:
                    return connect(self.state_dir, self.controller, start=False)
                except Temporary:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.25)


TERMINAL = ("succeeded", "rolled-back")
CONTROLLER_START_GRACE = 60.0

"""SLSA provenance v1 for a kiln build, from plain build facts.

``BuildFacts`` is what the build step knows (the lead wires the builder into it);
``ci_run`` reads GitHub Actions or GitLab CI variables from an environment
mapping the caller passes in, so this module never touches ``os.environ``.
``provenance`` turns both into the SLSA v1 predicate (slsa.dev/provenance/v1):

- ``buildDefinition.buildType``: ``BUILD_TYPE``, kiln's own, documented in
  docs/attestations.md;
- ``externalParameters``: the spec path, the source URI, revision and dirty flag,
  and under CI the workflow that ran;
- ``resolvedDependencies``: the source commit (``gitCommit`` digest) and each
  lock file by sha256;
- ``runDetails``: ``builder.id`` and ``metadata`` (``invocationId``,
  ``startedOn``, ``finishedOn`` in RFC 3339 UTC).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kiln.core.attest.statement import Statement, statement
from kiln.core.digest import Digest, hex_of

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://kiln.dev/build/v1"
LOCAL_BUILDER = "https://kiln.dev/builders/local"


@dataclass(frozen=True)
class LockFile:
    path: str
    digest: Digest


@dataclass(frozen=True)
class BuildFacts:
    """Everything a build knows about itself that provenance records."""

    subject_name: str
    subject_digest: Digest
    spec_path: str
    source_uri: str
    revision: str
    lock_files: tuple[LockFile, ...]
    builder_id: str
    invocation_id: str
    started_on: datetime
    finished_on: datetime
    dirty: bool = False


@dataclass(frozen=True)
class CiRun:
    """The CI run that performed a build, read from the CI's own variables."""

    system: str
    run_id: str
    workflow: str
    actor: str
    invocation_uri: str
    builder_id: str
    source_uri: str = ""
    revision: str = ""


def ci_run(env: Mapping[str, str]) -> CiRun | None:
    """The CI run described by ``env``; ``None`` outside GitHub Actions and GitLab CI."""
    if env.get("GITHUB_ACTIONS") == "true":
        server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        repo = env.get("GITHUB_REPOSITORY", "")
        run_id = env.get("GITHUB_RUN_ID", "")
        attempt = env.get("GITHUB_RUN_ATTEMPT", "1")
        workflow_ref = env.get("GITHUB_WORKFLOW_REF", "")
        return CiRun(
            system="github-actions",
            run_id=run_id,
            workflow=workflow_ref or env.get("GITHUB_WORKFLOW", ""),
            actor=env.get("GITHUB_ACTOR", ""),
            invocation_uri=f"{server}/{repo}/actions/runs/{run_id}/attempts/{attempt}",
            # A workflow file is the builder identity GitHub can vouch for.
            builder_id=f"{server}/{workflow_ref}" if workflow_ref else f"{server}/{repo}",
            source_uri=f"git+{server}/{repo}" if repo else "",
            revision=env.get("GITHUB_SHA", ""),
        )
    if env.get("GITLAB_CI") == "true":
        project = env.get("CI_PROJECT_URL", "").rstrip("/")
        job_id = env.get("CI_JOB_ID", "")
        return CiRun(
            system="gitlab-ci",
            run_id=env.get("CI_PIPELINE_ID", ""),
            workflow=env.get("CI_CONFIG_PATH", ".gitlab-ci.yml") + "@" + env.get("CI_JOB_NAME", ""),
            actor=env.get("GITLAB_USER_LOGIN", ""),
            invocation_uri=env.get("CI_JOB_URL", f"{project}/-/jobs/{job_id}"),
            builder_id=f"{project}/-/runners/{env.get('CI_RUNNER_ID', '')}".rstrip("/"),
            source_uri=f"git+{project}" if project else "",
            revision=env.get("CI_COMMIT_SHA", ""),
        )
    return None


def rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("provenance times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def provenance_predicate(facts: BuildFacts, ci: CiRun | None = None) -> dict[str, Any]:
    source: dict[str, Any] = {"uri": facts.source_uri, "revision": facts.revision}
    if facts.dirty:
        source["dirty"] = True
    external: dict[str, Any] = {"spec": facts.spec_path, "source": source}
    internal: dict[str, Any] = {}
    if ci is not None:
        external["workflow"] = {"system": ci.system, "workflow": ci.workflow}
        internal["ci"] = {"system": ci.system, "runId": ci.run_id, "actor": ci.actor}
    resolved: list[dict[str, Any]] = []
    if facts.revision:
        commit: dict[str, Any] = {"uri": facts.source_uri, "digest": {"gitCommit": facts.revision}}
        if facts.dirty:
            commit["annotations"] = {"dirty": True}
        resolved.append(commit)
    for lock in sorted(facts.lock_files, key=lambda f: f.path):
        resolved.append({"name": lock.path, "digest": {"sha256": hex_of(lock.digest)}})
    definition: dict[str, Any] = {
        "buildType": BUILD_TYPE,
        "externalParameters": external,
        "resolvedDependencies": resolved,
    }
    if internal:
        definition["internalParameters"] = internal
    invocation = facts.invocation_id or (ci.invocation_uri if ci else "")
    return {
        "buildDefinition": definition,
        "runDetails": {
            "builder": {"id": facts.builder_id},
            "metadata": {
                "invocationId": invocation,
                "startedOn": rfc3339(facts.started_on),
                "finishedOn": rfc3339(facts.finished_on),
            },
        },
    }


def provenance(facts: BuildFacts, ci: CiRun | None = None) -> Statement:
    return statement(
        [(facts.subject_name, facts.subject_digest)],
        SLSA_PROVENANCE_V1,
        provenance_predicate(facts, ci),
    )

"""in-toto Statement v1 and SLSA provenance v1 from plain build facts."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from kiln.core.attest.provenance import (
    BUILD_TYPE,
    SLSA_PROVENANCE_V1,
    BuildFacts,
    LockFile,
    ci_run,
    provenance,
)
from kiln.core.attest.statement import STATEMENT_TYPE, Subject, parse_statement, statement
from kiln.core.digest import digest_bytes, hex_of
from kiln.errors import InvalidInput
from tests.unit.trust.fakes import ARTIFACT, OTHER, T0, T1

LOCK = LockFile("requirements.lock", digest_bytes(b"packaging==24.0 --hash=sha256:..."))
FACTS = BuildFacts(
    subject_name="hello",
    subject_digest=ARTIFACT,
    spec_path="kiln.yaml",
    source_uri="git+https://git.example/acme/hello",
    revision="0123456789abcdef0123456789abcdef01234567",
    lock_files=(LOCK,),
    builder_id="https://kiln.dev/builders/local",
    invocation_id="urn:uuid:5b0c3a52-1111-4d4e-9e0f-000000000001",
    started_on=T0,
    finished_on=T1,
)

GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "acme/hello",
    "GITHUB_RUN_ID": "9001",
    "GITHUB_RUN_ATTEMPT": "2",
    "GITHUB_WORKFLOW": "release",
    "GITHUB_WORKFLOW_REF": "acme/hello/.github/workflows/release.yml@refs/heads/main",
    "GITHUB_ACTOR": "octocat",
    "GITHUB_SHA": "f" * 40,
}
GITLAB = {
    "GITLAB_CI": "true",
    "CI_PROJECT_URL": "https://gitlab.example/acme/hello",
    "CI_PIPELINE_ID": "777",
    "CI_JOB_ID": "4242",
    "CI_JOB_NAME": "build",
    "CI_JOB_URL": "https://gitlab.example/acme/hello/-/jobs/4242",
    "CI_CONFIG_PATH": ".gitlab-ci.yml",
    "CI_RUNNER_ID": "12",
    "GITLAB_USER_LOGIN": "dev1",
    "CI_COMMIT_SHA": "e" * 40,
}


def test_statement_has_the_v1_type_and_subject_digests() -> None:
    doc = json.loads(statement([("hello", ARTIFACT)], "https://x/v1", {"a": 1}).to_bytes())
    assert doc == {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": "hello", "digest": {"sha256": hex_of(ARTIFACT)}}],
        "predicateType": "https://x/v1",
        "predicate": {"a": 1},
    }


def test_subjects_match_by_digest_and_never_by_name() -> None:
    subject = Subject.of("hello", ARTIFACT)
    assert subject.matches(ARTIFACT)
    assert not subject.matches(OTHER)
    renamed = Subject(name="something-else", digest={"sha256": hex_of(ARTIFACT)})
    assert renamed.matches(ARTIFACT)
    same_name = Subject(name="hello", digest={"sha256": hex_of(OTHER)})
    assert not same_name.matches(ARTIFACT)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"_type": "https://in-toto.io/Statement/v0.1"}, "_type"),
        ({"_type": STATEMENT_TYPE, "subject": []}, "no subject"),
        ({"_type": STATEMENT_TYPE, "subject": [{"name": "x"}]}, "no digest"),
        (
            {"_type": STATEMENT_TYPE, "subject": [{"digest": {"sha256": "ab"}}]},
            "no predicateType",
        ),
        (
            {
                "_type": STATEMENT_TYPE,
                "subject": [{"digest": {"sha256": "ab"}}],
                "predicateType": "p",
                "predicate": [],
            },
            "not a JSON object",
        ),
    ],
)
def test_malformed_statements_are_refused(doc: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_statement(json.dumps(doc).encode())


def test_provenance_records_the_build_definition_and_run_details() -> None:
    stmt = provenance(FACTS)
    assert stmt.predicate_type == SLSA_PROVENANCE_V1
    assert stmt.about(ARTIFACT)
    assert stmt.predicate == {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "spec": "kiln.yaml",
                "source": {"uri": FACTS.source_uri, "revision": FACTS.revision},
            },
            "resolvedDependencies": [
                {"uri": FACTS.source_uri, "digest": {"gitCommit": FACTS.revision}},
                {"name": "requirements.lock", "digest": {"sha256": hex_of(LOCK.digest)}},
            ],
        },
        "runDetails": {
            "builder": {"id": "https://kiln.dev/builders/local"},
            "metadata": {
                "invocationId": FACTS.invocation_id,
                "startedOn": "2026-03-01T12:00:00Z",
                "finishedOn": "2026-03-01T12:04:30Z",
            },
        },
    }


def test_a_dirty_tree_is_recorded_not_hidden() -> None:
    from dataclasses import replace

    pred = provenance(replace(FACTS, dirty=True)).predicate
    assert pred["buildDefinition"]["externalParameters"]["source"]["dirty"] is True
    assert pred["buildDefinition"]["resolvedDependencies"][0]["annotations"] == {"dirty": True}


def test_github_actions_run_id_workflow_and_actor_come_from_its_variables() -> None:
    ci = ci_run(GITHUB)
    assert ci is not None
    assert (ci.system, ci.run_id, ci.actor) == ("github-actions", "9001", "octocat")
    assert ci.workflow == GITHUB["GITHUB_WORKFLOW_REF"]
    assert ci.invocation_uri == "https://github.com/acme/hello/actions/runs/9001/attempts/2"
    assert ci.revision == "f" * 40
    from dataclasses import replace

    pred = provenance(replace(FACTS, invocation_id=""), ci).predicate
    assert pred["runDetails"]["metadata"]["invocationId"] == ci.invocation_uri
    assert pred["buildDefinition"]["internalParameters"] == {
        "ci": {"system": "github-actions", "runId": "9001", "actor": "octocat"}
    }
    assert pred["buildDefinition"]["externalParameters"]["workflow"] == {
        "system": "github-actions",
        "workflow": GITHUB["GITHUB_WORKFLOW_REF"],
    }


def test_gitlab_ci_run_id_workflow_and_actor_come_from_its_variables() -> None:
    ci = ci_run(GITLAB)
    assert ci is not None
    assert (ci.system, ci.run_id, ci.actor) == ("gitlab-ci", "777", "dev1")
    assert ci.workflow == ".gitlab-ci.yml@build"
    assert ci.invocation_uri == "https://gitlab.example/acme/hello/-/jobs/4242"
    assert ci.source_uri == "git+https://gitlab.example/acme/hello"


def test_outside_ci_there_is_no_run() -> None:
    assert ci_run({"GITHUB_ACTIONS": "false", "HOME": "/root"}) is None


def test_provenance_refuses_naive_times() -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="timezone"):
        provenance(replace(FACTS, started_on=datetime(2026, 1, 1)))

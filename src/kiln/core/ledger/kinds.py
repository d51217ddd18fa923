"""Every kind of event the ledger records, one name per lifecycle step.

The names are part of the export format: never rename one, only add.
"""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    BUILD = "build"
    ATTEST = "attest"
    TEST = "test"
    GATE_VERDICT = "gate.verdict"
    PROMOTION = "promotion"
    APPROVAL = "approval"
    DEPLOY_START = "deploy.start"
    ROLLOUT_STEP = "rollout.step"
    TRAFFIC_CHANGE = "traffic.change"
    HEALTH_FAILURE = "health.failure"
    ANALYSIS_VERDICT = "analysis.verdict"
    DEPLOY_COMPLETE = "deploy.complete"
    ROLLBACK = "rollback"
    DECOMMISSION = "decommission"
    DRIFT_FOUND = "drift.found"
    HEAL = "heal"
    REVOCATION = "revocation"
    TAG = "tag"
    KEY_CHANGE = "key.change"
    UNSIGNED_DEPLOY = "deploy.unsigned"
    INCIDENT = "incident"

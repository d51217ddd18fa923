"""The controller's CI webhook: verify a delivery's signature, then start a pipeline run.

Kept apart from ``kiln.bootstrap.pipeline`` so the controller starts without
importing the gates (CEL, OSV); the run itself is a separate process.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path

from kiln.bootstrap import trust as trust_boot
from kiln.errors import InvalidInput, Refused
from kiln.ports.clock import SystemClock

WEBHOOK_SECRET = "webhook.secret"  # noqa: S105 - a file name, not a secret


class CiHook:
    """The controller's CI webhook: verify the delivery, then start a pipeline run.

    The shared secret is the file ``<state>/keys/webhook.secret`` (mode 0600; a
    file others can read is refused). A verified push names a commit (GitHub's
    ``after``, GitLab's ``checkout_sha``; none: the checkout's HEAD). It must
    exist in the repository of the service's checkout (fetched from its
    ``origin`` when missing); otherwise nothing runs (409). Then ``kiln pipeline
    run --revision COMMIT`` starts detached: it checks that commit out in a
    fresh worktree under ``<state>/checkouts``, runs there, and removes it; its
    JSON record is written to ``<state>/logs/pipeline-<time>.json``. The
    checkout itself (its HEAD, its uncommitted changes) is never built.
    ``until`` passes ``--until`` (tests stop after a stage).
    """

    def __init__(self, state_dir: Path, spec_file: Path, *, until: str | None = None) -> None:
        self.state_dir = state_dir
        self.spec_file = spec_file
        self.until = until

    def secret(self) -> bytes:
        path = trust_boot.keys_dir(self.state_dir) / WEBHOOK_SECRET
        try:
            mode = path.stat().st_mode
            data = path.read_bytes().strip()
        except FileNotFoundError:
            return b""  # verify() refuses an empty secret: fail closed
        if mode & 0o077:
            raise Refused(
                f"{path} is readable by others; the webhook secret must be mode 0600",
                hint=f"chmod 600 {path}",
            )
        return data

    def verify(self, headers: Mapping[str, str], body: bytes) -> str:
        from kiln.core.pipeline.webhook import verify

        return str(verify(headers, body, self.secret()))

    def trigger(self, source: str, body: bytes) -> dict[str, object]:
        from kiln.bootstrap.detach import spawn_detached
        from kiln.services import checkout

        revision = _pushed_revision(body)
        repo, _ = checkout.toplevel(self.spec_file.resolve().parent)
        commit = checkout.resolve_commit(repo, revision) if revision else checkout.head(repo)
        stamp = SystemClock().now().strftime("%Y%m%dT%H%M%S%f")
        log = self.state_dir / "logs" / f"pipeline-{stamp}.json"
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "kiln", "-f", str(self.spec_file),
            "--state-dir", str(self.state_dir), "pipeline", "run", "--revision", commit,
            "-o", "json", *(("--until", self.until) if self.until else ()),
        ]  # fmt: skip
        spawn_detached(command, log)
        return {"accepted": True, "source": source, "revision": commit, "record": str(log)}


def _pushed_revision(body: bytes) -> str | None:
    """The pushed commit: GitHub's ``after``, GitLab's ``checkout_sha``; none if absent."""
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        raise InvalidInput("the webhook body is not JSON") from None
    if not isinstance(payload, dict):
        return None
    for key in ("after", "checkout_sha"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    return None

"""Check that a CI webhook really comes from the CI system: pure, constant time.

Two conventions are accepted:

GitHub
    ``X-Hub-Signature-256: sha256=<hex>``, the HMAC-SHA256 of the raw request
    body keyed with the shared secret (GitHub docs, "Validating webhook
    deliveries").
GitLab
    ``X-Gitlab-Token: <secret>``, the shared secret itself (GitLab docs,
    "Webhooks", secret token).

Comparisons use ``hmac.compare_digest`` so timing leaks nothing about the
expected value. A missing, malformed or wrong signature raises ``Refused``;
the error never echoes the secret or the expected signature.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from enum import StrEnum

from kiln.errors import Refused

GITHUB_HEADER = "x-hub-signature-256"
GITLAB_HEADER = "x-gitlab-token"


class Source(StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"


def sign(body: bytes, secret: bytes) -> str:
    """The GitHub-style header value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_github(body: bytes, header: str | None, secret: bytes) -> None:
    _need_secret(secret)
    if not header:
        raise Refused("webhook refused: no X-Hub-Signature-256 header", hint=_HINT)
    scheme, sep, given = header.strip().partition("=")
    if not sep or scheme != "sha256" or not given:
        raise Refused("webhook refused: X-Hub-Signature-256 is not 'sha256=<hex>'", hint=_HINT)
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.lower().encode("ascii", "replace")):
        raise Refused("webhook refused: the signature does not match the body", hint=_HINT)


def verify_gitlab(header: str | None, secret: bytes) -> None:
    _need_secret(secret)
    if not header:
        raise Refused("webhook refused: no X-Gitlab-Token header", hint=_HINT)
    if not hmac.compare_digest(secret, header.encode("utf-8", "replace")):
        raise Refused("webhook refused: the X-Gitlab-Token does not match", hint=_HINT)


def verify(headers: Mapping[str, str], body: bytes, secret: bytes) -> Source:
    """Verify a delivery by whichever convention its headers use; return which."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if GITHUB_HEADER in lowered:
        verify_github(body, lowered[GITHUB_HEADER], secret)
        return Source.GITHUB
    if GITLAB_HEADER in lowered:
        verify_gitlab(lowered[GITLAB_HEADER], secret)
        return Source.GITLAB
    _need_secret(secret)
    raise Refused("webhook refused: no X-Hub-Signature-256 or X-Gitlab-Token header", hint=_HINT)


def _need_secret(secret: bytes) -> None:
    # An empty key would make every signature computable by anyone: refuse, never accept.
    if not secret:
        raise Refused("webhook refused: no shared secret is configured", hint=_HINT)


_HINT = "configure the same webhook secret in the CI system and in kiln"

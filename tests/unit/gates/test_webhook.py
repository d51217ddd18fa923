"""CI webhook verification: GitHub HMAC signatures and GitLab tokens."""

from __future__ import annotations

import pytest

from kiln.core.pipeline.webhook import Source, sign, verify, verify_github, verify_gitlab
from kiln.errors import Refused

SECRET = b"It's a Secret to Everybody"
BODY = b"Hello, World!"


def test_github_documented_test_vector() -> None:
    # GitHub docs, "Validating webhook deliveries": this secret and payload give this signature.
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign(BODY, SECRET) == expected
    verify_github(BODY, expected, SECRET)
    assert verify({"X-Hub-Signature-256": expected}, BODY, SECRET) is Source.GITHUB


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "no X-Hub-Signature-256"),
        ("", "no X-Hub-Signature-256"),
        ("sha1=abc", "is not 'sha256=<hex>'"),
        ("sha256=", "is not 'sha256=<hex>'"),
        ("sha256=" + "0" * 64, "does not match"),
        ("sha256=zz\u00e9", "does not match"),
    ],
)
def test_bad_github_signatures_are_refused(header: str | None, message: str) -> None:
    with pytest.raises(Refused, match=message):
        verify_github(BODY, header, SECRET)


def test_a_tampered_body_is_refused() -> None:
    with pytest.raises(Refused, match="does not match"):
        verify_github(BODY + b" ", sign(BODY, SECRET), SECRET)


def test_gitlab_tokens() -> None:
    assert verify({"x-gitlab-token": SECRET.decode()}, BODY, SECRET) is Source.GITLAB
    with pytest.raises(Refused, match="does not match"):
        verify_gitlab("wrong", SECRET)
    with pytest.raises(Refused, match="no X-Gitlab-Token"):
        verify_gitlab(None, SECRET)


def test_no_signature_header_or_no_secret_is_refused_and_never_echoes_the_secret() -> None:
    with pytest.raises(Refused) as caught:
        verify({"Content-Type": "application/json"}, BODY, SECRET)
    assert SECRET.decode() not in caught.value.message
    with pytest.raises(Refused, match="no shared secret"):
        verify({"X-Hub-Signature-256": sign(BODY, b"")}, BODY, b"")

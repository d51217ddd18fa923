"""The independent verifier printed in docs/ledger.md really verifies an export.

The snippet is read from the doc and run as written, with only hashlib and
cryptography, against an export made by ``kiln audit export``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from kiln.bootstrap.ledger import Ledger
from kiln.services import audit
from tests.integration.ledger.conftest import fill

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[3] / "docs" / "ledger.md"


def _snippet() -> dict[str, Any]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### Verifying an export without kiln", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "docs/ledger.md lost its verifier snippet"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), str(DOC), "exec"), namespace)  # noqa: S102 - our own doc
    return namespace


@pytest.mark.parametrize("count", [0, 1, 7, 64])
def test_the_documented_verifier_accepts_a_kiln_export(
    ledger: Ledger, tmp_path: Path, count: int
) -> None:
    fill(ledger, count)
    out = tmp_path / "export.jsonl"
    audit.export(ledger.store, out, signer=ledger.signer(), checkpoint_dir=ledger.checkpoint_dir)
    pem = (ledger.state_dir / "keys" / "ledger.pub").read_bytes()
    _snippet()["verify_export"](str(out), pem)

    lines = out.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"actor":"', b'"actor":"mallory-')
    out.write_bytes(b"\n".join(lines))
    with pytest.raises(AssertionError):
        _snippet()["verify_export"](str(out), pem)

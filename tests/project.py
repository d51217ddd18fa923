"""What every story that turns a copy of examples/hello into a kiln project needs:
the trust policy `kiln build --sign` satisfies, and git with a fixed identity."""

from __future__ import annotations

import subprocess
from pathlib import Path

# The builder key `kiln keys` writes signs the provenance and the SBOM.
TRUST = """\
apiVersion: kiln.dev/v1
keys:
  - {id: builder, publicKey: .kiln/keys/default.pub, kinds: [builder]}
require:
  - {predicate: provenance, signedBy: builder}
  - {predicate: sbom, signedBy: builder}
"""


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=ci@kiln.dev", "-c", "user.name=ci", *args],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip

"""``make demo``: kiln's story, narrated, on the example service.

It grows with every capability. Today it shows the foundation: the example
spec validates, a typo is caught with file:line:column and a hint, and the JSON
Schema is valid. It exits non-zero if any step does not behave as narrated.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hello"


def _kiln(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "kiln", *args],
        cwd=cwd or EXAMPLE,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _expect(ok: bool, what: str) -> None:
    if not ok:
        print(f"DEMO FAILED: {what}", file=sys.stderr)
        raise SystemExit(1)
    print(f"   ok: {what}")


def main() -> int:
    _step("1. The example service's spec is valid")
    result = _kiln("validate", "--output", "json")
    _expect(result.returncode == 0, "kiln validate exits 0 on examples/hello/kiln.yaml")
    spec = json.loads(result.stdout)["spec"]
    print(f"   service {spec['service']}: " + " → ".join(e["name"] for e in spec["environments"]))

    _step("2. A typo is caught with its line, column and a hint")
    with tempfile.TemporaryDirectory(prefix="kiln-demo-") as tmp:
        bad = Path(tmp) / "kiln.yaml"
        bad.write_text("service: hello\nenvironments:\n  - name: prod\n    replicsa: 2\n")
        result = _kiln("validate", str(bad))
        print("   " + result.stderr.strip().replace("\n", "\n   "))
        _expect(result.returncode == 2, "invalid spec exits 2")
        _expect(
            ":4:5:" in result.stderr and "did you mean `replicas`?" in result.stderr,
            "the problem names line 4, column 5 and suggests `replicas`",
        )

    _step("3. The JSON Schema is printed for editors")
    result = _kiln("schema")
    _expect(
        result.returncode == 0 and '"$schema"' in result.stdout, "kiln schema prints JSON Schema"
    )

    print("\nNot built yet: build, sign, pipeline, canary, rollback, drift, ledger, DORA.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

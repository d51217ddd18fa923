"""``make demo``: kiln's story on the example service, narrated, with live traffic.

Every step runs the real CLI (``python -m kiln``) in a throwaway git repository
made from ``examples/hello``, against real processes: the controller, one
embedded router per environment, and fresh instances for every release. The
demo checks what it narrates and exits non-zero the moment something does not
behave as told. It cleans up after itself (``kiln down`` and the temp dir), so
running it twice in a row works.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hello"
TRUST = """\
apiVersion: kiln.dev/v1
keys:
  - {id: builder, publicKey: .kiln/keys/default.pub, kinds: [builder]}
require:
  - {predicate: provenance, signedBy: builder}
  - {predicate: sbom, signedBy: builder}
"""


class DemoFailed(Exception):
    pass


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise DemoFailed(what)
    print(f"   ok: {what}", flush=True)


class Kiln:
    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def __call__(self, *args: str, check: bool = True, show: bool = False) -> str:
        result = subprocess.run(  # noqa: S603 - our own CLI with fixed arguments
            [sys.executable, "-m", "kiln", "--no-color", *args],
            cwd=self.cwd,
            capture_output=not show,
            text=True,
            check=False,
            timeout=240,
        )
        if check and result.returncode != 0:
            detail = (result.stderr or "") + (result.stdout or "")
            raise DemoFailed(f"`kiln {' '.join(args)}` exited {result.returncode}:\n{detail}")
        return result.stdout or ""

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json"))


def git(cwd: Path, *args: str) -> None:
    subprocess.run(  # noqa: S603 - fixed git arguments
        ["git", "-c", "user.email=demo@kiln.dev", "-c", "user.name=kiln demo", *args],  # noqa: S607
        cwd=cwd,
        check=True,
        capture_output=True,
    )


class Traffic:
    """Keep-alive clients sending GET / to prod until stopped; counts every outcome."""

    def __init__(self, url: str, clients: int = 2) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.ok = 0
        self.bad_answers = 0  # 500s from a bad release (the app's own answers)
        self.failed = 0  # transport errors and the data plane's own 502/503/504
        self.versions: dict[str, int] = {}
        self.first_bad: float | None = None
        self.last_bad: float | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
        while not self._stop.is_set():
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                with self._lock:
                    self.failed += 1
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
                continue
            with self._lock:
                if response.status == 200:
                    self.ok += 1
                    version = json.loads(body).get("version", "?")
                    self.versions[version] = self.versions.get(version, 0) + 1
                elif response.status == 500:
                    now = time.monotonic()
                    self.bad_answers += 1
                    self.first_bad = self.first_bad or now
                    self.last_bad = now
                else:
                    self.failed += 1
            time.sleep(0.01)
        conn.close()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def set_version(repo: Path, version: str, *, error_rate: str | None = None) -> None:
    spec = repo / "kiln.yaml"
    text = spec.read_text()
    head, _, rest = text.partition("  requirements: requirements.txt\n")
    env = f'  version: "{version}"\n  env: {{APP_VERSION: "{version}"'
    env += f', ERROR_RATE: "{error_rate}"' if error_rate else ""
    env += "}\n"
    rest = "".join(
        line
        for line in rest.splitlines(keepends=True)
        if not line.startswith(("  env:", "  version:"))
    )
    spec.write_text(head + "  requirements: requirements.txt\n" + env + rest)


def build(kiln: Kiln) -> dict[str, Any]:
    result: dict[str, Any] = kiln.json("build")
    print(f"   built {result['tag']}  {result['digest'][:19]}…  in {result['seconds']:.1f}s")
    return result


def sign(kiln: Kiln, digest: str) -> None:
    kiln("attest", "provenance", digest)
    kiln("attest", "sbom", digest)
    kiln("verify", digest)
    # The gates of every environment need signed test results of this artifact.
    kiln("test", "--artifact", digest)


def through(kiln: Kiln, digest: str, *environments: str) -> None:
    """Promotion needs evidence: an artifact enters prod only after it ran in staging."""
    for env in environments:
        kiln("deploy", env, digest)
        print(f"   {env}: 100% on {digest[:19]}…")


def _remove(path: Path) -> None:
    """Delete the demo's temp dir, including the read-only unpacked artifact trees."""
    for node in path.rglob("*"):
        if node.is_dir() and not node.is_symlink():
            node.chmod(0o755)
    shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="kiln-demo-"))
    repo = work / "hello"
    shutil.copytree(EXAMPLE, repo)
    (repo / "trust.yaml").write_text(TRUST)
    set_version(repo, "1.0.0")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "hello 1.0.0")
    kiln = Kiln(repo)
    traffic: Traffic | None = None
    try:
        step("1. Build v1 reproducibly, twice, and sign its provenance and SBOM")
        v1 = build(kiln)
        twin = work / "elsewhere" / "hello"
        shutil.copytree(repo, twin, ignore=shutil.ignore_patterns(".kiln"))
        again = build(Kiln(twin))
        expect(
            again["digest"] == v1["digest"],
            "a second build in another directory has the same digest",
        )
        kiln("keys", "generate")
        sign(kiln, v1["digest"])
        expect(
            True,
            "provenance (SLSA v1) and SBOM (CycloneDX) signed with Ed25519 and verified; "
            "tests run against the artifact, results signed",
        )

        step("2. Promote v1 along dev → staging → prod")
        for env in ("dev", "staging", "prod"):
            kiln("deploy", env, v1["digest"])
            print(f"   {env}: 100% on v1")
        status = kiln.json("status")
        urls = {e["name"]: e["url"] for e in status["environments"]}
        print(f"   prod is served at {urls['prod']}")
        traffic = Traffic(urls["prod"])
        traffic.start()
        time.sleep(1.0)
        expect(traffic.ok > 0 and traffic.failed == 0, "live traffic flows to prod")

        step("3. Build v2 and canary it into prod (setWeight 20 → analysis → 50 → analysis → 100)")
        set_version(repo, "2.0.0")
        git(repo, "commit", "-qam", "hello 2.0.0")
        v2 = build(kiln)
        sign(kiln, v2["digest"])
        through(kiln, v2["digest"], "dev", "staging")
        kiln("deploy", "prod", v2["digest"], show=True)
        expect(traffic.versions.get("2.0.0", 0) > 0, "prod answers with v2")

        step("4. Build v3 with a bad change (30% errors); analysis catches it and rolls back")
        set_version(repo, "3.0.0", error_rate="0.3")
        git(repo, "commit", "-qam", "hello 3.0.0: a bad change")
        v3 = build(kiln)
        sign(kiln, v3["digest"])
        through(kiln, v3["digest"], "dev", "staging")
        out = kiln("deploy", "prod", v3["digest"], check=False)
        print("   " + out.strip().replace("\n", "\n   "))
        prod = kiln.json("status", "prod")["environments"][0]
        expect(prod["rollout"]["phase"] == "rolled-back", "v3 was rolled back automatically")
        expect(prod["stable"]["artifact"] == v2["digest"], "prod is back on v2")
        if traffic.first_bad is not None and traffic.last_bad is not None:
            restore = traffic.last_bad - traffic.first_bad
            print(f"   time to restore (first bad answer → last): {restore:.2f}s")
        print(f"   error answers served by v3 before the rollback: {traffic.bad_answers}")

        step("5. Drift healing")
        print("   not built yet (issue 9): `kiln drift` / `kiln reconcile` land with it")

        step("6. The ledger: verify it, and prove one event is included")
        print("   " + kiln("audit", "verify").strip().replace("\n", "\n   "))
        log = kiln.json("audit", "log", "--env", "prod")
        rollback = next(e for e in log["events"] if e["kind"] == "rollback")
        proof = kiln.json("audit", "prove", str(rollback["seq"]))
        expect(bool(proof), f"inclusion proof of event {rollback['seq']} (the rollback) verifies")

        step("7. DORA metrics for prod, from the ledger")
        print("   " + kiln("report", "dora", "--env", "prod").strip().replace("\n", "\n   "))

        step("8. The whole run")
        traffic.stop()
        print(
            f"   requests served: {traffic.ok + traffic.bad_answers}; versions: {traffic.versions}"
        )
        print(f"   failed requests (transport errors, 502/503/504): {traffic.failed}")
        expect(traffic.failed == 0, "zero failed requests across every switch and the rollback")
        elapsed = time.monotonic() - started
        print(f"\n   finished in {elapsed:.0f}s. Look next: `kiln status`, `kiln history prod`,")
        print("   `kiln audit log`; the README's 'The path, by hand'. (Its processes are stopped.)")
        return 0
    except DemoFailed as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if traffic is not None:
            traffic.stop()
        kiln("down", check=False)
        _remove(work)


if __name__ == "__main__":
    raise SystemExit(main())

"""``make demo``: kiln's story on the example service, narrated, with live traffic.

Every step runs the real CLI (``python -m kiln``) in a throwaway git repository
made from ``examples/hello``, against real processes: the controller, one
embedded router per environment, and fresh instances for every release. The
demo checks what it narrates and exits non-zero the moment something does not
behave as told. It cleans up after itself (``kiln down`` and the temp dir), so
running it twice in a row works; ``KILN_DEMO_KEEP=1 make demo`` (or
``python -m kiln.demo --keep``) leaves the controller, routers and instances
running for a look around, and prints how to stop them.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import shutil
import signal
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


STEP_TIMEOUT = 180.0  # a rollout that has not ended by then is a failure of the demo


class DemoFailed(Exception):
    pass


def step(title: str, proves: str) -> None:
    print(f"\n== {title}", flush=True)
    print(f"   (proves: {proves})", flush=True)


def dashboard_url(kiln: Kiln) -> str | None:
    """The dashboard's address (without its token), printed first by step 8.

    `kiln dashboard` opens the controller's loopback listener for browsers on
    demand and prints the login link; the demo shows only the address, so no
    credential lands in a terminal log, and names the command that logs in.
    """
    return str(kiln.json("dashboard")["url"])


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

    def snapshot(self) -> dict[str, int]:
        """Answers so far by version; the bad release's errors count as `500s`."""
        with self._lock:
            return {**{f"v{k}": n for k, n in self.versions.items()}, "500s": self.bad_answers}

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


def heal_drift(kiln: Kiln) -> None:
    """Kill one prod instance with SIGKILL and wait for `kiln drift prod` to be clean again."""
    listed = kiln.json("instances", "list", "prod")["instances"]
    victim = next(i for i in listed if i["state"] == "running" and i["pid"])
    os.kill(victim["pid"], signal.SIGKILL)
    killed = time.monotonic()
    print(f"   kill -9 {victim['pid']} ({victim['id']})")
    while True:
        report = json.loads(kiln("drift", "prod", "-o", "json", check=False))
        running = [
            i["id"]
            for i in kiln.json("instances", "list", "prod")["instances"]
            if i["state"] == "running"
        ]
        if report["clean"] and victim["id"] not in running:
            break
        if time.monotonic() - killed > 60:
            raise DemoFailed(f"prod did not heal within 60 s: {report}")
        time.sleep(0.5)
    elapsed = time.monotonic() - killed
    expect(True, f"replaced by a fresh instance in {elapsed:.1f}s; `kiln drift prod` is clean")
    events = kiln.json("audit", "log", "--env", "prod")["events"]
    kinds = [e["kind"] for e in events]
    expect("drift.found" in kinds and "heal" in kinds, "the finding and the heal are in the ledger")


def deploy_and_follow(kiln: Kiln, env: str, digest: str, traffic: Traffic) -> dict[str, Any]:
    """Start a rollout of DIGEST in ENV, print it live until it ends, return ENV's status.

    One line when the step changes, and every few seconds: the step, the new
    release's weight, the analysis figures (what `kiln status ENV --watch`
    shows, read through `kiln status -o json`) and the split of the answers
    our own traffic got since the line before.
    """
    deployment = kiln.json("deploy", env, digest, "--no-wait")["deployment"]
    began = time.monotonic()
    last, printed_at = "", 0.0
    seen = traffic.snapshot()
    while True:
        status: dict[str, Any] = kiln.json("status", env)["environments"][0]
        rollout = status.get("rollout") or {}
        if rollout.get("deployment") != deployment:
            rollout = {"phase": "starting"}  # the status still shows the rollout before
        line = live_line(rollout)
        now = time.monotonic()
        done = rollout.get("phase") in ("succeeded", "rolled-back")
        if line != last or done or now - printed_at >= 4.0:
            answers = traffic.snapshot()
            split = answer_split(seen, answers)
            print(f"   {now - began:5.1f}s  {line}" + (f" · answers {split}" if split else ""))
            last, printed_at, seen = line, now, answers
        if done:
            if rollout.get("reason"):
                print(f"          {rollout['reason']}")
            return status
        if now - began > STEP_TIMEOUT:
            raise DemoFailed(f"the {env} rollout did not end within {STEP_TIMEOUT:.0f}s: {line}")
        time.sleep(1.0)


def live_line(rollout: dict[str, Any]) -> str:
    """`stepping · step 2/5 analysis … · new release 20% · error-rate 0.31 vs stable 0 …`."""
    steps = rollout.get("steps") or []
    if not steps:
        return str(rollout.get("phase", "?"))
    index = rollout.get("step", 0)
    current = steps[index] if 0 <= index < len(steps) else "done"
    parts = [
        str(rollout.get("phase", "?")),
        f"step {min(index + 1, len(steps))}/{len(steps)} {current}",
        f"new release {rollout.get('weight', 0)}%",
    ]
    for name, figures in sorted((rollout.get("analysis") or {}).items()):
        if "canary" in figures and "samples" in figures:
            text = (
                f"{name} {figures['canary']:.2g} vs stable {figures.get('baseline', 0):.2g} "
                f"over {figures['samples']:.0f} samples"
            )
            if "log_evidence" in figures and "log_threshold" in figures:
                evidence = math.exp(min(figures["log_evidence"], 700.0))
                limit = math.exp(figures["log_threshold"])
                text += f", evidence {evidence:.3g} (fails at {limit:.3g})"
            parts.append(text)
    return " · ".join(parts)


def answer_split(before: dict[str, int], after: dict[str, int]) -> str:
    """`v1 79% · v2 21%`: who answered our requests between two snapshots."""
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    total = sum(v for v in delta.values() if v > 0)
    if not total:
        return ""
    order = sorted(delta.items(), key=lambda item: (item[0] == "500s", item[0]))
    return " ".join(f"{name} {100 * count / total:.0f}%" for name, count in order if count > 0)


def stable_artifact(kiln: Kiln, env: str) -> str:
    status = kiln.json("status", env)["environments"][0]
    return str((status.get("stable") or {}).get("artifact", ""))


def look_next(kiln: Kiln, repo: Path, *, keep: bool) -> None:
    """Step 8's ending: where kiln is running right now, and what to run against it."""
    controller = kiln.json("controller", "status")["controller"]
    urls = {e["name"]: e["url"] for e in kiln.json("status")["environments"]}
    cli = Path(sys.executable).parent / "kiln"
    print("\n   Where to look next. Running now:")
    dashboard = dashboard_url(kiln)
    if dashboard:
        print(f"     dashboard    {dashboard}  (log in: `kiln dashboard --open`)")
    print(f"     controller   {controller['address']}  (kiln {controller['version']})")
    for name, url in urls.items():
        print(f"     {name:<12} {url}")
    print("   Commands (in that directory, with kiln on PATH):")
    print(f'     export PATH="{cli.parent}:$PATH"; cd {repo}')
    print("     kiln status                 what runs where: releases, weights, router URLs")
    print("     kiln status prod --watch    the live step list and analysis of a rollout")
    print("     kiln history prod           every deployment: who, when, outcome")
    print("     kiln audit log --env prod   the ledger's events (drift.found, heal, rollback…)")
    print("     kiln down                   stop the controller, routers and instances")
    if keep:
        print("   Left running (--keep). When done: kiln down, then remove the directory")
        print(f"   (chmod -R u+w {repo.parent} && rm -rf {repo.parent}).")
    else:
        print("   The demo stops all of it now (`kiln down`) and removes its directory;")
        print("   `KILN_DEMO_KEEP=1 make demo` leaves it running to try these commands.")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    keep = "--keep" in args or os.environ.get("KILN_DEMO_KEEP", "") not in ("", "0")
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
    finished = False
    try:
        step(
            "1. Build v1 reproducibly, twice, and sign its provenance and SBOM",
            "the same commit builds the same bytes anywhere, and what it was built from is signed",
        )
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

        step(
            "2. Promote v1 along dev → staging → prod",
            "an artifact enters an environment only through its gates, "
            "after it ran healthy in the one before",
        )
        for env in ("dev", "staging", "prod"):
            kiln("deploy", env, v1["digest"])
            print(f"   {env}: 100% on v1")
        expect(stable_artifact(kiln, "prod") == v1["digest"], "prod runs v1")
        status = kiln.json("status")
        urls = {e["name"]: e["url"] for e in status["environments"]}
        print(f"   prod is served at {urls['prod']}; live traffic starts now")
        traffic = Traffic(urls["prod"])
        traffic.start()
        time.sleep(1.0)
        expect(traffic.ok > 0 and traffic.failed == 0, "live traffic flows to prod")

        step(
            "3. Build v2 and canary it into prod (setWeight 20 → analysis → 50 → analysis → 100)",
            "a new release gets more traffic only as the analysis of live requests allows",
        )
        set_version(repo, "2.0.0")
        git(repo, "commit", "-qam", "hello 2.0.0")
        v2 = build(kiln)
        sign(kiln, v2["digest"])
        through(kiln, v2["digest"], "dev", "staging")
        prod = deploy_and_follow(kiln, "prod", v2["digest"], traffic)
        expect(prod["rollout"]["phase"] == "succeeded", "the canary of v2 succeeded")
        expect(prod["stable"]["artifact"] == v2["digest"], "prod runs v2")
        expect(traffic.versions.get("2.0.0", 0) > 0, "prod's users get v2's answers")

        step(
            "4. Build v3 with a bad change (30% errors); analysis catches it and rolls back",
            "a bad release is caught by statistics on live traffic and undone with no human",
        )
        set_version(repo, "3.0.0", error_rate="0.3")
        git(repo, "commit", "-qam", "hello 3.0.0: a bad change")
        v3 = build(kiln)
        sign(kiln, v3["digest"])
        through(kiln, v3["digest"], "dev", "staging")
        prod = deploy_and_follow(kiln, "prod", v3["digest"], traffic)
        expect(prod["rollout"]["phase"] == "rolled-back", "v3 was rolled back automatically")
        expect(prod["stable"]["artifact"] == v2["digest"], "prod is back on v2")
        if traffic.first_bad is not None and traffic.last_bad is not None:
            restore = traffic.last_bad - traffic.first_bad
            print(f"   time to restore (first bad answer → last): {restore:.2f}s")
        print(f"   error answers served by v3 before the rollback: {traffic.bad_answers}")

        step(
            "5. Drift: kill -9 one prod instance; the controller replaces it by itself",
            "what differs from the declared state is replaced by a fresh instance, not patched",
        )
        heal_drift(kiln)

        step(
            "6. The ledger: verify it, and prove one event is included",
            "history cannot be rewritten unnoticed; one event checks offline with a public key",
        )
        print("   " + kiln("audit", "verify").strip().replace("\n", "\n   "))
        log = kiln.json("audit", "log", "--env", "prod", "--kind", "rollback")
        if not log["events"]:
            raise DemoFailed("the ledger has no rollback event for prod")
        seq = str(log["events"][-1]["seq"])
        proof = work / "proof.json"
        proof.write_text(kiln("audit", "prove", seq, "-o", "json"))
        key = repo / ".kiln" / "keys" / "ledger.pub"
        print("   " + kiln("audit", "verify", "--proof", str(proof), "--key", str(key)).strip())
        expect(True, f"the inclusion proof of event {seq} (the rollback) verifies offline")

        step(
            "7. DORA metrics for prod, from the ledger",
            "delivery performance is computed from the same signed record, not a separate tool",
        )
        print("   " + kiln("report", "dora", "--env", "prod").strip().replace("\n", "\n   "))
        dora = kiln.json("report", "dora", "--env", "prod")
        expect(
            (dora["deployments"], dora["failedDeployments"]) == (3, 1),
            "3 deployments to prod, 1 failed (v3): a change failure rate of 33%",
        )

        step(
            "8. The whole run",
            "users saw no failure through every switch, the rollback and the kill -9",
        )
        traffic.stop()
        print(
            f"   requests served: {traffic.ok + traffic.bad_answers}; versions: {traffic.versions}"
        )
        print(f"   failed requests (transport errors, 502/503/504): {traffic.failed}")
        expect(traffic.failed == 0, "zero failed requests across every switch and the rollback")
        look_next(kiln, repo, keep=keep)
        print(f"\n   finished in {time.monotonic() - started:.0f}s")
        finished = True
        return 0
    except DemoFailed as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # anything else unexpected is a failed demo too, without a traceback
        print(f"\nDEMO FAILED: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if traffic is not None:
            traffic.stop()
        if not (keep and finished):
            kiln("down", check=False)
            _remove(work)


if __name__ == "__main__":
    raise SystemExit(main())

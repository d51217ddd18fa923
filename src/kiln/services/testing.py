"""Use case ``test``: run the spec's tests against the built artifact, never the source tree.

Every (test, matrix combination) is one job, run in a thread pool:

- a **unit** test runs its command inside a scratch copy of the artifact's
  ``app/`` directory, with ``PYTHONPATH`` at the artifact's ``deps/``;
- an **integration / e2e / performance** test first starts a fresh instance of
  the artifact through the ``Provider`` (its own port and scratch), waits for it
  to be ready and passes its URL in ``$KILN_TARGET_URL``.

Matrix values are both config of the instance and variables of the test
command. Each job owns its scratch directory and its instance and removes them
in a ``finally``; ``run_tests`` additionally destroys whatever a job created and
did not destroy when it is interrupted (Ctrl-C reaches the main thread as
``KeyboardInterrupt``: the cancel flag is set, every running command is killed,
every instance destroyed, then the interrupt goes on).

Results become signed test-result attestations (``attest_results``) and ``test``
ledger events.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kiln.core.attest.predicates import TEST_RESULT_V1, TestFailure, TestResult
from kiln.core.attest.statement import statement
from kiln.core.digest import Digest
from kiln.core.gates.inputs import RequiredTest, TestCounts, TestRecord, required_tests
from kiln.core.ledger.kinds import EventKind
from kiln.core.release import Release, config_digest
from kiln.core.runtime.launch import argv
from kiln.core.runtime.model import Healthy, InstanceId, Unhealthy
from kiln.core.runtime.specs import launch_spec
from kiln.core.spec.models import Environment, TestKind, TestSpec
from kiln.errors import InvalidInput
from kiln.ports.attestations import AttestationStore
from kiln.ports.clock import Clock
from kiln.ports.keys import Signer
from kiln.ports.ledger import Recorder
from kiln.ports.runtime import Provider
from kiln.services.attest import attest

#: Instances of test runs carry this environment name (and so this label).
TEST_ENVIRONMENT = "test"
READY_TIMEOUT = 30.0
OUTPUT_TAIL = 4000


class Cancelled(Exception):
    """The run was interrupted; the job stopped early."""


@dataclass(frozen=True)
class Target:
    """The artifact under test: its unpacked read-only root and its image config."""

    service: str
    digest: Digest
    root: Path
    image_config: Mapping[str, Any]


@dataclass(frozen=True)
class Outcome:
    """One job's result, its output tail (for the failure message) and its timing."""

    record: TestRecord
    started: datetime
    finished: datetime
    command: tuple[str, ...]
    exit_code: int | None
    output: str = ""

    @property
    def seconds(self) -> float:
        return (self.finished - self.started).total_seconds()

    def to_json(self) -> dict[str, Any]:
        r = self.record
        return {
            "name": r.name,
            "label": r.label,
            "kind": r.kind.value,
            "matrix": dict(r.matrix),
            "passed": r.passed,
            "counts": {
                "passed": r.counts.passed,
                "failed": r.counts.failed,
                "errors": r.counts.errors,
                "skipped": r.counts.skipped,
            },
            "detail": r.detail,
            "exitCode": self.exit_code,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Tracker:
    """What running jobs own right now, so an interrupted run can tear it all down."""

    provider: Provider
    cancel: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    instances: set[InstanceId] = field(default_factory=set)
    processes: set[subprocess.Popen[bytes]] = field(default_factory=set)

    def destroy(self, instance: InstanceId) -> None:
        with contextlib.suppress(Exception):
            self.provider.destroy(instance, drain_timeout=0.5)
        with self.lock:
            self.instances.discard(instance)

    def kill_all(self) -> None:
        with self.lock:
            procs = list(self.processes)
        for proc in procs:
            _kill(proc)

    def destroy_all(self) -> None:
        with self.lock:
            left = list(self.instances)
        for instance in left:
            self.destroy(instance)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=5)


# -- counting -------------------------------------------------------------------------------------

_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in", re.MULTILINE)
_UNITTEST_END = re.compile(r"^(OK|FAILED)(?: \(([^)]*)\))?\s*$", re.MULTILINE)
_PYTEST_END = re.compile(r"=+ (.*?) in [\d.]+s", re.MULTILINE)


def count(output: str, exit_code: int) -> TestCounts:
    """Counts from unittest's or pytest's summary; else the command is one test."""
    ran = _UNITTEST_RAN.findall(output)
    end = _UNITTEST_END.findall(output)
    if ran and end:
        total = int(ran[-1])
        fields = {k.strip(): int(v) for k, v in re.findall(r"(\w+)=(\d+)", end[-1][1] or "")}
        failed, errors = fields.get("failures", 0), fields.get("errors", 0)
        skipped = fields.get("skipped", 0)
        passed = max(total - failed - errors - skipped, 0)
        return TestCounts(passed, failed, errors, skipped)
    summary = _PYTEST_END.findall(output)
    if summary:
        numbers = {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", summary[-1])}
        return TestCounts(
            numbers.get("passed", 0),
            numbers.get("failed", 0),
            numbers.get("errors", numbers.get("error", 0)),
            numbers.get("skipped", 0),
        )
    return TestCounts(passed=1) if exit_code == 0 else TestCounts(failed=1)


# -- one job --------------------------------------------------------------------------------------


def _command(command: Sequence[str]) -> list[str]:
    """``python`` in a test command means this host's interpreter; anything else runs as is."""
    try:
        return argv(command, interpreter=os.path.realpath(sys.executable))
    except InvalidInput:  # not a Python command: a test may run any program
        return list(command)


def _job_env(work: Path, target: Target, matrix: Mapping[str, str], url: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "TMPDIR": str(work / "tmp"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(target.root / "deps"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "KILN_ARTIFACT": str(target.digest),
        **dict(matrix),
    }
    if url:
        env["KILN_TARGET_URL"] = url
    return env


def start_instance(
    target: Target,
    env: Environment,
    provider: Provider,
    *,
    created: Callable[[InstanceId], None],
) -> tuple[InstanceId, str]:
    """A fresh instance of the artifact with ``env``'s config; (instance id, URL).

    ``created`` is told the instance id as soon as it exists, before waiting for
    readiness, so the caller can always destroy it (it may raise to stop here).
    """
    release = Release.of(env.name, target.digest, config_digest(env))
    spec = launch_spec(
        service=target.service,
        environment=env,
        release=release,
        root=target.root,
        image_config=target.image_config,
    )
    (instance,) = provider.create(spec, 1)
    created(instance.id)
    health = provider.wait_ready([instance.id], timeout=READY_TIMEOUT)
    result = health.get(instance.id)
    if not isinstance(result, Healthy):
        reason = result.reason if isinstance(result, Unhealthy) else "no health result"
        raise RuntimeError(f"the instance did not become ready: {reason}")
    return instance.id, f"http://{instance.address}"


def _start_instance(
    target: Target, matrix: Mapping[str, str], tracker: _Tracker
) -> tuple[InstanceId, str]:
    """A fresh instance of the artifact with the matrix as config; (instance id, URL)."""

    def created(instance: InstanceId) -> None:
        with tracker.lock:
            tracker.instances.add(instance)
        if tracker.cancel.is_set():
            raise Cancelled

    env = Environment.model_validate({"name": TEST_ENVIRONMENT, "config": dict(matrix)})
    return start_instance(target, env, tracker.provider, created=created)


def _run_command(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: float, tracker: _Tracker
) -> tuple[int | None, str]:
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(  # noqa: S603 - the spec's own test command
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        with tracker.lock:
            tracker.processes.add(proc)
        try:
            deadline = time.monotonic() + timeout
            code: int | None = None
            while code is None:
                if tracker.cancel.is_set():
                    _kill(proc)
                    raise Cancelled
                if time.monotonic() > deadline:
                    _kill(proc)
                    break
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = proc.wait(timeout=0.1)
        finally:
            with tracker.lock:
                tracker.processes.discard(proc)
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    return code, text


def run_one(
    test: TestSpec,
    required: RequiredTest,
    target: Target,
    *,
    scratch: Path,
    tracker: _Tracker,
    clock: Clock,
) -> Outcome:
    """Run one (test, matrix) job in its own scratch directory; always clean up."""
    started = clock.now()
    work = Path(tempfile.mkdtemp(prefix=f"{test.name}-", dir=scratch))
    instance: InstanceId | None = None
    cmd = _command(test.command)
    code: int | None = None
    output = ""
    try:
        shutil.copytree(target.root / "app", work / "app", symlinks=True)
        for node in (work / "app", *(work / "app").rglob("*")):
            if node.is_dir() and not node.is_symlink():
                node.chmod(0o755)
        (work / "tmp").mkdir()
        url = ""
        if test.kind is not TestKind.UNIT:
            instance, url = _start_instance(target, required.matrix, tracker)
        env = _job_env(work, target, required.matrix, url)
        code, output = _run_command(cmd, work / "app", env, test.timeout, tracker)
        counts = count(output, code if code is not None else 1)
        if code is None:
            detail = f"timed out after {test.timeout:g}s"
        elif code != 0:
            detail = f"exited {code}"
        else:
            detail = ""
        passed = code == 0 and counts.failed == 0 and counts.errors == 0
        if code == 0 and not passed:
            detail = "exited 0 but reported failures"
    except Cancelled:
        raise
    except Exception as exc:  # a broken instance or scratch copy fails this job, not the run
        counts, passed, detail = TestCounts(errors=1), False, f"could not run: {exc}"
    finally:
        if instance is not None:
            tracker.destroy(instance)
        _remove(work)
    record = TestRecord(
        name=test.name,
        kind=test.kind,
        passed=passed,
        counts=counts,
        matrix=dict(required.matrix),
        detail=detail,
    )
    return Outcome(record, started, clock.now(), tuple(cmd), code, output[-OUTPUT_TAIL:])


def _remove(path: Path) -> None:
    for node in path.rglob("*") if path.exists() else ():
        if node.is_dir() and not node.is_symlink():
            with contextlib.suppress(OSError):
                node.chmod(0o700)
    shutil.rmtree(path, ignore_errors=True)


# -- the run --------------------------------------------------------------------------------------


def jobs(tests: Sequence[TestSpec]) -> Iterator[tuple[TestSpec, RequiredTest]]:
    by_name = {t.name: t for t in tests}
    for required in required_tests(tests):
        yield by_name[required.name], required


def run_tests(
    tests: Sequence[TestSpec],
    target: Target,
    *,
    provider: Provider,
    scratch: Path,
    clock: Clock,
    workers: int = 2,
    on_done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run every (test, matrix) job in parallel; teardown is guaranteed on any exit."""
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    tracker = _Tracker(provider)
    outcomes: list[Outcome] = []
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="kiln-test")
    futures: list[Future[Outcome]] = []
    try:
        for test, required in jobs(tests):
            futures.append(
                pool.submit(
                    run_one,
                    test,
                    required,
                    target,
                    scratch=scratch,
                    tracker=tracker,
                    clock=clock,
                )
            )
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                outcome = future.result()
                outcomes.append(outcome)
                if on_done is not None:
                    on_done(outcome)
    except BaseException:
        tracker.cancel.set()
        tracker.kill_all()
        raise
    finally:
        if len(outcomes) < len(futures):
            tracker.cancel.set()
        _drain(pool, futures)
        tracker.destroy_all()
    outcomes.sort(key=lambda o: (o.record.name, sorted(o.record.matrix.items())))
    return outcomes


def _drain(pool: ThreadPoolExecutor, futures: Sequence[Future[Outcome]]) -> None:
    """Wait for every job to finish its own cleanup; a second Ctrl-C does not skip it."""
    for future in futures:
        future.cancel()
    while True:
        try:
            pool.shutdown(wait=True)
            return
        except KeyboardInterrupt:
            continue


# -- recording ------------------------------------------------------------------------------------


def to_result(outcome: Outcome) -> TestResult:
    r = outcome.record
    failures: tuple[TestFailure, ...] = ()
    if not r.passed:
        failures = (TestFailure(r.label, r.detail or "failed"),)
    return TestResult(
        suite=r.name,
        passed=r.counts.passed,
        failed=r.counts.failed + r.counts.errors + (0 if r.passed or r.counts.failed else 1),
        skipped=r.counts.skipped,
        started_on=outcome.started,
        finished_on=outcome.finished,
        failures=failures,
        runner={
            "kind": r.kind.value,
            "matrix": dict(r.matrix),
            "command": list(outcome.command),
            "exitCode": outcome.exit_code,
            "errors": r.counts.errors,
        },
    )


def attest_results(
    outcomes: Sequence[Outcome],
    target: Target,
    *,
    signer: Signer,
    store: AttestationStore,
    recorder: Recorder,
    actor: str,
) -> list[Digest]:
    """Sign one test-result attestation per job and record a ``test`` event for each."""
    made = []
    for outcome in outcomes:
        result = to_result(outcome)
        stmt = statement([(target.service, target.digest)], TEST_RESULT_V1, result.to_predicate())
        signed = attest(stmt, signer=signer, store=store, recorder=recorder, actor=actor)
        record = outcome.record
        recorder.record(
            EventKind.TEST,
            actor=actor,
            artifact=target.digest,
            links={"attestation": signed.digest},
            details={
                "test": record.name,
                "kind": record.kind.value,
                "matrix": dict(record.matrix),
                "passed": record.passed,
                "detail": record.detail,
                "counts": outcome.to_json()["counts"],
            },
        )
        made.append(signed.digest)
    return made

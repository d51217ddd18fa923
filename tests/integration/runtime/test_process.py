"""The process runtime against real processes of the hello app."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from kiln.adapters.runtime.process import ProcessProvider
from kiln.core.runtime.model import RELEASE, Healthy, Instance, InstanceId, State, Unhealthy
from kiln.errors import Permanent, Refused
from kiln.services.instances import heal
from tests.integration.runtime.conftest import create_and_exit, hello_spec, make_provider
from tests.integration.runtime.trees import (
    HELLO,
    STUBBORN_APP,
    hello_tree,
    make_read_only,
    make_writable,
    wait_connected,
)

pytestmark = pytest.mark.integration


class Ledger:
    """An in-memory Recorder that checks what it is given."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []

    def record(self, kind: object, *, actor: str, **fields: object) -> int:
        assert actor
        self.events.append((str(kind), dict(fields)))
        return len(self.events)


def get(instance: Instance, path: str = "/", timeout: float = 5.0) -> tuple[int, dict[str, object]]:
    with urllib.request.urlopen(f"http://{instance.address}{path}", timeout=timeout) as response:
        return response.status, json.loads(response.read())


def wait_for(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_instances_start_from_the_tree_and_pass_health(
    provider: ProcessProvider, tree: Path
) -> None:
    made = provider.create(hello_spec(tree, config={"APP_VERSION": "1.2.3"}), 2)
    results = provider.wait_ready([i.id for i in made], timeout=10)
    assert all(isinstance(r, Healthy) for r in results.values()), results
    assert len({i.port for i in made}) == 2
    for instance in made:
        status, body = get(instance)
        assert status == 200
        assert body == {"version": "1.2.3", "instance": instance.id.value, "path": "/"}
    listed = provider.list({RELEASE: "r1"})
    assert sorted(i.id for i in listed) == sorted(i.id for i in made)
    assert all(i.state is State.RUNNING for i in listed)


def test_the_host_site_packages_are_not_visible(provider: ProcessProvider, tree: Path) -> None:
    (instance,) = provider.create(hello_spec(tree), 1)
    env = Path(f"/proc/{instance.pid}/environ").read_bytes().split(b"\0")
    cmdline = Path(f"/proc/{instance.pid}/cmdline").read_bytes().split(b"\0")
    assert b"-S" in cmdline
    assert f"PYTHONPATH={tree / 'deps'}".encode() in env
    assert not any(item.startswith(b"VIRTUAL_ENV=") for item in env)


def test_a_killed_instance_is_reported_dead_and_replaced_from_the_same_tree(
    provider: ProcessProvider, tree: Path
) -> None:
    spec = hello_spec(tree)
    made = provider.create(spec, 2)
    provider.wait_ready([i.id for i in made], timeout=10)
    victim = made[0]
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)
    wait_for(lambda: provider.list({"dev.kiln.instance": victim.id.value})[0].state is State.DEAD)
    (dead,) = provider.list({"dev.kiln.instance": victim.id.value})
    # The exit status is known only if this provider reaped the child before list()
    # looked; otherwise /proc just says it is gone. Both are a dead instance.
    assert dead.detail in {"killed by SIGKILL", "process is gone"}
    assert isinstance(provider.health(victim.id), Unhealthy)

    ledger = Ledger()
    report = heal(provider, spec, 2, recorder=ledger)
    (fresh,) = report.created
    assert fresh.id != victim.id
    assert fresh.labels["dev.kiln.artifact"] == victim.labels["dev.kiln.artifact"]
    assert isinstance(provider.wait_ready([fresh.id], timeout=10)[fresh.id], Healthy)
    live = provider.list(spec.selector())
    assert sorted(i.id for i in live) == sorted([made[1].id, fresh.id])
    assert all(i.state is State.RUNNING for i in live)
    assert Path(f"/proc/{fresh.pid}/cwd").resolve() == tree / "app"
    ((kind, fields),) = ledger.events
    assert kind == "heal"
    assert fields["details"] == {  # type: ignore[comparison-overlap]
        "replaced": victim.id.value,
        "reason": "dead",
        "by": fresh.id.value,
        "provider": "process",
    }


def test_an_instance_that_crashes_at_start_fails_readiness_at_once(
    provider: ProcessProvider, tree: Path
) -> None:
    spec = hello_spec(tree, config={"APP_VERSION": "not a version"})
    (instance,) = provider.create(spec, 1)
    started = time.monotonic()
    result = provider.wait_ready([instance.id], timeout=20)[instance.id]
    assert isinstance(result, Unhealthy)
    assert "exited with code 1" in result.reason
    assert time.monotonic() - started < 10
    # The log writer is its own process: the last lines land a moment after the exit.
    wait_for(lambda: any("InvalidVersion" in line for line in provider.logs(instance.id)))


def test_a_missing_interpreter_is_a_clear_error_and_leaves_nothing_behind(
    state_dir: Path, tree: Path
) -> None:
    provider = make_provider(state_dir, bwrap=None, interpreter=state_dir / "no-python")
    with pytest.raises(Permanent, match="no-python: No such file"):
        provider.create(hello_spec(tree), 1)
    assert provider.list() == []
    assert list((state_dir / "instances" / "scratch").iterdir()) == []


def test_a_writable_tree_is_refused(provider: ProcessProvider, tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    with pytest.raises(Refused, match="writable"):
        provider.create(hello_spec(tmp_path), 1)


def test_graceful_decommission_lets_the_in_flight_request_finish(
    provider: ProcessProvider, tree: Path, state_dir: Path
) -> None:
    spec = hello_spec(tree, config={"EXTRA_LATENCY_MS": "1500"})
    (instance,) = provider.create(spec, 1)
    provider.wait_ready([instance.id], timeout=10)
    answers: list[int] = []
    request = threading.Thread(target=lambda: answers.append(get(instance)[0]))
    request.start()
    wait_connected(instance.port)
    time.sleep(0.3)  # then the handler picks the request up
    ended = provider.destroy(instance.id, drain_timeout=5)
    request.join(5)
    assert answers == [200]
    assert ended.graceful and ended.exit_code == 0
    assert not (state_dir / "instances" / "scratch" / instance.id.value).exists()
    assert provider.list() == []


@pytest.fixture(scope="module")
def stubborn_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    source = tmp_path_factory.mktemp("stubborn-src") / "app.py"
    source.write_text(STUBBORN_APP)
    root = tmp_path_factory.mktemp("stubborn") / "root"
    hello_tree(root, app_source=source)
    make_writable(root)
    shutil.copy2(HELLO / "app.py", root / "app" / "hello.py")
    make_read_only(root)
    yield root
    make_writable(root)


def test_an_instance_that_does_not_drain_in_time_is_killed(
    provider: ProcessProvider, stubborn_tree: Path
) -> None:
    (instance,) = provider.create(hello_spec(stubborn_tree), 1)
    assert isinstance(provider.wait_ready([instance.id], timeout=10)[instance.id], Healthy)
    ended = provider.destroy(instance.id, drain_timeout=0.3)
    assert not ended.graceful
    assert ended.exit_code == -signal.SIGKILL
    assert 0.3 <= ended.seconds < 3
    assert provider.list() == []


def test_a_restarted_provider_adopts_survivors_and_reaps_orphans(
    state_dir: Path, tree: Path
) -> None:
    made = create_and_exit(state_dir, tree, sandbox="none")
    # One instance dies while no controller runs; one process claims our labels
    # without a record (as if the controller crashed between start and record).
    os.kill(made[0][1], signal.SIGKILL)
    orphan = subprocess.Popen(
        [sys.executable, "-S", "-c", "import time; time.sleep(60)"],
        env={
            "KILN_OWNER": str(state_dir.resolve()),
            "KILN_INSTANCE_ID": "hello-dev-0badc0de",
            "KILN_SERVICE": "hello",
        },
        start_new_session=True,
    )
    try:
        provider = make_provider(state_dir, bwrap=None)
        wait_for(lambda: not Path(f"/proc/{made[0][1]}").exists())
        listed = {i.id.value: i.state for i in provider.list()}
        assert listed["hello-dev-0badc0de"] is State.ORPHAN
        assert listed[made[0][0]] is State.DEAD

        recovery = provider.recover(drain_timeout=1)
        assert sorted(recovery.adopted) == sorted([made[1][0], made[2][0]])
        assert recovery.gone == (made[0][0],)
        assert [o.instance for o in recovery.reaped] == ["hello-dev-0badc0de"]
        assert orphan.wait(timeout=5) == -signal.SIGTERM
        survivors = provider.list()
        assert sorted(i.id.value for i in survivors) == sorted([made[1][0], made[2][0]])
        results = provider.wait_ready([i.id for i in survivors], timeout=5)
        assert all(isinstance(r, Healthy) for r in results.values())
        assert not (state_dir / "instances" / "scratch" / made[0][0]).exists()
    finally:
        orphan.kill()
        orphan.wait()


def test_an_impostor_is_reported_but_never_signalled(state_dir: Path, tree: Path) -> None:
    spec = hello_spec(tree)
    labels = spec.labels(InstanceId("hello-dev-1badc0de"))
    from kiln.core.runtime.model import LABEL_ENV

    impostor = subprocess.Popen(
        [sys.executable, "-S", "-c", "import time; time.sleep(60)"],
        env={LABEL_ENV[key]: value for key, value in labels.items()},
        start_new_session=True,
    )
    try:
        provider = make_provider(state_dir, bwrap=None)
        wait_for(lambda: any(i.state is State.IMPOSTOR for i in provider.list(spec.selector())))
        assert provider.recover().reaped == ()
        heal(provider, spec, 1, recorder=Ledger())
        states = sorted(i.state.value for i in provider.list(spec.selector()))
        assert states == ["impostor", "running"]
        assert impostor.poll() is None
    finally:
        impostor.kill()
        impostor.wait()


def test_logs_rotate_by_size_and_tail_reads_across_files(state_dir: Path, tree: Path) -> None:
    provider = make_provider(state_dir, bwrap=None, log_max_bytes=4096, log_backups=2)
    (instance,) = provider.create(hello_spec(tree, config={"ACCESS_LOG": "1"}), 1)
    provider.wait_ready([instance.id], timeout=10)
    for n in range(300):
        get(instance, f"/request-{n:04d}")
    log = state_dir / "logs" / "instances" / f"{instance.id.value}.log"
    wait_for(lambda: "request-0299" in log.read_text())
    files = sorted(log.parent.glob(f"{instance.id.value}.log*"))
    assert [f.name.removeprefix(instance.id.value) for f in files] == [".log", ".log.1", ".log.2"]
    assert all(f.stat().st_size <= 4096 for f in files)
    tail = provider.logs(instance.id, tail=3)
    assert [line.split('"GET ')[1].split(" ")[0] for line in tail] == [
        "/request-0297",
        "/request-0298",
        "/request-0299",
    ]


def test_instance_ids_are_unique_and_readable() -> None:
    ids = {InstanceId.new("hello", "dev", os.urandom(4).hex()) for _ in range(100)}
    assert len(ids) == 100
    assert all(i.value.startswith("hello-dev-") for i in ids)

"""The bubblewrap sandbox of the process runtime: the tree is read-only from inside."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from kiln.adapters.runtime import procfs
from kiln.adapters.runtime.process import ProcessProvider
from kiln.core.runtime.model import Decommissioned, Healthy, Instance, InstanceId, State, Unhealthy
from kiln.errors import Refused
from tests.integration.runtime.conftest import create_and_exit, hello_spec, make_provider
from tests.integration.runtime.trees import (
    HELLO,
    STUBBORN_APP,
    hello_tree,
    make_read_only,
    make_writable,
    wait_connected,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed"),
]

# Tries to write everywhere, prints what happened, then serves hello.
PROBE_APP = """
import json, os, runpy, sys
results = {}
for name, path in [
    ("app", os.path.join(os.getcwd(), "probe.txt")),
    ("deps", os.path.join(os.environ["PYTHONPATH"], "probe.txt")),
    ("usr", "/usr/probe.txt"),
    ("scratch", os.path.join(os.environ["HOME"], "probe.txt")),
    ("tmp", "/tmp/probe.txt"),
]:
    try:
        with open(path, "w") as handle:
            handle.write("x")
        results[name] = "written"
    except OSError as exc:
        results[name] = exc.strerror
print("PROBE " + json.dumps(results), flush=True)
runpy.run_path("hello.py", run_name="__main__")
"""


def tree_with_hello(factory: pytest.TempPathFactory, name: str, app: str) -> Path:
    """A read-only tree whose app.py is ``app``, with hello beside it as hello.py."""
    source = factory.mktemp(f"{name}-src")
    (source / "app.py").write_text(app)
    root = factory.mktemp(name) / "root"
    hello_tree(root, app_source=source / "app.py")
    make_writable(root)
    shutil.copy2(HELLO / "app.py", root / "app" / "hello.py")
    make_read_only(root)
    return root


@pytest.fixture(scope="module")
def probe_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tree_with_hello(tmp_path_factory, "probe", PROBE_APP)
    yield root
    make_writable(root)


def test_a_sandboxed_instance_cannot_write_into_its_tree(state_dir: Path, probe_tree: Path) -> None:
    provider = make_provider(state_dir)
    (instance,) = provider.create(hello_spec(probe_tree, sandbox="bubblewrap"), 1)
    assert instance.detail == "sandbox bubblewrap, network isolated"  # the default
    result = provider.wait_ready([instance.id], timeout=15)[instance.id]
    assert isinstance(result, Healthy), result
    line = next(x for x in provider.logs(instance.id) if x.startswith("PROBE "))
    written = json.loads(line.removeprefix("PROBE "))
    assert written == {
        "app": "Read-only file system",
        "deps": "Read-only file system",
        "usr": "Read-only file system",
        "scratch": "written",
        "tmp": "written",
    }
    assert not (probe_tree / "app" / "probe.txt").exists()
    assert not Path("/tmp/probe.txt").exists()  # the instance's /tmp is private


def test_sandboxed_instances_are_not_mistaken_for_orphans(state_dir: Path, tree: Path) -> None:
    provider: ProcessProvider = make_provider(state_dir)
    spec = hello_spec(tree, sandbox="bubblewrap", config={"EXTRA_LATENCY_MS": "1500"})
    made = provider.create(spec, 2)
    provider.wait_ready([i.id for i in made], timeout=15)
    assert [i.state for i in provider.list()] == [State.RUNNING, State.RUNNING]
    assert provider.recover().reaped == ()
    # Graceful inside the sandbox too: the in-flight request finishes.
    answers: list[int] = []

    def request() -> None:
        with urllib.request.urlopen(f"http://{made[0].address}/", timeout=5) as response:
            answers.append(response.status)

    thread = threading.Thread(target=request)
    thread.start()
    wait_connected(made[0].port)
    time.sleep(0.3)  # then the handler picks the request up
    ended: list[Decommissioned] = []
    stopper = threading.Thread(
        target=lambda: ended.append(provider.destroy(made[0].id, drain_timeout=5))
    )
    stopper.start()
    # While it drains, its port refuses new connections (the app closed the only
    # copy of the passed socket; bwrap holds none), and the request in flight finishes.
    deadline = time.monotonic() + 5
    while connects(made[0].port) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not connects(made[0].port)
    assert answers == []
    stopper.join(10)
    thread.join(5)
    assert answers == [200]
    assert ended[0].graceful and ended[0].seconds > 0.2
    time.sleep(0.1)
    assert [i.id for i in provider.list()] == [made[1].id]


# Tries the network from inside, prints what happened, keeps an extra port
# listening, then serves hello (on the socket it was given, or on PORT).
NET_PROBE_APP = """
import errno, json, os, runpy, socket
results = {}
def attempt(name, address):
    try:
        socket.create_connection(address, timeout=0.5).close()
        results[name] = "connected"
    except OSError as exc:
        results[name] = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
attempt("loopback", ("127.0.0.1", int(os.environ["PROBE_CONNECT"])))
attempt("outside", ("192.0.2.1", 80))  # TEST-NET-1 (RFC 5737): never a real host
extra = socket.socket()
extra.bind(("127.0.0.1", int(os.environ["PROBE_BIND"])))
extra.listen()
results["bind"] = "listening"
results["fds"] = os.environ.get("LISTEN_FDS")
print("NETPROBE " + json.dumps(results), flush=True)
runpy.run_path("hello.py", run_name="__main__")
"""


@pytest.fixture(scope="module")
def net_probe_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tree_with_hello(tmp_path_factory, "netprobe", NET_PROBE_APP)
    yield root
    make_writable(root)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


class NetProbe(NamedTuple):
    instance: Instance
    results: dict[str, str | None]  # what the app found when it tried the network
    listener: socket.socket  # a host listener the app was told to connect to
    extra: int  # the port the app bound and listened on by itself


def net_probe(
    provider: ProcessProvider, tree: Path, network: str, sandbox: str = "bubblewrap"
) -> NetProbe:
    """Start the network probe app and read what it found."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    extra = free_port()
    config = {"PROBE_CONNECT": str(listener.getsockname()[1]), "PROBE_BIND": str(extra)}
    spec = hello_spec(tree, sandbox=sandbox, network=network, config=config)
    (instance,) = provider.create(spec, 1)
    result = provider.wait_ready([instance.id], timeout=15)[instance.id]
    assert isinstance(result, Healthy), result
    line = next(x for x in provider.logs(instance.id) if x.startswith("NETPROBE "))
    return NetProbe(instance, json.loads(line.removeprefix("NETPROBE ")), listener, extra)


def test_an_isolated_instance_serves_its_port_and_reaches_nothing(
    state_dir: Path, net_probe_tree: Path
) -> None:
    provider = make_provider(state_dir)
    instance, results, listener, extra = net_probe(provider, net_probe_tree, "isolated")
    with listener:
        assert results == {
            "loopback": "ECONNREFUSED",  # its own empty loopback, not the host's
            "outside": "ENETUNREACH",  # no interface but lo, no route
            "bind": "listening",
            "fds": "1",
        }
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing from the sandbox ever arrived
    # Served through the inherited socket; the port it bound itself is unreachable.
    with urllib.request.urlopen(f"http://{instance.address}/", timeout=5) as response:
        assert json.loads(response.read())["instance"] == instance.id.value
    assert not connects(extra)
    # The app lives in a network namespace of its own; the controller does not.
    app = next(
        p.pid
        for p in procfs.labelled_processes(provider.owner)
        if p.session == instance.pid and procfs.comm(p.pid) != "bwrap"
    )
    assert Path(f"/proc/{app}/ns/net").readlink() != Path("/proc/self/ns/net").readlink()
    # It holds the socket as fd 3, and nothing else of the instance holds it (not bwrap).
    passed = Path(f"/proc/{app}/fd/3").readlink()
    assert str(passed).startswith("socket:")
    holders = {
        p.pid
        for p in procfs.labelled_processes(provider.owner)
        if p.session == instance.pid
        for fd in Path(f"/proc/{p.pid}/fd").iterdir()
        if fd.readlink() == passed
    }
    assert holders == {app}
    # The socket belongs to the app alone: once it is gone, so is the port.
    assert provider.destroy(instance.id, drain_timeout=5).graceful
    assert not connects(instance.port)


def test_network_host_lets_a_sandboxed_instance_connect_out(
    state_dir: Path, net_probe_tree: Path
) -> None:
    provider = make_provider(state_dir)
    instance, results, listener, extra = net_probe(provider, net_probe_tree, "host")
    with listener:
        assert results["loopback"] == "connected"
        assert results["fds"] is None  # it binds PORT itself
        accepted, _ = listener.accept()
        accepted.close()
    assert instance.detail == "sandbox bubblewrap, network host"
    assert connects(extra) and connects(instance.port)


def fake_bwrap(directory: Path, *, netns: bool) -> str:
    """A bwrap that cannot create network namespaces (or any sandbox at all)."""
    directory.mkdir(exist_ok=True)
    script = directory / "bwrap"
    refuse = 'for a in "$@"; do [ "$a" = --unshare-net ] && fail; done' if netns else "fail"
    script.write_text(
        "#!/bin/sh\n"
        'fail() { echo "bwrap: Creating new namespace failed: Operation not permitted" >&2;'
        " exit 1; }\n"
        f"{refuse}\n"
        f'exec {shutil.which("bwrap")} "$@"\n'
    )
    script.chmod(0o755)
    return str(script)


def test_without_network_namespaces_bubblewrap_refuses_and_auto_falls_back(
    state_dir: Path, net_probe_tree: Path, tmp_path: Path
) -> None:
    provider = make_provider(state_dir, bwrap=fake_bwrap(tmp_path / "bin", netns=True))
    strict = hello_spec(net_probe_tree, sandbox="bubblewrap", config={"PROBE_CONNECT": "1"})
    with pytest.raises(Refused, match="cannot create a network namespace here: bwrap: Creating"):
        provider.create(strict, 1)
    assert provider.list() == []
    assert list((state_dir / "instances" / "scratch").glob("*")) == []
    # auto: still sandboxed (read-only root), with the host's network, and says so.
    instance, results, listener, _ = net_probe(provider, net_probe_tree, "isolated", "auto")
    listener.close()
    assert results["loopback"] == "connected"
    assert instance.detail == (
        "sandbox bubblewrap, network host (no network namespace here: "
        "bwrap: Creating new namespace failed: Operation not permitted)"
    )
    assert [i.detail for i in provider.list()] == [instance.detail]


def test_an_unusable_bwrap_is_refused_by_bubblewrap_and_skipped_by_auto(
    state_dir: Path, tree: Path, tmp_path: Path
) -> None:
    provider = make_provider(state_dir, bwrap=fake_bwrap(tmp_path / "bin", netns=False))
    with pytest.raises(Refused, match="bwrap cannot start a sandbox here"):
        provider.create(hello_spec(tree, sandbox="bubblewrap"), 1)
    (instance,) = provider.create(hello_spec(tree, sandbox="auto"), 1)
    assert instance.detail.startswith("sandbox none, network host (bwrap cannot start")
    assert isinstance(provider.wait_ready([instance.id], timeout=15)[instance.id], Healthy)


def test_an_app_that_ignores_the_socket_is_explained(state_dir: Path, tmp_path: Path) -> None:
    # An app that binds PORT whatever it is given: inside the sandbox nobody can reach it.
    source = tmp_path / "app.py"
    source.write_text(
        "import os, runpy\n"
        "os.environ.pop('LISTEN_PID', None)\n"
        "runpy.run_path('hello.py', run_name='__main__')\n"
    )
    root = hello_tree(tmp_path / "root", app_source=source)
    make_writable(root)
    shutil.copy2(HELLO / "app.py", root / "app" / "hello.py")
    make_read_only(root)
    try:
        provider = make_provider(state_dir)
        (instance,) = provider.create(hello_spec(root, sandbox="bubblewrap"), 1)
        result = provider.wait_ready([instance.id], timeout=1.5)[instance.id]
        assert isinstance(result, Unhealthy)
        assert "TimeoutError" in result.reason
        assert "must serve on the socket it is given as fd 3" in result.reason
    finally:
        make_writable(root)


def test_isolated_instances_are_adopted_after_a_restart_and_orphans_reaped(
    state_dir: Path, tree: Path
) -> None:
    made = create_and_exit(state_dir, tree, sandbox="bubblewrap")
    (kept, _, kept_port), (drained, _, _), (lost, _, lost_port) = made
    # The controller that made them is gone; they still serve on their sockets.
    assert connects(kept_port) and connects(lost_port)
    (state_dir / "run" / "instances" / f"{lost}.json").unlink()  # as if never recorded
    provider = make_provider(state_dir)
    recovery = provider.recover(drain_timeout=2)
    assert sorted(recovery.adopted) == sorted([kept, drained])
    assert [o.instance for o in recovery.reaped] == [lost]
    assert not connects(lost_port)
    results = provider.wait_ready([InstanceId(kept), InstanceId(drained)], timeout=5)
    assert all(isinstance(r, Healthy) for r in results.values()), results
    assert isinstance(provider.health(InstanceId(kept)), Healthy)
    assert provider.destroy(InstanceId(drained), drain_timeout=5).graceful
    assert [i.id.value for i in provider.list()] == [kept]


def test_logs_rotate_inside_the_sandbox_too(state_dir: Path, tree: Path) -> None:
    provider = make_provider(state_dir, log_max_bytes=4096, log_backups=2)
    spec = hello_spec(tree, sandbox="bubblewrap", config={"ACCESS_LOG": "1"})
    (instance,) = provider.create(spec, 1)
    provider.wait_ready([instance.id], timeout=15)
    for n in range(200):
        with urllib.request.urlopen(f"http://{instance.address}/r-{n:04d}", timeout=5):
            pass
    log = state_dir / "logs" / "instances" / f"{instance.id.value}.log"
    deadline = time.monotonic() + 5
    while "r-0199" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert log.with_name(log.name + ".1").exists()
    assert "/r-0199" in provider.logs(instance.id, tail=1)[0]


def test_a_sandboxed_instance_that_crashes_at_start_fails_readiness_at_once(
    state_dir: Path, tree: Path
) -> None:
    provider = make_provider(state_dir)
    spec = hello_spec(tree, sandbox="bubblewrap", config={"APP_VERSION": "not a version"})
    (instance,) = provider.create(spec, 1)
    started = time.monotonic()
    result = provider.wait_ready([instance.id], timeout=20)[instance.id]
    assert isinstance(result, Unhealthy)
    assert time.monotonic() - started < 10  # the passed socket closes with it: no waiting
    assert not connects(instance.port)


def test_a_sandboxed_instance_that_ignores_sigterm_is_killed(
    state_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tree_with_hello(tmp_path_factory, "stubborn", STUBBORN_APP)
    try:
        provider = make_provider(state_dir)
        (instance,) = provider.create(hello_spec(root, sandbox="bubblewrap"), 1)
        assert isinstance(provider.wait_ready([instance.id], timeout=15)[instance.id], Healthy)
        ended = provider.destroy(instance.id, drain_timeout=0.3)
        assert not ended.graceful
        assert 0.3 <= ended.seconds < 5
        assert provider.list() == []
        assert not connects(instance.port)
    finally:
        make_writable(root)

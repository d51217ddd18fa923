"""The bubblewrap sandbox of the process runtime: the tree is read-only from inside."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from kiln.adapters.runtime.process import ProcessProvider
from kiln.core.runtime.model import Healthy, State
from tests.integration.runtime.conftest import hello_spec, make_provider
from tests.integration.runtime.trees import HELLO, hello_tree, make_writable, wait_connected

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


@pytest.fixture(scope="module")
def probe_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("probe-src")
    (source / "app.py").write_text(PROBE_APP)
    root = tmp_path_factory.mktemp("probe") / "root"
    hello_tree(root, app_source=source / "app.py")
    make_writable(root)
    shutil.copy2(HELLO / "app.py", root / "app" / "hello.py")
    from tests.integration.runtime.trees import make_read_only

    make_read_only(root)
    return root


def test_a_sandboxed_instance_cannot_write_into_its_tree(state_dir: Path, probe_tree: Path) -> None:
    provider = make_provider(state_dir)
    (instance,) = provider.create(hello_spec(probe_tree, sandbox="bubblewrap"), 1)
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
    ended = provider.destroy(made[0].id, drain_timeout=5)
    thread.join(5)
    assert answers == [200]
    assert ended.graceful and ended.seconds > 0.2
    time.sleep(0.1)
    assert [i.id for i in provider.list()] == [made[1].id]

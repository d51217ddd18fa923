"""Time from "start an instance" to "its health check answers 200", and back.

Baseline: a bare ``python -S app.py`` started with ``subprocess.Popen`` and polled
every 20 ms, no kiln at all. Against it, in the same run: the process provider
without a sandbox, with bubblewrap (host network, and the default isolated
network with the socket passed in), and the podman provider (when installed and
root). Each row is the median of N create → ready → destroy cycles of one
hello instance; the ratio is against the baseline's start-to-ready median.

Run: ``.venv/bin/python -m benchmarks.bench_runtime [--quick]``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tests.integration.runtime.trees import hello_tree, make_writable, oci_layout

from benchmarks.common import report
from kiln.adapters.runtime.podman import PodmanProvider
from kiln.adapters.runtime.process import ProcessProvider, host_interpreter
from kiln.adapters.secrets.filestore import FileSecretStore
from kiln.adapters.secrets.resolver import SecretResolver
from kiln.core.runtime.model import Healthy, ImageRef, LaunchSpec, Limits
from kiln.ports.runtime import Provider


def _ready(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("not ready")


def _baseline(tree: Path, port: int) -> tuple[float, float]:
    start = time.perf_counter()
    process = subprocess.Popen(
        [str(host_interpreter()), "-S", "app.py"],
        cwd=tree / "app",
        env={"PORT": str(port), "PYTHONPATH": str(tree / "deps"), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
    )
    _ready(port, time.monotonic() + 30)
    ready = time.perf_counter() - start
    start = time.perf_counter()
    process.terminate()
    process.wait()
    return ready, time.perf_counter() - start


def _cycle(provider: Provider, spec: LaunchSpec) -> tuple[float, float]:
    start = time.perf_counter()
    (instance,) = provider.create(spec, 1)
    result = provider.wait_ready([instance.id], timeout=30)[instance.id]
    ready = time.perf_counter() - start
    if not isinstance(result, Healthy):
        raise RuntimeError(f"{provider.name}: {result}")
    start = time.perf_counter()
    provider.destroy(instance.id, drain_timeout=5)
    return ready, time.perf_counter() - start


def _list_costs(
    state: Path, resolver: SecretResolver, spec: LaunchSpec, repeat: int
) -> list[dict[str, object]]:
    """``list()`` reads every record and scans /proc for orphans: what does it cost?

    Baseline: ``os.listdir('/proc')`` alone, the floor of any scan.
    """
    provider = ProcessProvider(state, resolver=resolver, bwrap=None)
    processes = sum(1 for entry in Path("/proc").iterdir() if entry.name.isdigit())
    rows: list[dict[str, object]] = []
    base = statistics.median(
        _time(lambda: list(Path("/proc").iterdir())) for _ in range(repeat * 5)
    )
    rows.append({"call": "listdir(/proc) (baseline)", "instances": 0, "ms": base * 1000})
    made = []
    try:
        for count in (0, 10):
            made += provider.create(spec, count - len(made))
            cost = statistics.median(_time(provider.list) for _ in range(repeat * 5))
            rows.append(
                {
                    "call": "ProcessProvider.list()",
                    "instances": count,
                    "ms": cost * 1000,
                    "ratio": cost / base,
                    "host_processes": processes,
                }
            )
    finally:
        for instance in made:
            provider.destroy(instance.id, drain_timeout=0)
    return rows


def _time(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    repeat = 3 if "--quick" in argv else 10
    work = Path(tempfile.mkdtemp(prefix="kiln-bench-"))
    runroot = Path(tempfile.mkdtemp(prefix="kiln-br-"))
    try:
        tree = hello_tree(work / "tree")
        layout = oci_layout(tree, work / "layout", tag="v1")
        state = work / ".kiln"
        state.mkdir(mode=0o700)
        resolver = SecretResolver(store=FileSecretStore.in_state_dir(state), environ={})

        def spec(
            sandbox: str, image: ImageRef | None = None, network: str = "isolated"
        ) -> LaunchSpec:
            return LaunchSpec(
                service="bench",
                environment="dev",
                release="r1",
                artifact="sha256:" + "a" * 64,
                config_digest="sha256:" + "c" * 64,
                root=tree,
                command=("python", "app.py"),
                limits=Limits(sandbox=sandbox, network=network),  # type: ignore[arg-type]
                image=image,
            )

        cases: list[tuple[str, Callable[[], tuple[float, float]]]] = [
            ("bare Popen (baseline)", lambda: _baseline(tree, 29871)),
            (
                "process",
                lambda: _cycle(ProcessProvider(state, resolver=resolver, bwrap=None), spec("none")),
            ),
        ]
        if shutil.which("bwrap"):
            sandboxed = ProcessProvider(state, resolver=resolver)
            cases.append(
                (
                    "process + bubblewrap, network host",
                    lambda: _cycle(sandboxed, spec("bubblewrap", network="host")),
                )
            )
            cases.append(
                (
                    "process + bubblewrap, network isolated",
                    lambda: _cycle(sandboxed, spec("bubblewrap")),
                )
            )
        if shutil.which("podman") and os.geteuid() == 0:
            podman = PodmanProvider(
                state,
                resolver=resolver,
                root=work / "podman",
                runroot=runroot,
                storage_driver="vfs",
            )
            cases.append(("podman", lambda: _cycle(podman, spec("none", ImageRef(layout, "v1")))))
        rows = []
        base = 0.0
        for name, run in cases:
            samples = [run() for _ in range(repeat)]
            ready = statistics.median(s[0] for s in samples)
            stop = statistics.median(s[1] for s in samples)
            base = base or ready
            rows.append(
                {
                    "runtime": name,
                    "start_to_ready_ms": ready * 1000,
                    "ratio": ready / base,
                    "destroy_ms": stop * 1000,
                    "n": repeat,
                }
            )
        report("runtime", rows, {"repeat": repeat, "python": sys.version.split()[0]})
        report("runtime_list", _list_costs(state, resolver, spec("none"), repeat), {})
    finally:
        if shutil.which("podman"):
            conf = work / ".kiln" / "run" / "podman" / "containers.conf"
            env = {**os.environ, "CONTAINERS_CONF": str(conf)}
            base_cmd = ["podman", "--root", str(work / "podman"), "--runroot", str(runroot)]
            subprocess.run(
                [*base_cmd, "--storage-driver", "vfs", "rm", "-af"],
                env=env,
                capture_output=True,
                check=False,
            )
        make_writable(work / "tree")
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(runroot, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

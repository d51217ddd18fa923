"""The process runtime: each instance is a host process started from the read-only tree.

An instance of a ``LaunchSpec`` is the host interpreter (``-S``: no host
site-packages) running the image command in ``ROOT/app`` with
``PYTHONPATH=ROOT/deps``, in its own session (``start_new_session``) so it
outlives the controller, with:

- its own loopback port in ``$PORT`` (``portpick``),
- its own scratch directory ``<state>/instances/scratch/<id>`` (``$HOME`` and
  ``$TMPDIR``), removed at decommission,
- an environment built from nothing (``kiln.core.runtime.launch``): image Env,
  release config, resolved secrets, kiln's variables and labels, and the owner
  marker ``KILN_OWNER=<state dir>`` that tells this provider's processes apart
  from other kiln state directories' on the same host,
- its stdout and stderr piped to a ``logpipe`` process that writes
  ``<state>/logs/instances/<id>.log`` with size-based rotation,
- optionally a bubblewrap sandbox (``sandbox``); in its default
  ``network: isolated`` mode the provider binds and listens on the port itself
  and passes the socket in (socket activation, ``LISTEN_FDS``), because the app
  has no network of its own.

Each instance's record (``records``) is written atomically under
``<state>/run/instances/`` once the process exists. ``recover()`` runs when a
controller starts: it adopts records whose process is alive (same pid, same
start time, same label), cleans up records whose process is gone, and reaps
orphan sessions (our owner marker and labels, no record). The decisions are
``kiln.core.runtime.adoption``'s; this module only reads /proc and signals.

Signals go to the instance's whole process group (it is a session leader), so
a sandbox's inner processes and anything the app forked get them too.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from kiln.adapters.runtime import logpipe, portpick, procfs, sandbox
from kiln.adapters.runtime.probe import poll_ready, probe
from kiln.adapters.runtime.records import InstanceRecord, RecordStore
from kiln.core.runtime import launch
from kiln.core.runtime.adoption import Orphan, Process, Recorded, Recovery, classify
from kiln.core.runtime.model import (
    INSTANCE,
    Decommissioned,
    HealthResult,
    Instance,
    InstanceId,
    LaunchSpec,
    State,
    Unhealthy,
    matches,
)
from kiln.errors import InvalidInput, KilnError, NotFound, Permanent, Refused
from kiln.ports.secrets import Resolved, SecretResolver

MiB = 1024 * 1024
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
_AUTO = "auto"


class _Detached(subprocess.Popen[bytes]):
    """A child meant to outlive this object (and this process).

    ``Popen.__del__`` warns about a running child and queues it for reaping by
    the next ``Popen``; an instance is supposed to keep running, and its exit
    status belongs to whoever watches it (``_reap``), so neither applies.
    """

    def __del__(self) -> None:
        return


def host_interpreter() -> Path:
    """The real interpreter behind this one (a venv's ``python`` is a symlink to it)."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return base if base.exists() else Path(os.path.realpath(sys.executable))


class ProcessProvider:
    """Implements ``kiln.ports.runtime.Provider`` with host processes."""

    name = "process"

    def __init__(
        self,
        state_dir: Path,
        *,
        resolver: SecretResolver,
        interpreter: Path | None = None,
        bwrap: str | None = _AUTO,
        host: str = "127.0.0.1",
        log_max_bytes: int = 10 * MiB,
        log_backups: int = 3,
        port_range: tuple[int, int] | None = None,
    ) -> None:
        self._state = state_dir.resolve()
        self._owner = str(self._state)
        self._resolver = resolver
        self._interpreter = interpreter or host_interpreter()
        self._prefix = Path(os.path.realpath(sys.base_prefix))
        self._bwrap = sandbox.find_bwrap() if bwrap == _AUTO else bwrap
        self._probed: dict[bool, str | None] = {}  # what bwrap can do here, probed once
        self._host = host
        self._log_max = log_max_bytes
        self._log_backups = log_backups
        self._port_range = port_range
        self._records = RecordStore(self._state / "run" / "instances")
        self._scratch_root = self._state / "instances" / "scratch"
        self._log_dir = self._state / "logs" / "instances"
        # Popen objects of processes this object started: polled so they never
        # linger as zombies, and the source of exit codes.
        self._children: dict[int, _Detached] = {}
        self._exits: dict[int, int] = {}

    @property
    def owner(self) -> str:
        return self._owner

    # --- create ------------------------------------------------------------------------

    def create(self, spec: LaunchSpec, count: int) -> list[Instance]:
        if count < 0:
            raise InvalidInput("count must be >= 0")
        _check_tree(spec.root)
        confinement = sandbox.decide(
            spec.limits.sandbox, spec.limits.network, bwrap=self._bwrap, probe=self._probe
        )
        resolved = self._resolver.resolve(spec.secrets)
        made: list[Instance] = []
        try:
            for _ in range(count):
                made.append(self._start(spec, resolved, confinement))
        except BaseException:
            for instance in made:
                with contextlib.suppress(KilnError, OSError):
                    self.destroy(instance.id, drain_timeout=0)
            raise
        return made

    def _probe(self, unshare_net: bool) -> str | None:
        if self._bwrap is None:
            return "bwrap is not installed"
        if unshare_net not in self._probed:
            self._probed[unshare_net] = sandbox.probe(self._bwrap, unshare_net)
        return self._probed[unshare_net]

    def _start(
        self, spec: LaunchSpec, resolved: Sequence[Resolved], confinement: sandbox.Confinement
    ) -> Instance:
        instance = InstanceId.new(spec.service, spec.environment, secrets.token_hex(4))
        # Held from choosing the port until the record names it, so two creates
        # (threads or processes sharing this state directory) never pick the same one.
        with self._records.locked():
            return self._start_locked(instance, spec, resolved, confinement)

    def _start_locked(
        self,
        instance: InstanceId,
        spec: LaunchSpec,
        resolved: Sequence[Resolved],
        confinement: sandbox.Confinement,
    ) -> Instance:
        taken = {record.port for record in self._records.all()}
        # A network-isolated app cannot bind a port the router reaches: it gets
        # a socket listening in the host's namespace instead (closed here once passed).
        listener = None
        if confinement.network == "isolated":
            listener = portpick.listen(self._host, taken=taken, port_range=self._port_range)
            port = int(listener.getsockname()[1])
        else:
            port = portpick.pick(self._host, taken=taken, port_range=self._port_range)
        try:
            return self._launch(instance, spec, resolved, confinement, port, listener)
        finally:
            if listener is not None:
                listener.close()

    def _launch(
        self,
        instance: InstanceId,
        spec: LaunchSpec,
        resolved: Sequence[Resolved],
        confinement: sandbox.Confinement,
        port: int,
        listener: socket.socket | None,
    ) -> Instance:
        scratch = self._scratch_root / instance.value
        scratch.mkdir(parents=True, mode=0o700)
        env = launch.environment(
            spec,
            instance,
            owner=self._owner,
            host=self._host,
            port=port,
            scratch=str(scratch),
            pythonpath=str(spec.root / "deps"),
            secrets={item.binding.name: item.value.reveal() for item in resolved},
            base=BASE_ENV,
            listen_fds=0 if listener is None else 1,
        )
        command = launch.argv(spec.command, interpreter=str(self._interpreter))
        cwd = spec.root / "app"
        if confinement.bwrap is not None:
            command = sandbox.wrap(
                command,
                bwrap=confinement.bwrap,
                tree=spec.root,
                scratch=scratch,
                python_prefix=self._prefix,
                cwd=cwd,
                network=confinement.network,
                activate=listener is not None,
            )
        self._log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        log = self._log_dir / f"{instance.value}.log"
        read_end, write_end = os.pipe()
        try:
            writer = _Detached(
                [
                    str(self._interpreter),
                    "-S",
                    str(Path(logpipe.__file__)),
                    str(log),
                    str(self._log_max),
                    str(self._log_backups),
                ],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=dict(BASE_ENV),
                start_new_session=True,
                close_fds=True,
            )
            self._children[writer.pid] = writer
            process = _Detached(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL if listener is None else listener.fileno(),
                stdout=write_end,
                stderr=write_end,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            # The log writer (if it started) sees end-of-file once the pipe closes and exits.
            self._remove_scratch(scratch)
            raise Permanent(
                f"cannot start instance {instance}: {command[0]}: {exc.strerror}",
                hint="is the host interpreter (or bwrap) installed and executable?",
            ) from None
        finally:
            os.close(read_end)
            os.close(write_end)
        self._children[process.pid] = process
        info = procfs.stat(process.pid)
        if info is None:  # pragma: no cover - /proc always has a child we have not reaped
            raise Refused(f"instance {instance} vanished before it could be recorded")
        record = InstanceRecord(
            instance=instance,
            pid=process.pid,
            start_time=info.start_time,
            host=self._host,
            port=port,
            labels=spec.labels(instance),
            created=datetime.now(UTC).isoformat(timespec="milliseconds"),
            spec=spec,
            secrets={item.binding.name: item.version for item in resolved},
            sandbox=confinement.sandbox,
            network=confinement.network,
            scratch=str(scratch),
            log=str(log),
            extra={"sandbox_note": confinement.note} if confinement.note else {},
        )
        self._records.save(record)
        return self._observe(record)

    # --- observe -----------------------------------------------------------------------

    def _reap(self) -> None:
        for pid, child in list(self._children.items()):
            code = child.poll()
            if code is not None:
                self._exits[pid] = code
                del self._children[pid]

    def _running(self, record: InstanceRecord) -> bool:
        child = self._children.get(record.pid)
        if child is not None and child.poll() is not None:
            self._exits[record.pid] = child.returncode
            del self._children[record.pid]
        return procfs.is_running(record.pid, record.start_time)

    def _exit_detail(self, pid: int) -> str:
        code = self._exits.get(pid)
        if code is None:
            return "process is gone"
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def _observe(self, record: InstanceRecord) -> Instance:
        running = self._running(record)
        return Instance(
            id=record.instance,
            state=State.RUNNING if running else State.DEAD,
            labels=record.labels,
            host=record.host,
            port=record.port,
            pid=record.pid,
            created=record.created,
            secrets=record.secrets,
            detail=_confinement_detail(record) if running else self._exit_detail(record.pid),
        )

    def _orphans(self, records: Sequence[InstanceRecord]) -> tuple[Orphan, ...]:
        recorded = [Recorded(r.instance.value, r.pid, r.start_time) for r in records]
        found = procfs.labelled_processes(self._owner)
        return classify(recorded, found, owner=self._owner).orphans

    def list(self, selector: Mapping[str, str] | None = None) -> list[Instance]:
        wanted = selector or {}
        self._reap()
        records = self._records.all()
        seen = [self._observe(record) for record in records]
        found = procfs.scan(self._owner)
        recorded = [Recorded(r.instance.value, r.pid, r.start_time) for r in records]
        labels_of = {p.pid: p.labels for p in found.ours}
        for orphan in classify(recorded, found.ours, owner=self._owner).orphans:
            labels = labels_of.get(min(orphan.pids), {INSTANCE: orphan.instance})
            seen.append(
                Instance(
                    id=_safe_id(orphan.instance),
                    state=State.ORPHAN,
                    labels=labels,
                    pid=orphan.session,
                    detail=f"no record; session {orphan.session}, pids {list(orphan.pids)}",
                )
            )
        sessions: dict[int, Process] = {}
        for process in found.impostors:
            sessions.setdefault(process.session, process)
        for session, process in sorted(sessions.items()):
            seen.append(
                Instance(
                    id=_safe_id(process.labels[INSTANCE]),
                    state=State.IMPOSTOR,
                    labels=dict(process.labels),
                    pid=process.pid,
                    detail=f"kiln labels but no owner marker; session {session}; not touched",
                )
            )
        return [instance for instance in seen if matches(instance.labels, wanted)]

    def health(self, instance: InstanceId, *, timeout: float = 1.0) -> HealthResult:
        record = self._record(instance)
        if not self._running(record):
            return Unhealthy(instance, f"not running: {self._exit_detail(record.pid)}")
        result = probe(instance, record.host, record.port, record.spec.health_path, timeout=timeout)
        return _explain(record, result)

    def wait_ready(
        self, instances: Sequence[InstanceId], *, timeout: float, interval: float = 0.02
    ) -> dict[InstanceId, HealthResult]:
        records = {i: self._record(i) for i in instances}

        def look(instance: InstanceId, _round: int) -> tuple[str, int, str] | str:
            record = records[instance]
            if not self._running(record):
                return self._exit_detail(record.pid)
            return record.host, record.port, record.spec.health_path

        results = poll_ready(instances, timeout=timeout, interval=interval, look=look)
        return {i: _explain(records[i], result) for i, result in results.items()}

    def logs(self, instance: InstanceId, *, tail: int = 100) -> builtins.list[str]:
        path = self._log_dir / f"{instance.value}.log"
        if not path.exists():
            raise NotFound(f"no logs for instance {instance}", hint="see `kiln instances list`")
        return logpipe.tail(str(path), tail, self._log_backups)

    def _record(self, instance: InstanceId) -> InstanceRecord:
        record = self._records.get(instance)
        if record is None:
            raise NotFound(f"no instance {instance}", hint="see `kiln instances list`")
        return record

    # --- destroy -----------------------------------------------------------------------

    def destroy(self, instance: InstanceId, *, drain_timeout: float) -> Decommissioned:
        started = time.monotonic()
        record = self._records.get(instance)
        if record is None:
            for orphan in self._orphans(self._records.all()):
                if orphan.instance == instance.value:
                    graceful = self._stop_session(orphan.session, orphan.pids, drain_timeout)
                    self._remove_scratch(self._scratch_root / instance.value)
                    return Decommissioned(instance, graceful, time.monotonic() - started, None)
            raise NotFound(f"no instance {instance}", hint="see `kiln instances list`")
        graceful = True
        if self._running(record):
            self._terminate(record)
            if not self._wait_gone(record, drain_timeout):
                graceful = False
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(record.pid, signal.SIGKILL)
                self._wait_gone(record, 5.0)
        self._kill_leftovers(record.pid)
        self._reap()
        self._records.delete(instance)
        self._remove_scratch(Path(record.scratch) if record.scratch else None)
        return Decommissioned(
            instance, graceful, time.monotonic() - started, self._exits.get(record.pid)
        )

    def _terminate(self, record: InstanceRecord) -> None:
        """SIGTERM the app, not the sandbox around it.

        Under bubblewrap the session leader is bwrap, and bwrap dies of SIGTERM
        at once, taking its PID namespace (and the draining app) with it. So the
        app's processes get SIGTERM and bwrap is left to exit when they do.
        """
        if record.sandbox != "bubblewrap":
            with contextlib.suppress(ProcessLookupError):
                os.killpg(record.pid, signal.SIGTERM)
            return
        for process in procfs.labelled_processes(self._owner):
            if process.session == record.pid and procfs.comm(process.pid) != "bwrap":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    def _wait_gone(self, record: InstanceRecord, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._running(record):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def _kill_leftovers(self, session: int) -> None:
        """SIGKILL whatever of the instance's session outlived its leader."""
        for process in procfs.labelled_processes(self._owner):
            if process.session == session:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)

    def _stop_session(self, session: int, pids: Sequence[int], timeout: float) -> bool:
        # Waited for by identity as well as by label: an exiting process loses its
        # environment (so its labels) before it closes its files, e.g. a listening socket.
        known = {pid: info.start_time for pid in pids if (info := procfs.stat(pid)) is not None}
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(session, sig)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + (timeout if sig is signal.SIGTERM else 5.0)
            while time.monotonic() < deadline:
                self._reap()
                alive = [p for p in procfs.labelled_processes(self._owner) if p.session == session]
                if not alive and not any(procfs.is_running(p, t) for p, t in known.items()):
                    return sig is signal.SIGTERM
                time.sleep(0.01)
        return False

    def _remove_scratch(self, path: Path | None) -> None:
        if path is None or self._scratch_root not in path.parents:
            return

        def writable(function: object, name: str, info: object) -> None:
            target = Path(name)
            target.chmod(stat.S_IRWXU)  # an app may leave read-only files; we still clean
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)

        if path.exists():
            shutil.rmtree(path, onerror=writable)

    # --- restart -----------------------------------------------------------------------

    def recover(self, *, drain_timeout: float = 2.0) -> Recovery:
        """Adopt live instances, forget dead ones, reap orphans. Run once at start-up.

        Holds the records lock, so an instance another process is creating right
        now (started, record not yet written) is not mistaken for an orphan.
        """
        with self._records.locked():
            return self._recover(drain_timeout)

    def _recover(self, drain_timeout: float) -> Recovery:
        records = self._records.all()
        recorded = [Recorded(r.instance.value, r.pid, r.start_time) for r in records]
        found = procfs.labelled_processes(self._owner)
        adoption = classify(recorded, found, owner=self._owner)
        by_id = {r.instance.value: r for r in records}
        for name in adoption.gone:
            record = by_id[name]
            self._records.delete(record.instance)
            self._remove_scratch(Path(record.scratch) if record.scratch else None)
        for orphan in adoption.orphans:
            self._stop_session(orphan.session, orphan.pids, drain_timeout)
            self._remove_scratch(self._scratch_root / _safe_id(orphan.instance).value)
        return Recovery(adoption.adopted, adoption.gone, adoption.orphans)


def _explain(record: InstanceRecord, result: HealthResult) -> HealthResult:
    """Say what a network-isolated app that never answers most likely does wrong."""
    if record.network != "isolated" or not isinstance(result, Unhealthy):
        return result
    if "TimeoutError" not in result.reason:  # it answered, refused or died: no guess needed
        return result
    return Unhealthy(
        result.instance,
        f"{result.reason} (network-isolated sandbox: the app must serve on the socket "
        "it is given as fd 3, LISTEN_FDS=1, or the spec must say runtime.network: host)",
    )


def _confinement_detail(record: InstanceRecord) -> str:
    detail = f"sandbox {record.sandbox}, network {record.network}"
    note = record.extra.get("sandbox_note")
    return f"{detail} ({note})" if note else detail


def _check_tree(root: Path) -> None:
    app = root / "app"
    if not app.is_dir():
        raise NotFound(
            f"{root} is not an unpacked artifact (no app/ directory)",
            hint="instances start from the tree the artifacts unpacker writes",
        )
    for path in (root, app):
        if stat.S_IMODE(path.stat().st_mode) & 0o222:
            raise Refused(
                f"{path} is writable; instances start only from a read-only tree",
                hint="the unpacker makes trees read-only; never run from a build directory",
            )


def _safe_id(value: str) -> InstanceId:
    try:
        return InstanceId(value)
    except InvalidInput:
        return InstanceId("invalid-" + secrets.token_hex(4))

"""The HAProxy router: HAProxy as the data plane, driven only through its runtime
API (the ``stats socket ... level admin``), never reloaded.

``base_config`` writes the one static part: a frontend per environment, an empty
``roundrobin`` backend ``be_<env>`` (dynamic servers need a dynamic algorithm),
L7 retries of connection failures and empty responses with redispatch to
another server. ``HAProxyProcess`` (in ``haproxy_runtime``, with the runtime
API client and the ``show stat`` parser) runs it in the foreground (``-db``).

``HAProxyRouter.apply`` maps a route table onto runtime commands:

- a new backend: ``add server be/NAME ADDR weight W`` (dynamic servers start in
  maintenance), then ``set server be/NAME state ready``;
- weights: ``set server be/NAME weight W``, raises before cuts, so at no moment
  is every server at weight 0 (which HAProxy answers with 503);
- a removed backend: ``set server be/NAME state drain`` now; on a later apply (or
  ``settle``) once its ``scur`` is 0: ``state maint`` then ``del server``
  (HAProxy refuses to delete a server that is not in maintenance or still has
  connections).

Release weights (0..100, shared by the release's backends) become per-server
HAProxy weights (0..256): each server's share ``w_release / n_backends`` is
scaled so the largest is 256 and rounded, never to 0 for a live share.

Metrics (``haproxy_metrics``): counters from ``show stat`` (CSV, parsed into
typed rows at the edge), summed per release in a ``CountBook`` that keeps the
last counts of deleted servers, so a release's totals never go backwards; latency
histograms from HAProxy's request log, which a config built with ``log_fd``
writes one line per request to a pipe that a ``LatencyLog`` reads.

The first header rule on the header fixed in the config (the blue/green
preview) is mapped on its own: its release's servers go into a second backend
``be_<env>_preview``, and the rule's value into a runtime ACL file the frontend
matches. With ``rules`` (``haproxy_rules.RuleMaps``) every other header rule,
the cookie rules and the sticky cookie go through runtime maps to *release
backends*, one per release a rule or the sticky cookie can reach
(``haproxy_rules``).
A preview port (``PreviewRoute.port``) is a second frontend in the base config,
bound to that port on the listener's host, whose only backend is the same
preview backend: a table's listener on that port puts its release's servers
there (with none, HAProxy answers 503). HAProxy cannot open a port at runtime,
so a table naming another port is refused. Mirroring (HAProxy 2.6 has no native
mirroring), more target releases than release backends, and rules or stickiness
on an HAProxy started without ``rules`` are refused, not half-applied.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from math import gcd, lcm
from pathlib import Path

from kiln.adapters.traffic.haproxy_metrics import (
    LOG_FORMAT,
    CountBook,
    LatencyLog,
    Tally,
    counters,
)
from kiln.adapters.traffic.haproxy_rules import (
    RuleMaps,
    cli_argument,
    mapped_rules,
    release_backend_name,
    release_slots,
    rules_config,
    sticky_releases,
)
from kiln.adapters.traffic.haproxy_runtime import (
    HAProxyProcess,
    RuntimeAPI,
    ServerStat,
    parse_info,
    parse_stat,
)
from kiln.core.traffic.metrics import (
    BackendHealth,
    DataPlaneHealth,
    RouterMetrics,
)
from kiln.core.traffic.table import Backend, HeaderMatch, RouteTable, from_json, must_install
from kiln.errors import InvalidInput, Permanent, Temporary
from kiln.fsio import write_atomic

MAX_WEIGHT = 256
# Dynamic servers do not inherit default-server settings and start with no idle
# connection pool (purge delay 0, max idle 0): every request then opens a new
# backend connection, about 5x slower. These restore keep-alive reuse.
SERVER_OPTIONS = "pool-purge-delay 10s pool-max-conn -1"


def backend_name(environment: str) -> str:
    return f"be_{_safe(environment)}"


def server_name(backend: Backend) -> str:
    """A stable HAProxy server name for an address (HAProxy names allow [A-Za-z0-9_.:-])."""
    return "s_" + _safe(backend.address)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def preview_backend_name(environment: str) -> str:
    return f"{backend_name(environment)}_preview"


@dataclass(frozen=True, slots=True)
class PreviewRoute:
    """The one header rule HAProxy maps: requests whose ``header`` holds a value listed
    in the ``values`` file (changed at runtime with ``add acl``/``del acl``) go to the
    preview backend, while it has a server."""

    header: str
    values: Path
    port: int | None = None  # the preview frontend's port (blue/green previewPort)


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def base_config(
    environment: str,
    listen: str,
    stats_socket: Path,
    *,
    threads: int = 1,
    preview: PreviewRoute | None = None,
    log_fd: int | None = None,
    rules: RuleMaps | None = None,
) -> str:
    """The static configuration; everything after start goes through the runtime API.

    With ``log_fd``, one line per request (``LOG_FORMAT``) goes to that inherited
    descriptor (the request-log pipe, see ``haproxy_metrics``), never blocking.
    With ``rules``, the runtime maps and release backends of header and cookie
    rules and of the sticky cookie (``haproxy_rules``).
    """
    be = backend_name(environment)
    route = ""
    preview_backend = ""
    log_global = log_frontend = ""
    if log_fd is not None:
        log_global = f"    log fd@{log_fd} len 1024 format raw local0\n"
        log_frontend = f'    log global\n    option dontlognull\n    log-format "{LOG_FORMAT}"\n'
    if preview is not None:
        if not _TOKEN.match(preview.header):
            raise InvalidInput(f"preview header {preview.header!r} is not a header name")
        pbe = preview_backend_name(environment)
        route = (
            f"    acl kiln_preview req.hdr({preview.header}) -m str -f {preview.values}\n"
            f"    use_backend {pbe} if kiln_preview {{ nbsrv({pbe}) gt 0 }}\n"
        )
        preview_backend = f"\nbackend {pbe}\n    balance roundrobin\n    http-reuse safe\n"
        if preview.port is not None:
            host = listen.rpartition(":")[0]
            preview_backend += (
                f"\nfrontend fe_{_safe(environment)}_preview\n    bind {host}:{preview.port}\n"
                f"    option forwardfor\n{log_frontend}    default_backend {pbe}\n"
            )
    variables = rule_routes = weighted = release_backends = ""
    if rules is not None:
        variables, rule_routes, weighted, release_backends = rules_config(be, rules)
    return f"""# generated by kiln: do not edit, kiln drives this HAProxy through its runtime API
global
    nbthread {threads}
    # A second HAProxy on the same port must fail to bind, not share it silently.
    noreuseport
    stats socket {stats_socket} mode 600 level admin
    stats timeout 30s
{log_global}
defaults
    mode http
    timeout connect 3s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    option http-keep-alive
    # L7 retries of idempotent-safe failures (no response byte yet), each on another server.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend fe_{_safe(environment)}
    bind {listen}
    option forwardfor
{log_frontend}{variables}{route}{rule_routes}    default_backend {be}

backend {be}
    balance roundrobin
    http-reuse safe
{weighted}{preview_backend}{release_backends}"""


def server_weights(table: RouteTable) -> dict[str, tuple[Backend, str, int]]:
    """server name -> (backend, release, HAProxy weight 0..256) for a table.

    Exact when the per-server shares reduce to integers within 0..256 (75/25 ->
    3/1; 50 % over two servers vs 50 % over one -> 1, 1, 2); otherwise scaled so
    the largest is 256 and rounded, a live share never rounding to 0.
    """
    multiple = 1
    for rel in table.releases:
        if rel.backends:
            multiple = lcm(multiple, len(rel.backends))
    shares: dict[str, tuple[Backend, str, int]] = {}
    for rel in table.releases:
        for backend in rel.backends:
            share = rel.weight * multiple // len(rel.backends)
            shares[server_name(backend)] = (backend, rel.name, share)
    divisor = 0
    for _, _, share in shares.values():
        divisor = gcd(divisor, share)
    top = max((share for _, _, share in shares.values()), default=0)
    out: dict[str, tuple[Backend, str, int]] = {}
    for name, (backend, release, share) in shares.items():
        if share == 0 or top == 0:
            weight = 0
        elif top // divisor <= MAX_WEIGHT:
            weight = share // divisor
        else:
            weight = max(1, round(share / top * MAX_WEIGHT))
        out[name] = (backend, release, weight)
    return out


class HAProxyRouter:
    """The ``Router`` port on a running HAProxy, for one environment.

    The served table is persisted in ``state_file`` so a restarted controller (or
    pusher) knows the generation; HAProxy itself keeps serving regardless. HAProxy
    knows nothing of generations, so the generation rule is enforced here: ``apply``
    reads the state file, checks, converges and writes under an exclusive ``flock``
    on ``<state_file>.lock``, so two pushers on one host (a stale leader and its
    successor) cannot interleave and an older table never overwrites a newer. With a
    ``preview`` route (its HAProxy started from ``base_config(..., preview=...)``)
    the preview header rule is mapped too: the rule's release gets servers in the
    preview backend and the rule's value is listed in the route's values file.
    With ``rules`` (the same ``RuleMaps`` as the config) other header rules,
    cookie rules and stickiness are mapped through release backends.
    """

    def __init__(
        self,
        *,
        api: RuntimeAPI,
        environment: str,
        state_file: Path,
        preview: PreviewRoute | None = None,
        book: CountBook | None = None,
        log: LatencyLog | None = None,
        rules: RuleMaps | None = None,
    ) -> None:
        self.api = api
        self.environment = environment
        self.backend = backend_name(environment)
        self.preview_backend = preview_backend_name(environment)
        self.state_file = state_file
        self.preview = preview
        self.book = book if book is not None else CountBook()
        self.log = log  # the request-log reader, started at the first metrics read
        self.rules = rules  # maps and release backends (``haproxy_rules``)
        self.release_backends = [
            release_backend_name(self.backend, slot)
            for slot in range(rules.slots if rules is not None else 0)
        ]
        self.preview_header = preview.header if preview is not None else None

    def current(self) -> RouteTable | None:
        try:
            return from_json(self.state_file.read_bytes())
        except FileNotFoundError:
            return None

    def _rows(self) -> dict[str, dict[str, ServerStat]]:
        """backend -> server name -> row, for this environment's backends."""
        out: dict[str, dict[str, ServerStat]] = {self.backend: {}, self.preview_backend: {}}
        out.update({be: {} for be in self.release_backends})
        for row in parse_stat(self.api.command("show stat")):
            if row.backend in out:
                out[row.backend][row.name] = row
        return out

    def servers(self) -> dict[str, ServerStat]:
        """The main backend's servers, by name."""
        return self._rows()[self.backend]

    def _wanted(self, table: RouteTable | None) -> dict[str, dict[str, tuple[Backend, str, int]]]:
        """backend -> server name -> (address, release, weight) that ``table`` declares."""
        preview: dict[str, tuple[Backend, str, int]] = {}
        release = _preview_release(table, self.preview_header)
        if table is not None and release is not None:
            for rel in table.releases:
                if rel.name == release:
                    preview = {server_name(b): (b, rel.name, 1) for b in rel.backends}
        wanted = {
            self.backend: server_weights(table) if table else {},
            self.preview_backend: preview,
        }
        wanted.update({be: {} for be in self.release_backends})
        backends = {rel.name: rel.backends for rel in table.releases} if table else {}
        for be, release in zip(self.release_backends, self._slots(table), strict=False):
            wanted[be] = {server_name(b): (b, release, 1) for b in backends.get(release, ())}
        return wanted

    def _slots(self, table: RouteTable | None) -> list[str]:
        """The release each release backend holds, in slot order."""
        return release_slots(table, self.preview_header) if self.rules is not None else []

    def differences(self) -> list[str]:
        """Live server weights and states against the last applied table (``LiveView``)."""
        current = self.current()
        if current is None:
            return []
        live = self._rows()
        out: list[str] = []
        for be, desired in self._wanted(current).items():
            where = "" if be == self.backend else f" (in {be})"
            for name, (_, release, weight) in sorted(desired.items()):
                row = live[be].get(name)
                if row is None:
                    out.append(f"HAProxy has no server {name}{where} for release {release}")
                elif row.status.startswith(("MAINT", "DRAIN")):
                    out.append(f"HAProxy server {name}{where} of release {release} is {row.status}")
                elif row.weight != weight:
                    out.append(
                        f"HAProxy server {name}{where} of release {release} has weight "
                        f"{row.weight}, the table gives {weight}"
                    )
            for name, row in sorted(live[be].items()):
                if name not in desired and not row.status.startswith(("MAINT", "DRAIN")):
                    out.append(f"HAProxy serves {name}{where}, which no table declares")
        for path, entries in self._maps(current).items():
            listed = self._listed(path)
            if listed != entries:
                out.append(
                    f"HAProxy's map {path.name} holds {len(listed)} entries that differ from "
                    f"the {len(entries)} the table gives"
                )
        return out

    def apply(self, table: RouteTable) -> int:
        self._check_mappable(table)
        if table.environment != self.environment:
            raise InvalidInput(
                f"table is for {table.environment!r}, this HAProxy serves {self.environment!r}"
            )
        with self._exclusive():
            current = self.current()
            if not must_install(current, table):
                return table.generation
            self._converge(table)
            write_atomic(self.state_file, table.to_json(), mode=0o600)
            self.book.declare(self._keys(table))
        self.reap()
        return table.generation

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the pushers' lock of this environment (blocking: a push is short)."""
        path = self.state_file.with_name(self.state_file.name + ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _check_mappable(self, table: RouteTable) -> None:
        embedded = "use the embedded router (router: {kind: embedded}) for this"
        if table.mirror:
            raise InvalidInput(
                "the HAProxy router cannot mirror traffic: HAProxy 2.6 has no native mirroring",
                hint=embedded,
            )
        rule = _preview_rule(table, self.preview_header)
        if self.rules is None:
            if table.sticky:
                raise InvalidInput(
                    "this HAProxy was started without rule maps: it does not map sticky cookies",
                    hint="start it from base_config(..., rules=RuleMaps(...))",
                )
            if mapped_rules(table, self.preview_header):
                raise InvalidInput(
                    "this HAProxy was started without rule maps: it maps only the preview "
                    "header rule",
                    hint="start it from base_config(..., rules=RuleMaps(...))",
                )
        else:
            self._check_rules(table, self.rules)
        self._check_listeners(table, rule)

    def _check_rules(self, table: RouteTable, rules: RuleMaps) -> None:
        sticky = table.sticky
        fixed = "the sticky cookie is fixed when HAProxy starts: `kiln down`, then deploy"
        if sticky is not None and (sticky.cookie, sticky.max_age) != (rules.cookie, rules.max_age):
            raise InvalidInput(
                f"this HAProxy sets the sticky cookie {rules.cookie} (max-age "
                f"{rules.max_age}s), the table asks for {sticky.cookie} "
                f"(max-age {sticky.max_age}s)",
                hint=fixed,
            )
        needed = self._slots(table)
        if len(needed) > rules.slots:
            raise InvalidInput(
                f"the HAProxy router has {rules.slots} release backends for header/cookie "
                f"rules and stickiness, this table needs {len(needed)} ({', '.join(needed)})",
                hint="use the embedded router (router: {kind: embedded}) for this",
            )

    def _check_listeners(self, table: RouteTable, rule: HeaderMatch | None) -> None:
        """At most one listener, on the preview port this HAProxy was started with, for
        the release the preview header reaches (both share the preview backend)."""
        if not table.listeners:
            return
        port = self.preview.port if self.preview is not None else None
        listener = table.listeners[0]
        if len(table.listeners) > 1 or listener.port != port:
            raise InvalidInput(
                "this HAProxy has "
                + (f"its preview port on {port}" if port else "no preview port")
                + f", the table asks for {', '.join(str(i.port) for i in table.listeners)}",
                hint="HAProxy opens ports only when it starts: `kiln down`, then deploy",
            )
        if rule is not None and rule.release != listener.release:
            raise InvalidInput(
                f"the preview header reaches {rule.release} but port {listener.port} "
                f"serves {listener.release}; HAProxy has one preview backend for both",
                hint="use the embedded router to preview two releases at once",
            )

    def restore(self) -> int | None:
        """Give a freshly started HAProxy the persisted table's servers and weights.

        A new HAProxy starts with an empty backend while the state file still names
        the last table, so ``apply`` of that same table would be a no-op: this pushes
        it regardless. Returns the generation restored, None when there is none.
        """
        current = self.current()
        if current is None:
            return None
        self._converge(current)
        return current.generation

    def _converge(self, table: RouteTable) -> None:
        """Runtime commands that make the live backends serve ``table``."""
        wanted = self._wanted(table)
        rows = self._rows()
        maps = self._maps(table)
        if self.rules is not None:  # who answered -> its release, before servers serve
            self._commit_map(self.rules.servers, maps[self.rules.servers])
        self._converge_backend(self.backend, wanted[self.backend], rows[self.backend])
        if self.rules is not None:
            # Servers first, then the map entries that route to them, then drain the rest.
            for be in self.release_backends:
                self._add_servers(be, wanted[be], rows[be])
            self._commit_map(self.rules.rules, maps[self.rules.rules])
            self._commit_map(self.rules.sticky, maps[self.rules.sticky])
            for be in self.release_backends:
                self._drain_unwanted(be, wanted[be], rows[be])
        rule = _preview_rule(table, self.preview_header)
        if self.preview is None:
            return
        preview_rows = rows[self.preview_backend]
        if wanted[self.preview_backend]:  # servers first, then the value that routes to them
            self._add_servers(self.preview_backend, wanted[self.preview_backend], preview_rows)
        self._set_preview_value(self.preview.values, rule.value if rule else None)
        self._drain_unwanted(self.preview_backend, wanted[self.preview_backend], preview_rows)

    def _maps(self, table: RouteTable | None) -> dict[Path, list[tuple[str, str]]]:
        """Each runtime map's entries for ``table`` (none without ``rules``): the rules'
        patterns and the sticky releases -> release backend; server -> release (for
        ``Set-Cookie``) only when the table is sticky."""
        if self.rules is None:
            return {}
        slot_of = dict(zip(self._slots(table), self.release_backends, strict=False))
        servers: list[tuple[str, str]] = []
        if table is not None and table.sticky is not None:
            servers = [(name, rel) for name, (_, rel, _) in server_weights(table).items()]
        return {
            self.rules.rules: [
                (p, slot_of[r]) for p, r in mapped_rules(table, self.preview_header)
            ],
            self.rules.sticky: [(r, slot_of[r]) for r in sticky_releases(table)],
            self.rules.servers: servers,
        }

    def _listed(self, path: Path) -> list[tuple[str, str]]:
        """A runtime map's entries, in HAProxy's order (``show map``)."""
        listed: list[tuple[str, str]] = []
        for line in self.api.command(f"show map {path}").splitlines():
            ref, _, entry = line.partition(" ")
            key, _, value = entry.partition(" ")
            if ref.startswith("0x"):
                listed.append((key, value))
        return listed

    def _commit_map(self, path: Path, entries: list[tuple[str, str]]) -> None:
        """Make a runtime map hold exactly ``entries`` (in order), replaced at once:
        ``prepare map``, ``add map @VERSION`` each, ``commit map``. Nothing is sent
        when it already does."""
        if self._listed(path) == entries:
            return
        answer = self.api.command(f"prepare map {path}").strip()
        version = answer.rpartition(":")[2].strip()
        if not answer.startswith("New version created:") or not version.isdigit():
            raise Permanent(
                f"HAProxy refused `prepare map {path}`: {answer}",
                hint="an HAProxy started from a config without kiln's maps (an older kiln) "
                "cannot take rules or stickiness: `kiln down`, then deploy",
            )
        for key, value in entries:
            self.api.expect(f"add map @{version} {path} {cli_argument(key)} {value}")
        self.api.expect(f"commit map @{version} {path}")

    def _add_servers(
        self,
        be: str,
        desired: dict[str, tuple[Backend, str, int]],
        existing: dict[str, ServerStat],
    ) -> None:
        for name, (backend, _, weight) in desired.items():
            row = existing.get(name)
            if row is None:
                self.api.expect(
                    f"add server {be}/{name} {backend.address} weight {weight} {SERVER_OPTIONS}",
                    "New server registered",
                )
                self.api.expect(f"set server {be}/{name} state ready")
            elif row.status.startswith(("MAINT", "DRAIN")):
                self.api.expect(f"set server {be}/{name} weight {weight}")
                self.api.expect(f"set server {be}/{name} state ready")

    def _converge_backend(
        self,
        be: str,
        desired: dict[str, tuple[Backend, str, int]],
        existing: dict[str, ServerStat],
    ) -> None:
        self._add_servers(be, desired, existing)
        # Raise weights before cutting others, so some server always takes traffic.
        changes = [
            (weight, name)
            for name, (_, _, weight) in desired.items()
            if name in existing and existing[name].weight != weight
        ]
        changes.sort(key=lambda c: -(c[0] - existing[c[1]].weight))
        for weight, name in changes:
            self.api.expect(f"set server {be}/{name} weight {weight}")
        self._drain_unwanted(be, desired, existing)

    def _drain_unwanted(
        self,
        be: str,
        desired: dict[str, tuple[Backend, str, int]],
        existing: dict[str, ServerStat],
    ) -> None:
        for name, row in existing.items():
            if name not in desired and not row.status.startswith(("DRAIN", "MAINT")):
                self.api.expect(f"set server {be}/{name} state drain")

    def _set_preview_value(self, path: Path, value: str | None) -> None:
        """Make the preview values file hold exactly ``value`` (nothing for None)."""
        values = str(path)
        listed = [
            line.split(None, 1)[1]
            for line in self.api.command(f"show acl {values}").splitlines()
            if len(line.split(None, 1)) == 2
        ]
        if value is not None and value not in listed:
            self.api.expect(f"add acl {values} {value}")
        for old in listed:
            if old != value:
                self.api.expect(f"del acl {values} {old}")

    def reap(self) -> list[str]:
        """Delete drained servers that no table wants and that hold no session; their
        last counts stay in their release's totals (``CountBook.retire``)."""
        wanted = self._wanted(self.current())
        idle = [
            (be, name)
            for be, rows in self._rows().items()
            for name, row in rows.items()
            if name not in wanted[be] and row.current_sessions == 0
        ]
        if not idle:
            return []
        for be, name in idle:
            self.api.expect(f"set server {be}/{name} state maint")
        identity, _ = self._identity()
        final = self._rows()  # in maintenance: these counts no longer move
        deleted: list[str] = []
        for be, name in idle:
            answer = self.api.command(f"del server {be}/{name}").strip()
            row = final[be].get(name)
            if answer.startswith("Server deleted") and row is not None:
                self.book.retire(f"{be}/{name}", _counters(row), identity=identity)
                deleted.append(name)
            # else: idle or queued connections remain; a later reap will finish it.
        return deleted

    def settle(self, timeout: float = 10.0) -> bool:
        """Reap until no unwanted server remains (True) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            self.reap()
            wanted = self._wanted(self.current())
            if all(set(rows) <= set(wanted[be]) for be, rows in self._rows().items()):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def _owners(self, table: RouteTable | None) -> dict[tuple[str, str], str]:
        """(backend, server name) -> release, for the servers ``table`` declares."""
        return {
            (be, name): release
            for be, servers in self._wanted(table).items()
            for name, (_, release, _) in servers.items()
        }

    def _keys(self, table: RouteTable | None) -> dict[str, str]:
        """``backend/server`` -> release, the book's keys, for ``table``."""
        return {f"{be}/{name}": release for (be, name), release in self._owners(table).items()}

    def _identity(self) -> tuple[str, int]:
        """Which HAProxy process answers (its counters are its own), and its DroppedLogs."""
        info = parse_info(self.api.command("show info"))
        identity = f"{info['Pid']}@{info.get('Start_time_sec', '')}"
        return identity, int(info.get("DroppedLogs") or 0)

    def metrics(self) -> RouterMetrics:
        if self.log is not None and self.log.start():
            self.log.drain()
        current = self.current()
        self.book.declare(self._keys(current))
        identity, dropped = self._identity()
        live = {
            f"{be}/{name}": _counters(row)
            for be, rows in self._rows().items()
            for name, row in rows.items()
        }
        totals = self.book.read(
            identity=identity,
            dropped=dropped,
            live=live,
            releases=[r.name for r in current.releases] if current else [],
        )
        return RouterMetrics(
            generation=current.generation if current else None,
            releases=tuple(tally.metrics(release) for release, tally in sorted(totals.items())),
        )

    def _lost_lines(self) -> str:
        lost = self.book.lost
        if not lost:
            return ""
        return f"; {lost} request log lines lost (counted as latency unknown)"

    def health(self) -> DataPlaneHealth:
        current = self.current()
        try:
            rows = self._rows()
        except Temporary as exc:
            return DataPlaneHealth(False, current.generation if current else None, (), exc.message)
        owners = self._owners(current)
        return DataPlaneHealth(
            serving=current is not None,
            generation=current.generation if current else None,
            detail=("serving" if current else "no route table yet") + self._lost_lines(),
            backends=tuple(
                BackendHealth(owners.get((be, name), ""), row.address, _is_up(row.status), 0)
                for be, by_name in rows.items()
                for name, row in by_name.items()
            ),
        )


def _preview_rule(table: RouteTable | None, header: str | None) -> HeaderMatch | None:
    """The first header rule on the preview ``header`` (the preview ACL's)."""
    if table is None or header is None:
        return None
    return next(
        (r for r in table.rules if isinstance(r, HeaderMatch) and r.name.lower() == header.lower()),
        None,
    )


def _preview_release(table: RouteTable | None, header: str | None) -> str | None:
    """The release the preview backend serves: the header rule's, else the listener's."""
    rule = _preview_rule(table, header)
    if rule is not None:
        return rule.release
    if table is not None and table.listeners:
        return table.listeners[0].release
    return None


def _counters(row: ServerStat) -> Tally:
    return counters(sum(row.responses), row.responses[4], row.connect_errors + row.response_errors)


def _is_up(status: str) -> bool:
    """``show stat`` says ``no check`` for a ready server without health checks."""
    return status.startswith("UP") or status == "no check"


__all__ = [
    "HAProxyProcess",
    "HAProxyRouter",
    "PreviewRoute",
    "RuleMaps",
    "RuntimeAPI",
    "ServerStat",
    "base_config",
    "parse_stat",
    "server_weights",
]

"""Small builders for drift planner tests: declared releases, instances, route tables."""

from __future__ import annotations

from kiln.core.drift.model import DeclaredRelease, Desired
from kiln.core.runtime.model import (
    ARTIFACT,
    CONFIG,
    ENVIRONMENT,
    INSTANCE,
    RELEASE,
    SERVICE,
    Instance,
    InstanceId,
    State,
)
from kiln.core.traffic.table import Backend, HeaderMatch, Mirror, RouteTable, Sticky
from kiln.core.traffic.table import Release as RouteRelease

A1 = "sha256:" + "a" * 64
A2 = "sha256:" + "b" * 64
C1 = "sha256:" + "c" * 64
C2 = "sha256:" + "d" * 64
R1 = DeclaredRelease("rel-1111111111111111", A1, C1)
R2 = DeclaredRelease("rel-2222222222222222", A2, C1)


def desired(
    release: DeclaredRelease | None = R1,
    replicas: int = 2,
    *,
    paused: bool = False,
    rollout: bool = False,
    self_heal: bool = True,
    sticky: bool = False,
) -> Desired:
    return Desired(
        service="hello",
        environment="prod",
        replicas=replicas,
        release=release,
        paused=paused,
        rollout_in_progress=rollout,
        self_heal=self_heal,
        sticky=sticky,
    )


def inst(
    n: int,
    release: DeclaredRelease = R1,
    *,
    state: State = State.RUNNING,
    artifact: str | None = None,
    config: str | None = None,
    environment: str = "prod",
    secrets: dict[str, int | None] | None = None,
) -> Instance:
    iid = InstanceId(f"hello-{environment}-{n:08x}")
    return Instance(
        id=iid,
        state=state,
        labels={
            SERVICE: "hello",
            ENVIRONMENT: environment,
            RELEASE: release.id,
            ARTIFACT: artifact if artifact is not None else release.artifact,
            CONFIG: config if config is not None else release.config,
            INSTANCE: iid.value,
        },
        port=20000 + n,
        created=f"{n:08d}",
        secrets=secrets or {},
    )


def table(
    *splits: tuple[DeclaredRelease, int, list[Instance]],
    generation: int = 7,
    preview: bool = False,
    mirror: bool = False,
    sticky: bool = False,
) -> RouteTable:
    releases = tuple(
        RouteRelease(r.id, weight, tuple(Backend(i.host, i.port) for i in instances))
        for r, weight, instances in splits
    )
    rules = (HeaderMatch("x-kiln-preview", "1", splits[0][0].id),) if preview else ()
    return RouteTable(
        generation,
        "prod",
        releases,
        rules,
        mirror=Mirror(splits[0][0].id) if mirror else None,
        sticky=Sticky() if sticky else None,
    )

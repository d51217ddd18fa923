"""Instance records: the confinement an instance got is written and read back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kiln.adapters.runtime.records import InstanceRecord, RecordStore, from_json, to_json
from kiln.core.runtime.model import InstanceId, Limits
from tests.unit.runtime import fakes

SPEC = dataclasses.replace(fakes.SPEC, limits=Limits(sandbox="bubblewrap", network="host"))
RECORD = InstanceRecord(
    instance=InstanceId("hello-dev-0000abcd"),
    pid=10,
    start_time=20,
    host="127.0.0.1",
    port=20001,
    labels={},
    created="2026-01-01T00:00:00.000+00:00",
    spec=SPEC,
    sandbox="bubblewrap",
    network="host",
    extra={"sandbox_note": "no network namespace here: nope"},
)


def test_a_record_keeps_its_sandbox_network_and_note(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    store.save(RECORD)
    assert store.get(RECORD.instance) == RECORD
    assert store.get(RECORD.instance).spec.limits.network == "host"  # type: ignore[union-attr]


def test_a_record_from_before_network_isolation_shared_the_host_network() -> None:
    data = to_json(RECORD)
    del data["network"]
    del data["spec"]["limits"]["network"]
    old = from_json(data)
    assert old.network == "host"  # what such an instance actually had
    assert old.spec.limits.network == "isolated"  # what its replacement gets: the default

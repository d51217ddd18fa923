"""What an instance runs in: the sandbox and network settings against what bwrap can do."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.adapters.runtime.sandbox import Confinement, activation, decide, wrap
from kiln.errors import ConfigError, Refused

NETNS = "bwrap: Creating new namespace failed: Operation not permitted"
USERNS = "bwrap: No permissions to creating new namespace"


def prober(*, usable: bool = True, netns: bool = True) -> tuple[list[bool], object]:
    asked: list[bool] = []

    def probe(unshare_net: bool) -> str | None:
        asked.append(unshare_net)
        if not usable:
            return USERNS
        return NETNS if unshare_net and not netns else None

    return asked, probe


# (setting, network, bwrap installed, usable, netns) -> confinement
CASES = [
    ("none", "isolated", True, True, True, Confinement(None, "host")),
    ("auto", "isolated", True, True, True, Confinement("/b", "isolated")),
    ("bubblewrap", "isolated", True, True, True, Confinement("/b", "isolated")),
    ("auto", "host", True, True, True, Confinement("/b", "host")),
    ("bubblewrap", "host", True, True, False, Confinement("/b", "host")),
    ("auto", "isolated", False, True, True, Confinement(None, "host", "bwrap is not installed")),
    (
        "auto",
        "isolated",
        True,
        True,
        False,
        Confinement("/b", "host", f"no network namespace here: {NETNS}"),
    ),
    (
        "auto",
        "isolated",
        True,
        False,
        False,
        Confinement(None, "host", f"bwrap cannot start a sandbox here: {USERNS}"),
    ),
    (
        "auto",
        "host",
        True,
        False,
        False,
        Confinement(None, "host", f"bwrap cannot start a sandbox here: {USERNS}"),
    ),
]


@pytest.mark.parametrize(("setting", "network", "installed", "usable", "netns", "expected"), CASES)
def test_the_settings_give_the_best_confinement_this_host_allows(
    setting: str, network: str, installed: bool, usable: bool, netns: bool, expected: Confinement
) -> None:
    _, probe = prober(usable=usable, netns=netns)
    got = decide(setting, network, bwrap="/b" if installed else None, probe=probe)  # type: ignore[arg-type]
    assert got == expected


def test_strict_bubblewrap_refuses_what_it_cannot_have() -> None:
    with pytest.raises(ConfigError, match="bwrap is not installed"):
        decide("bubblewrap", "isolated", bwrap=None, probe=prober()[1])  # type: ignore[arg-type]
    with pytest.raises(Refused, match="cannot create a network namespace") as caught:
        decide("bubblewrap", "isolated", bwrap="/b", probe=prober(netns=False)[1])  # type: ignore[arg-type]
    assert NETNS in caught.value.message
    assert "runtime.network to host" in (caught.value.hint or "")
    with pytest.raises(Refused, match="cannot start a sandbox here"):
        decide("bubblewrap", "host", bwrap="/b", probe=prober(usable=False)[1])  # type: ignore[arg-type]


def test_probes_run_only_when_needed() -> None:
    asked, probe = prober()
    decide("none", "isolated", bwrap="/b", probe=probe)  # type: ignore[arg-type]
    decide("auto", "isolated", bwrap="/b", probe=probe)  # type: ignore[arg-type]
    assert asked == [True]  # a working network namespace implies a working sandbox
    asked.clear()
    decide("auto", "host", bwrap="/b", probe=probe)  # type: ignore[arg-type]
    assert asked == [False]


def test_the_network_namespace_and_the_activation_shell_are_in_the_argv(tmp_path: Path) -> None:
    common = {"tree": tmp_path, "scratch": tmp_path, "python_prefix": tmp_path, "cwd": tmp_path}
    shared = wrap(["/py", "app.py"], bwrap="/b", **common)
    assert "--unshare-net" not in shared
    assert shared[-3:] == ["--", "/py", "app.py"]
    isolated = wrap(["/py", "app.py"], bwrap="/b", network="isolated", activate=True, **common)
    assert "--unshare-net" in isolated
    assert isolated[:4] == ["/bin/sh", "-c", 'exec 3<&0 </dev/null; exec "$@"', "kiln-listen"]
    assert isolated[4] == "/b"
    tail = isolated[isolated.index("--", isolated.index("--chdir")) + 1 :]
    assert tail == activation(["/py", "app.py"])
    assert tail == [
        "/bin/sh",
        "-c",
        'export LISTEN_PID=$$; exec "$@"',
        "kiln-listen-pid",
        "/py",
        "app.py",
    ]

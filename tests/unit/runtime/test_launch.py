"""argv and environment of an instance."""

from __future__ import annotations

import dataclasses

import pytest

from kiln.core.runtime.launch import argv, environment, labels_from_environment
from kiln.core.runtime.model import InstanceId, LaunchSpec
from kiln.errors import InvalidInput
from tests.unit.runtime import fakes

SPEC = dataclasses.replace(
    fakes.SPEC, image_env={"A": "image", "B": "image"}, config={"B": "config", "PORT": "1"}
)
ID = InstanceId("hello-dev-0000abcd")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["python", "app.py"], ["/py", "-S", "app.py"]),
        (["python3", "-m", "hello"], ["/py", "-S", "-m", "hello"]),
        (["python3.11", "app.py", "--x"], ["/py", "-S", "app.py", "--x"]),
    ],
)
def test_the_image_python_becomes_the_host_interpreter(
    command: list[str], expected: list[str]
) -> None:
    assert argv(command, interpreter="/py") == expected


def test_other_commands_are_refused() -> None:
    with pytest.raises(InvalidInput, match="Python apps only"):
        argv(["gunicorn", "app:app"], interpreter="/py")


def build(secrets: dict[str, str], spec: LaunchSpec = SPEC, listen_fds: int = 0) -> dict[str, str]:
    return environment(
        spec,
        ID,
        owner="/s",
        host="127.0.0.1",
        port=20001,
        scratch="/s/x",
        pythonpath="/t/deps",
        secrets=secrets,
        base={"PATH": "/usr/bin"},
        listen_fds=listen_fds,
    )


def test_precedence_is_image_then_config_then_secrets_then_kiln() -> None:
    env = build({"B": "secret"})
    assert env["A"] == "image"
    assert env["B"] == "secret"
    assert env["PORT"] == "20001"  # config cannot move the port
    assert env["KILN_INSTANCE_ID"] == ID.value
    assert env["KILN_OWNER"] == "/s"
    assert env["HOME"] == env["TMPDIR"] == "/s/x"
    assert labels_from_environment(env) == SPEC.labels(ID)


def test_a_secret_cannot_take_a_reserved_name() -> None:
    with pytest.raises(InvalidInput, match="reserved"):
        build({"PORT": "x"})


def test_socket_activation_variables_come_from_kiln_only() -> None:
    faked = dataclasses.replace(
        SPEC, config={"LISTEN_FDS": "4", "LISTEN_PID": "1", "LISTEN_FDNAMES": "x"}
    )
    plain = build({}, faked)
    assert not {"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"} & set(plain)
    passed = build({}, faked, listen_fds=1)
    assert passed["LISTEN_FDS"] == "1"
    assert "LISTEN_PID" not in passed  # the sandbox's wrapper sets it to the app's own pid
    assert passed["PORT"] == "20001"


@pytest.mark.parametrize("name", ["LISTEN_FDS", "LISTEN_PID"])
def test_a_secret_cannot_fake_socket_activation(name: str) -> None:
    with pytest.raises(InvalidInput, match="reserved"):
        build({name: "1"})

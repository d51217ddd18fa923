"""From release + environment + image config to a LaunchSpec."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiln.core.digest import Digest
from kiln.core.release import Release
from kiln.core.runtime.model import SecretBinding, SecretSource
from kiln.core.runtime.specs import launch_spec
from kiln.core.spec.models import Environment, Runtime, SecretRef
from kiln.errors import InvalidInput

RELEASE = Release.of("dev", Digest("sha256:" + "a" * 64), Digest("sha256:" + "c" * 64))
ENV = Environment(
    name="dev",
    config={"APP_VERSION": "1.0.0", "DEBUG": True, "WORKERS": 2},
    secrets={"DB_PASSWORD": SecretRef.model_validate({"from": "store", "key": "db", "version": 2})},
    runtime=Runtime(sandbox="none", memory="256m", cpus=0.5),
)
IMAGE = {
    "config": {
        "Cmd": ["python", "app.py"],
        "Env": ["PYTHONPATH=/deps", "A=b=c"],
        "ExposedPorts": {"8080/tcp": {}},
        "Labels": {"org.opencontainers.image.version": "1.0.0"},
    }
}


def test_a_launch_spec_takes_the_image_and_the_environment() -> None:
    spec = launch_spec(
        service="hello", environment=ENV, release=RELEASE, root=Path("/t"), image_config=IMAGE
    )
    assert spec.command == ("python", "app.py")
    assert spec.image_env == {"PYTHONPATH": "/deps", "A": "b=c"}
    assert spec.port == 8080
    assert spec.config == {"APP_VERSION": "1.0.0", "DEBUG": "true", "WORKERS": "2"}
    assert spec.secrets == (SecretBinding("DB_PASSWORD", SecretSource.STORE, "db", 2),)
    assert (spec.limits.sandbox, spec.limits.memory, spec.limits.cpus) == ("none", "256m", 0.5)
    assert spec.release == RELEASE.id and spec.health_path == "/healthz"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"Cmd": []}, "Cmd"),
        ({"Cmd": "python app.py"}, "Cmd"),
        ({"Cmd": ["python"], "Env": ["NOEQUALS"]}, "Env"),
        ({"Cmd": ["python"], "ExposedPorts": {"http": {}}}, "ExposedPorts"),
    ],
)
def test_a_malformed_image_config_names_the_field(config: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        launch_spec(
            service="hello", environment=ENV, release=RELEASE, root=Path("/t"), image_config=config
        )

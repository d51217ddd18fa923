"""From a ``LaunchSpec`` to the exact argv and environment of one instance.

Pure, so the rules are tested as tables:

- The image's ``python`` (any ``python``, ``python3``, ``python3.11``) becomes the
  host interpreter given by the provider, with ``-S``: no site-packages of the
  host leak in, so the app sees the standard library and ``deps/`` only and a
  missing dependency fails loudly instead of being found on the host.
- The environment is built from nothing, never inherited from the controller:
  image ``Env`` < release config < secrets < kiln's own variables, so a config
  key can never redirect ``PORT`` or the labels. A secret may not take a name
  kiln reserves.
- Socket activation (systemd's convention): when the provider passes the
  listening socket in, ``LISTEN_FDS`` says how many (fd 3 onwards); the
  sandbox sets ``LISTEN_PID`` to the app's own pid. Neither can come from the
  image or the config, so an app is never told about a socket it was not given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from kiln.core.runtime.model import LABEL_ENV, InstanceId, LaunchSpec
from kiln.errors import InvalidInput

_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")

#: The socket-activation variables (systemd's ``sd_listen_fds`` convention).
LISTEN_ENV = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")

#: Names kiln sets on every instance; config and secrets cannot override them.
RESERVED = frozenset(
    {
        "PORT",
        "HOST",
        "HOME",
        "TMPDIR",
        "PYTHONPATH",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
        "KILN_OWNER",
        *LISTEN_ENV,
        *LABEL_ENV.values(),
    }
)

#: The variable that ties a process to the provider (state directory) that made it.
OWNER_ENV = "KILN_OWNER"


def argv(command: Sequence[str], *, interpreter: str) -> list[str]:
    """The command with the image's ``python`` replaced by the host interpreter."""
    if not command:
        raise InvalidInput("empty command")
    head, *rest = command
    if _PYTHON.match(head):
        return [interpreter, "-S", *rest]
    raise InvalidInput(
        f"cannot run {head!r}: the process runtime starts Python apps only",
        hint='use a command like ["python", "app.py"] or ["python", "-m", "module"]',
    )


def environment(
    spec: LaunchSpec,
    instance: InstanceId,
    *,
    owner: str,
    host: str,
    port: int,
    scratch: str,
    pythonpath: str,
    secrets: Mapping[str, str],
    base: Mapping[str, str],
    listen_fds: int = 0,
) -> dict[str, str]:
    """The complete environment of one instance, in precedence order.

    ``base`` is the provider's minimal environment (``PATH``, ``LANG``).
    ``listen_fds`` is the number of listening sockets passed in from fd 3 on
    (0: none, the app binds ``PORT`` itself).
    """
    clash = sorted(RESERVED & set(secrets))
    if clash:
        raise InvalidInput(
            f"secret variable names {', '.join(clash)} are reserved by kiln",
            hint="bind the secret to another variable name",
        )
    env = dict(base)
    env.update(spec.image_env)
    env.update(spec.config)
    env.update(secrets)
    env.update(
        {
            "PORT": str(port),
            "HOST": host,
            "HOME": scratch,
            "TMPDIR": scratch,
            "PYTHONPATH": pythonpath,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            OWNER_ENV: owner,
        }
    )
    for name in LISTEN_ENV:
        env.pop(name, None)
    if listen_fds:
        env["LISTEN_FDS"] = str(listen_fds)
    for label, value in spec.labels(instance).items():
        env[LABEL_ENV[label]] = value
    return env


def labels_from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The kiln labels a process carries in its environment (missing ones left out)."""
    return {label: environ[name] for label, name in LABEL_ENV.items() if name in environ}

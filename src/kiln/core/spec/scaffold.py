"""The text ``kiln init`` writes: a short, commented spec built from what was detected.

Pure: the service layer inspects the directory and passes the findings here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Detected:
    """What ``kiln init`` found in the app's directory."""

    directory_name: str
    requirements: str | None  # a requirements-format file build.requirements can use
    entry_point: list[str] | None  # None: nothing found, the scaffold guesses app.py
    port: int = 8000
    lock_note: str | None = None  # a lock kiln cannot read directly, and how to export it


def service_name(directory_name: str) -> str:
    """A valid service name from a directory name (``My_App`` -> ``my-app``)."""
    name = re.sub(r"[^a-z0-9-]+", "-", directory_name.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"app-{name}" if name else "app"
    return name[:63]


def render(found: Detected) -> str:
    command = found.entry_point or ["python", "app.py"]
    command_text = "[" + ", ".join(json.dumps(part) for part in command) + "]"
    if found.requirements:
        requirements = f"  requirements: {found.requirements}   # pinned dependencies (detected)"
    elif found.lock_note:
        requirements = f"  # requirements: requirements.txt   # {found.lock_note}"
    else:
        requirements = "  # requirements: requirements.txt   # no lock or requirements file found"
    entry_note = "(detected)" if found.entry_point else "(guessed: check it)"
    return f"""\
# kiln.yaml: how kiln builds, tests, gates and deploys this service.
# Reference: docs/reference/kiln-yaml.md · check it with `kiln validate`.
service: {service_name(found.directory_name)}

build:
  command: {command_text}   # how an instance starts {entry_note}
  port: {found.port}                # the app reads its real port from $PORT
{requirements}

environments:
  # The promotion path, in order. Each environment gets fresh instances per release.
  - name: dev
    replicas: 1
    strategy:
      blueGreen: {{autoPromotionSeconds: 0}}   # switch as soon as the new release is healthy
  - name: prod
    replicas: 2
    strategy:
      canary:
        steps:                  # Argo Rollouts vocabulary
          - setWeight: 20
          - analysis: {{duration: 30s}}   # sequential judge on the router's error rate
          - setWeight: 100
"""

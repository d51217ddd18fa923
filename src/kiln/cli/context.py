"""The per-invocation context every command receives: flags, colour, verbosity.

Heavy things (rich consoles, the spec, settings) are built on first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from kiln.core.settings import Settings
    from kiln.core.spec.models import ServiceSpec


@dataclass
class App:
    spec_path: str
    flags: dict[str, str | None]
    color: bool = True
    verbosity: int = 0
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def spec_file(self) -> Path:
        return Path(self.spec_path)

    @property
    def spec_dir(self) -> Path:
        return self.spec_file.resolve().parent

    def console(self, *, stderr: bool = False) -> Console:
        key = "stderr" if stderr else "stdout"
        if key not in self._cache:
            from rich.console import Console

            self._cache[key] = Console(
                stderr=stderr,
                # --no-color / NO_COLOR: no escape codes at all, not even bold.
                color_system="auto" if self.color else None,
                no_color=not self.color,
                highlight=False,
                soft_wrap=True,
                # -q silences the human narration on stdout; errors use stderr.
                quiet=self.verbosity < 0 and not stderr,
            )
        console: Console = self._cache[key]
        return console

    def spec(self) -> ServiceSpec:
        """The validated spec; raises SpecError with every problem."""
        if "spec" not in self._cache:
            from kiln.services.spec import read_spec

            self._cache["spec"] = read_spec(self.spec_file)
        spec: ServiceSpec = self._cache["spec"]
        return spec

    def settings(self, *, output: str | None = None) -> Settings:
        """Flags > KILN_* > kiln.yaml settings > defaults (kiln.core.settings)."""
        key = f"settings:{output}"
        if key not in self._cache:
            from kiln.core.settings import SETTINGS, resolve

            from_spec: dict[str, str | None] = {}
            if self.spec_file.exists():
                block = self.spec().settings
                # Every setting the spec's `settings:` block can hold (not `output`).
                from_spec = {
                    s.name: getattr(block, s.name)
                    for s in SETTINGS
                    if s.name in type(block).model_fields
                }
            self._cache[key] = resolve(
                flags={**self.flags, "output": output},
                environ=os.environ,
                spec=from_spec,
                spec_dir=self.spec_dir,
            )
        settings: Settings = self._cache[key]
        return settings

    def state_dir(self) -> Path:
        """The state directory, created with safe permissions on first use."""
        if "state_dir" not in self._cache:
            from kiln.bootstrap.statedir import ensure_state_dir

            self._cache["state_dir"] = ensure_state_dir(self.settings().state_dir)
        path: Path = self._cache["state_dir"]
        return path

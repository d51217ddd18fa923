"""Which files of the build context go in the application layer.

Patterns are relative POSIX globs: ``*`` and ``?`` stay inside one path segment,
``[...]`` is a class, ``**`` matches any number of segments (``**/x`` also
matches ``x``; ``d/**`` matches everything under ``d``). A file is selected when
it matches an include pattern and no exclude pattern. Directories come from the
selected files (an empty directory is not part of the layer).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property


def glob_to_regex(pattern: str) -> str:
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                out.append(re.escape("["))
                i += 1
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "^" + "".join(out) + "$"


@dataclass(frozen=True)
class Selection:
    include: Sequence[str]
    exclude: Sequence[str]

    @cached_property
    def _include(self) -> re.Pattern[str]:
        return re.compile("|".join(f"(?:{glob_to_regex(p)})" for p in self.include) or "(?!)")

    @cached_property
    def _exclude(self) -> re.Pattern[str]:
        return re.compile("|".join(f"(?:{glob_to_regex(p)})" for p in self.exclude) or "(?!)")

    @cached_property
    def _pruned(self) -> re.Pattern[str]:
        dirs = [p[:-3] for p in self.exclude if p.endswith("/**")]
        return re.compile("|".join(f"(?:{glob_to_regex(p)})" for p in dirs) or "(?!)")

    @cached_property
    def _everything(self) -> bool:
        return any(p in {"**", "**/*"} for p in self.include)

    def selects(self, path: str) -> bool:
        if not self._everything and not self._include.match(path):
            return False
        return not self._exclude.match(path)

    def prunes(self, directory: str) -> bool:
        """True when nothing under ``directory`` can be selected (``d/**`` excluded)."""
        return bool(self._pruned.match(directory))

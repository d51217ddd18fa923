"""Licenses of installed Python distributions, read from their ``METADATA`` files.

The core metadata specification (packaging.python.org, "Core metadata
specifications") gives three places, in the order kiln trusts them:

1. ``License-Expression`` (metadata 2.4, PEP 639): an SPDX expression, used as is;
2. ``License``: free text. Used when it is one short line; a few common spellings
   are mapped to their SPDX id ("Apache 2.0" → ``Apache-2.0``). A multi-line value
   is usually the whole license text and is skipped;
3. the trove classifiers ``License :: ...``: mapped to SPDX ids where the
   classifier names exactly one license. Several classifiers mean the author
   offers a choice, so they are joined with ``OR``. A classifier that names no
   single license (``BSD License`` has three variants) makes the whole answer
   unknown rather than a guess.

Unknown is the empty string: the SBOM then lists the component with no license
and the licenses gate reports it (docs/gates.md).
"""

from __future__ import annotations

from email.parser import HeaderParser

from kiln.core.attest.sbom import Dependency

# Trove classifier (after "License :: OSI Approved :: " or "License :: ") → SPDX id.
CLASSIFIERS = {
    "Apache Software License": "Apache-2.0",
    "MIT License": "MIT",
    "MIT No Attribution License (MIT-0)": "MIT-0",
    "ISC License (ISCL)": "ISC",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Python Software Foundation License": "PSF-2.0",
    "The Unlicense (Unlicense)": "Unlicense",
    "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "zlib/libpng License": "Zlib",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU Affero General Public License v3": "AGPL-3.0-only",
    "GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
}

# Common free-text ``License`` values → SPDX id (compared case-insensitively).
ALIASES = {
    "mit": "MIT",
    "mit license": "MIT",
    "apache 2.0": "Apache-2.0",
    "apache-2.0": "Apache-2.0",
    "apache 2": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "3-clause bsd": "BSD-3-Clause",
    "isc": "ISC",
    "mpl-2.0": "MPL-2.0",
    "mpl 2.0": "MPL-2.0",
    "psf": "PSF-2.0",
    "psf-2.0": "PSF-2.0",
}
_MAX_LICENSE_TEXT = 100
_UNKNOWN = {"", "unknown", "none", "n/a", "other", "other/proprietary license"}


def license_of(headers: dict[str, list[str]]) -> str:
    """The component license from parsed METADATA headers (lower-case keys); ``""`` if unknown."""
    expression = _first(headers, "license-expression")
    if expression:
        return expression
    text = _first(headers, "license")
    short = text and "\n" not in text and len(text) <= _MAX_LICENSE_TEXT
    if short and text.lower() not in _UNKNOWN:
        return ALIASES.get(text.lower(), text)
    return _from_classifiers(headers.get("classifier", []))


def _first(headers: dict[str, list[str]], name: str) -> str:
    values = headers.get(name) or [""]
    return values[0].strip()


def _from_classifiers(classifiers: list[str]) -> str:
    found: list[str] = []
    for raw in classifiers:
        parts = [p.strip() for p in raw.split("::")]
        if not parts or parts[0] != "License":
            continue
        name = parts[-1]
        if name in {"OSI Approved", "DFSG approved"}:
            continue  # a category, not a license
        spdx = CLASSIFIERS.get(name)
        if spdx is None:
            return ""  # ambiguous or unknown: no guess
        if spdx not in found:
            found.append(spdx)
    return " OR ".join(found)


def parse_metadata(text: str) -> Dependency | None:
    """A dependency (name, version, license) from a ``METADATA`` file; ``None`` without a name."""
    message = HeaderParser().parsestr(text, headersonly=True)
    headers: dict[str, list[str]] = {}
    for key, value in message.items():
        headers.setdefault(key.lower(), []).append(str(value))
    name, version = _first(headers, "name"), _first(headers, "version")
    if not name or not version:
        return None
    return Dependency(name=name, version=version, license=license_of(headers))

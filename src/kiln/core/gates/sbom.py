"""Read a CycloneDX JSON SBOM into the components the gates look at.

Only what the gates need is kept: name, version, purl and licenses. Nested
``components`` (CycloneDX allows a tree) are flattened. ``metadata.component``
describes the application itself and is not one of its dependencies, so it is
not listed. The format is CycloneDX 1.4-1.6 JSON (https://cyclonedx.org/docs/).
"""

from __future__ import annotations

import json
from typing import Any

from packageurl import PackageURL

from kiln.core.gates.inputs import Component, License, Sbom
from kiln.core.gates.versions import normalize_name
from kiln.errors import InvalidInput


def parse_sbom(data: bytes, source: str) -> Sbom:
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{source}: the SBOM is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("bomFormat") != "CycloneDX":
        raise InvalidInput(
            f"{source}: not a CycloneDX JSON SBOM (bomFormat must be 'CycloneDX')",
            hint="kiln reads CycloneDX JSON, the format `kiln build` attests",
        )
    raw = doc.get("components", [])
    if not isinstance(raw, list):
        raise InvalidInput(f"{source}: 'components' must be a list")
    out: list[Component] = []
    _walk(raw, "components", source, out)
    return Sbom(tuple(out), source)


def _walk(items: list[Any], where: str, source: str, out: list[Component]) -> None:
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput(f"{source}: {here}: a component needs a 'name'")
        out.append(_component(item, here, source))
        nested = item.get("components")
        if isinstance(nested, list):
            _walk(nested, f"{here}.components", source, out)


def _component(item: dict[str, Any], where: str, source: str) -> Component:
    name = item["name"]
    version = item.get("version") if isinstance(item.get("version"), str) else ""
    purl = item.get("purl") if isinstance(item.get("purl"), str) else None
    ecosystem = None
    if purl:
        try:
            parsed = PackageURL.from_string(purl)
        except ValueError as exc:
            raise InvalidInput(f"{source}: {where}: bad purl {purl!r} ({exc})") from None
        ecosystem = parsed.type
        if parsed.type == "pypi":
            name = normalize_name(parsed.name)
            version = parsed.version or version
    return Component(
        name=name,
        version=version or "",
        purl=purl,
        licenses=_licenses(item.get("licenses"), where, source),
        ecosystem=ecosystem,
    )


def _licenses(raw: Any, where: str, source: str) -> tuple[License, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise InvalidInput(f"{source}: {where}.licenses must be a list")
    out: list[License] = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise InvalidInput(f"{source}: {where}.licenses entries must be objects")
        if isinstance(entry.get("expression"), str):
            out.append(License(entry["expression"]))
            continue
        lic = entry.get("license")
        if isinstance(lic, dict):
            if isinstance(lic.get("id"), str):
                out.append(License(lic["id"]))
            elif isinstance(lic.get("name"), str):
                out.append(License(lic["name"], is_spdx=False))
    return tuple(out)

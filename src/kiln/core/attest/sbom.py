"""The SBOM: a CycloneDX JSON document of an artifact's dependency layer.

Built with cyclonedx-python-lib so the output follows the schema the library
validates against (tests run its JSON validator over every SBOM shape kiln
makes). The document is deterministic: the serial number is a UUIDv5 of the
subject digest and the timestamp is the build's, so the same build gives the same
bytes and the same statement digest.

``Dependency`` is the plain input the build fills in; ``parse_pinned_requirements``
reads a hash-pinned ``requirements.txt`` / ``requirements.lock`` (the form
``pip install --require-hashes`` accepts) for the ``kiln attest sbom`` command.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import HashAlgorithm, HashType
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL
from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as PepRequirement
from packaging.utils import canonicalize_name

from kiln.core.attest.predicates import CYCLONEDX_BOM
from kiln.core.attest.statement import Statement, statement
from kiln.core.digest import Digest, hex_of
from kiln.errors import InvalidInput, Problem, SpecError

CYCLONEDX_SPEC_VERSION = "1.6"
_SERIAL_NAMESPACE = uuid.UUID("0b7c1f64-3d0e-5b9a-9a51-6b696c6e2e64")  # kiln's own namespace
_HASH_ALGORITHMS = {
    "sha256": HashAlgorithm.SHA_256,
    "sha384": HashAlgorithm.SHA_384,
    "sha512": HashAlgorithm.SHA_512,
}


@dataclass(frozen=True)
class Dependency:
    """One installed package of the dependency layer."""

    name: str
    version: str
    purl: str = ""
    license: str = ""
    hashes: tuple[tuple[str, str], ...] = ()

    def package_url(self) -> PackageURL:
        if self.purl:
            try:
                return PackageURL.from_string(self.purl)
            except ValueError as exc:
                raise InvalidInput(f"{self.name}: invalid purl {self.purl!r}: {exc}") from None
        return PackageURL(type="pypi", name=canonicalize_name(self.name), version=self.version)


def _component(dep: Dependency, licenses: LicenseFactory) -> Component:
    hashes = []
    for algorithm, value in dep.hashes:
        alg = _HASH_ALGORITHMS.get(algorithm.lower())
        if alg is None or not re.fullmatch(r"[0-9a-f]+", value.lower()):
            raise InvalidInput(f"{dep.name}: unsupported hash {algorithm}:{value[:16]}")
        hashes.append(HashType(alg=alg, content=value.lower()))
    purl = dep.package_url()
    return Component(
        name=dep.name,
        version=dep.version,
        type=ComponentType.LIBRARY,
        purl=purl,
        bom_ref=purl.to_string(),
        hashes=hashes,
        licenses=[licenses.make_from_string(dep.license)] if dep.license else None,
    )


def cyclonedx_sbom(
    subject_name: str,
    subject: Digest,
    dependencies: Sequence[Dependency],
    *,
    timestamp: datetime,
) -> dict[str, Any]:
    """The CycloneDX 1.6 BOM of ``dependencies``, describing the artifact ``subject``."""
    licenses = LicenseFactory()
    root = Component(
        name=subject_name,
        version=str(subject),
        type=ComponentType.CONTAINER,
        bom_ref=str(subject),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=hex_of(subject))],
    )
    seen: set[str] = set()
    components = []
    for dep in sorted(dependencies, key=lambda d: (canonicalize_name(d.name), d.version)):
        component = _component(dep, licenses)
        ref = str(component.bom_ref.value)
        if ref in seen:
            continue
        seen.add(ref)
        components.append(component)
    bom = Bom(
        components=components,
        serial_number=uuid.uuid5(_SERIAL_NAMESPACE, str(subject)),
        metadata=BomMetaData(component=root, timestamp=timestamp),
    )
    bom.register_dependency(root, components)
    text = JsonV1Dot6(bom).output_as_string()
    doc: dict[str, Any] = json.loads(text)
    return doc


def sbom_statement(
    subject_name: str,
    subject: Digest,
    dependencies: Sequence[Dependency],
    *,
    timestamp: datetime,
) -> Statement:
    bom = cyclonedx_sbom(subject_name, subject, dependencies, timestamp=timestamp)
    return statement([(subject_name, subject)], CYCLONEDX_BOM, bom)


_HASH_OPTION = re.compile(r"--hash[=\s]+(sha256|sha384|sha512):([0-9a-fA-F]+)")


def parse_pinned_requirements(text: str, *, source: str = "requirements.txt") -> list[Dependency]:
    """Dependencies from a pinned requirements file; every unpinned line is a problem."""
    deps: list[Dependency] = []
    problems: list[Problem] = []
    logical: list[tuple[int, str]] = []
    pending = ""
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        stripped = line.split(" #", 1)[0].rstrip() if not line.lstrip().startswith("#") else ""
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append((start, pending + stripped))
        pending = ""
    if pending:
        logical.append((start, pending))
    for number, line in logical:
        body = line.strip()
        if not body or body.startswith("-"):
            continue  # blank, or an option line such as --index-url
        hashes = tuple((alg, value.lower()) for alg, value in _HASH_OPTION.findall(body))
        spec_text = _HASH_OPTION.sub("", body).strip()
        try:
            req = PepRequirement(spec_text)
        except InvalidRequirement as exc:
            problems.append(Problem(f"not a requirement: {exc}", file=source, line=number))
            continue
        pins = [s.version for s in req.specifier if s.operator in {"==", "==="}]
        if len(pins) != 1 or "*" in pins[0]:
            problems.append(
                Problem(
                    f"{req.name} is not pinned to one version",
                    file=source,
                    line=number,
                    hint="an SBOM lists exact versions; pin with == (pip-compile does this)",
                )
            )
            continue
        deps.append(Dependency(name=req.name, version=pins[0], hashes=hashes))
    if problems:
        raise SpecError(problems, source=source)
    return deps

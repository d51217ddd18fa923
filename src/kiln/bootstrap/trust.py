"""Wiring for keys, attestations and verification: file adapters handed to the services.

Keys live in ``<state>/keys/NAME.key`` (0600) and ``NAME.pub``; attestations in
``<state>/attestations/``. ``recorder`` is ``None`` until the ledger adapter is
wired here; the services record key changes and attestations whenever one is given.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kiln.adapters.artifacts.attestations import FileAttestationStore
from kiln.adapters.keys.file import FileSigner, generate
from kiln.bootstrap.ledger import recorder as ledger_recorder
from kiln.core.digest import Digest
from kiln.core.spec.models import Environment
from kiln.ports.attestations import AttestationStore
from kiln.ports.keys import Signer
from kiln.ports.ledger import Recorder
from kiln.services.verify import Admission


def keys_dir(state_dir: Path) -> Path:
    return state_dir / "keys"


def key_generator() -> Callable[[Path], Signer]:
    return generate


def signer(state_dir: Path, name: str) -> Signer:
    return FileSigner.from_file(keys_dir(state_dir) / f"{name}.key")


def attestation_store(state_dir: Path) -> AttestationStore:
    return FileAttestationStore.in_state_dir(state_dir)


def recorder(state_dir: Path) -> Recorder | None:
    """The state directory's ledger: key changes and attestations are recorded there."""
    return ledger_recorder(state_dir)


def admission(
    state_dir: Path, policy_path: Path, subject: Digest, environment: Environment
) -> Admission:
    """The admission step for a deploy: the deploy path calls this before provisioning.

    ``Admitted``: go on. ``AdmittedUnsigned``: go on, but first record
    ``record_as`` (``deploy.unsigned``) with its reasons. ``NotAdmitted``: raise
    ``to_error()``, which lists every reason.
    """
    from kiln.services.verify import admit, read_policy

    return admit(
        subject,
        environment,
        store=attestation_store(state_dir),
        policy=read_policy(policy_path),
    )

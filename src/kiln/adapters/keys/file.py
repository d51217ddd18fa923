"""File keys: an Ed25519 private key in PKCS#8 PEM (mode 0600) and its public key.

``generate`` writes both files atomically and refuses to overwrite; ``FileSigner``
loads a private key and implements the ``Signer`` port.
"""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kiln.core.keys import key_id
from kiln.errors import InvalidInput, NotFound, Refused
from kiln.fsio import write_new

PRIVATE_MODE = 0o600


class FileSigner:
    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self._public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @classmethod
    def from_file(cls, path: Path) -> FileSigner:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(
                f"private key {path} does not exist", hint="create one with `kiln keys generate`"
            ) from None
        if mode & 0o077:
            raise Refused(
                f"private key {path} is readable by others (mode {mode:o})",
                hint=f"run `chmod 600 {path}`",
            )
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"{path} is not a PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidInput(f"{path} is not an Ed25519 key", hint="kiln signs with Ed25519")
        return cls(key)

    @property
    def key_id(self) -> str:
        return key_id(self._public)

    @property
    def public_key(self) -> bytes:
        return self._public

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


def public_pem(public_key: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(public_key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_pem(path: Path) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except FileNotFoundError:
        raise NotFound(f"public key {path} does not exist") from None
    except ValueError as exc:
        raise InvalidInput(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput(f"{path} is not an Ed25519 public key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def generate(private_path: Path) -> FileSigner:
    """Create ``NAME.key`` (0600) and ``NAME.pub``; refuse to overwrite either."""
    public_path = private_path.with_suffix(".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise Refused(f"{path} already exists; kiln never overwrites a key")
    key = Ed25519PrivateKey.generate()
    signer = FileSigner(key)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    private_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not write_new(private_path, private_pem, mode=PRIVATE_MODE):
        raise Refused(f"{private_path} already exists; kiln never overwrites a key")
    if not write_new(public_path, public_pem(signer.public_key), mode=0o644):
        raise Refused(f"{public_path} already exists; kiln never overwrites a key")
    return signer

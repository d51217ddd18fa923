"""An encrypted, versioned secret store in files.

Layout: ``<dir>/<name>.json`` holds every version of one secret::

    {"name": "DB_PASSWORD", "versions": [
        {"version": 1, "created": "...", "nonce": "<b64>", "ciphertext": "<b64>"}, ...]}

Each value is sealed with AES-256-GCM (NIST SP 800-38D) under a 256-bit key
kept in its own file, mode 0600, created on first use and never overwritten.
The associated data binds a ciphertext to its name and version, so a version
copied into another name or position fails to open instead of decrypting.
Files are written atomically with mode 0600 under an exclusive ``flock`` so two
concurrent ``put`` calls cannot both become version N. Names and versions are
plain text: they are what ``kiln secrets list`` shows and the ledger records.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kiln.errors import IntegrityError, InvalidInput, NotFound, Refused
from kiln.fsio import write_atomic, write_new
from kiln.ports.secrets import SecretInfo, SecretValue

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
KEY_BYTES = 32
MAX_VALUE_BYTES = 64 * 1024


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise InvalidInput(
            f"{name!r} is not a secret name",
            hint="use letters, digits, '_', '.' or '-', starting with a letter or '_'",
        )
    return name


def _aad(name: str, version: int) -> bytes:
    return f"kiln-secret\x00{name}\x00{version}".encode()


class FileSecretStore:
    """Implements ``kiln.ports.secrets.SecretStore``."""

    def __init__(self, directory: Path, key_file: Path) -> None:
        self._dir = directory
        self._key_file = key_file

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> FileSecretStore:
        return cls(state_dir / "secrets", state_dir / "keys" / "secrets.key")

    # --- key -----------------------------------------------------------------------------

    def _key(self, *, create: bool) -> bytes:
        try:
            info = self._key_file.stat()
        except FileNotFoundError:
            if not create:
                raise NotFound(
                    "no secret has been stored yet (no secrets key)",
                    hint="store one with `kiln secrets set NAME` (value on stdin)",
                ) from None
            self._key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_new(self._key_file, os.urandom(KEY_BYTES), mode=0o600)
            info = self._key_file.stat()
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise Refused(
                f"{self._key_file} is readable by others",
                hint=f"run `chmod 600 {self._key_file}`",
            )
        key = self._key_file.read_bytes()
        if len(key) != KEY_BYTES:
            raise IntegrityError(f"{self._key_file} is not a {KEY_BYTES}-byte key")
        return key

    # --- files ---------------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        return self._dir / f"{check_name(name)}.json"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self, name: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self._path(name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise IntegrityError(f"secret file of {name} is unreadable: {exc}") from None
        if not isinstance(data, dict) or data.get("name") != name:
            raise IntegrityError(f"secret file of {name} does not belong to {name}")
        return data

    # --- port ----------------------------------------------------------------------------

    def put(self, name: str, value: SecretValue) -> int:
        check_name(name)
        plain = value.reveal().encode("utf-8")
        if not plain:
            raise InvalidInput("a secret value cannot be empty")
        if len(plain) > MAX_VALUE_BYTES:
            raise InvalidInput(f"a secret value is at most {MAX_VALUE_BYTES} bytes")
        key = self._key(create=True)
        with self._locked():
            data = self._read(name) or {"name": name, "versions": []}
            version = len(data["versions"]) + 1
            nonce = os.urandom(12)
            sealed = AESGCM(key).encrypt(nonce, plain, _aad(name, version))
            data["versions"].append(
                {
                    "version": version,
                    "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    "nonce": base64.b64encode(nonce).decode(),
                    "ciphertext": base64.b64encode(sealed).decode(),
                }
            )
            write_atomic(self._path(name), json.dumps(data, indent=1).encode() + b"\n", mode=0o600)
        return version

    def get(self, name: str, version: int | None = None) -> tuple[SecretValue, int]:
        data = self._read(check_name(name))
        if data is None or not data["versions"]:
            raise NotFound(f"secret {name} does not exist", hint="see `kiln secrets list`")
        versions = data["versions"]
        number = len(versions) if version is None else version
        if not 1 <= number <= len(versions):
            raise NotFound(f"secret {name} has no version {number} (latest is {len(versions)})")
        entry = versions[number - 1]
        try:
            plain = AESGCM(self._key(create=False)).decrypt(
                base64.b64decode(entry["nonce"]),
                base64.b64decode(entry["ciphertext"]),
                _aad(name, number),
            )
        except (InvalidTag, KeyError, ValueError) as exc:
            raise IntegrityError(
                f"secret {name} version {number} does not open with this key",
                hint="was the file copied from another state directory or the key replaced?",
            ) from exc
        return SecretValue(plain.decode("utf-8")), number

    def list(self) -> list[SecretInfo]:
        if not self._dir.is_dir():
            return []
        infos: list[SecretInfo] = []
        for path in sorted(self._dir.glob("*.json")):
            name = path.stem
            if not NAME.match(name):
                continue
            data = self._read(name)
            if not data or not data["versions"]:
                continue
            versions = tuple(int(v["version"]) for v in data["versions"])
            infos.append(SecretInfo(name, versions, str(data["versions"][-1]["created"])))
        return infos

"""API tokens on disk: ``keys/api-tokens.json`` (digests only, 0600) and the local
admin token the CLI presents, ``run/controller.token`` (0600).
"""

from __future__ import annotations

import json
from pathlib import Path

from kiln.core.access import Role, TokenEntry, TokenTable, new_token, token_digest
from kiln.errors import InvalidInput
from kiln.fsio import write_atomic

LOCAL_ADMIN = "local-admin"
LOCAL_READER = "local-dashboard"


def _table_path(state_dir: Path) -> Path:
    return state_dir / "keys" / "api-tokens.json"


def local_token_path(state_dir: Path) -> Path:
    return state_dir / "run" / "controller.token"


def reader_token_path(state_dir: Path) -> Path:
    return state_dir / "run" / "dashboard.token"


def load_table(state_dir: Path) -> TokenTable:
    path = _table_path(state_dir)
    if not path.exists():
        return TokenTable(())
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        entries = [TokenEntry(e["name"], e["sha256"], Role(e["role"])) for e in raw["tokens"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(
            f"{path} is not a valid token table: {exc}",
            hint="remove it and restart `kiln serve` to issue a new local token",
        ) from None
    return TokenTable(entries)


def issue(state_dir: Path, name: str, role: Role) -> str:
    """Add a token for ``name`` and return it; only its digest is stored."""
    path = _table_path(state_dir)
    table = load_table(state_dir)
    if name in table.names:
        raise InvalidInput(f"a token named {name!r} already exists", hint="pick another name")
    token = new_token()
    current = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"tokens": []}
    current["tokens"].append({"name": name, "sha256": token_digest(token), "role": str(role)})
    write_atomic(path, json.dumps(current, indent=2).encode(), mode=0o600)
    return token


def ensure_local_admin(state_dir: Path) -> str:
    """The local admin token, created on the controller's first start."""
    return _ensure_local(state_dir, LOCAL_ADMIN, Role.ADMIN, local_token_path(state_dir))


def ensure_local_reader(state_dir: Path) -> str:
    """The local read-only token the dashboard presents (``run/dashboard.token``, 0600).

    Read-only on purpose: a browser tab is a bigger target than the CLI, so the
    token it holds can show everything and change nothing."""
    return _ensure_local(state_dir, LOCAL_READER, Role.READ, reader_token_path(state_dir))


def _ensure_local(state_dir: Path, name: str, role: Role, path: Path) -> str:
    """A token kept in ``path`` for ``name``: reused while the table knows it, else new."""
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token and load_table(state_dir).authenticate(f"Bearer {token}") is not None:
            return token
    table_path = _table_path(state_dir)
    current = (
        json.loads(table_path.read_text(encoding="utf-8"))
        if table_path.exists()
        else {"tokens": []}
    )
    current["tokens"] = [t for t in current["tokens"] if t.get("name") != name]
    token = new_token()
    current["tokens"].append({"name": name, "sha256": token_digest(token), "role": str(role)})
    write_atomic(table_path, json.dumps(current, indent=2).encode(), mode=0o600)
    write_atomic(path, (token + "\n").encode(), mode=0o600)
    return token


def read_local_token(state_dir: Path) -> str | None:
    path = local_token_path(state_dir)
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def read_reader_token(state_dir: Path) -> str | None:
    """The dashboard's read-only token, if the local controller has issued one."""
    try:
        return reader_token_path(state_dir).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None

"""Connecting to ``KILN_DATABASE`` and turning psycopg's errors into kiln's.

The DSN may carry a password, and libpq sometimes echoes parts of a DSN it
cannot parse, so no message built here quotes libpq's text about a DSN it
rejected, and every other message has the password (if any) blanked out.

What each failure becomes:

* a DSN libpq cannot parse, a refused login, an unknown database, a missing
  privilege: ``ConfigError`` naming ``KILN_DATABASE`` (retrying will not help);
* an unreachable server, a connection cut under a query, a serialisation
  failure or deadlock: ``Temporary`` (the caller may try again).
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import conninfo

from kiln.errors import ConfigError, KilnError, Temporary

SETTING = "KILN_DATABASE"
CONNECT_TIMEOUT = 10  # seconds: a host that drops packets must not hang a controller's start

# sqlstate classes: 28 invalid authorisation, 3D invalid catalog (no such database),
# 42501 insufficient privilege; 08 connection exceptions, 40 transaction rollback
# (serialisation failure, deadlock), 25P03 idle-in-transaction timeout, 55P03 lock
# not available (lock_timeout), 57P operator intervention (server shutting down).
_CONFIG_STATES = ("28", "3D", "42501")
_TEMPORARY_STATES = ("08", "25P03", "40", "55P03", "57P")
_BUSY = ("starting up", "shutting down", "too many", "recovery", "terminating connection")
_URI_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_KEY_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact(text: str, dsn: str) -> str:
    """``text`` with the DSN's password, and anything shaped like one, blanked out."""
    try:
        password = conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        password = None
    if isinstance(password, str) and password:
        text = text.replace(password, "***")
    text = _URI_PASSWORD.sub(r"\1***@", text)
    return _KEY_PASSWORD.sub(r"\1***", text)


def translate(exc: psycopg.Error, dsn: str, *, doing: str) -> KilnError:
    """The kiln error for ``exc``, raised while ``doing`` (e.g. "open the desired state")."""
    state = exc.sqlstate or ""
    text = redact(str(exc).strip(), dsn)
    if isinstance(exc, psycopg.ProgrammingError) and not state:
        # Raised by the client before any server spoke: the DSN itself is malformed.
        return ConfigError(
            f"{SETTING} is not a valid PostgreSQL connection string (cannot {doing})",
            hint="use key=value pairs (host=... dbname=... user=...) or a postgresql:// URI",
        )
    if state.startswith(_CONFIG_STATES) or _login_refused(exc, text):
        return ConfigError(
            f"PostgreSQL ({SETTING}) refused to let kiln {doing}: {text}",
            hint=f"check the user, password and database named in {SETTING}",
        )
    if isinstance(exc, psycopg.OperationalError) or state.startswith(_TEMPORARY_STATES):
        return Temporary(f"PostgreSQL ({SETTING}) is unavailable to {doing}: {text}", delay=2.0)
    return ConfigError(f"PostgreSQL ({SETTING}) refused to {doing}: {text}")


Connection = psycopg.Connection[tuple[Any, ...]]


def _login_refused(exc: psycopg.Error, text: str) -> bool:
    """At connect, libpq carries no sqlstate: the server answered ``FATAL`` (a wrong
    password, no such database or role) unless it said it is busy or restarting."""
    if not isinstance(exc, psycopg.OperationalError) or "FATAL:" not in text:
        return False
    return not any(word in text for word in _BUSY)


def connect(dsn: str, *, application_name: str, doing: str) -> Connection:
    """An autocommit connection, or the kiln error saying why there is none."""
    try:
        return psycopg.connect(
            dsn,
            autocommit=True,
            application_name=application_name,
            connect_timeout=CONNECT_TIMEOUT,
        )
    except psycopg.Error as exc:
        raise translate(exc, dsn, doing=doing) from None

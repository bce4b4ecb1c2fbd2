"""Client-supplied tokens and strings: named limits, validation, generated tokens, lookups.

Shared by the catalog modules (catalog.py: recordings and tracks; jobs.py: receivers and
recording jobs). Client strings are stored exactly as given; only these limits are enforced.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Sequence
from typing import TypeVar

from app.core.errors import ConfigError, NotFoundError
from app.core.media import TrackKind

#: tt:ReferenceToken is at most 64 characters (GEN-09).
MAX_TOKEN_CHARS = 64
#: tt:Name (RecordingSourceInformation/Name) is at most 64 characters (RC-02 BadConfiguration).
MAX_NAME_CHARS = 64
#: Any other stored string (descriptions, content, URIs); the ONVIF minimums are far lower.
MAX_TEXT_CHARS = 4096

_E = TypeVar("_E", bound=enum.Enum)


def check_token(token: str, what: str) -> None:
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise ConfigError(f"{what} token {token[:80]!r} must be 1…{MAX_TOKEN_CHARS} characters")


def enum_member(cls: type[_E], value: object, what: str) -> _E:
    """The member of `cls` for `value`, or a ConfigError naming the value and the choices."""
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in cls)
        raise ConfigError(f"{what} {value!r} is not one of {choices}") from None


def check_text(value: str, what: str, limit: int = MAX_TEXT_CHARS) -> None:
    if len(value) > limit:
        raise ConfigError(f"{what} of {len(value)} characters exceeds {limit}")


def next_token(
    conn: sqlite3.Connection,
    counter: str,
    table: str,
    pattern: str,
    where: str = "",
    args: Sequence[object] = (),
) -> str:
    """Next generated token; skips values a client already chose by hand."""
    while True:
        row = conn.execute(
            "INSERT INTO counter (name, value) VALUES (?, 1) "
            "ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
            (counter,),
        ).fetchone()
        token = pattern.format(row[0])
        taken = conn.execute(
            f"SELECT 1 FROM {table} WHERE token = ? {where}", (token, *args)
        ).fetchone()
        if not taken:
            return token


def count(conn: sqlite3.Connection, sql: str, args: Sequence[object] = ()) -> int:
    return int(conn.execute(sql, args).fetchone()[0])


def recording_id(conn: sqlite3.Connection, token: str) -> int:
    row = conn.execute("SELECT id FROM recording WHERE token = ?", (token,)).fetchone()
    if row is None:
        raise NotFoundError(f"no recording {token!r}")
    return int(row[0])


def track_row(conn: sqlite3.Connection, recording: str, track: str) -> tuple[int, int, TrackKind]:
    """(recording id, track id, kind) of an existing track."""
    rec_id = recording_id(conn, recording)
    row = conn.execute(
        "SELECT id, kind FROM track WHERE recording_id = ? AND token = ?", (rec_id, track)
    ).fetchone()
    if row is None:
        raise NotFoundError(f"recording {recording!r} has no track {track!r}")
    return rec_id, int(row[0]), TrackKind(row[1])

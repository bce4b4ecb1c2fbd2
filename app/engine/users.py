"""The engine's user accounts (shared by RTSP, ONVIF and REST) and the initial administrator.

Passwords are stored recoverable (in a 0600 file inside the data directory) because HTTP Digest
and WS-UsernameToken PasswordDigest both need the plain secret on the server side; see the
"Credentials" section of app/engine/onvif/DESIGN.md for why and for the alternatives.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from app.core.errors import ConfigError, ConflictError, NotFoundError
from app.core.files import write_atomic

log = logging.getLogger(__name__)

ADMIN_USER = "admin"
ADMIN_PASSWORD_ENV = "CUSTOS_ADMIN_PASSWORD"
USERS_FILE = "users.json"
ADMIN_PASSWORD_FILE = "admin-password.txt"
MAX_USERS = 100
MAX_NAME_LENGTH = 64
MAX_PASSWORD_LENGTH = 128


class UserLevel(enum.StrEnum):
    """ONVIF user levels (tt:UserLevel); REST access levels map onto the same three."""

    ADMINISTRATOR = "Administrator"
    OPERATOR = "Operator"
    USER = "User"


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    password: str = dataclasses.field(repr=False)
    level: UserLevel


class UserDirectory:
    """Users persisted in `<data>/users.json` (mode 0600), written atomically."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / USERS_FILE
        self._users: dict[str, User] = {}

    @classmethod
    def open(cls, data_dir: Path, environ: dict[str, str] | None = None) -> UserDirectory:
        """Load the users; on first start create `admin` from the environment or a new secret."""
        env = os.environ if environ is None else environ
        directory = cls(data_dir)
        if directory._path.exists():
            directory._load()
        if ADMIN_USER not in directory._users:
            password = env.get(ADMIN_PASSWORD_ENV)
            if not password:
                password = secrets.token_urlsafe(18)
                _write_private(data_dir / ADMIN_PASSWORD_FILE, password + "\n")
                log.info(
                    "created user %r; its generated password is in %s",
                    ADMIN_USER,
                    data_dir / ADMIN_PASSWORD_FILE,
                )
            directory._users[ADMIN_USER] = User(ADMIN_USER, password, UserLevel.ADMINISTRATOR)
            directory._save()
        return directory

    def password_of(self, name: str) -> str | None:
        """The secret for Digest/UsernameToken checks, or None for an unknown user."""
        user = self._users.get(name)
        return user.password if user else None

    def get(self, name: str) -> User:
        try:
            return self._users[name]
        except KeyError:
            raise NotFoundError(f"no user {name!r}") from None

    def list(self) -> list[User]:
        return sorted(self._users.values(), key=lambda u: u.name)

    def create(self, name: str, password: str, level: UserLevel) -> User:
        _validate(name, password)
        if name in self._users:
            raise ConflictError(f"user {name!r} exists already")
        if len(self._users) >= MAX_USERS:
            raise ConflictError(f"at most {MAX_USERS} users")
        user = User(name, password, level)
        self._users[name] = user
        self._save()
        return user

    def update(self, changes: Sequence[tuple[str, str, UserLevel]]) -> None:
        """Set password and level of existing users, all or nothing, in one atomic write."""
        updated = dict(self._users)
        for name, password, level in changes:
            if name not in updated:
                raise NotFoundError(f"no user {name!r}")
            _validate(name, password)
            updated[name] = User(name, password, level)
        if not any(u.level is UserLevel.ADMINISTRATOR for u in updated.values()):
            raise ConflictError("at least one administrator must remain")
        self._users = updated
        self._save()

    def delete(self, name: str) -> None:
        if name not in self._users:
            raise NotFoundError(f"no user {name!r}")
        admins = [u for u in self._users.values() if u.level is UserLevel.ADMINISTRATOR]
        if self._users[name].level is UserLevel.ADMINISTRATOR and len(admins) == 1:
            raise ConflictError("cannot delete the last administrator")
        del self._users[name]
        self._save()

    def _load(self) -> None:
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
            self._users = {
                u["name"]: User(u["name"], u["password"], UserLevel(u["level"]))
                for u in raw["users"]
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"user file {self._path} is unreadable: {exc}") from None

    def _save(self) -> None:
        doc = {
            "users": [
                {"name": u.name, "password": u.password, "level": u.level.value}
                for u in self.list()
            ]
        }
        _write_private(self._path, json.dumps(doc, indent=1) + "\n")


def _validate(name: str, password: str) -> None:
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable() or ":" in name:
        raise ConfigError(f"user name must be 1…{MAX_NAME_LENGTH} printable characters, no ':'")
    if not password or len(password) > MAX_PASSWORD_LENGTH:
        raise ConfigError(f"password must be 1…{MAX_PASSWORD_LENGTH} characters")


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by the owner only, atomically."""
    write_atomic(path, text.encode("utf-8"))

"""Users: the initial admin comes from the environment or a generated 0600 file, once."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.core.errors import ConflictError, NotFoundError
from app.engine.users import ADMIN_PASSWORD_FILE, USERS_FILE, UserDirectory, UserLevel


def test_generated_admin_password_is_written_once_and_private(tmp_path: Path) -> None:
    users = UserDirectory.open(tmp_path, environ={})
    secret = (tmp_path / ADMIN_PASSWORD_FILE).read_text().strip()
    assert len(secret) >= 20
    assert users.password_of("admin") == secret
    for name in (ADMIN_PASSWORD_FILE, USERS_FILE):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    again = UserDirectory.open(tmp_path, environ={"CUSTOS_ADMIN_PASSWORD": "ignored-now"})
    assert again.password_of("admin") == secret


def test_admin_password_from_environment(tmp_path: Path) -> None:
    users = UserDirectory.open(tmp_path, environ={"CUSTOS_ADMIN_PASSWORD": "s3cret"})
    assert users.password_of("admin") == "s3cret"
    assert not (tmp_path / ADMIN_PASSWORD_FILE).exists()


def test_users_persist_and_last_admin_stays(tmp_path: Path) -> None:
    users = UserDirectory.open(tmp_path, environ={"CUSTOS_ADMIN_PASSWORD": "x"})
    users.create("op", "pw", UserLevel.OPERATOR)
    with pytest.raises(ConflictError, match="exists"):
        users.create("op", "pw", UserLevel.USER)
    with pytest.raises(ConflictError, match="last administrator"):
        users.delete("admin")
    reopened = UserDirectory.open(tmp_path, environ={})
    assert [(u.name, u.level) for u in reopened.list()] == [
        ("admin", UserLevel.ADMINISTRATOR),
        ("op", UserLevel.OPERATOR),
    ]
    assert "pw" not in repr(reopened.get("op"))


def test_update_changes_users_atomically_and_keeps_an_administrator(tmp_path: Path) -> None:
    users = UserDirectory.open(tmp_path, environ={"CUSTOS_ADMIN_PASSWORD": "a"})
    users.create("op", "o", UserLevel.OPERATOR)
    users.update([("op", "new", UserLevel.USER)])
    again = UserDirectory.open(tmp_path, environ={})
    assert again.get("op").level is UserLevel.USER
    assert again.password_of("op") == "new"
    with pytest.raises(ConflictError):
        users.update([("admin", "a", UserLevel.USER)])
    with pytest.raises(NotFoundError):
        users.update([("op", "x", UserLevel.OPERATOR), ("ghost", "x", UserLevel.USER)])
    assert UserDirectory.open(tmp_path, environ={}).password_of("op") == "new"  # nothing changed

"""PSIA Security service: Security/AAA/users over the engine's user directory (spec §2.2, AU-07).

A user's ID is its name [I] (the directory has no numeric IDs; names are unique and the hrefs
percent-encode them). Passwords are write-only: GET never returns them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from urllib.parse import quote

from lxml import etree

from app.engine.rest.context import RestContext
from app.engine.rest.registry import (
    Access,
    Method,
    Node,
    RestRequest,
    RestResponse,
    status_response,
    xml_response,
)
from app.engine.rest.status import OK, bad_parameters, not_found
from app.engine.rest.xml import Doc, child, new_root, text_child
from app.engine.users import User, UserLevel

#: userLevel words (ISAPI) ↔ directory levels; "User" is accepted as ONVIF's name for Viewer.
LEVEL_NAMES = {
    UserLevel.ADMINISTRATOR: "Administrator",
    UserLevel.OPERATOR: "Operator",
    UserLevel.USER: "Viewer",
}
_LEVEL_OF = {
    "administrator": UserLevel.ADMINISTRATOR,
    "admin": UserLevel.ADMINISTRATOR,
    "operator": UserLevel.OPERATOR,
    "viewer": UserLevel.USER,
    "user": UserLevel.USER,
}


def _level(text: str | None, default: UserLevel | None) -> UserLevel:
    if text is None or text == "":
        if default is None:
            raise bad_parameters("userLevel is required (Administrator, Operator or Viewer)")
        return default
    found = _LEVEL_OF.get(text.lower())
    if found is None:
        raise bad_parameters(f"userLevel must be Administrator, Operator or Viewer, not {text!r}")
    return found


def _user(element: etree._Element, user: User) -> etree._Element:
    text_child(element, "id", user.name)
    text_child(element, "userName", user.name)
    text_child(element, "userLevel", LEVEL_NAMES[user.level])
    return element


@dataclasses.dataclass(frozen=True)
class _UserChange:
    name: str
    password: str | None
    level: str | None


def _change(doc: Doc, default_name: str | None = None) -> _UserChange:
    name = doc.text("userName") or doc.text("id") or default_name
    if not name:
        raise bad_parameters("userName is required")
    return _UserChange(name, doc.text("password"), doc.text("userLevel"))


class Security:
    """Handlers of Security/AAA/users."""

    def __init__(self, ctx: RestContext) -> None:
        self.ctx = ctx

    async def get_users(self, request: RestRequest) -> RestResponse:
        root = new_root("UserList")
        for user in self.ctx.users.list():
            _user(child(root, "User"), user)
        return xml_response(root)

    async def post_user(self, request: RestRequest) -> RestResponse:
        change = _change(request.doc("User"))
        if not change.password:
            raise bad_parameters("password is required for a new user")
        level = _level(change.level, UserLevel.USER)
        users = self.ctx.users
        await asyncio.to_thread(users.create, change.name, change.password, level)
        return status_response(request, dataclasses.replace(OK, created_id=quote(change.name)))

    async def put_users(self, request: RestRequest) -> RestResponse:
        """Update the listed users' passwords/levels together (HR-15: a lone User is a list)."""
        doc = request.doc("UserList", "User")
        members = [doc] if doc.name == "User" else list(doc.children("User"))
        await self._update([_change(m) for m in members])
        return status_response(request)

    async def get_user(self, request: RestRequest) -> RestResponse:
        return xml_response(_user(new_root("User"), self._existing(request.ids[-1])))

    async def put_user(self, request: RestRequest) -> RestResponse:
        name = request.ids[-1]
        self._existing(name)
        change = _change(request.doc("User"), name)
        if change.name != name:
            raise bad_parameters(f"userName {change.name!r} differs from the URL's user {name!r}")
        await self._update([change])
        return status_response(request)

    async def delete_user(self, request: RestRequest) -> RestResponse:
        name = request.ids[-1]
        self._existing(name)
        await asyncio.to_thread(self.ctx.users.delete, name)
        return status_response(request)

    def _existing(self, name: str) -> User:
        for user in self.ctx.users.list():
            if user.name == name:
                return user
        raise not_found(f"no user {name[:64]!r}")

    async def _update(self, changes: list[_UserChange]) -> None:
        resolved = []
        for change in changes:
            user = self._existing(change.name)
            password = change.password or user.password
            resolved.append((user.name, password, _level(change.level, user.level)))
        # One atomic directory write: all of a UserList or none of it.
        await asyncio.to_thread(self.ctx.users.update, resolved)

    def node(self) -> Node:
        a = Access.ADMINISTRATOR
        security = Node.service("Security", "Accounts (the same users as ONVIF and RTSP)")
        aaa = security.add(Node.service("AAA"))
        users = aaa.add(
            Node.resource(
                "users",
                get=Method(self.get_users, a, "List the users", result="UserList"),
                post=Method(self.post_user, a, "Add a user", inbound="User"),
                put=Method(
                    self.put_users,
                    a,
                    "Change passwords/levels of listed users",
                    inbound="UserList",
                    notes="all or nothing; a lone User is accepted",
                ),
            )
        )
        users.add_item(
            Node.resource(
                "user",
                get=Method(self.get_user, a, "One user (no password)", result="User"),
                put=Method(self.put_user, a, "Change password or level", inbound="User"),
                delete=Method(self.delete_user, a, "Remove the user"),
            )
        )
        return security

"""PSIA ResponseStatus documents, the statusCode → HTTP status mapping (HR-10..12), REST errors."""

from __future__ import annotations

import dataclasses
import enum

from app.core.errors import (
    ConfigError,
    ConflictError,
    CustosError,
    ErrorKind,
    LimitError,
    NotFoundError,
    PermissionError_,
)
from app.engine.rest.xml import new_root, serialize, text_child


class StatusCode(enum.IntEnum):
    """HR-11 statusCode values."""

    OK = 1
    DEVICE_BUSY = 2
    DEVICE_ERROR = 3
    INVALID_OPERATION = 4
    INVALID_XML_FORMAT = 5
    INVALID_XML_CONTENT = 6
    REBOOT_REQUIRED = 7


STATUS_STRINGS: dict[StatusCode, str] = {
    StatusCode.OK: "OK",
    StatusCode.DEVICE_BUSY: "Device Busy",
    StatusCode.DEVICE_ERROR: "Device Error",
    StatusCode.INVALID_OPERATION: "Invalid Operation",
    StatusCode.INVALID_XML_FORMAT: "Invalid XML Format",
    StatusCode.INVALID_XML_CONTENT: "Invalid XML Content",
    StatusCode.REBOOT_REQUIRED: "Reboot Required",
}

#: HR-12: the intended mapping (not TI's always-200).
HTTP_STATUS: dict[StatusCode, int] = {
    StatusCode.OK: 200,
    StatusCode.DEVICE_BUSY: 503,
    StatusCode.DEVICE_ERROR: 500,
    StatusCode.INVALID_OPERATION: 403,
    StatusCode.INVALID_XML_FORMAT: 400,
    StatusCode.INVALID_XML_CONTENT: 400,
    StatusCode.REBOOT_REQUIRED: 200,
}


@dataclasses.dataclass(frozen=True)
class Status:
    """One ResponseStatus: code, ISAPI subStatusCode and the HTTP status it travels with."""

    code: StatusCode
    sub: str = "ok"
    #: Overrides HR-12 where HTTP itself has the better word (401, 404, 405, 413).
    http: int | None = None
    #: ISAPI `<id>` of a resource a POST created.
    created_id: str | None = None

    @property
    def http_status(self) -> int:
        return self.http if self.http is not None else HTTP_STATUS[self.code]


class RestError(CustosError):
    """Answer the request with this ResponseStatus (and extra headers, e.g. Allow)."""

    def __init__(
        self, status: Status, message: str, *, headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(message, kind=ErrorKind.INVALID_ARGUMENT)
        self.status = status
        self.headers = headers


OK = Status(StatusCode.OK)


def bad_xml_format(message: str) -> RestError:
    return RestError(Status(StatusCode.INVALID_XML_FORMAT, "badXmlFormat"), message)


def bad_xml_content(message: str) -> RestError:
    return RestError(Status(StatusCode.INVALID_XML_CONTENT, "badXmlContent"), message)


def bad_parameters(message: str) -> RestError:
    return RestError(Status(StatusCode.INVALID_XML_CONTENT, "badParameters"), message)


def not_supported(message: str) -> RestError:
    return RestError(Status(StatusCode.INVALID_OPERATION, "notSupport"), message)


def low_privilege(message: str) -> RestError:
    return RestError(Status(StatusCode.INVALID_OPERATION, "lowPrivilege"), message)


def not_found(message: str) -> RestError:
    # [I] 404 carries statusCode 4 with an ISAPI-style reason.
    return RestError(Status(StatusCode.INVALID_OPERATION, "invalidID", http=404), message)


def method_not_allowed(message: str, allow: tuple[str, ...]) -> RestError:
    return RestError(
        Status(StatusCode.INVALID_OPERATION, "methodNotAllowed", http=405),
        message,
        headers=(("Allow", ", ".join(allow)),),
    )


def too_large(message: str) -> RestError:
    # [I] HTTP 413 with statusCode 5: the body was refused before it was parsed.
    return RestError(Status(StatusCode.INVALID_XML_FORMAT, "messageTooLarge", http=413), message)


def unauthorized(message: str) -> RestError:
    return RestError(Status(StatusCode.INVALID_OPERATION, "badAuthorization", http=401), message)


def from_domain_error(exc: CustosError) -> RestError:
    """The ResponseStatus a domain error of the store, users or jobs becomes."""
    if isinstance(exc, RestError):
        return exc
    if isinstance(exc, NotFoundError):
        return not_found(exc.message)
    if isinstance(exc, ConfigError):
        return bad_parameters(exc.message)
    if isinstance(exc, PermissionError_):
        return low_privilege(exc.message)
    if isinstance(exc, ConflictError):
        return RestError(Status(StatusCode.INVALID_OPERATION, "invalidOperation"), exc.message)
    if isinstance(exc, LimitError):
        return RestError(Status(StatusCode.DEVICE_BUSY, "deviceBusy"), exc.message)
    return RestError(Status(StatusCode.DEVICE_ERROR, "deviceError"), exc.message)


def response_status_document(request_url: str, status: Status) -> bytes:
    """The ResponseStatus XML (HR-10: subStatusCode always present)."""
    root = new_root("ResponseStatus")
    text_child(root, "requestURL", request_url)
    text_child(root, "statusCode", str(int(status.code)))
    text_child(root, "statusString", STATUS_STRINGS[status.code])
    if status.created_id is not None:
        text_child(root, "id", status.created_id)
    text_child(root, "subStatusCode", status.sub)
    return serialize(root)

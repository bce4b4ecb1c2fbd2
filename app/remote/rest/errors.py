"""REST client errors: transport failures, unreadable answers and ResponseStatus refusals.

Every refusal names the request (`GET /PSIA/System/deviceInfo`) and carries the HTTP status and,
when the device sent one, its ResponseStatus (HR-10..12). The class says what the caller can do:
fix the credentials (RestAuthError), ask an administrator (RestPermissionError), stop offering the
feature (RestNotSupportedError), ... ; the ISAPI subStatusCode decides where it is more precise
than the HTTP status (a 403 is either lowPrivilege or notSupport).
"""

from __future__ import annotations

import dataclasses

from app.core.errors import ErrorKind, PeerError


class RestError(PeerError):
    """A device did not answer as asked (unreachable, timed out, or an unexpected answer)."""


class RestProtocolError(RestError):
    """The answer is not what the protocol allows: malformed or hostile XML, wrong document."""

    default_kind = ErrorKind.INVALID_ARGUMENT


class RestLimitError(RestProtocolError):
    """The answer exceeds one of the client's named size or count limits."""

    default_kind = ErrorKind.RESOURCE_EXHAUSTED


@dataclasses.dataclass(frozen=True, slots=True)
class ResponseStatus:
    """The fields of a ResponseStatus document (HR-10); numbers per HR-11."""

    request_url: str
    status_code: int
    status_string: str
    sub_status_code: str

    @property
    def ok(self) -> bool:
        # 0 is ISAPI's OK; 7 "Reboot Required" reports a write that succeeded.
        return self.status_code in (0, 1, 7)


class RestHttpError(RestError):
    """The device refused `resource` (e.g. "GET /PSIA/System/time") with an HTTP error status
    or a failing ResponseStatus (`response`, None when the body was not one)."""

    default_kind = ErrorKind.UNAVAILABLE

    def __init__(
        self, resource: str, status: int, response: ResponseStatus | None = None, why: str = ""
    ) -> None:
        detail = f"HTTP {status}"
        if response is not None:
            detail += f", statusCode {response.status_code}"
            if response.status_string:
                detail += f" {response.status_string}"
            if response.sub_status_code:
                detail += f", subStatusCode {response.sub_status_code}"
        super().__init__(f"{resource}: {why or 'refused'} ({detail})")
        self.resource = resource
        self.status = status
        self.response = response

    @property
    def sub_status_code(self) -> str:
        return self.response.sub_status_code if self.response is not None else ""


class RestAuthError(RestHttpError):
    """The device refused the credentials (or offered no scheme this client may use)."""

    default_kind = ErrorKind.UNAUTHENTICATED


class RestPermissionError(RestHttpError):
    """The user's access level does not allow the request (403 lowPrivilege, AU-06)."""

    default_kind = ErrorKind.PERMISSION_DENIED


class RestNotFoundError(RestHttpError):
    """No such resource or ID on the device (404)."""

    default_kind = ErrorKind.NOT_FOUND


class RestNotSupportedError(RestHttpError):
    """The device does not offer this resource or method (405, notSupport, methodNotAllowed)."""

    default_kind = ErrorKind.UNIMPLEMENTED


class RestRequestError(RestHttpError):
    """The device found the request document or its values wrong (400, statusCode 5/6)."""

    default_kind = ErrorKind.INVALID_ARGUMENT


class RestBusyError(RestHttpError):
    """The device is busy or out of a resource (503, deviceBusy); retrying later may work."""

    default_kind = ErrorKind.UNAVAILABLE


#: subStatusCode (ISAPI vocabulary) → error class and what it means; checked before HTTP status.
_BY_SUB: dict[str, tuple[type[RestHttpError], str]] = {
    "badAuthorization": (RestAuthError, "credentials refused"),
    "lowPrivilege": (RestPermissionError, "the user's level is too low"),
    "notSupport": (RestNotSupportedError, "not supported by the device"),
    "methodNotAllowed": (RestNotSupportedError, "method not allowed"),
    "invalidID": (RestNotFoundError, "no such resource"),
    "deviceBusy": (RestBusyError, "device busy"),
    "badXmlFormat": (RestRequestError, "request XML refused as malformed"),
    "badXmlContent": (RestRequestError, "request XML content refused"),
    "badParameters": (RestRequestError, "request values refused"),
    "messageTooLarge": (RestRequestError, "request too large"),
}
#: HTTP status → error class and meaning, when the subStatusCode says nothing more.
_BY_HTTP: dict[int, tuple[type[RestHttpError], str]] = {
    400: (RestRequestError, "request refused"),
    401: (RestAuthError, "credentials refused"),
    403: (RestPermissionError, "forbidden"),
    404: (RestNotFoundError, "no such resource"),
    405: (RestNotSupportedError, "method not allowed"),
    413: (RestRequestError, "request too large"),
    501: (RestNotSupportedError, "not implemented"),
    503: (RestBusyError, "device busy"),
}
#: HR-11 statusCode → class when neither the subStatusCode nor HTTP status is telling.
_BY_CODE: dict[int, tuple[type[RestHttpError], str]] = {
    2: (RestBusyError, "device busy"),
    3: (RestHttpError, "device error"),
    4: (RestNotSupportedError, "invalid operation"),
    5: (RestRequestError, "request XML refused as malformed"),
    6: (RestRequestError, "request XML content refused"),
}


def refusal(resource: str, status: int, response: ResponseStatus | None) -> RestHttpError:
    """The error for a refused request: by subStatusCode, then HTTP status, then statusCode."""
    sub = response.sub_status_code if response is not None else ""
    code = response.status_code if response is not None else 0
    cls, why = _BY_SUB.get(sub) or _BY_HTTP.get(status) or _BY_CODE.get(code) or (RestHttpError, "")
    if status == 401:
        # Whatever the body says, a 401 after answering the challenge is an authentication error.
        cls, why = RestAuthError, "credentials refused"
    return cls(resource, status, response, why)

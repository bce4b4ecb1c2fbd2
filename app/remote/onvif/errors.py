"""ONVIF client errors: SOAP faults with resolved QNames, HTTP and authentication failures."""

from __future__ import annotations

from app.core.errors import ErrorKind, PeerError

NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_ERROR = "http://www.onvif.org/ver10/error"

#: A resolved QName: (namespace URI or "", local name).
QName = tuple[str, str]


class OnvifError(PeerError):
    """A device did not answer as asked (transport, HTTP status, unparsable answer)."""


class OnvifHttpError(OnvifError):
    """An HTTP status without a SOAP body (404, 405, 415, 413, a proxy's 502, ...)."""

    def __init__(self, status: int, url: str) -> None:
        super().__init__(f"HTTP {status} from {url}")
        self.status = status
        self.url = url


class OnvifAuthError(OnvifError):
    """The device refused the credentials (HTTP 401 after answering its challenge)."""

    default_kind = ErrorKind.UNAUTHENTICATED


class OnvifFault(OnvifError):
    """A SOAP fault: `code` and `subcodes` are QNames resolved against the fault's namespaces.

    Compare with `has_subcode("NoRecording")` or `subcodes[i] == (NS_ERROR, "InvalidArgVal")`,
    never with prefixed strings (PF-11: devices use any prefix).
    """

    def __init__(self, code: QName, subcodes: tuple[QName, ...], reason: str, status: int) -> None:
        chain = "/".join(local for _, local in (code, *subcodes))
        super().__init__(f"SOAP fault {chain}: {reason}")
        self.code = code
        self.subcodes = subcodes
        self.reason = reason
        self.status = status

    def has_subcode(self, local: str, namespace: str = NS_ERROR) -> bool:
        return (namespace, local) in self.subcodes

    @property
    def is_sender(self) -> bool:
        return self.code == (NS_SOAP12, "Sender")

    @property
    def not_found(self) -> bool:
        """`env:Sender/ter:InvalidArgVal/<anything>` means "no such token" (PF-10)."""
        return (
            self.is_sender
            and len(self.subcodes) >= 2
            and self.subcodes[0]
            == (
                NS_ERROR,
                "InvalidArgVal",
            )
        )

    @property
    def not_supported(self) -> bool:
        """ActionNotSupported and UnknownAction alike (GEN-03: clients treat them the same)."""
        return self.has_subcode("ActionNotSupported") or self.has_subcode("UnknownAction")

    @property
    def not_authorized(self) -> bool:
        return self.has_subcode("NotAuthorized")

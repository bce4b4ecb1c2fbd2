"""The one error hierarchy of Custos; protocol edges translate kinds into faults and statuses.

    CustosError (kind)
    ├── ConfigError                 bad configuration or arguments       INVALID_ARGUMENT
    ├── NotFoundError               unknown token, path, recording       NOT_FOUND
    ├── ConflictError               already exists / in use              FAILED_PRECONDITION
    ├── AuthError                   missing or wrong credentials         UNAUTHENTICATED
    ├── LimitError                  a named size/count limit was hit     RESOURCE_EXHAUSTED
    ├── ProtocolError               malformed bytes from a peer          INVALID_ARGUMENT
    │   (each sans-IO module subclasses this: RtspParseError, RtpError, SdpError,
    │    DepacketizeError, ...; a parser raises only its declared subclasses)
    ├── StorageError                disk or index trouble                DATA_LOSS / UNAVAILABLE
    └── PeerError                   a remote device misbehaved / is gone UNAVAILABLE

Edges (SOAP faults, RTSP status codes, REST ResponseStatus, CLI exit codes) map `kind`, never
the class name, so a new subclass needs no edge change. No traceback ever leaves the process.
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """What went wrong, independent of where; edges map this to wire statuses."""

    INVALID_ARGUMENT = "invalid-argument"
    NOT_FOUND = "not-found"
    FAILED_PRECONDITION = "failed-precondition"
    UNAUTHENTICATED = "unauthenticated"
    PERMISSION_DENIED = "permission-denied"
    RESOURCE_EXHAUSTED = "resource-exhausted"
    UNAVAILABLE = "unavailable"
    DATA_LOSS = "data-loss"
    UNIMPLEMENTED = "unimplemented"
    INTERNAL = "internal"


class CustosError(Exception):
    """Base of every error Custos raises on purpose."""

    default_kind = ErrorKind.INTERNAL

    def __init__(self, message: str, *, kind: ErrorKind | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind if kind is not None else self.default_kind


class ConfigError(CustosError):
    """A configuration value or command-line argument is invalid."""

    default_kind = ErrorKind.INVALID_ARGUMENT


class NotFoundError(CustosError):
    """A token, recording, track or file does not exist."""

    default_kind = ErrorKind.NOT_FOUND


class ConflictError(CustosError):
    """The object exists already, or is in use, or the state forbids the action."""

    default_kind = ErrorKind.FAILED_PRECONDITION


class AuthError(CustosError):
    """Credentials are missing, wrong or replayed."""

    default_kind = ErrorKind.UNAUTHENTICATED


class PermissionError_(CustosError):
    """The authenticated user's level does not allow the action."""

    default_kind = ErrorKind.PERMISSION_DENIED


class LimitError(CustosError):
    """Input exceeded a named size or count limit."""

    default_kind = ErrorKind.RESOURCE_EXHAUSTED


class ProtocolError(CustosError):
    """Bytes from a peer do not follow the protocol or format; base of every parser's errors."""

    default_kind = ErrorKind.INVALID_ARGUMENT


class StorageError(CustosError):
    """The recording store cannot read or write as required."""

    default_kind = ErrorKind.DATA_LOSS


class PeerError(CustosError):
    """A remote device (camera, recorder) refused, vanished or answered nonsense."""

    default_kind = ErrorKind.UNAVAILABLE

"""Helpers shared by the ONVIF services: zeep request values → domain values, the jobs fault table.

zeep hands handlers `CompoundValue` objects whose optional children are None when absent; these
helpers turn them into the domain's types, raising the domain errors the services' `faults`
tables translate (ARCHITECTURE habit 6: faults are made only at the edge).
"""

from __future__ import annotations

import datetime as _dt
import enum
from typing import Any, TypeVar

from app.core.errors import CustosError
from app.core.time import NS_PER_SECOND, from_datetime
from app.engine.jobs import errors
from app.engine.storage import DurationError, parse_duration
from app.protocols.soap.fault import SoapFault

_E = TypeVar("_E", bound=enum.Enum)

#: One row per service fault table entry: (error class, env:Code value, ter: subcodes).
FaultRow = tuple[type[CustosError], str, tuple[str, ...]]


def jobs_faults() -> tuple[FaultRow, ...]:
    """PF-10: the fault of every jobs/errors.py class, read from the class itself.

    The errors module is the one mapping table (its docstring lists it); this only reshapes it
    into the rows `OnvifService.faults` expects, so the two can never disagree.
    """
    rows: list[FaultRow] = []
    for cls in _leaf_subclasses(errors.JobsError):
        code, subcode, detail = cls.fault
        subcodes = (subcode,) if detail is None else (subcode, detail)
        if issubclass(cls, CustosError):
            rows.append((cls, code, subcodes))
    return tuple(rows)


def _leaf_subclasses(base: type[errors.JobsError]) -> list[type[errors.JobsError]]:
    found: list[type[errors.JobsError]] = []
    for sub in base.__subclasses__():
        found.append(sub)
        found.extend(_leaf_subclasses(sub))
    return found


def text(value: Any) -> str:
    """An xs:string child as the client sent it; an empty or absent element is ''."""
    return "" if value is None else str(value)


def required(value: Any, what: str) -> Any:
    """A mandatory request element; zeep (strict=False) gives None when it is missing or empty.

    GEN-04: a missing mandatory element is `env:Sender/ter:InvalidArgs`.
    """
    if value is None:
        raise SoapFault.sender("InvalidArgs", reason=f"the request lacks {what}")
    return value


def wire_enum(cls: type[_E], value: Any, error: type[CustosError], what: str) -> _E:
    """The member of `cls` whose value is the wire text `value`, or `error` naming the value."""
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(str(m.value) for m in cls)
        shown = str(value)[:80]
        raise error(f"{what} {shown!r} is not one of {choices}") from None


def utc_ns(value: Any, what: str) -> int:
    """An xs:dateTime as zeep read it → UTC ns; a value without a zone is UTC (GEN-08, PF-05).

    An absent mandatory value is `Sender/InvalidArgs` (GEN-04).
    """
    if not isinstance(value, _dt.datetime):
        raise SoapFault.sender("InvalidArgs", reason=f"{what} must be an xs:dateTime")
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.UTC)
    return from_datetime(value)


def duration_seconds(value: Any, what: str) -> float:
    """An xs:duration text (verbatim from the wire) → seconds; a negative one stays negative.

    Callers that adapt out-of-range values (KeepAliveTime, WaitTime: RS-S6) clamp the result;
    absent or unusable text is `Sender/InvalidArgs` (GEN-04).
    """
    if not isinstance(value, str):
        raise SoapFault.sender("InvalidArgs", reason=f"{what} must be an xs:duration")
    stripped = value.strip()
    negative = stripped.startswith("-")
    try:
        ns = parse_duration(stripped[1:] if negative else stripped)
    except DurationError as exc:
        raise SoapFault.sender("InvalidArgs", reason=f"{what}: {exc.message}") from None
    return (-ns if negative else ns) / NS_PER_SECOND

"""Validation of recording-job and receiver requests, limits, and store-error translation.

Everything here raises the errors of jobs/errors.py, so the SOAP edge can pick the subcode.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Collection, Iterator, Mapping

from app.core.errors import ConfigError, ConflictError, CustosError, LimitError, NotFoundError
from app.engine.ingest import parse_source_url
from app.engine.jobs import errors
from app.engine.jobs.runtime import RESERVED_ERROR
from app.engine.recorder import DEFAULT_SOURCE_TAGS
from app.engine.storage import (
    SOURCE_TYPE_RECEIVER,
    Job,
    JobConfig,
    JobMode,
    JobTrack,
    Receiver,
    ReceiverConfig,
    ReceiverMode,
    Recording,
    StreamType,
    TransportProtocol,
)

#: Capabilities the services advertise (A.5); the store's own limits are higher.
MAX_RECORDINGS = 32
MAX_RECORDING_JOBS = 64
MAX_RECEIVERS = 32
#: MaximumRTSPURILength (RX-G5: at least 128 must work).
MAX_URI_CHARS = 1024


@contextlib.contextmanager
def translated(
    not_found: type[CustosError] | None = None,
    config: type[CustosError] = errors.BadConfigurationError,
    limit: type[CustosError] | None = None,
    conflict: type[CustosError] | None = None,
) -> Iterator[None]:
    """Store errors → the specific errors the edge maps to subcodes (message kept)."""
    try:
        yield
    except CustosError as exc:
        if isinstance(exc, errors.JobsError):
            raise
        target: type[CustosError] | None = None
        if isinstance(exc, NotFoundError):
            target = not_found
        elif isinstance(exc, ConfigError):
            target = config
        elif isinstance(exc, LimitError):
            target = limit
        elif isinstance(exc, ConflictError):
            target = conflict
        if target is None:
            raise
        raise target(exc.message) from exc


def check_job(
    config: JobConfig,
    token: str | None,
    *,
    recording: Recording,
    jobs: Mapping[str, Job],
    receivers: Mapping[str, Receiver],
    reserved: Collection[str],
) -> JobConfig:
    """RC-12.1 checks the store cannot make (it checks tokens, tracks and duplicates)."""
    try:
        mode = JobMode(config.mode)
    except ValueError:
        raise errors.BadConfigurationError(
            f"recording job mode {config.mode!r} is not one of Idle, Active"
        ) from None
    if config.priority < 0:
        raise errors.BadConfigurationError(f"job priority {config.priority} must be ≥ 0")
    if token is not None and jobs[token].config.recording != config.recording:
        raise errors.BadConfigurationError(
            f"recording job {token!r} records into {jobs[token].config.recording!r}; "
            f"it cannot be moved to {config.recording!r}"
        )
    kinds = {t.token: t.kind for t in recording.tracks}
    sources = []
    for pos, source in enumerate(config.sources):
        if source.source_type != SOURCE_TYPE_RECEIVER:
            raise errors.BadConfigurationError(
                f"job source {pos}: source type {source.source_type!r} is not supported "
                f"(only {SOURCE_TYPE_RECEIVER})"
            )
        if source.source_token is not None and source.source_token not in receivers:
            raise errors.BadConfigurationError(
                f"job source {pos}: no receiver {source.source_token[:80]!r}"
            )
        tracks = source.tracks or tuple(
            JobTrack(DEFAULT_SOURCE_TAGS[kind], tok) for tok, kind in kinds.items()
        )
        for binding in tracks:
            if binding.destination in reserved:
                raise errors.BadConfigurationError(
                    f"job destination {config.recording}/{binding.destination}: {RESERVED_ERROR}"
                )
        sources.append(dataclasses.replace(source, tracks=tracks))
    new_auto = sum(s.source_token is None and s.auto_create_receiver for s in config.sources)
    if new_auto:
        freed = _auto_receivers_freed(token, config, jobs, receivers)
        if len(receivers) - freed + new_auto > MAX_RECEIVERS:
            raise errors.MaxReceiversError(
                f"AutoCreateReceiver needs {new_auto} receiver(s) beyond the "
                f"{MAX_RECEIVERS} the engine supports"
            )
    return JobConfig(config.recording, mode, config.priority, tuple(sources))


def _auto_receivers_freed(
    token: str | None, config: JobConfig, jobs: Mapping[str, Job], receivers: Mapping[str, Receiver]
) -> int:
    """Auto receivers only job `token` uses that `config` no longer names."""
    if token is None:
        return 0
    kept = receivers_of(config)
    others = {r for t, j in jobs.items() if t != token for r in receivers_of(j.config)}
    return sum(
        1
        for r in receivers_of(jobs[token].config)
        if r not in kept and r not in others and receivers[r].auto_created
    )


def receivers_of(config: JobConfig) -> set[str]:
    return {
        s.source_token
        for s in config.sources
        if s.source_type == SOURCE_TYPE_RECEIVER and s.source_token is not None
    }


def check_receiver_config(config: ReceiverConfig) -> ReceiverConfig:
    """RX-04/RX-06 BadConfiguration rules; the message never shows the URI's password."""
    try:
        mode = ReceiverMode(config.mode)
        stream = StreamType(config.stream)
        protocol = TransportProtocol(config.protocol)
    except ValueError as exc:
        raise errors.BadConfigurationError(f"receiver configuration: {exc}") from None
    if stream is not StreamType.UNICAST:
        raise errors.BadConfigurationError(f"receiver stream type {stream.value} is not supported")
    if len(config.media_uri) > MAX_URI_CHARS:
        raise errors.BadConfigurationError(
            f"receiver MediaUri of {len(config.media_uri)} characters exceeds {MAX_URI_CHARS}"
        )
    if config.media_uri:
        try:
            parse_source_url(config.media_uri)
        except ConfigError as exc:
            raise errors.BadConfigurationError(exc.message) from None
    return ReceiverConfig(mode, config.media_uri, stream, protocol)

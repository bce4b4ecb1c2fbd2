"""Domain errors of recording control and receivers, each naming the ONVIF fault it becomes.

The SOAP edge maps a `JobsError` by its `fault` attribute (code, subcode, detail subcode), and
any other CustosError by its kind. The table (env = SOAP envelope code, all subcodes `ter:`):

    class                       base            env:Code  Subcode         Subcode
    NoRecordingError            NotFoundError   Sender    InvalidArgVal   NoRecording
    NoTrackError                NotFoundError   Sender    InvalidArgVal   NoTrack
    NoRecordingJobError         NotFoundError   Sender    InvalidArgVal   NoRecordingJob
    UnknownReceiverError        NotFoundError   Sender    InvalidArgVal   UnknownToken
    BadConfigurationError       ConfigError     Sender    InvalidArgVal   BadConfiguration
    BadModeError                ConfigError     Sender    InvalidArgVal   BadMode
    InvalidReceiverModeError    ConfigError     Sender    InvalidArgVal   —
    MaxRecordingsError          LimitError      Receiver  Action          MaxRecordings
    MaxTracksError              LimitError      Receiver  Action          MaxTracks
    MaxRecordingJobsError       LimitError      Receiver  Action          MaxRecordingJobs
    MaxReceiversError           LimitError      Receiver  Action          MaxReceivers
    CannotDeleteError           ConflictError   Receiver  Action          CannotDelete
    CannotDeleteReceiverError   ConflictError   Receiver  Action          CannotDeleteReceiver

Which service raises which is in spec §2.A (PF-10: the "unknown token" subcode differs per
service; the Search service maps NoRecordingError to InvalidToken itself).
"""

from __future__ import annotations

from typing import ClassVar

from app.core.errors import ConfigError, ConflictError, LimitError, NotFoundError

#: (env:Code value, first ter: subcode, detail ter: subcode or None).
Fault = tuple[str, str, str | None]


class JobsError:
    """Mixin: the ONVIF fault of an error raised by the job controller."""

    fault: ClassVar[Fault]


class NoRecordingError(JobsError, NotFoundError):
    fault = ("Sender", "InvalidArgVal", "NoRecording")


class NoTrackError(JobsError, NotFoundError):
    fault = ("Sender", "InvalidArgVal", "NoTrack")


class NoRecordingJobError(JobsError, NotFoundError):
    fault = ("Sender", "InvalidArgVal", "NoRecordingJob")


class UnknownReceiverError(JobsError, NotFoundError):
    fault = ("Sender", "InvalidArgVal", "UnknownToken")


class BadConfigurationError(JobsError, ConfigError):
    fault = ("Sender", "InvalidArgVal", "BadConfiguration")


class BadModeError(JobsError, ConfigError):
    fault = ("Sender", "InvalidArgVal", "BadMode")


class InvalidReceiverModeError(JobsError, ConfigError):
    fault = ("Sender", "InvalidArgVal", None)


class MaxRecordingsError(JobsError, LimitError):
    fault = ("Receiver", "Action", "MaxRecordings")


class MaxTracksError(JobsError, LimitError):
    fault = ("Receiver", "Action", "MaxTracks")


class MaxRecordingJobsError(JobsError, LimitError):
    fault = ("Receiver", "Action", "MaxRecordingJobs")


class MaxReceiversError(JobsError, LimitError):
    fault = ("Receiver", "Action", "MaxReceivers")


class CannotDeleteError(JobsError, ConflictError):
    fault = ("Receiver", "Action", "CannotDelete")


class CannotDeleteReceiverError(JobsError, ConflictError):
    fault = ("Receiver", "Action", "CannotDeleteReceiver")

"""The verification report of an ONVIF export: verdicts, provenance, timing, JSON and text forms.

The JSON schema is documented in DESIGN.md ("Verification report, schema_version 1"); fields are
only ever added, never renamed, and `schema_version` changes when a meaning changes.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from app.core.time import format_iso

SCHEMA_VERSION = 1

VALID_TRUSTED = "valid-trusted"
VALID_UNTRUSTED = "valid-untrusted"
INVALID = "invalid"
UNSIGNED = "unsigned"
MALFORMED = "malformed"

#: Process exit status of `custos verify` per overall verdict (documented in DESIGN.md).
EXIT_CODES = {VALID_TRUSTED: 0, VALID_UNTRUSTED: 1, UNSIGNED: 2, INVALID: 3, MALFORMED: 4}
#: Exit status when the file cannot be read at all, or the arguments are wrong.
EXIT_USAGE = 5

#: Overall verdict = the worst instance verdict, in this order (worst first).
SEVERITY = (MALFORMED, INVALID, VALID_UNTRUSTED, VALID_TRUSTED)


def iso(ns: int | None) -> str | None:
    """UTC ISO 8601 with ms, or None for no time or one outside what the platform can show."""
    if ns is None:
        return None
    try:
        return format_iso(ns, digits=3)
    except (OverflowError, OSError, ValueError):
        return None


@dataclasses.dataclass(slots=True)
class Warning_:
    """A conformance observation that is not tampering (code is stable, message is for people)."""

    code: str
    message: str


@dataclasses.dataclass(slots=True)
class CertificateInfo:
    subject: str
    issuer: str
    serial: str
    sha256: str
    not_before_ns: int
    not_after_ns: int
    public_key: str
    self_signed: bool


@dataclasses.dataclass(slots=True)
class InstanceReport:
    """One signing instance: integrity of its signature, trust in its signer, what it attests."""

    index: int
    verdict: str = MALFORMED
    integrity: str = "malformed"
    trust: str = "unknown"
    reasons: list[str] = dataclasses.field(default_factory=list)
    scheme: str = ""
    algorithm: str | None = None
    pss_salt_length: int | None = None
    certificate: CertificateInfo | None = None
    chain: list[str] = dataclasses.field(default_factory=list)
    note: str | None = None
    start_times: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    signed_bytes: int = 0


@dataclasses.dataclass(slots=True)
class GapReport:
    """A hole in a track's media timeline: where it starts (UTC if known) and how long."""

    track_id: int
    media_offset_ns: int
    start_ns: int | None
    duration_ns: int


@dataclasses.dataclass(slots=True)
class TrackReport:
    track_id: int
    source_name: str | None = None
    source_url: str | None = None
    source_mac: str | None = None
    source_line: str | None = None
    timescale: int | None = None
    start_ns: int | None = None
    start_source: str | None = None
    duration_ns: int | None = None
    fragments: int = 0
    gaps: list[GapReport] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(slots=True)
class StartTimeRecord:
    """One start-time statement and who made it ('file' = unsigned meta, or instance N)."""

    track_id: int
    start_ns: int
    source: str
    signer: str | None


@dataclasses.dataclass(slots=True)
class VerificationReport:
    """Everything `custos verify` says about one file."""

    path: str
    file_size: int = 0
    verdict: str = MALFORMED
    summary: str = ""
    reasons: list[str] = dataclasses.field(default_factory=list)
    unit_name: str | None = None
    unit_url: str | None = None
    unit_mac: str | None = None
    export_time_ns: int | None = None
    operator: str | None = None
    start_ns: int | None = None
    start_source: str | None = None
    start_times: list[StartTimeRecord] = dataclasses.field(default_factory=list)
    duration_ns: int | None = None
    tracks: list[TrackReport] = dataclasses.field(default_factory=list)
    instances: list[InstanceReport] = dataclasses.field(default_factory=list)
    warnings: list[Warning_] = dataclasses.field(default_factory=list)

    def warn(self, code: str, message: str) -> None:
        self.warnings.append(Warning_(code, message))

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "path": self.path,
            "file_size": self.file_size,
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "summary": self.summary,
            "reasons": list(self.reasons),
            "export": {
                "unit_name": self.unit_name,
                "unit_url": self.unit_url,
                "unit_mac": self.unit_mac,
                "export_time_ns": self.export_time_ns,
                "export_time_utc": iso(self.export_time_ns),
                "operator": self.operator,
            },
            "start_ns": self.start_ns,
            "start_utc": iso(self.start_ns),
            "start_source": self.start_source,
            "start_times": [
                {
                    "track_id": r.track_id,
                    "start_ns": r.start_ns,
                    "start_utc": iso(r.start_ns),
                    "source": r.source,
                    "signer": r.signer,
                }
                for r in self.start_times
            ],
            "duration_ns": self.duration_ns,
            "tracks": [_track_dict(t) for t in self.tracks],
            "instances": [_instance_dict(i) for i in self.instances],
            "warnings": [{"code": w.code, "message": w.message} for w in self.warnings],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_text(self) -> str:
        """The human-readable report (what `custos verify` prints without --json)."""
        lines = [f"{self.path}: {self.verdict.upper()} — {self.summary}"]
        lines += [f"  reason: {r}" for r in self.reasons]
        if self.unit_name is not None:
            lines.append(
                f"  exported by {self.unit_name!r} ({self.unit_url or '-'}, "
                f"{self.unit_mac or '-'}) at {iso(self.export_time_ns)}, "
                f"operator {self.operator or '-'}"
            )
        if self.start_ns is not None:
            lines.append(f"  start {iso(self.start_ns)} (from {self.start_source})")
        if self.duration_ns is not None:
            lines.append(f"  duration {self.duration_ns / 1e9:.3f} s")
        for track in self.tracks:
            src = f"{track.source_name!r} {track.source_url or ''}" if track.source_name else "-"
            lines.append(f"  track {track.track_id}: source {src}, {len(track.gaps)} gap(s)")
            lines += [
                f"    gap at {iso(g.start_ns) or f'+{g.media_offset_ns / 1e9:.3f} s'}"
                f" for {g.duration_ns / 1e9:.3f} s"
                for g in track.gaps
            ]
        for inst in self.instances:
            who = inst.certificate.subject if inst.certificate else "no certificate"
            lines.append(
                f"  signature #{inst.index}: {inst.verdict} (integrity {inst.integrity}, "
                f"trust {inst.trust}) by {who}"
            )
            if inst.certificate is not None:
                cert = inst.certificate
                lines.append(
                    f"    issuer {cert.issuer}; valid {iso(cert.not_before_ns)} .. "
                    f"{iso(cert.not_after_ns)}; SHA-256 {cert.sha256}"
                )
            if inst.algorithm:
                lines.append(f"    algorithm {inst.algorithm}")
            if inst.note is not None:
                lines.append(f"    note: {inst.note}")
            lines += [f"    corrected start of track {t}: {iso(ns)}" for t, ns in inst.start_times]
            lines += [f"    reason: {r}" for r in inst.reasons]
        lines += [f"  warning [{w.code}]: {w.message}" for w in self.warnings]
        return "\n".join(lines) + "\n"


def _track_dict(track: TrackReport) -> dict[str, Any]:
    return {
        "track_id": track.track_id,
        "source": {
            "name": track.source_name,
            "url": track.source_url,
            "mac": track.source_mac,
            "line": track.source_line,
        },
        "timescale": track.timescale,
        "start_ns": track.start_ns,
        "start_utc": iso(track.start_ns),
        "start_source": track.start_source,
        "duration_ns": track.duration_ns,
        "fragments": track.fragments,
        "gaps": [
            {
                "media_offset_ns": g.media_offset_ns,
                "start_ns": g.start_ns,
                "start_utc": iso(g.start_ns),
                "duration_ns": g.duration_ns,
            }
            for g in track.gaps
        ],
    }


def _instance_dict(inst: InstanceReport) -> dict[str, Any]:
    cert = inst.certificate
    return {
        "index": inst.index,
        "verdict": inst.verdict,
        "integrity": inst.integrity,
        "trust": inst.trust,
        "reasons": list(inst.reasons),
        "scheme": inst.scheme,
        "algorithm": inst.algorithm,
        "pss_salt_length": inst.pss_salt_length,
        "signed_bytes": inst.signed_bytes,
        "certificate": None
        if cert is None
        else {
            "subject": cert.subject,
            "issuer": cert.issuer,
            "serial": cert.serial,
            "sha256": cert.sha256,
            "not_before_utc": iso(cert.not_before_ns),
            "not_after_utc": iso(cert.not_after_ns),
            "public_key": cert.public_key,
            "self_signed": cert.self_signed,
        },
        "chain": list(inst.chain),
        "note": inst.note,
        "start_times": [
            {"track_id": t, "start_ns": ns, "start_utc": iso(ns)} for t, ns in inst.start_times
        ],
    }

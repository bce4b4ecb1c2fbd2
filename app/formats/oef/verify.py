"""The ONVIF export verifier: every signing instance on its own, signer trust, provenance, gaps.

`verify_buffer` never raises for file content: whatever the bytes, the answer is a report whose
verdict is one of valid-trusted / valid-untrusted / invalid / unsigned / malformed (DESIGN.md).
`verify_file` maps the file read-only (no copy of the media) and calls it.
"""

from __future__ import annotations

import datetime as _dt
import mmap
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification as xv

from app.formats.bmff.box import BoxError, Buffer, payload
from app.formats.oef import meta as m
from app.formats.oef import report as r
from app.formats.oef import signature as s
from app.formats.oef.timeline import TrackTimeline, read_timelines

#: Longest certificate chain built to a trust anchor.
MAX_CHAIN_DEPTH = 8
#: Smallest RSA modulus not flagged (SG-03).
MIN_RSA_BITS = 2048

NS_PER_S = 1_000_000_000
TrustItem = x509.Certificate | Path | str


def load_certificates(data: bytes, origin: str = "certificate") -> list[x509.Certificate]:
    """Every certificate in PEM data (one or more) or a single DER certificate."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise ValueError(f"{origin}: not a PEM or DER X.509 certificate ({exc})") from None


def load_trust(items: Sequence[TrustItem]) -> list[x509.Certificate]:
    """Trust anchors from certificates or PEM/DER file paths (OSError/ValueError if unreadable)."""
    anchors: list[x509.Certificate] = []
    for item in items:
        if isinstance(item, x509.Certificate):
            anchors.append(item)
        else:
            anchors += load_certificates(Path(item).read_bytes(), str(item))
    return anchors


def verify_file(
    path: Path | str, trust: Sequence[TrustItem] = (), now_ns: int | None = None
) -> r.VerificationReport:
    """Verify the export at `path` against trust anchors (certificates or PEM/DER paths)."""
    anchors = load_trust(trust)
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size == 0:
            return verify_buffer(b"", anchors, path=str(path), now_ns=now_ns)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return verify_buffer(mapped, anchors, path=str(path), now_ns=now_ns)


def verify_buffer(
    buf: Buffer,
    trust: Sequence[x509.Certificate] = (),
    *,
    path: str = "",
    now_ns: int | None = None,
) -> r.VerificationReport:
    """Verify an export held in `buf` (bytes or mmap); never raises for any content."""
    now = time.time_ns() if now_ns is None else now_ns
    report = r.VerificationReport(path, len(memoryview(buf)))
    try:
        layout = s.locate(buf)
    except BoxError as exc:
        return _finish_malformed(report, f"box structure: {exc}")
    _check_layout(layout, report)
    file_starts = _provenance(buf, layout, report)
    timelines: dict[int, TrackTimeline] = {}
    try:
        timelines = read_timelines(buf, layout.top)
    except BoxError as exc:
        report.warn("TIMELINE_UNREADABLE", f"fragment timing could not be read: {exc}")
    if not layout.instances:
        remnants = s.signature_remnants(buf, layout)
        _timing(report, timelines, file_starts)
        if remnants:
            return _finish_malformed(
                report, f"signature boxes outside a valid ipro at offsets {remnants[:8]}"
            )
        report.verdict = r.UNSIGNED
        report.summary = "Not signed"
        return report
    prefix: dict[str, Any] = {}
    for instance in layout.instances:
        report.instances.append(_verify_instance(buf, layout, instance, prefix, trust, report, now))
    _timing(report, timelines, file_starts)
    _overall(report, layout)
    return report


def _finish_malformed(report: r.VerificationReport, reason: str) -> r.VerificationReport:
    report.verdict = r.MALFORMED
    report.reasons.append(reason)
    report.summary = "Malformed — the file is damaged or was modified"
    return report


def _check_layout(layout: s.Layout, report: r.VerificationReport) -> None:
    kinds = [b.type for b in layout.top]
    if not kinds or kinds[0] != b"ftyp" or kinds.count(b"moov") != 1:
        report.warn("NOT_ISO_BMFF", "no leading ftyp or not exactly one moov")
    if layout.meta is not None and layout.meta.end != layout.file_size:
        report.warn(
            "LAYOUT_NONCANONICAL",
            "data follows the file-level meta (the reference player would show 'Not verified')",
        )
    if layout.meta is not None and layout.meta.header_size != 8:
        report.warn("LARGE_SIZE_META", "meta uses a 64-bit size (EX-31 wants 32-bit)")
    if layout.ipro is not None and layout.meta_children[-1] != layout.ipro:
        report.warn("LAYOUT_NONCANONICAL", "ipro is not the last box of the file-level meta")


def _provenance(buf: Buffer, layout: s.Layout, report: r.VerificationReport) -> list[Any]:
    """Fill export unit / operator / sources; return the file-level start statements."""
    starts: list[Any] = []
    if layout.meta is None:
        return starts
    sueps = layout.meta_child(b"suep")
    if len(sueps) != 1:
        report.warn("SUEP_MISSING" if not sueps else "SUEP_MULTIPLE", f"{len(sueps)} suep boxes")
    for suep_box in sueps[:1]:
        try:
            suep = m.parse_suep(payload(buf, suep_box))
        except BoxError as exc:
            report.warn("SUEP_MALFORMED", str(exc))
            continue
        report.unit_name, report.unit_url, report.unit_mac = (
            suep.unit_name,
            suep.unit_url,
            suep.unit_mac,
        )
        report.export_time_ns, report.operator = suep.export_time_ns, suep.operator
        if suep.version == 0:
            report.warn("SUEP_V0_LEGACY", "suep version 0 (legacy, per video/audio UUID)")
        if suep.track_id_bits == 32:
            report.warn("SUEP_TRACKID_32", "suep TrackID written as 32 bits (spec: 16)")
        for index, src in enumerate(suep.tracks):
            report.tracks.append(
                r.TrackReport(
                    src.track_id or index + 1, src.name, src.url, src.mac, src.line or None
                )
            )
    for sumi_box in layout.meta_child(b"sumi")[:1]:
        try:
            sumi = m.parse_sumi(payload(buf, sumi_box))
        except BoxError as exc:
            report.warn("SUMI_MALFORMED", str(exc))
            continue
        if sumi.all_zero:
            report.warn("SUMI_ZERO", "all-zero sumi (as isosign writes it)")
        else:
            starts.append(("sumi", sumi))
    for cstb_box in layout.meta_child(b"cstb")[:1]:
        try:
            starts.append(("file cstb", m.parse_cstb(payload(buf, cstb_box))))
        except BoxError as exc:
            report.warn("CSTB_MALFORMED", f"file-level cstb: {exc}")
    if layout.ipro is not None:
        try:
            count = m.parse_ipro_count(payload(buf, layout.ipro))
            if count != 1:
                report.warn("PROTECTION_COUNT", f"ipro protection_count is {count}, not 1")
        except BoxError as exc:
            report.warn("IPRO_MALFORMED", str(exc))
    return starts


# ---------------------------------------------------------------- one instance


def _verify_instance(
    buf: Buffer,
    layout: s.Layout,
    inst: s.Instance,
    prefix: dict[str, Any],
    trust: Sequence[x509.Certificate],
    report: r.VerificationReport,
    now_ns: int,
) -> r.InstanceReport:
    out = r.InstanceReport(inst.index)
    if inst.problems or inst.sibo is None or inst.cert is None or inst.schm is None:
        out.reasons += list(inst.problems) or ["incomplete signing instance"]
        return out
    if inst.unknown:
        report.warn("UNEXPECTED_BOX", f"instance {inst.index}: unexpected {list(inst.unknown)}")
    if inst.cstb_in_sinf:
        report.warn("CSTB_IN_SINF", f"instance {inst.index}: cstb directly in sinf")
    scheme_type, scheme_version = s.scheme(buf, inst.schm)
    out.scheme = f"{scheme_type.to_bytes(4, 'big').hex()}/{scheme_version:#010x}"
    if (scheme_type, scheme_version) == (s.LEGACY_SCHEME_OEFF, s.LEGACY_SCHEME_VERSION):
        report.warn("LEGACY_SCHEME", f"instance {inst.index}: isosign scheme OEFF/0x00007830")
    elif (scheme_type, scheme_version) != (s.SCHEME_OEFF, s.SCHEME_VERSION):
        report.warn("UNKNOWN_SCHEME", f"instance {inst.index}: scheme {out.scheme}")
    _attested(buf, inst, out, report)
    cert = _certificate(payload(buf, inst.cert), out)
    if cert is None:
        return out
    try:
        algorithm = s.parse_sigc(payload(buf, inst.sigc)) if inst.sigc else s.DEFAULT_ALGORITHM
    except s.UnsupportedAlgorithmError as exc:
        out.verdict, out.integrity = r.INVALID, "unsupported-algorithm"
        out.reasons.append(str(exc))
        return out
    except BoxError as exc:
        out.reasons.append(str(exc))
        return out
    out.algorithm = algorithm.label
    signature = payload(buf, inst.sibo)
    if not any(signature):
        out.reasons.append("the signature is all zero (signing did not complete)")
    ok, out.signed_bytes = _check_signature(buf, layout, inst, algorithm, prefix, cert, out)
    _public_key_notes(cert, algorithm, out, report)
    if out.integrity == "unsupported-algorithm":
        out.verdict = r.INVALID
        return out
    out.integrity = "valid" if ok else "invalid"
    out.trust, out.chain, trust_reasons = evaluate_trust(cert, trust, report.export_time_ns, now_ns)
    if not ok:
        out.verdict = r.INVALID
        out.reasons.append(
            f"signature #{inst.index} does not match: the file was modified after signing, "
            "or the certificate does not belong to the signing key"
        )
        return out
    out.verdict = r.VALID_TRUSTED if out.trust == "trusted" else r.VALID_UNTRUSTED
    out.reasons += trust_reasons
    return out


def _attested(
    buf: Buffer, inst: s.Instance, out: r.InstanceReport, report: r.VerificationReport
) -> None:
    if inst.auib is not None:
        try:
            out.note = m.parse_auib(payload(buf, inst.auib))
        except BoxError as exc:
            report.warn("AUIB_MALFORMED", f"instance {inst.index}: {exc}")
    if inst.cstb is not None:
        try:
            out.start_times = m.parse_cstb(payload(buf, inst.cstb))
        except BoxError as exc:
            report.warn("CSTB_MALFORMED", f"instance {inst.index}: {exc}")


def _certificate(der: bytes, out: r.InstanceReport) -> x509.Certificate | None:
    try:
        with warnings.catch_warnings():
            # Odd-but-parseable certificates warn in cryptography; the report says it instead.
            warnings.simplefilter("ignore")
            cert = x509.load_der_x509_certificate(der)
            out.certificate = certificate_info(cert)
    except (ValueError, OverflowError, UnsupportedAlgorithm) as exc:
        # cryptography parses lazily: an odd key or name only fails when it is read.
        out.reasons.append(f"the cert box is not a readable DER X.509 certificate ({exc})")
        return None
    return cert


def certificate_info(cert: x509.Certificate) -> r.CertificateInfo:
    """Subject, issuer, serial, SHA-256 fingerprint, validity and key of a certificate."""
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key_text = f"RSA-{key.key_size}"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key_text = f"EC-{key.curve.name}"
    else:
        key_text = type(key).__name__
    return r.CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=f"{cert.serial_number:x}",
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        not_before_ns=_dt_ns(cert.not_valid_before_utc),
        not_after_ns=_dt_ns(cert.not_valid_after_utc),
        public_key=key_text,
        self_signed=cert.subject == cert.issuer,
    )


def _dt_ns(value: _dt.datetime) -> int:
    delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000


def _check_signature(
    buf: Buffer,
    layout: s.Layout,
    inst: s.Instance,
    algorithm: s.SignatureAlgorithm,
    prefix: dict[str, Any],
    cert: x509.Certificate,
    out: r.InstanceReport,
) -> tuple[bool, int]:
    """(signature valid, signed byte count): SG-04 cut-after-instance input, and for the last
    instance also the whole file (what a signer sees when data follows meta)."""
    assert layout.meta is not None and inst.sibo is not None
    hasher = prefix.get(algorithm.hash_name)
    if hasher is None:
        # Bytes before meta are identical in every instance's input: hash them once.
        hasher = prefix[algorithm.hash_name] = algorithm.new_hash()
        s.hash_update(hasher, buf, 0, layout.meta.offset)
    signature = payload(buf, inst.sibo)
    public_key = cert.public_key()
    candidates = [(inst.sinf.end, s.instance_patches(layout, inst))]
    if inst.index == len(layout.instances) and inst.sinf.end != layout.file_size:
        zero = [(inst.sibo.payload_offset, bytes(inst.sibo.payload_size))]
        candidates.append((layout.file_size, zero))
    for end, patches in candidates:
        digest_state = hasher.copy()
        try:
            s.hash_update(digest_state, buf, layout.meta.offset, end, patches)
        except BoxError as exc:
            out.reasons.append(str(exc))
            continue
        digest = digest_state.digest()
        try:
            ok = s.verify_digest(public_key, algorithm, digest, signature)
        except s.UnsupportedAlgorithmError as exc:
            out.integrity = "unsupported-algorithm"
            out.reasons.append(str(exc))
            return False, 0
        salt = _salt(public_key, algorithm, digest, signature)
        out.pss_salt_length = salt
        if not ok and salt is not None:
            # Reference-player parity: a PSS signature with another salt is still the key
            # holder's signature over these bytes; report the deviation.
            out.reasons.append(f"RSASSA-PSS salt length {salt} instead of {algorithm.salt_length}")
            ok = True
        if ok:
            return True, end
    return False, 0


def _salt(
    public_key: object, algorithm: s.SignatureAlgorithm, digest: bytes, signature: bytes
) -> int | None:
    if (
        isinstance(public_key, rsa.RSAPublicKey)
        and algorithm.kind == "rsa-pss"
        and algorithm.hash_name == algorithm.mgf_hash_name == "sha256"
    ):
        return s.pss_salt_length(public_key, signature, digest)
    return None


def _public_key_notes(
    cert: x509.Certificate,
    algorithm: s.SignatureAlgorithm,
    out: r.InstanceReport,
    report: r.VerificationReport,
) -> None:
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        report.warn("WEAK_KEY", f"instance {out.index}: RSA-{key.key_size} < {MIN_RSA_BITS}")
    if algorithm != s.DEFAULT_ALGORITHM:
        report.warn(
            "NON_DEFAULT_ALGORITHM",
            f"instance {out.index}: {algorithm.label} (the reference player verifies only "
            "RSASSA-PSS)",
        )


# ---------------------------------------------------------------- trust


def evaluate_trust(
    cert: x509.Certificate,
    anchors: Sequence[x509.Certificate],
    export_time_ns: int | None,
    now_ns: int,
) -> tuple[str, list[str], list[str]]:
    """(trust, chain subjects, reasons): 'trusted' needs a path to an anchor that holds at the
    claimed export time and now; 'expired'/'not-yet-valid' if only the dates fail."""
    if not anchors:
        return "untrusted", [], ["no trust anchor given: the signer's identity is unconfirmed"]
    times = [("now", now_ns)]
    if export_time_ns is not None:
        times.insert(0, ("the claimed export time", export_time_ns))
    der = cert.public_bytes(serialization.Encoding.DER)
    pinned = any(a.public_bytes(serialization.Encoding.DER) == der for a in anchors)
    chain: list[str] = []
    date_reasons: list[str] = []
    for label, when in times:
        moment = _datetime(when)
        if moment is None:
            date_reasons.append(f"{label} is outside the supported date range")
            continue
        if moment < cert.not_valid_before_utc:
            return "not-yet-valid", chain, [f"certificate not yet valid at {label}"]
        if moment > cert.not_valid_after_utc:
            date_reasons.append(f"certificate expired at {label}")
            continue
        if pinned:
            chain = [cert.subject.rfc4514_string()]
            continue
        try:
            chain = _chain(cert, anchors, moment)
        except xv.VerificationError as exc:
            return "untrusted", [], [f"no path to a trust anchor at {label}: {exc}"]
    if date_reasons:
        return "expired", chain, date_reasons
    return "trusted", chain, []


def _chain(
    cert: x509.Certificate, anchors: Sequence[x509.Certificate], at: _dt.datetime
) -> list[str]:
    verifier = (
        xv.PolicyBuilder()
        .store(xv.Store(list(anchors)))
        .time(at)
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(
            # Signing certificates carry no TLS EKU; CA rules stay the WebPKI ones.
            ca_policy=xv.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=xv.ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    verified = verifier.verify(cert, [])
    return [c.subject.rfc4514_string() for c in verified.chain]


def _datetime(ns: int) -> _dt.datetime | None:
    try:
        return _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(microseconds=ns // 1000)
    except OverflowError:
        return None


# ---------------------------------------------------------------- timing and the verdict


def _timing(
    report: r.VerificationReport, timelines: dict[int, TrackTimeline], file_starts: list[Any]
) -> None:
    """Start times (latest signed correction wins, EX-11a), per-track spans and gaps."""
    statements: list[tuple[str, str | None, list[tuple[int, int]]]] = []
    for source, value in file_starts:
        if source == "sumi":
            report.start_ns, report.start_source = value.start_ns, "sumi"
            report.duration_ns = value.duration_ns or None
        else:
            statements.append((source, None, value))
    for inst in report.instances:
        if inst.start_times:
            signer = inst.certificate.subject if inst.certificate else None
            if inst.integrity == "valid":
                statements.append((f"signing instance {inst.index}", signer, inst.start_times))
            else:
                report.warn(
                    "CSTB_UNVERIFIED",
                    f"start time of instance {inst.index} ignored: its signature is not valid",
                )
    for source, signer, entries in statements:
        report.start_times += [r.StartTimeRecord(t, ns, source, signer) for t, ns in entries]
    origins: dict[int, tuple[int, str]] = {}
    for source, signer, entries in statements:
        label = source if signer is None else f"{source} ({signer})"
        for track_id, ns in entries:
            origins[track_id] = (ns, label)
    by_id = {t.track_id: t for t in report.tracks}
    for track_id in sorted(timelines):
        if track_id not in by_id:
            by_id[track_id] = r.TrackReport(track_id)
            report.tracks.append(by_id[track_id])
    default = next(iter(origins.values()), None) if origins else None
    starts = []
    for track in report.tracks:
        line = timelines.get(track.track_id)
        origin = origins.get(track.track_id, default)
        if line is None:
            continue
        track.timescale, track.fragments = line.timescale, line.fragments
        track.duration_ns = line.duration_ns
        first = line.to_ns(line.start or 0)
        if origin is not None:
            track.start_ns, track.start_source = origin[0] + first, origin[1]
            starts.append((track.start_ns, origin[1]))
        for gap_start, gap_end in line.gaps:
            offset = line.to_ns(gap_start)
            utc = origin[0] + offset if origin is not None else None
            track.gaps.append(
                r.GapReport(track.track_id, offset, utc, line.to_ns(gap_end - gap_start))
            )
    if starts:
        report.start_ns, report.start_source = min(starts)
    spans = [t.duration_ns for t in report.tracks if t.duration_ns]
    if spans:
        report.duration_ns = max(spans)


def _overall(report: r.VerificationReport, layout: s.Layout) -> None:
    verdicts = [i.verdict for i in report.instances]
    report.verdict = next(v for v in r.SEVERITY if v in verdicts)
    covered = max(i.signed_bytes for i in report.instances)
    n = len(report.instances)
    if report.verdict not in (r.MALFORMED, r.INVALID) and covered < layout.file_size:
        report.verdict = r.INVALID
        report.reasons.append(
            f"{layout.file_size - covered} bytes at the end of the file are not covered by any "
            "signature (data was appended after signing)"
        )
    bad = [i.index for i in report.instances if i.verdict in (r.INVALID, r.MALFORMED)]
    if report.verdict == r.MALFORMED:
        report.summary = f"Malformed signing instance(s) {bad}"
    elif report.verdict == r.INVALID:
        report.summary = (
            f"Signed — signature(s) {bad} INVALID (file modified after signing)"
            if bad
            else "Signed — the file was extended after signing"
        )
    else:
        trusted = [i.index for i in report.instances if i.verdict == r.VALID_TRUSTED]
        report.summary = (
            f"Signed — all {n} signature(s) valid — signer(s) {trusted or 'none'} trusted"
        )
    for inst in report.instances:
        if inst.verdict in (r.INVALID, r.MALFORMED):
            report.reasons += [f"#{inst.index}: {reason}" for reason in inst.reasons]


__all__ = ["evaluate_trust", "load_trust", "verify_buffer", "verify_file"]

"""H.264 (RFC 6184) and H.265 (RFC 7798) RTP payload formats: depacketizers and packetizers.

Non-interleaved mode only (packetization-mode 0/1; H.265 without DONL): STAP-A/AP and FU-A/FU
are reassembled, interleaved-mode packets (STAP-B, MTAP, FU-B) raise UnsupportedPacketizationError.
An access unit ends at the marker bit or when the RTP timestamp changes. A sequence-number gap
damages the unit being assembled: it is dropped and counted in `lost_units`, never emitted with
holes. After a gap a unit is also dropped if its first slice is not the picture's first slice
(the lost packets were its beginning).
"""

from __future__ import annotations

import dataclasses

from app.core.media import CodecParams
from app.formats.h26x import (
    H264_SYNTAX,
    H265_SYNTAX,
    MAX_NAL_BYTES,
    MAX_NALS_PER_AU,
    H26xError,
    NalSyntax,
    join_length_prefixed,
    split_length_prefixed,
)
from app.protocols.rtp.codec import (
    DEFAULT_MAX_PAYLOAD,
    DepacketizedUnit,
    DepacketizeError,
    PayloadChunk,
)
from app.protocols.rtp.packet import RtpPacket

#: Largest access unit reassembled (a 4K intra frame at high quality stays below this).
MAX_AU_BYTES = 8 * 1024 * 1024
#: A packet at most this many sequence numbers behind the newest is a late duplicate: ignored.
#: Further behind counts as the sender restarting its sequence.
MAX_MISORDER = 100
#: Smallest max_payload a packetizer accepts (FU headers take 3 bytes).
MIN_PAYLOAD = 8

_FU_START = 0x80
_FU_END = 0x40


class H26xDepacketizeError(DepacketizeError):
    """An H.264/H.265 RTP payload is malformed; the unit it belonged to is dropped."""


class UnsupportedPacketizationError(H26xDepacketizeError):
    """Interleaved-mode packets (STAP-B, MTAP16/24, FU-B) that Custos does not negotiate."""


class AccessUnitTooLargeError(H26xDepacketizeError):
    """An access unit grew past MAX_AU_BYTES, or a NAL unit past MAX_NAL_BYTES."""


class _Assembly:
    """The access unit being reassembled from the packets of one RTP timestamp."""

    __slots__ = ("after_gap", "damaged", "fu", "nals", "size", "timestamp")

    def __init__(self, timestamp: int, *, after_gap: bool) -> None:
        self.timestamp = timestamp
        self.nals: list[bytes] = []
        self.size = 0
        self.fu: bytearray | None = None
        self.damaged = False
        self.after_gap = after_gap


class _H26xDepacketizer:
    """Shared reassembly; subclasses say how their payload types split into NAL units."""

    syntax: NalSyntax

    def __init__(self, params: CodecParams) -> None:
        if params.codec is not self.syntax.codec:
            raise ValueError(f"{type(self).__name__} cannot take {params.codec.value} params")
        self.params = params
        self.lost_units = 0
        #: In-band SPS that could not be parsed (the unit is kept, its size stays as before).
        self.bad_parameter_sets = 0
        self._sets: dict[int, bytes] = self.syntax.parameter_sets_in(params.parameter_sets)
        self._unit: _Assembly | None = None
        self._ready: list[DepacketizedUnit] = []
        self._pending_params: CodecParams | None = None
        self._last_seq: int | None = None
        self._ssrc: int | None = None

    def push(self, packet: RtpPacket) -> list[DepacketizedUnit]:
        gap = self._sequence_gap(packet)
        if gap is None:
            return []
        unit = self._unit
        if gap and unit is not None:
            unit.damaged = True  # whatever was lost may have belonged to it
        if unit is not None and packet.timestamp != unit.timestamp:
            self._finish()
            unit = None
        if unit is None:
            unit = self._unit = _Assembly(packet.timestamp, after_gap=gap)
        try:
            if not unit.damaged:
                self._payload(unit, packet.payload)
        except DepacketizeError:
            unit.damaged = True
            if packet.marker:
                self._finish()
            raise
        if packet.marker:
            self._finish()
        ready, self._ready = self._ready, []
        return ready

    def flush(self) -> list[DepacketizedUnit]:
        """Emit the pending unit unless it is damaged or ends in an unfinished FU.

        Without a marker bit the tail of the unit may still be missing; a stream that never
        sets the marker loses nothing else, since every other unit ends at a timestamp change.
        """
        if self._unit is not None:
            self._finish()
        ready, self._ready = self._ready, []
        return ready

    def _sequence_gap(self, packet: RtpPacket) -> bool | None:
        """False for the next packet in order, True after a gap, None to ignore the packet."""
        last, self._last_seq = self._last_seq, packet.sequence
        if last is None or packet.ssrc != self._ssrc:
            # A first packet (or a new source) may join mid-picture: check it like a gap.
            self._ssrc = packet.ssrc
            return True
        delta = (packet.sequence - last) & 0xFFFF
        if delta == 1:
            return False
        if delta == 0 or 0x10000 - delta <= MAX_MISORDER:
            self._last_seq = last  # a duplicate or a late packet: its unit has moved on
            return None
        return True

    def _finish(self) -> None:
        unit, self._unit = self._unit, None
        if unit is None:
            return
        if unit.fu is not None or (unit.after_gap and not self._starts_picture(unit.nals)):
            unit.damaged = True
        if unit.damaged:
            self.lost_units += 1
            return
        if not unit.nals:
            return
        self._ready.extend(self._emit(unit))

    def _emit(self, unit: _Assembly) -> list[DepacketizedUnit]:
        syntax = self.syntax
        nals = unit.nals
        found = syntax.parameter_sets_in(nals)
        if found:
            self._update_parameter_sets(found)
        if not any(syntax.is_vcl_type(syntax.nal_type(n)) for n in nals):
            return []  # parameter sets or SEI alone: kept for the next picture
        keyframe = syntax.is_keyframe(nals)
        if keyframe:
            nals = _with_parameter_sets(syntax, nals, self._sets)
        new_params, self._pending_params = self._pending_params, None
        return [
            DepacketizedUnit(
                data=join_length_prefixed(nals),
                rtp_timestamp=unit.timestamp,
                keyframe=keyframe,
                new_params=new_params,
            )
        ]

    def _update_parameter_sets(self, found: dict[int, bytes]) -> None:
        merged = {**self._sets, **found}
        if merged == self._sets:
            return
        self._sets = merged
        syntax = self.syntax
        if any(t not in merged for t in syntax.parameter_set_types):
            return
        width, height = self.params.width, self.params.height
        try:
            info = syntax.parse_sps(merged[syntax.sps_type])
            width, height = info.width, info.height
        except H26xError:
            self.bad_parameter_sets += 1
        sets = tuple(merged[t] for t in syntax.parameter_set_types)
        if sets == self.params.parameter_sets:
            return
        self.params = dataclasses.replace(
            self.params, parameter_sets=sets, width=width, height=height
        )
        self._pending_params = self.params

    def _starts_picture(self, nals: list[bytes]) -> bool:
        for nal in nals:
            if self.syntax.is_vcl_type(self.syntax.nal_type(nal)):
                header = self.syntax.header_size
                # H.264 first_mb_in_slice == 0 is ue(v) '1'; H.265 first_slice_segment_in_pic_flag.
                return len(nal) > header and bool(nal[header] & 0x80)
        return True

    def _add_nal(self, unit: _Assembly, nal: bytes) -> None:
        if unit.fu is not None:
            raise H26xDepacketizeError("NAL unit arrived while a fragmented unit was incomplete")
        # Room stays for the parameter sets a keyframe may get in front.
        if len(unit.nals) + len(self.syntax.parameter_set_types) >= MAX_NALS_PER_AU:
            raise AccessUnitTooLargeError(f"more than MAX_NALS_PER_AU={MAX_NALS_PER_AU} NAL units")
        self._grow(unit, len(nal))
        unit.nals.append(nal)

    def _grow(self, unit: _Assembly, count: int) -> None:
        unit.size += count + 4
        if unit.size > MAX_AU_BYTES:
            raise AccessUnitTooLargeError(
                f"access unit at RTP time {unit.timestamp} exceeds MAX_AU_BYTES={MAX_AU_BYTES}"
            )

    def _aggregate(self, unit: _Assembly, payload: bytes, offset: int) -> None:
        """STAP-A / AP: 16-bit size + NAL unit, repeated to the end of the payload."""
        if offset >= len(payload):
            raise H26xDepacketizeError("aggregation packet holds no NAL units")
        while offset < len(payload):
            if offset + 2 > len(payload):
                raise H26xDepacketizeError(f"aggregation packet truncated at byte {offset}")
            size = int.from_bytes(payload[offset : offset + 2], "big")
            offset += 2
            if size < self.syntax.header_size or offset + size > len(payload):
                raise H26xDepacketizeError(
                    f"aggregated NAL unit of {size} bytes at byte {offset} does not fit "
                    f"the {len(payload)}-byte payload"
                )
            self._add_nal(unit, payload[offset : offset + size])
            offset += size

    def _fragment(self, unit: _Assembly, fu_header: int, nal_header: bytes, data: bytes) -> None:
        """FU-A / FU: collect fragments; a fragment without its start damages the unit."""
        if fu_header & _FU_START:
            if unit.fu is not None:
                unit.damaged = True  # the previous FU never ended: its end was lost
                return
            self._grow(unit, len(nal_header))
            unit.fu = bytearray(nal_header)
        elif unit.fu is None:
            unit.damaged = True
            return
        if len(unit.fu) + len(data) > MAX_NAL_BYTES:
            raise AccessUnitTooLargeError(
                f"fragmented NAL unit exceeds MAX_NAL_BYTES={MAX_NAL_BYTES}"
            )
        self._grow(unit, len(data))
        unit.fu += data
        if fu_header & _FU_END:
            nal, unit.fu = bytes(unit.fu), None
            unit.size -= len(nal) + 4  # _add_nal counts it again
            self._add_nal(unit, nal)

    def _payload(self, unit: _Assembly, payload: bytes) -> None:
        raise NotImplementedError


class H264Depacketizer(_H26xDepacketizer):
    """RFC 6184 single NAL unit, STAP-A and FU-A packets → H.264 access units."""

    syntax = H264_SYNTAX

    def _payload(self, unit: _Assembly, payload: bytes) -> None:
        if not payload:
            raise H26xDepacketizeError("empty H.264 RTP payload")
        nal_type = payload[0] & 0x1F
        if 1 <= nal_type <= 23:
            self._add_nal(unit, payload)
        elif nal_type == 24:
            self._aggregate(unit, payload, 1)
        elif nal_type == 28:
            if len(payload) < 3:
                raise H26xDepacketizeError(f"FU-A of {len(payload)} bytes has no fragment")
            header = bytes(((payload[0] & 0xE0) | (payload[1] & 0x1F),))
            self._fragment(unit, payload[1], header, payload[2:])
        elif nal_type in (25, 26, 27, 29):
            name = {25: "STAP-B", 26: "MTAP16", 27: "MTAP24", 29: "FU-B"}[nal_type]
            raise UnsupportedPacketizationError(
                f"H.264 {name} (type {nal_type}) needs interleaved mode, which is not supported"
            )
        # Types 0, 30, 31 are reserved: RFC 6184 §5.4 says to ignore them.


class H265Depacketizer(_H26xDepacketizer):
    """RFC 7798 single NAL unit, AP and FU packets → H.265 access units (PACI is ignored)."""

    syntax = H265_SYNTAX

    def _payload(self, unit: _Assembly, payload: bytes) -> None:
        if len(payload) < 2:
            raise H26xDepacketizeError(f"H.265 RTP payload of {len(payload)} bytes has no header")
        nal_type = (payload[0] >> 1) & 0x3F
        if nal_type <= 47:
            self._add_nal(unit, payload)
        elif nal_type == 48:
            self._aggregate(unit, payload, 2)
        elif nal_type == 49:
            if len(payload) < 4:
                raise H26xDepacketizeError(f"FU of {len(payload)} bytes has no fragment")
            fu_header = payload[2]
            header = bytes(((payload[0] & 0x81) | ((fu_header & 0x3F) << 1), payload[1]))
            self._fragment(unit, fu_header, header, payload[3:])
        # 50 (PACI) and 51..63 (unspecified) are ignored, as RFC 7798 §4.4 allows.


class _H26xPacketizer:
    """Shared packetizing: single NAL units when they fit, fragmentation units otherwise."""

    syntax: NalSyntax

    def __init__(self, params: CodecParams, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        if params.codec is not self.syntax.codec:
            raise ValueError(f"{type(self).__name__} cannot take {params.codec.value} params")
        if max_payload < MIN_PAYLOAD:
            raise ValueError(f"max_payload {max_payload} is below {MIN_PAYLOAD}")
        self.params = params
        self.max_payload = max_payload
        self._sets = self.syntax.parameter_sets_in(params.parameter_sets)

    def packetize(self, data: bytes) -> list[PayloadChunk]:
        """Payloads of one stored access unit; parameter sets go in-band before keyframes."""
        nals = split_length_prefixed(data)
        if not nals:
            raise H26xError("empty access unit")
        if self.syntax.is_keyframe(nals):
            self._sets.update(self.syntax.parameter_sets_in(nals))
            nals = _with_parameter_sets(self.syntax, nals, self._sets)
        payloads: list[bytes] = []
        for nal in nals:
            if len(nal) <= self.max_payload:
                payloads.append(nal)
            else:
                payloads.extend(self._fragments(nal))
        last = len(payloads) - 1
        return [PayloadChunk(p, i == last) for i, p in enumerate(payloads)]

    def _fragments(self, nal: bytes) -> list[bytes]:
        prefix = self._fu_prefix(nal)
        body = nal[self.syntax.header_size :]
        step = self.max_payload - len(prefix) - 1
        nal_type = self.syntax.nal_type(nal)
        out = []
        for start in range(0, len(body), step):
            flags = (_FU_START if start == 0 else 0) | (_FU_END if start + step >= len(body) else 0)
            out.append(prefix + bytes((flags | nal_type,)) + body[start : start + step])
        return out

    def _fu_prefix(self, nal: bytes) -> bytes:
        raise NotImplementedError


class H264Packetizer(_H26xPacketizer):
    """H.264 access units → RFC 6184 single NAL unit and FU-A payloads (packetization-mode=1)."""

    syntax = H264_SYNTAX

    def _fu_prefix(self, nal: bytes) -> bytes:
        return bytes(((nal[0] & 0xE0) | 28,))


class H265Packetizer(_H26xPacketizer):
    """H.265 access units → RFC 7798 single NAL unit and FU payloads."""

    syntax = H265_SYNTAX

    def _fu_prefix(self, nal: bytes) -> bytes:
        return bytes(((nal[0] & 0x81) | (49 << 1), nal[1]))


def _with_parameter_sets(
    syntax: NalSyntax, nals: list[bytes], sets: dict[int, bytes]
) -> list[bytes]:
    """`nals` with the parameter sets it lacks inserted in front (after an access unit
    delimiter, which must stay first)."""
    present = {syntax.nal_type(n) for n in nals}
    missing = [sets[t] for t in syntax.parameter_set_types if t not in present and t in sets]
    if not missing:
        return nals
    at = 1 if syntax.nal_type(nals[0]) == syntax.aud_type else 0
    return [*nals[:at], *missing, *nals[at:]]

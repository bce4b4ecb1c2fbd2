"""File-level meta: golden bytes of build_meta, parser round trips and variants, fuzzing."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.formats.bmff.box import BoxError, children, cstring, full_box, iter_boxes, payload
from app.formats.oef import meta as m
from app.formats.oef import signature as s
from app.formats.oef.der import DerError, decode_algorithm
from tests.formats.oef.synth import START_NS, export_info

# build_meta(export_info()), box by box (checked by hand against EX-10/11/12/20/30).
GOLDEN_META = bytes.fromhex(
    # meta, FullBox v0, 345 bytes
    "000001596d65746100000000"
    # hdlr: pre_defined 0, 'null', 3 reserved words, "ONVIF export information\0"
    "0000003968646c7200000000000000006e756c6c000000000000000000000000"
    "4f4e564946206578706f727420696e666f726d6174696f6e00"
    # suep v1: unit name/url/mac, time 0xe57b7790 (2026-01-01T01:00:00Z in 1904 s), operator
    "000000a27375657001000000437573746f73204e56520068747470"
    "3a2f2f6e76722e6578616d706c652f6f6e7669662f6465766963655f73657276"
    "6963650030382d30302d32372d30302d30432d31350000000000e57b77904f66"
    "666963657220446962626c6500"
    # entry_count 1; TrackID 0x0001 (16 bit), name, url, mac, empty line
    "000000010001476174652063616d65726100"
    "727473703a2f2f63616d312e6578616d706c652f00"
    "30383a30303a32373a30303a30433a313600"
    "00"
    # sumi: 3 UUIDs, start (FILETIME of 2026-01-01T00:00:00.5Z), duration 4 s, no URIs
    "0000004c73756d69000102030405060708090a0b0c0d0e0f"
    "000102030405060708090a0b0c0d0e0f000102030405060708090a0b0c0d0e0f"
    "01dc7ab192cd4b40"
    "0000000002625a00"
    "00000000"
    # cstb: 1 entry, track 1, same FILETIME
    "00000018637374620000000100000001"
    "01dc7ab192cd4b40"
    # ipro FullBox v0, protection_count 1, no sinf yet
    "0000000e6970726f000000000001"
)


def test_build_meta_golden_bytes() -> None:
    assert m.build_meta(export_info()) == GOLDEN_META


def test_meta_children_order_and_32_bit_sizes() -> None:
    data = m.build_meta(export_info())
    (meta,) = iter_boxes(data)
    kinds = [b.type for b in children(data, meta, skip=4)]
    assert kinds == [b"hdlr", b"suep", b"sumi", b"cstb", b"ipro"]
    assert meta.header_size == 8 and meta.end == len(data)


def test_parsers_round_trip_build_meta() -> None:
    info = export_info()
    data = m.build_meta(info)
    (meta,) = iter_boxes(data)
    boxes = {b.type: b for b in children(data, meta, skip=4)}
    suep = m.parse_suep(payload(data, boxes[b"suep"]))
    assert (suep.version, suep.track_id_bits) == (1, 16)
    assert (suep.unit_name, suep.unit_url, suep.unit_mac, suep.operator) == (
        info.unit_name,
        info.unit_url,
        info.unit_mac,
        info.operator,
    )
    # ExportUnitTime has whole seconds.
    assert suep.export_time_ns == info.export_time_ns // 1_000_000_000 * 1_000_000_000
    assert suep.tracks == info.tracks
    sumi = m.parse_sumi(payload(data, boxes[b"sumi"]))
    assert (sumi.start_ns, sumi.duration_ns) == (START_NS, 4_000_000_000)
    assert sumi.part_uuid == info.part_uuid and not sumi.all_zero
    assert m.parse_cstb(payload(data, boxes[b"cstb"])) == [(1, START_NS)]
    assert m.parse_hdlr(payload(data, boxes[b"hdlr"])) == b"null"
    assert m.parse_ipro_count(payload(data, boxes[b"ipro"])) == 1


def test_epoch_conversions() -> None:
    assert m.unix_ns_to_iso_seconds(0) == 2_082_844_800
    assert m.unix_ns_to_filetime(0) == 116_444_736_000_000_000
    assert m.filetime_to_unix_ns(m.unix_ns_to_filetime(START_NS)) == START_NS
    assert m.iso_seconds_to_unix_ns(m.unix_ns_to_iso_seconds(START_NS)) == START_NS - 500_000_000


def _suep_payload(track_id_field: bytes, version: int = 1) -> bytes:
    head = b"U\x00url\x00mac\x00" + struct.pack(">Q", 3_850_074_000) + b"op\x00"
    return full_box(
        b"suep", version, 0, head, struct.pack(">I", 1), track_id_field, b"n\x00u\x00m\x00l\x00"
    )[8:]


def test_suep_32_bit_track_id_variant_accepted_when_exact() -> None:
    suep = m.parse_suep(_suep_payload(struct.pack(">I", 7)))
    assert suep.track_id_bits == 32
    assert suep.tracks == [m.TrackSource(7, "n", "u", "m", "l")]
    assert suep.export_time_ns == 1_767_229_200 * 1_000_000_000


def test_suep_16_bit_preferred() -> None:
    suep = m.parse_suep(_suep_payload(struct.pack(">H", 7)))
    assert (suep.track_id_bits, suep.tracks[0].track_id) == (16, 7)


def test_suep_v0_legacy() -> None:
    head = b"U\x00url\x00mac\x00" + struct.pack(">Q", 3_850_074_000) + b"op\x00"
    video = b"\x01" + bytes(range(16)) + b"cam\x00rtsp://x\x00mac\x00line1\x00"
    audio = b"\x01" + bytes(16) + b"mic\x00\x00\x00"
    suep = m.parse_suep(full_box(b"suep", 0, 0, head, video, audio)[8:])
    assert suep.version == 0
    assert [(t.kind, t.name, t.line, t.uuid) for t in suep.tracks] == [
        ("video", "cam", "line1", bytes(range(16))),
        ("audio", "mic", "", bytes(16)),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x02\x00\x00\x00", "unsupported version 2"),
        (_suep_payload(struct.pack(">H", 7))[:-1], "offset 37 has no NUL"),
        (_suep_payload(struct.pack(">H", 7)) + b"xx", "left over"),
    ],
)
def test_suep_errors_name_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(m.OefError, match=message):
        m.parse_suep(data)


def test_cstb_errors() -> None:
    with pytest.raises(m.OefError, match="need 12 bytes, found 11"):
        m.parse_cstb(struct.pack(">I", 1) + bytes(11))
    with pytest.raises(m.OefError, match="track_ID 0"):
        m.parse_cstb(struct.pack(">IIQ", 1, 0, 5))
    with pytest.raises(m.OefError, match="exceeds the limit"):
        m.parse_cstb(struct.pack(">I", m.MAX_CSTB_ENTRIES + 1))


def test_build_rejects_values_that_do_not_fit() -> None:
    info = export_info()
    bad = dataclasses.replace(info, tracks=[m.TrackSource(70_000, "", "", "", "")])
    with pytest.raises(ValueError, match="70000"):
        m.build_meta(bad)
    with pytest.raises(ValueError, match="part UUID"):
        m.build_meta(dataclasses.replace(info, part_uuid=b"short"))
    with pytest.raises(ValueError, match="NUL"):
        cstring("a\x00b")


# ---------------------------------------------------------------- fuzzing (only declared errors)

_PARSERS = [m.parse_suep, m.parse_sumi, m.parse_cstb, m.parse_auib, m.parse_hdlr, s.parse_sigc]


@settings(max_examples=10_000)
@given(st.binary(max_size=96), st.sampled_from(_PARSERS))
def test_fuzz_meta_parsers_raise_only_declared_errors(data: bytes, parser: object) -> None:
    try:
        parser(data)  # type: ignore[operator]
    except BoxError:  # OefError, DerError and UnsupportedAlgorithmError are BoxErrors
        pass


@settings(max_examples=10_000)
@given(st.data())
def test_fuzz_mutated_meta_and_layout(data: st.DataObject) -> None:
    """Mutations of a real meta (with a signing instance) through locate and every parser."""
    blob = bytearray(_SIGNED_META)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    buf = bytes(blob[:cut])
    try:
        layout = s.locate(buf)
        for child in layout.meta_children:
            parser = _BY_TYPE.get(child.type)
            if parser is not None:
                parser(payload(buf, child))
        for inst in layout.instances:
            if inst.sigc is not None:
                s.parse_sigc(payload(buf, inst.sigc))
    except BoxError:
        pass


@settings(max_examples=2_000)
@given(st.binary(max_size=64))
def test_fuzz_der_decoder(data: bytes) -> None:
    try:
        decode_algorithm(b"\x30" + bytes([len(data)]) + data if len(data) < 128 else data)
    except DerError:
        pass


_BY_TYPE = {
    b"suep": m.parse_suep,
    b"sumi": m.parse_sumi,
    b"cstb": m.parse_cstb,
    b"hdlr": m.parse_hdlr,
    b"ipro": m.parse_ipro_count,
}
_SIGNED_META = m.build_meta(export_info())[:-14] + m.build_ipro(
    s.build_sinf(8, b"\x30\x03\x02\x01\x01", s.encode_sigc(s.ECDSA_SHA256), "note", [(1, 0)])
)
_SIGNED_META = struct.pack(">I", len(_SIGNED_META)) + _SIGNED_META[4:]

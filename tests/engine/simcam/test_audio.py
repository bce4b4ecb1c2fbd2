"""Simulated camera audio: G.711 µ-law against FFmpeg's codec, the tone and its per-second beep."""

from __future__ import annotations

import av
import numpy as np
import numpy.typing as npt
import pytest
from av.audio.frame import AudioFrame

from app.engine.simcam.audio import (
    BEEP_LEVEL,
    TONE_LEVEL,
    UNIT_SAMPLES,
    UNITS_PER_SECOND,
    tone_second,
    ulaw_encode,
)

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
T0_NS = 1_767_225_600 * 1_000_000_000


def _ffmpeg_decode(codes: bytes) -> npt.NDArray[np.int32]:
    decoder = av.CodecContext.create("pcm_mulaw", "r")
    decoder.sample_rate = 8_000
    decoder.layout = "mono"
    frames = decoder.decode(av.Packet(codes))
    return np.concatenate([f.to_ndarray()[0] for f in frames]).astype(np.int32)


def _ffmpeg_encode(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    encoder = av.CodecContext.create("pcm_mulaw", "w")
    encoder.sample_rate = 8_000
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.open()
    frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 8_000
    frame.pts = 0
    return np.frombuffer(b"".join(bytes(p) for p in encoder.encode(frame)), dtype=np.uint8)


@pytest.mark.parametrize(
    ("sample", "code"), [(0, 0xFF), (-1, 0x7F), (32767, 0x80), (-32768, 0x00), (1000, 0xCE)]
)
def test_ulaw_reference_values(sample: int, code: int) -> None:
    assert ulaw_encode(np.array([sample], dtype=np.int16)) == bytes([code])


def test_ulaw_agrees_with_ffmpeg_over_every_sample() -> None:
    ours = np.frombuffer(ulaw_encode(ALL_SAMPLES), dtype=np.uint8)
    levels = _ffmpeg_decode(bytes(range(256)))
    decoded = levels[ours]
    # Louder input never gives quieter output, and every reconstruction level maps to its code.
    assert np.all(np.diff(decoded) >= 0)
    reencoded = np.frombuffer(ulaw_encode(levels.astype(np.int16)), dtype=np.uint8)
    assert np.array_equal(reencoded[reencoded != 0xFF], np.arange(256)[reencoded != 0xFF])
    # FFmpeg rounds to the nearest level, G.191 truncates: the codes differ by at most one step.
    theirs = _ffmpeg_encode(ALL_SAMPLES)
    assert np.abs(ours.astype(np.int16) - theirs).max() == 1
    assert np.mean(ours != theirs) < 0.02


def test_tone_second_is_50_units_with_a_beep_at_each_whole_second() -> None:
    # Start half a second into a UTC second: the beep is units 25…29 (100 ms from the full second).
    units = tone_second(T0_NS + 500_000_000)
    assert len(units) == UNITS_PER_SECOND == 50
    assert {len(u) for u in units} == {UNIT_SAMPLES}
    peaks = [np.abs(_ffmpeg_decode(u)).max() / 32768 for u in units]
    loud = [k for k, peak in enumerate(peaks) if peak > (TONE_LEVEL + BEEP_LEVEL) / 2]
    assert loud == [25, 26, 27, 28, 29]
    assert all(abs(peaks[k] - BEEP_LEVEL) < 0.03 for k in loud)
    assert all(abs(p - TONE_LEVEL) < 0.01 for k, p in enumerate(peaks) if k not in loud)
    # 1 kHz at 8 kHz: one sine period every 8 samples, starting at phase 0.
    samples = _ffmpeg_decode(units[0])
    assert np.array_equal(samples[8:], samples[:-8])
    assert samples[0] == 0 and samples[2] > 0 and samples[6] < 0


def test_the_signal_repeats_every_second() -> None:
    assert tone_second(T0_NS + 123_000_000) == tone_second(T0_NS + 1_123_000_000)
    assert tone_second(T0_NS)[0] != tone_second(T0_NS + 500_000_000)[0]

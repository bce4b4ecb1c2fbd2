"""Simulated camera audio: a quiet 1 kHz tone with a beep on each whole UTC second, as G.711 µ-law.

The signal repeats exactly every second (1 kHz fits 1000 whole periods into it, and the beep sits
at the same place of every second), so one second of encoded units is computed once per run and
served in a cycle: audio costs nothing per unit.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from app.core.media import Codec, CodecParams

SAMPLE_RATE = 8_000
#: 20 ms per access unit, the usual G.711 packet time: 160 samples = 160 bytes.
UNIT_SAMPLES = 160
UNIT_NS = UNIT_SAMPLES * 1_000_000_000 // SAMPLE_RATE
UNITS_PER_SECOND = SAMPLE_RATE // UNIT_SAMPLES
TONE_HZ = 1_000
#: The beep marks the first BEEP_MS of every whole UTC second of capture time, so the audio can be
#: lined up with the time printed on the video by ear or by tools.
BEEP_MS = 100
#: Amplitudes relative to full scale: the tone at -26 dBFS, the beep at -3 dBFS.
TONE_LEVEL = 0.05
BEEP_LEVEL = 0.7

PCMU_PARAMS = CodecParams(
    codec=Codec.PCMU, clock_rate=SAMPLE_RATE, sample_rate=SAMPLE_RATE, channels=1
)

# ITU-T G.191 µ-law compressor, on 14-bit magnitudes: segment boundaries of the biased magnitude.
_ULAW_BIAS = 33
_ULAW_MAX = 0x1FFF
_ULAW_SEGMENT_ENDS = np.array([0x40, 0x80, 0x100, 0x200, 0x400, 0x800, 0x1000])


def ulaw_encode(pcm: npt.NDArray[np.int16]) -> bytes:
    """16-bit linear PCM → G.711 µ-law bytes (ITU-T G.191 reference rounding)."""
    x = pcm.astype(np.int32)
    negative = x < 0
    # G.191 uses the one's complement for negative samples, which keeps the code symmetric.
    magnitude = np.minimum((np.where(negative, ~x, x) >> 2) + _ULAW_BIAS, _ULAW_MAX)
    segment = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude, side="right")
    mantissa = 0x0F - ((magnitude >> (segment + 1)) & 0x0F)
    code = ((7 - segment) << 4) | mantissa
    encoded: npt.NDArray[np.uint8] = np.where(negative, code, code | 0x80).astype(np.uint8)
    return encoded.tobytes()


def tone_second(start_wall_ns: int) -> tuple[bytes, ...]:
    """The PCMU units of one second of the signal whose first sample is captured at `start_wall_ns`.

    Unit k of the result (and of every following second) starts k × 20 ms after the start.
    """
    n = np.arange(SAMPLE_RATE, dtype=np.int64)
    phase = 2 * np.pi * TONE_HZ * n / SAMPLE_RATE
    offset_ns = start_wall_ns % 1_000_000_000
    into_second_ns = (offset_ns + n * (1_000_000_000 // SAMPLE_RATE)) % 1_000_000_000
    level = np.where(into_second_ns < BEEP_MS * 1_000_000, BEEP_LEVEL, TONE_LEVEL)
    pcm = np.round(np.sin(phase) * level * 32767).astype(np.int16)
    encoded = ulaw_encode(pcm)
    return tuple(
        encoded[k * UNIT_SAMPLES : (k + 1) * UNIT_SAMPLES] for k in range(UNITS_PER_SECOND)
    )

"""The simulated camera's picture: moving bars, a noisy patch, a bouncing box, UTC time, the stamp.

Rendered straight into YUV 4:2:0 planes with numpy (no colour conversion, no PIL): one frame of
1280×720 costs well under a millisecond. The top 32 rows are a black band holding the frame stamp
(`app/formats/stamp.py`) with neutral chroma, so the stamp reads the same in luma and in RGB.
The noisy patch stands in for sensor noise: without it a test pattern compresses to a fraction of
the target bitrate, and the streams would not load the network and the recorder like a camera.
Rendering is deterministic: frame n looks the same in every run, apart from the printed time.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from app.core.time import format_iso
from app.formats.stamp import STAMP_HEIGHT, draw_stamp

#: Video black and white in limited-range luma; neutral chroma.
Y_BLACK = 16
Y_WHITE = 235
C_NEUTRAL = 128
#: Bars move this many pixels per frame, the box twice as fast diagonally.
BAR_SPEED_PX = 4
#: The noise patch: a third of the picture each way, luma 128 ± NOISE_AMPLITUDE, its texture
#: shifted by up to NOISE_TRAVEL px per frame so every frame has fresh detail to encode.
NOISE_AMPLITUDE = 16
NOISE_TRAVEL = 64
_NOISE_SEED = 2026
#: 75 % colour bars as (Y, Cb, Cr), BT.601: white, yellow, cyan, green, magenta, red, blue, black.
BARS = (
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
    (16, 128, 128),
)
# A 5×7 font in 6×8 cells, enough for ISO time stamps and frame numbers.
_GLYPH_W, _GLYPH_H = 5, 7
_CELL_W, _CELL_H = 6, 8
_FONT = {
    "0": ("01110", "10001", "10011", "10101", "11001", "10001", "01110"),
    "1": ("00100", "01100", "00100", "00100", "00100", "00100", "01110"),
    "2": ("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
    "3": ("11110", "00001", "00001", "01110", "00001", "00001", "11110"),
    "4": ("00010", "00110", "01010", "10010", "11111", "00010", "00010"),
    "5": ("11111", "10000", "11110", "00001", "00001", "10001", "01110"),
    "6": ("00110", "01000", "10000", "11110", "10001", "10001", "01110"),
    "7": ("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
    "8": ("01110", "10001", "10001", "01110", "10001", "10001", "01110"),
    "9": ("01110", "10001", "10001", "01111", "00001", "00010", "01100"),
    "-": ("00000", "00000", "00000", "11111", "00000", "00000", "00000"),
    ":": ("00000", "01100", "01100", "00000", "01100", "01100", "00000"),
    ".": ("00000", "00000", "00000", "00000", "00000", "01100", "01100"),
    "#": ("01010", "01010", "11111", "01010", "11111", "01010", "01010"),
    "T": ("11111", "00100", "00100", "00100", "00100", "00100", "00100"),
    "Z": ("11111", "00001", "00010", "00100", "01000", "10000", "11111"),
    " ": ("00000",) * _GLYPH_H,
}
#: The printed lines: "2026-01-01T00:00:00.040Z" and "#0000000123".
_TIME_CHARS = 24
_INDEX_DIGITS = 10


class PatternRenderer:
    """Renders frame n of a width×height picture into a reusable YUV 4:2:0 buffer."""

    def __init__(self, width: int, height: int) -> None:
        if width % 8 or height % 8 or height < STAMP_HEIGHT + 8:
            raise ValueError(f"pattern size {width}×{height} must be multiples of 8, ≥ 40 high")
        self.width = width
        self.height = height
        # One contiguous (H·3/2)×W array in the layout av.VideoFrame.from_ndarray takes for
        # yuv420p; the planes below are views into it.
        self.buffer = np.empty((height * 3 // 2, width), dtype=np.uint8)
        self._y = self.buffer[:height]
        quarter = height // 4
        self._u = self.buffer[height : height + quarter].reshape(height // 2, width // 2)
        self._v = self.buffer[height + quarter :].reshape(height // 2, width // 2)
        self._bar_rows = _bar_rows(width)
        # Text scale: the time line must fit the width, both lines the space below the stamp.
        text_rows = height - STAMP_HEIGHT - 8
        self._scale = min(width // (_CELL_W * (_TIME_CHARS + 2)), text_rows // (2 * _CELL_H))
        self._glyphs = {c: _scaled_glyph(c, self._scale) for c in _FONT} if self._scale else {}
        self._box = max(16, (height - STAMP_HEIGHT) // 6) // 2 * 2
        self._patch = (height // 3 // 2 * 2, width // 3 // 2 * 2)
        texture_shape = (self._patch[0] + NOISE_TRAVEL, self._patch[1] + NOISE_TRAVEL)
        self._noise = np.random.default_rng(_NOISE_SEED).integers(
            128 - NOISE_AMPLITUDE, 128 + NOISE_AMPLITUDE + 1, size=texture_shape, dtype=np.uint8
        )

    def render(self, index: int, capture_us: int) -> npt.NDArray[np.uint8]:
        """Draw frame `index` captured at `capture_us` (µs since 1970, UTC); returns the buffer."""
        y, u, v = self._y, self._u, self._v
        shift = (index * BAR_SPEED_PX) % self.width
        y[STAMP_HEIGHT:] = np.roll(self._bar_rows[0], shift)
        u[STAMP_HEIGHT // 2 :] = np.roll(self._bar_rows[1], shift // 2)
        v[STAMP_HEIGHT // 2 :] = np.roll(self._bar_rows[2], shift // 2)
        self._draw_noise(index)
        self._draw_box(index)
        if self._scale:
            top = STAMP_HEIGHT + 8
            self._draw_text(top, format_iso(capture_us * 1_000, digits=3))
            self._draw_text(top + _CELL_H * self._scale, f"#{index:0{_INDEX_DIGITS}d}")
        y[:STAMP_HEIGHT] = Y_BLACK
        u[: STAMP_HEIGHT // 2] = C_NEUTRAL
        v[: STAMP_HEIGHT // 2] = C_NEUTRAL
        draw_stamp(y, index, capture_us)
        return self.buffer

    def _draw_noise(self, index: int) -> None:
        rows, cols = self._patch
        # A fixed walk through the texture (no RNG per frame) keeps frames reproducible.
        dy, dx = (index * 37) % NOISE_TRAVEL, (index * 17) % NOISE_TRAVEL
        top, left = self.height - rows, self.width - cols
        self._y[top:, left:] = self._noise[dy : dy + rows, dx : dx + cols]
        self._u[top // 2 :, left // 2 :] = C_NEUTRAL
        self._v[top // 2 :, left // 2 :] = C_NEUTRAL

    def _draw_box(self, index: int) -> None:
        size = self._box
        x = _bounce(index * 2 * BAR_SPEED_PX, self.width - size)
        y = STAMP_HEIGHT + _bounce(index * BAR_SPEED_PX, self.height - STAMP_HEIGHT - size)
        self._y[y : y + size, x : x + size] = Y_WHITE
        self._y[y + size // 4 : y + size * 3 // 4, x + size // 4 : x + size * 3 // 4] = Y_BLACK
        self._u[y // 2 : (y + size) // 2, x // 2 : (x + size) // 2] = C_NEUTRAL
        self._v[y // 2 : (y + size) // 2, x // 2 : (x + size) // 2] = C_NEUTRAL

    def _draw_text(self, top: int, text: str) -> None:
        line = np.concatenate([self._glyphs[c] for c in f" {text} "], axis=1)
        height, width = line.shape
        self._y[top : top + height, :width] = line
        self._u[top // 2 : (top + height) // 2, : width // 2] = C_NEUTRAL
        self._v[top // 2 : (top + height) // 2, : width // 2] = C_NEUTRAL


def _bar_rows(width: int) -> tuple[npt.NDArray[np.uint8], ...]:
    """One row of each plane (Y at full width, Cb and Cr at half width) of the bars."""
    bar_of_x = np.arange(width) * len(BARS) // width
    table = np.array(BARS, dtype=np.uint8)
    return (table[bar_of_x, 0], table[bar_of_x[::2], 1], table[bar_of_x[::2], 2])


def _bounce(travel: int, span: int) -> int:
    """Position after `travel` px back and forth over [0, span]."""
    if span <= 0:
        return 0
    step = travel % (2 * span)
    return step if step <= span else 2 * span - step


def _scaled_glyph(char: str, scale: int) -> npt.NDArray[np.uint8]:
    cell = np.full((_CELL_H, _CELL_W), Y_BLACK, dtype=np.uint8)
    rows = _FONT[char]
    for r, bits in enumerate(rows):
        for c, bit in enumerate(bits):
            if bit == "1":
                cell[r, c] = Y_WHITE
    return np.kron(cell, np.ones((scale, scale), dtype=np.uint8))

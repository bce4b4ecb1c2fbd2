"""The machine-readable frame stamp of the simulated camera: frame index and capture time as blocks.

Layout, from the top-left pixel (0, 0) of the picture:

- row 0 (y 0…15): 32 blocks of 16×16 px, the frame index as a 32-bit big-endian number, most
  significant bit in the leftmost block (x 0…15);
- row 1 (y 16…31): 64 blocks of 16×16 px, the capture time in microseconds since
  1970-01-01T00:00:00Z as a 64-bit big-endian number.

A white block (255) is a 1, a black block (0) is a 0. The stamp therefore needs a picture at least
1024 px wide (64 blocks) and 32 px high; blocks 32…63 of row 0 are not part of the stamp and are
left as they are. The blocks sit on the 16×16 macroblock grid of H.264/H.265, so a lossy encoder
keeps them crisp; the reader samples only the centre 8×8 px of each block and thresholds at
mid-grey, and refuses a block whose mean is neither clearly dark nor clearly bright.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

from app.core.errors import CustosError, ErrorKind

#: Edge of one stamp block in pixels (one H.264 macroblock).
BLOCK_PX = 16
INDEX_BITS = 32
TIME_BITS = 64
#: The smallest picture that can carry a stamp.
STAMP_WIDTH = TIME_BITS * BLOCK_PX
STAMP_HEIGHT = 2 * BLOCK_PX
#: The reader averages this many pixels square around each block's centre.
SAMPLE_PX = 8
#: A sampled block mean at or below DARK_MAX reads as 0, at or above BRIGHT_MIN as 1; between the
#: two it is ambiguous (the picture is not a stamped frame, or compression ruined it).
DARK_MAX = 64
BRIGHT_MIN = 192
#: Pixel values drawn for 0 and 1.
BLACK = 0
WHITE = 255

_MARGIN = (BLOCK_PX - SAMPLE_PX) // 2


class StampError(CustosError):
    """The picture cannot carry or does not carry a readable stamp."""

    default_kind = ErrorKind.INVALID_ARGUMENT


@dataclasses.dataclass(frozen=True, slots=True)
class Stamp:
    """What a stamp says: the camera's frame index and the capture time."""

    index: int
    #: Microseconds since 1970-01-01T00:00:00Z.
    capture_us: int

    @property
    def capture_ns(self) -> int:
        return self.capture_us * 1_000


def draw_stamp(image: npt.NDArray[np.uint8], index: int, capture_us: int) -> None:
    """Write the stamp into `image` in place: a luma plane (H×W) or RGB/BGR(A) pixels (H×W×C).

    Colour pictures get the same value in every channel (alpha included), so the blocks are
    neutral white and black whatever the channel order.
    """
    _check_picture(image)
    if not 0 <= index < 1 << INDEX_BITS:
        raise StampError(f"frame index {index} does not fit the stamp's {INDEX_BITS} bits")
    if not 0 <= capture_us < 1 << TIME_BITS:
        raise StampError(f"capture time {capture_us} µs does not fit the stamp's {TIME_BITS} bits")
    _draw_row(image, 0, index.to_bytes(INDEX_BITS // 8, "big"))
    _draw_row(image, BLOCK_PX, capture_us.to_bytes(TIME_BITS // 8, "big"))


def read_stamp(image: npt.NDArray[Any]) -> Stamp:
    """Read the stamp from a luma plane (H×W) or RGB/BGR(A) pixels (H×W×C), e.g. a decoded frame.

    Raises StampError when the picture is not 8-bit, too small, or any block is ambiguous.
    """
    _check_picture(image)
    region = image[:STAMP_HEIGHT, :STAMP_WIDTH]
    if region.ndim == 3:
        # The mean of the colour channels is independent of their order (RGB or BGR) and, for
        # neutral blocks, equal to their luma.
        luma = region[:, :, :3].astype(np.float32).mean(axis=2)
    else:
        luma = region.astype(np.float32)
    blocks = luma.reshape(2, BLOCK_PX, TIME_BITS, BLOCK_PX)
    centres = blocks[:, _MARGIN : _MARGIN + SAMPLE_PX, :, _MARGIN : _MARGIN + SAMPLE_PX]
    means = centres.mean(axis=(1, 3))
    means[0, INDEX_BITS:] = WHITE  # not part of the stamp: never ambiguous
    ambiguous = np.argwhere((means > DARK_MAX) & (means < BRIGHT_MIN))
    if len(ambiguous):
        row, col = (int(v) for v in ambiguous[0])
        raise StampError(
            f"stamp block {col} of row {row} is ambiguous: mean {means[row, col]:.1f} lies "
            f"between {DARK_MAX} and {BRIGHT_MIN} ({len(ambiguous)} such blocks)"
        )
    bits = means >= (DARK_MAX + BRIGHT_MIN) / 2
    index = int.from_bytes(np.packbits(bits[0, :INDEX_BITS]).tobytes(), "big")
    capture_us = int.from_bytes(np.packbits(bits[1]).tobytes(), "big")
    return Stamp(index=index, capture_us=capture_us)


def _check_picture(image: npt.NDArray[Any]) -> None:
    if image.dtype != np.uint8:
        raise StampError(f"stamp pictures are 8-bit; got dtype {image.dtype}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise StampError(
            f"expected a luma plane (H×W) or RGB/BGR(A) pixels (H×W×3|4); got shape {image.shape}"
        )
    height, width = image.shape[:2]
    if width < STAMP_WIDTH or height < STAMP_HEIGHT:
        raise StampError(
            f"picture {width}×{height} is too small for a stamp "
            f"(needs at least {STAMP_WIDTH}×{STAMP_HEIGHT})"
        )


def _draw_row(image: npt.NDArray[np.uint8], top: int, value: bytes) -> None:
    bits = np.unpackbits(np.frombuffer(value, dtype=np.uint8))
    row = np.repeat(np.where(bits == 1, WHITE, BLACK).astype(np.uint8), BLOCK_PX)
    width = len(row)
    if image.ndim == 3:
        image[top : top + BLOCK_PX, :width] = row[None, :, None]
    else:
        image[top : top + BLOCK_PX, :width] = row[None, :]

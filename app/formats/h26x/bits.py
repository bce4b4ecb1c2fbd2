"""Bit-level reading and writing of RBSP syntax (fixed-width fields and exp-Golomb codes)."""

from __future__ import annotations

from app.formats.h26x.nal import H26xError

#: ue(v) codes longer than this are not valid in any SPS/PPS field we read (values < 2**32).
MAX_EXP_GOLOMB_ZEROS = 31


class BitReader:
    """Reads an RBSP (emulation prevention already removed) from the most significant bit on."""

    __slots__ = ("_bits", "_pos", "_value")

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._bits = len(data) * 8
        self._pos = 0

    @property
    def remaining(self) -> int:
        return self._bits - self._pos

    def u(self, count: int) -> int:
        """An unsigned fixed-width field of `count` bits."""
        if count == 0:
            return 0
        if count > self._bits - self._pos:
            raise H26xError(
                f"bitstream ends after {self._bits} bits; {count} more needed at bit {self._pos}"
            )
        self._pos += count
        return (self._value >> (self._bits - self._pos)) & ((1 << count) - 1)

    def flag(self) -> bool:
        return self.u(1) == 1

    def skip(self, count: int) -> None:
        if count > self._bits - self._pos:
            raise H26xError(f"cannot skip {count} bits at bit {self._pos} of {self._bits}")
        self._pos += count

    def ue(self) -> int:
        """An unsigned exp-Golomb code."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > MAX_EXP_GOLOMB_ZEROS:
                raise H26xError(f"exp-Golomb code with more than {MAX_EXP_GOLOMB_ZEROS} zeros")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        """A signed exp-Golomb code (1, -1, 2, -2 ... for codes 1, 2, 3, 4 ...)."""
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


class BitWriter:
    """Builds an RBSP bit by bit; used to make parameter sets (tests, simulated sources)."""

    __slots__ = ("_bits", "_value")

    def __init__(self) -> None:
        self._value = 0
        self._bits = 0

    def u(self, count: int, value: int) -> None:
        if value < 0 or value >> count:
            raise ValueError(f"value {value} does not fit in {count} bits")
        self._value = (self._value << count) | value
        self._bits += count

    def flag(self, value: bool) -> None:
        self.u(1, int(value))

    def ue(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"ue(v) cannot code negative value {value}")
        code = value + 1
        length = code.bit_length()
        self.u(length - 1, 0)
        self.u(length, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def rbsp_bytes(self) -> bytes:
        """The bits so far plus rbsp_trailing_bits (a one bit, then zeros to a byte boundary)."""
        value = (self._value << 1) | 1
        bits = self._bits + 1
        pad = -bits % 8
        return (value << pad).to_bytes((bits + pad) // 8, "big")

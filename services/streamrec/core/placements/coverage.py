"""Catalogue coverage of a placement's lists, in bounded memory: a linear-counting sketch.

The distinct items served are estimated by linear counting (Whang, Vander-Zanden & Taylor,
"A linear-time probabilistic counting algorithm for database applications", TODS 1990): each
item sets one bit of ``m`` (by a hash of its id); with ``V`` the share of bits still zero, the
estimate is ``-m ln V``. ``m = 2^16`` bits (8 KiB) keeps the standard error near 1% up to
about 100k distinct items. Sketches of several workers merge by OR, which is how ``/stats``
adds its workers and replicas.
"""

from __future__ import annotations

import base64
import math
import zlib

__all__ = ["BITS", "Coverage"]

BITS = 1 << 16


class Coverage:
    """A linear-counting sketch of distinct item ids (not thread-safe: the caller locks)."""

    def __init__(self, data: bytes | None = None) -> None:
        self.bits = bytearray(data) if data is not None else bytearray(BITS // 8)
        if len(self.bits) != BITS // 8:
            raise ValueError(f"a coverage sketch is {BITS // 8} bytes, got {len(self.bits)}")

    def add(self, item: str) -> None:
        h = zlib.crc32(item.encode("utf-8", "surrogatepass")) % BITS
        self.bits[h >> 3] |= 1 << (h & 7)

    def merge(self, other: Coverage) -> None:
        self.bits = bytearray(a | b for a, b in zip(self.bits, other.bits, strict=True))

    def estimate(self) -> float:
        """The estimated number of distinct items added (the sketch saturates past ~700k)."""
        zeros = BITS - sum(bin(b).count("1") for b in self.bits)
        return float(BITS * math.log(BITS / zeros)) if zeros else math.inf

    def to_text(self) -> str:
        return base64.b64encode(bytes(self.bits)).decode("ascii")

    @classmethod
    def from_text(cls, text: str) -> Coverage:
        return cls(base64.b64decode(text))

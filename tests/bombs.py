"""Decompression bombs made as a stream: PNGs of hundreds of megapixels in about a megabyte,
written without ever holding their pixels (the tests of bounded memory need them)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

# PNG colour types and samples per pixel.
GRAY, RGB, PALETTE, RGBA = 0, 2, 3, 6
_SAMPLES = {GRAY: 1, RGB: 3, PALETTE: 1, RGBA: 4}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, width: int, height: int, colour: int = RGBA, depth: int = 8) -> Path:
    """A valid PNG of `width` x `height` pixels (a diagonal pattern on a flat ground, so it is
    not all one value), compressed as it is written."""
    row_bytes = width * _SAMPLES[colour] * depth // 8
    flat = b"\x00" + b"\x80" * row_bytes  # filter byte 0, then the row
    # Run-length matches only: as small as level 9 on these rows, in half the time.
    packer = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    with path.open("wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)))
        if colour == PALETTE:
            out.write(_chunk(b"PLTE", bytes(range(256)) * 3))
            out.write(_chunk(b"tRNS", b"\x00" * 16))  # the first 16 colours transparent
        pending = bytearray()
        for y in range(height):
            row = bytearray(flat)
            at = 1 + (y * row_bytes // height) // 4 * 4
            row[at : at + 16] = b"\xff" * len(row[at : at + 16])
            pending += packer.compress(bytes(row))
            if len(pending) > 1 << 20:
                out.write(_chunk(b"IDAT", bytes(pending)))
                pending.clear()
        pending += packer.flush()
        out.write(_chunk(b"IDAT", bytes(pending)))
        out.write(_chunk(b"IEND", b""))
    return path

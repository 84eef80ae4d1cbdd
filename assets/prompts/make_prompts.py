#!/usr/bin/env python3
"""Draws the bundled prompt images (our own work, CC0) with the standard library only.

shapes-32.png: a 32x32 RGB icon-like picture (a disc over a gradient with a bar), the
default prompt of the README's demo. Run from the repository root:
    python3 assets/prompts/make_prompts.py
"""
import struct
import zlib
from pathlib import Path


def png(path, width, height, pixels):
    rows = b"".join(b"\x00" + bytes(v for px in pixels[y * width:(y + 1) * width] for v in px)
                    for y in range(height))

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")
    Path(path).write_bytes(data)


def shapes(size):
    px = []
    c = (size - 1) / 2
    for y in range(size):
        for x in range(size):
            r, g, b = 40 + 4 * y, 60 + 3 * x, 150
            if (x - c) ** 2 + (y - c) ** 2 <= (size * 0.32) ** 2:
                r, g, b = 240, 190 - 3 * y, 40
            if size * 0.7 <= y <= size * 0.8 and size * 0.15 <= x <= size * 0.85:
                r, g, b = 30, 30, 40
            px.append((min(r, 255), min(g, 255), min(b, 255)))
    return px


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    png(here / "shapes-32.png", 32, 32, shapes(32))

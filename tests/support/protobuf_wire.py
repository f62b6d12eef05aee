"""Protobuf wire bytes written by hand, and random damage to valid ones: what the protobuf classes never
produce (fields out of order, repeated singular fields, unknown fields, wrong wire types, truncation)."""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes | int, wire_type: int = 2) -> bytes:
    """One field: ``payload`` an int for wire types 0 (varint), 1 (fixed64) and 5 (fixed32), else bytes."""
    key = varint(number << 3 | wire_type)
    if wire_type == 0:
        assert isinstance(payload, int)
        return key + varint(payload)
    if wire_type == 1:
        assert isinstance(payload, int)
        return key + struct.pack("<Q", payload)
    if wire_type == 5:
        assert isinstance(payload, int)
        return key + struct.pack("<I", payload)
    assert isinstance(payload, bytes)
    return key + varint(len(payload)) + payload


def damaged(source: bytes, rng: random.Random, count: int, cut: float = 0.2) -> Iterator[bytes]:
    """``count`` copies of ``source``, each with one to four random bytes changed, or (with probability
    ``cut`` per change) cut short there."""
    for _ in range(count):
        copy = bytearray(source)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(copy))
            if rng.random() < cut:
                del copy[pos:]
                if not copy:
                    break
            else:
                copy[pos] = rng.randrange(256)
        yield bytes(copy)

"""A TensorFlow-free serializer for `tf.train.Example` protos (bytes and float features).

Simulator worker processes build records without importing TensorFlow (which costs seconds and hundreds of MB per
process). The wire format is protobuf's: Example{features=1: Features{feature=1: map<string, Feature>}},
Feature{bytes_list=1 | float_list=2}, BytesList{value=1 repeated bytes}, FloatList{value=1 packed float}.
Map entries are written in sorted key order, so the bytes are deterministic. Tests parse the output with TensorFlow.
"""

from __future__ import annotations

import struct


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _feature(values) -> bytes:
    if all(isinstance(v, bytes) for v in values):
        return _field(1, b"".join(_field(1, v) for v in values))
    floats = struct.pack(f"<{len(values)}f", *values)
    return _field(2, _field(1, floats))


def example_bytes(features: dict[str, list]) -> bytes:
    """Serialises {name: [bytes, ...] or [float, ...]} as a tf.train.Example."""
    entries = b"".join(
        _field(1, _field(1, key.encode()) + _field(2, _feature(values))) for key, values in sorted(features.items())
    )
    return _field(1, entries)

"""Mutating valid photo files into hostile ones, for fuzzing ``decode_photo``.

Shared by the bounded hypothesis run in the test suite and the longer run in
benchmarks/fuzz_decode.py. The contract: :func:`engine.ingest.decode.decode_photo` returns an
RGB image or raises :class:`~engine.errors.DecodeError`; any other exception, a hang or a crash
is a bug.
"""

from __future__ import annotations

import random

from engine.errors import DecodeError
from engine.ingest.decode import decode_photo


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four random edits: truncate, flip bits, overwrite or insert bytes (often in the
    header, where the parsers' decisions are), splice the tail of another copy, or grow a
    declared size field."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(6)
        where = rng.randrange(len(out)) if rng.random() < 0.5 or len(out) < 64 else rng.randrange(min(64, len(out)))
        if choice == 0 and len(out) > 1:
            del out[rng.randrange(1, len(out)) :]
        elif choice == 1:
            out[where] ^= 1 << rng.randrange(8)
        elif choice == 2:
            out[where : where + 4] = bytes(rng.randrange(256) for _ in range(4))
        elif choice == 3:
            out[where:where] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif choice == 4:
            out[where:] = out[rng.randrange(len(out)) :]
        else:  # a huge value where a size often is
            out[where : where + 4] = b"\x7f\xff\xff\xff"
        if not out:
            break
    return bytes(out)


def check(data: bytes) -> None:
    """Decode ``data``: a photo or a DecodeError, nothing else."""
    try:
        photo = decode_photo(data, min_side=8)
    except DecodeError as exc:
        assert exc.reason, "a DecodeError needs a reason"
        return
    assert photo.image.mode == "RGB" and min(photo.image.size) >= 1

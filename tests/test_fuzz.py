"""A bounded fuzz run of the decoding entry point, the same inputs on every run so that CI never
fails at random (the long, randomly seeded runs: benchmarks/fuzz_decode.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_decode import check, mutate
from tests.samples import seeds

SEEDS = seeds()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None, derandomize=True
)
@given(st.sampled_from(range(len(SEEDS))), st.integers(0, 2**32 - 1))
def test_mutated_photos_only_ever_raise_decode_error(index, seed):
    check(mutate(SEEDS[index], random.Random(seed)))


@settings(max_examples=100, deadline=None, database=None, derandomize=True)
@given(st.binary(max_size=2048))
def test_random_bytes_only_ever_raise_decode_error(data):
    check(data)


@settings(max_examples=100, deadline=None, database=None, derandomize=True)
@given(st.sampled_from([b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"II*\x00", b"MM\x00*", b"BM"]), st.binary())
def test_known_headers_with_garbage_only_ever_raise_decode_error(header, tail):
    check(header + tail)


CORPUS = Path(__file__).parent / "fuzz_corpus"


@pytest.mark.parametrize("path", sorted(CORPUS.iterdir()), ids=lambda p: p.name)
def test_inputs_the_fuzzer_once_broke_the_decoder_with(path):
    """Regression corpus: inputs that once raised something other than DecodeError."""
    check(path.read_bytes())

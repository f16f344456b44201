from __future__ import annotations

import numpy as np
import pytest

from engine.errors import QueryError
from engine.search.index import VectorIndex
from engine.search.query import parse


def test_parse_plain_and_algebra():
    q = parse("a red car in the snow")
    assert q.text == "a red car in the snow" and q.is_plain
    q = parse('like:"my trip/beach 1.jpg" -blue +red not "people walking"')
    assert q.like == ("my trip/beach 1.jpg",) and q.plus == ("red",)
    assert q.minus == ("blue", "people walking") and q.text == "" and not q.is_plain
    assert parse('a "broken quote').text == "a broken quote"
    with pytest.raises(QueryError):
        parse("   ")
    with pytest.raises(QueryError):
        parse("-cats")
    with pytest.raises(QueryError):
        parse("like:")


def test_a_sign_alone_is_not_a_description():
    for raw in ("-", "+", " - + ", "-+", "not", "not -", "\u2013"):
        with pytest.raises(QueryError, match="empty query"):
            parse(raw)
    for raw in ("beach - people", "beach \u2013 people", "beach -+ people", "beach people not"):
        q = parse(raw)  # a sign typed apart from its word, an en dash, a "not" with nothing after
        assert (q.text, q.minus, q.plus) == ("beach people", (), ()), raw
    assert parse("beach not - people").minus == ()


def test_apostrophes_and_backslashes_are_part_of_words():
    # Only double quotes group: "men's" is a word, and "-women's" still pushes a concept away.
    q = parse("men's shoes -women's not \"kid's shoes\"")
    assert q.text == "men's shoes" and q.minus == ("women's", "kid's shoes")
    assert parse("it's a dog's life").text == "it's a dog's life"
    assert parse(r"like:C:\Photos\beach.jpg -sand").like == (r"C:\Photos\beach.jpg",)
    assert parse("cat #1").text == "cat #1"


def test_abbreviate_names_like_photos_by_file_name_as_the_parser_reads_them():
    from engine.search.query import abbreviate

    assert abbreviate('like:"/home/ann/Pictures/2019/beach.jpg" -blue') == "like:beach.jpg -blue"
    assert abbreviate('LIKE: "/a b/my beach.jpg" +red') == 'LIKE: "my beach.jpg" +red'
    # A word that is also in the path is left alone; each photo of several is shortened.
    assert abbreviate("beach like:/p/beach like:/q/cat.png") == "beach like:beach like:cat.png"
    assert abbreviate("unlike:/x/y.jpg dog") == "unlike:/x/y.jpg dog"  # no like: token
    assert abbreviate("red car") == "red car"
    assert abbreviate("like:") == "like:"  # refused by the parser: as typed


def _unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_index_matches_brute_force():
    rng = np.random.default_rng(0)
    vectors = _unit(rng, 500, 16)
    index = VectorIndex(16)
    index.set(np.arange(500) + 1000, vectors)
    q = _unit(rng, 1, 16)[0]
    ids, scores = index.search(q, 10)
    expected = np.argsort(-(vectors @ q))[:10] + 1000
    assert list(ids) == list(expected)
    assert np.allclose(scores, np.sort(vectors @ q)[::-1][:10], atol=1e-6)


def test_quantized_index_reranks_to_the_exact_answer():
    rng = np.random.default_rng(1)
    vectors = _unit(rng, 3000, 32)
    ids = np.arange(3000) * 7

    def fetch(wanted):
        return vectors[wanted // 7]

    index = VectorIndex(32, quantize_above=100, fetch_exact=fetch)
    index.set(ids, vectors)
    assert index.quantized and index.nbytes < vectors.nbytes
    for _ in range(20):
        q = _unit(rng, 1, 32)[0]
        got, scores = index.search(q, 10)
        exact = ids[np.argsort(-(vectors @ q))[:10]]
        assert list(got) == list(exact)
        assert np.allclose(scores, vectors[got // 7] @ q, atol=1e-6)


def test_add_replace_and_remove():
    index = VectorIndex(2)
    index.set(np.array([1, 2]), np.array([[1, 0], [0, 1]], dtype=np.float32))
    index.add(np.array([3]), np.array([[0.8, 0.6]], dtype=np.float32))
    assert list(index.search(np.array([1, 0.1]), 3)[0]) == [1, 3, 2]
    index.add(np.array([1]), np.array([[0, -1]], dtype=np.float32))  # replaced
    index.remove(np.array([3]))
    assert list(index.search(np.array([1, 0.1]), 3)[0]) == [2, 1]
    assert len(index) == 2


def test_set_chunks_quantized_equals_set():
    rng = np.random.default_rng(2)
    vectors = _unit(rng, 1000, 24)
    ids = np.arange(1000)
    index = VectorIndex(24, quantize_above=10, fetch_exact=lambda wanted: vectors[wanted])
    index.set_chunks(1000, ((ids[i : i + 128], vectors[i : i + 128]) for i in range(0, 1000, 128)))
    assert index.quantized and len(index) == 1000
    q = _unit(rng, 1, 24)[0]
    assert list(index.search(q, 5)[0]) == list(np.argsort(-(vectors @ q))[:5])


def test_quantized_scores_approximate_the_dot_products_through_adds_and_removals():
    rng = np.random.default_rng(3)
    vectors = _unit(rng, 3001, 48)
    index = VectorIndex(48, quantize_above=10, fetch_exact=lambda wanted: vectors[wanted])
    index.set(np.arange(2000), vectors[:2000])
    index.add(np.arange(2000, 3000), vectors[2000:3000])  # new photos arrive while the app runs
    q = _unit(rng, 1, 48)[0]
    # 4-bit vectors (the first 2000): every score within a few hundredths of the exact cosine
    # (a wrong nibble order or scale would be off by tenths); the added ones are exact until the
    # tail is folded in. Best first throughout.
    positions, approx = index._candidates(q, 3000)
    assert sorted(positions) == list(range(3000)) and np.all(np.diff(approx) <= 0)
    error = np.abs(approx - vectors[positions] @ q)
    assert error[positions < 2000].max() < 0.08 and error[positions < 2000].mean() < 0.02
    assert error[positions >= 2000].max() < 1e-6
    index.remove(np.setdiff1d(np.arange(3000), np.arange(0, 3000, 4)))
    index.add(np.array([3000]), vectors[[3000]])  # this add compacts: most slots are dead
    assert index.quantized and len(index) == 751 and len(index._ids) == 751
    alive = np.append(np.arange(0, 3000, 4), 3000)
    got = index.search(q, 10)[0]
    assert list(got) == list(alive[np.argsort(-(vectors[alive] @ q))[:10]])


def test_added_vectors_are_exact_until_folded_into_the_4bit_matrix():
    rng = np.random.default_rng(4)
    vectors = _unit(rng, 1500, 64)
    current = {i: vectors[i] for i in range(1000)}  # what the library holds for each id
    index = VectorIndex(64, quantize_above=10, tail_limit=100, fetch_exact=lambda w: np.stack([current[i] for i in w]))
    index.set(np.arange(1000), vectors[:1000])
    q = _unit(rng, 1, 64)[0]
    index.search(q, 5)  # makes the scoring session
    current.update({i: vectors[i] for i in range(1000, 1100)})
    index.add(np.arange(1000, 1100), vectors[1000:1100])
    assert len(index._tail) == 100 and index._session is not None  # within the limit: no new session
    current.update({i: vectors[i] for i in range(1100, 1150)})
    index.add(np.arange(1100, 1150), vectors[1100:1150])
    assert len(index._tail) == 0 and index._base == 1150  # folded into the 4-bit matrix
    current[5] = vectors[1400]
    index.add(np.array([5]), vectors[[1400]])  # a photo changed: its old 4-bit row is masked
    ids, scores = index.search(vectors[1400], 3)
    assert ids[0] == 5 and abs(scores[0] - 1.0) < 1e-5 and 5 not in ids[1:]
    live = np.array(sorted(current))
    matrix = np.stack([current[i] for i in live])
    for _ in range(10):
        q = _unit(rng, 1, 64)[0]
        assert list(index.search(q, 10)[0]) == list(live[np.argsort(-(matrix @ q))[:10]])
    assert len(index) == 1150


@pytest.mark.parametrize("quantized", [False, True])
def test_random_adds_removes_and_readds_agree_with_a_plain_dict(quantized: bool):
    """Ids are found by a sorted array plus a dict of recent additions, laid out again now and
    then; whatever the order of operations, the index must hold exactly what a dict would."""
    rng = np.random.default_rng(5)
    dim = 8
    truth: dict[int, np.ndarray] = {}

    def unit(n: int) -> np.ndarray:
        v = rng.standard_normal((n, dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def fetch(wanted: np.ndarray) -> np.ndarray:
        return np.stack([truth[int(i)] for i in wanted])

    index = VectorIndex(dim, quantize_above=50 if quantized else 10**9, fetch_exact=fetch, tail_limit=16)
    start = rng.choice(np.arange(1000, 5000), size=120, replace=False)
    vectors = unit(len(start))
    truth.update(zip(start.tolist(), vectors, strict=True))
    index.set(start, vectors)
    assert index.quantized == quantized
    for step in range(300):
        action = rng.random()
        if action < 0.5:  # add: new ids, ids already there (replaced), an id given twice
            ids = rng.integers(0, 6000, size=int(rng.integers(1, 12)))
            vs = unit(len(ids))
            index.add(ids, vs)
            truth.update(zip(ids.tolist(), vs, strict=True))  # the last of a repeated id stands
        else:  # remove: present and absent ids
            ids = rng.integers(0, 6000, size=int(rng.integers(1, 20)))
            if truth and rng.random() < 0.7:
                ids = np.concatenate([ids, rng.choice(list(truth), size=min(5, len(truth)), replace=False)])
            index.remove(ids)
            for i in ids.tolist():
                truth.pop(i, None)
        assert len(index) == len(truth), step
        probe = rng.integers(0, 6000, size=20).tolist() + list(truth)[:: max(1, len(truth) // 20)]
        for i in probe:
            got = index.vector(i)
            if i in truth:
                assert got is not None and np.allclose(got, truth[i]), (step, i)
            else:
                assert got is None, (step, i)
        query = unit(1)[0]
        ids, scores = index.search(query, 10)
        ordered = sorted(truth, key=lambda i: -float(truth[i] @ query))[:10]
        assert ids.tolist() == ordered, step  # exact: re-ranked with the stored vectors
        assert np.allclose(scores, [truth[i] @ query for i in ordered], atol=1e-5)

"""The seed models: the pieces on toy inputs with known answers, then a brief real training run
on a small generated world, exported and used through the normal engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("pycocoevalcap")

from engine.training.decoders import beam_search, greedy  # noqa: E402
from engine.training.metrics import retrieval  # noqa: E402
from engine.training.vocab import TAGS, Tagger, Vocabulary  # noqa: E402
from engine.training.vse import ranking_loss  # noqa: E402

# -- pieces -------------------------------------------------------------------------------------


def test_ranking_loss_is_zero_only_when_every_pair_beats_its_contrastive_ones_by_the_margin() -> None:
    eye = torch.eye(4)
    assert float(ranking_loss(eye, eye, margin=0.2, max_violation=False)) == 0.0
    swapped = eye[[1, 0, 2, 3]]  # sentences 0 and 1 describe each other's image
    summed = float(ranking_loss(eye, swapped, margin=0.2, max_violation=False))
    hardest = float(ranking_loss(eye, swapped, margin=0.2, max_violation=True))
    # Pair 0: s(x0,v0)=0 and s(x0,v1)=1 -> hinge 1.2 in each direction, the same for pair 1;
    # each also violates against pairs 2 and 3 with a hinge of 0.2, in both directions.
    assert summed == pytest.approx(4 * 1.2 + 8 * 0.2)
    assert hardest == pytest.approx(4 * 1.2)


def test_two_sentences_of_one_image_are_not_contrastive_examples_of_each_other() -> None:
    image = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), dim=1)
    sentences = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1], [1.0, -0.1]]), dim=1)
    assert float(ranking_loss(image, sentences, margin=0.2, max_violation=False)) == 0.0


def test_phrases_that_also_describe_an_image_are_not_contrastive_for_it() -> None:
    # Two images that both hold a red star, each paired with the phrase "a red star" worded
    # differently: without the mask each phrase is a violating negative of the other image.
    images = torch.nn.functional.normalize(torch.tensor([[1.0, 0.2], [1.0, -0.2]]), dim=1)
    phrases = torch.nn.functional.normalize(torch.tensor([[1.0, -0.1], [1.0, 0.1]]), dim=1)
    assert float(ranking_loss(images, phrases, margin=0.2, max_violation=False)) > 0.0
    also_true = torch.ones(2, 2, dtype=torch.bool)
    assert float(ranking_loss(images, phrases, margin=0.2, max_violation=False, also_true=also_true)) == 0.0


def test_world_phrases_name_one_objects_colour_and_kind_with_its_key() -> None:
    from engine.training.world import KIND_SYNONYMS, object_phrases, sample_scene

    rng = np.random.default_rng(5)
    scene = next(s for s in (sample_scene(rng, two_groups=1.0) for _ in range(20)) if len(s["objects"]) == 2)
    phrases = object_phrases(scene, rng, wordings=3)
    assert len(phrases) == 6
    for (text, key), group in zip(phrases, [g for g in scene["objects"] for _ in range(3)], strict=True):
        assert key == f"{group['colour']} {group['kind']}"
        assert group["colour"] in text
        names = {w for pair in KIND_SYNONYMS[group["kind"]] for w in pair}
        assert any(name in text for name in names), (text, names)
        other = next(g for g in scene["objects"] if g is not group)
        assert other["colour"] not in text.split()  # one object per phrase


def test_phrase_batches_mark_phrases_that_describe_other_rows_images() -> None:
    from engine.training.data import Example
    from engine.training.train import Split, phrases_of

    def example(name: str, phrases: list[str] | None) -> Example:
        return Example(name, Path(name), ("a sentence",), "train", {} if phrases is None else {"phrases": phrases})

    examples = [example("a", ["a red star", "a blue ring"]), example("b", ["A red star."]), example("c", None)]
    vocab = Vocabulary.build(["a red star a blue ring a sentence"])
    rng = np.random.default_rng(0)
    assert phrases_of(examples[1], rng) == [("A red star.", "a red star")]
    split = Split(examples, torch.zeros(3, 4), ["s"] * 3, [[1]] * 3, np.array([0, 1, 2]))
    split.add_phrases(vocab, rng)
    for _ in range(10):
        batch = split.phrase_batch(torch.tensor([0, 1, 2]), rng)
        assert batch is not None
        assert batch.rows.tolist() == [0, 1]  # image c has no phrases
        picked_red = bool(batch.ids[0, 1] == vocab.ids(["red"])[0])
        # image a holds a red star: b's phrase is true of it; a's phrase is true of b only if red
        assert batch.also_true.tolist() == [[True, True], [picked_red, True]]


def test_retrieval_ranks_match_a_hand_worked_example() -> None:
    images = np.eye(3, dtype=np.float32)
    # two sentences for image 0 (the second points at image 1), one for image 1, one for image 2
    # (which points at images 0 and 1, and not at its own)
    sentences = np.array([[1, 0, 0], [0, 0.9, 0.1], [0, 1, 0], [0.8, 0.6, 0]], dtype=np.float32)
    owner = np.array([0, 0, 1, 2])
    result = retrieval(images, sentences, owner)
    # search ranks: s0 -> 1, s1 -> 3, s2 -> 1, s3 -> 3
    assert result["search"]["r1"] == pytest.approx(0.5)
    assert result["search"]["medr"] == pytest.approx(2.0)
    assert result["search"]["meanr"] == pytest.approx(2.0)
    # annotation ranks: image 0 -> 1 (s0), image 1 -> 1 (s2), image 2 -> 4 (s1 scores 0.1, then a
    # three-way tie at 0 broken in sentence order: s0, s2, s3)
    assert result["annotation"]["r1"] == pytest.approx(2 / 3)
    assert result["annotation"]["meanr"] == pytest.approx(2.0)


def test_standardise_fits_per_channel_statistics_of_half_precision_maps() -> None:
    from engine.training.vse import Standardise

    g = torch.Generator().manual_seed(0)
    maps = (torch.randn(50, 3, 4, 4, generator=g) * torch.tensor([1.0, 5.0, 0.1]).view(1, 3, 1, 1) + 7).half()
    layer = Standardise(3)
    layer.fit(maps, batch=16)  # in slices, as for a training set's maps
    out = layer(maps.float())
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-3)
    assert torch.allclose(out.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)


def test_region_features_keep_each_cells_colour_beside_the_cnn_map() -> None:
    from engine.training.features import REGION_STRIDE, Backbone

    backbone = Backbone("efficientnet-lite0", "regions")
    pixels = torch.full((1, 3, 224, 224), -1.0)  # black, in (x - 127) / 128 units
    pixels[:, 0, :32, :48] = 1.0  # a red patch: top two rows of cells, left three columns
    with torch.no_grad():
        out = backbone(pixels)
    cells = 224 // REGION_STRIDE
    assert out.shape == (1, 112 + 3, cells, cells)
    red = out[0, -3]
    assert torch.allclose(red[:2, :3], torch.ones(2, 3), atol=1e-2)  # colours are on 0..1
    assert float(red[2:, :].abs().max()) < 0.01 and float(red[:, 3:].abs().max()) < 0.01
    assert float(out[0, -2:].abs().max()) < 0.01  # no green, no blue anywhere


def test_beam_search_finds_the_more_likely_sentence_that_greedy_misses() -> None:
    # vocabulary: 0 pad, 1 unk, 2 bos, 3 eos, 4 "a", 5 "b". Greedy takes "a" (0.6) and is then
    # unsure (0.35 eos); "b" (0.4) is followed by eos for sure: P(b eos) = 0.4 > P(a eos) = 0.21.
    def next_logits(rows: torch.Tensor, prefix: torch.Tensor) -> torch.Tensor:
        out = torch.full((len(rows), 6), -30.0)
        for r, p in enumerate(prefix.tolist()):
            if len(p) == 1:
                out[r, 4], out[r, 5] = np.log(0.6), np.log(0.4)
            elif p[-1] == 4:
                out[r, 3], out[r, 4], out[r, 5] = np.log(0.35), np.log(0.33), np.log(0.32)
            else:
                out[r, 3] = 0.0
        return out

    assert greedy(next_logits, 1, 5, bos=2, eos=3) == [[4]]
    assert beam_search(next_logits, 1, beams=2, max_length=5, bos=2, eos=3, length_penalty=0.0) == [[5]]


def test_vocabulary_tokenizer_file_splits_like_training(tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    vocab = Vocabulary.build(["Two red circles.", "a blue star, on the left"])
    vocab.save_tokenizer(tmp_path / "tokenizer.json")
    tokenizer = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    text = "TWO red, stars on the left!"
    assert tokenizer.encode(text).ids == vocab.encode(text)
    assert vocab.encode("stars")[0] == vocab.unk_id


def test_tagger_learns_adjectives_from_word_order() -> None:
    tagger = Tagger.learn(["a red circle", "two small blue stars on a dark background", "a big red star"])
    assert tagger.tag("two small red stars on a dark background".split()) == [
        "NUM",
        "ADJ",
        "ADJ",
        "NOUN",
        "ADP",
        "DET",
        "ADJ",
        "NOUN",
    ]
    assert all(t in TAGS for t in tagger.tag(["anything"]))


# -- a brief real run ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    from engine.training.karpathy import load_karpathy
    from engine.training.train import TrainConfig, evaluate, run
    from engine.training.world import generate

    root = tmp_path_factory.mktemp("world")
    examples = load_karpathy(generate(root, n_train=800, n_val=100, n_test=200, seed=3))
    # The attending decoder learns its own region encoder: on 800 images it needs 15 epochs.
    config = TrainConfig(embed_size=256, word_size=128, decoder_hidden=256, epochs=8, decoder_epochs=15, beams=2)
    result = run(examples, config, root / "cache")
    return result, evaluate(result, beams=(1, 2)), root


@pytest.mark.slow
def test_brief_training_is_far_above_chance(trained) -> None:
    _, report, _ = trained
    # 200 test images: chance is R@10 = 0.05 for search and about 0.25 for annotation (5 sentences).
    assert report["retrieval"]["search"]["r10"] > 0.5
    assert report["retrieval"]["annotation"]["r10"] > 0.6
    assert report["retrieval"]["search"]["medr"] <= 10
    for key, scores in report["captions"].items():
        assert scores["bleu1"] > 0.4, key
        assert scores["attributes"] > 0.1, key  # chance of naming all colour-kind pairs is ~0


@pytest.mark.slow
def test_exported_bundle_searches_and_captions_through_the_engine_as_in_pytorch(trained, tmp_path: Path) -> None:
    from engine.library import Library
    from engine.training.export import export_bundle
    from engine.training.world import attributes_named

    result, report, _ = trained
    manifest = export_bundle(result, tmp_path / "seed", {"cutoff": 0.0})
    assert max(manifest.raw["training"]["export_max_abs_diff"].values()) <= 1e-4
    test = result.splits["test"]
    folder = test.examples[0].path.parent
    with Library(tmp_path / "library.db", model=str(manifest.root)) as library:
        library.add_root(folder)
        library.sync()
        by_name = {e.path.name: row for row, e in enumerate(test.examples)}
        ranks = []
        for sentence, owner in zip(test.sentences, test.owner, strict=True):
            hits = library.search(sentence, limit=len(test.examples), cutoff=-1.0).hits
            names = [h.photo.path.name for h in hits]
            want = test.examples[int(owner)].path.name
            ranks.append(names.index(want) + 1 if want in names else len(test.examples))
        ranks_a = np.asarray(ranks)
        engine_r10 = float(np.mean(ranks_a <= 10))
        torch_r10 = report["retrieval"]["search"]["r10"]
        assert abs(engine_r10 - torch_r10) <= 0.02, (engine_r10, torch_r10)
        captions = {Path(p.path).name: p.caption for p in library.photos(limit=1000)}
    assert len(captions) == len(test.examples) and all(captions.values())
    named = np.mean([attributes_named(captions[name], test.examples[row].meta) for name, row in by_name.items()])
    torch_named = report["captions"]["lstm/beam 2"]["attributes"]
    assert abs(named - torch_named) <= 0.1, (named, torch_named)


@pytest.mark.slow
def test_train_command_reports_and_exports(tmp_path: Path, trained) -> None:
    from engine.cli import main

    _, _, root = trained
    code = main(
        [
            "train",
            "--world",
            str(root),
            "--images-per-split",
            "800",
            "100",
            "200",
            "--seed",
            "3",
            "--epochs",
            "2",
            "--decoder-epochs",
            "1",
            "--embed-size",
            "128",
            "--decoders",
            "lstm",
            "--work",
            str(root / "cache"),
            "--export",
            str(tmp_path / "bundle"),
            "--report",
            str(tmp_path / "report.json"),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["retrieval"]) == {"annotation", "search"}
    assert (tmp_path / "bundle" / "model.json").is_file()

"""Training the seed models: the joint embedding first, then the caption decoders on top.

    examples --(frozen backbone, cached)--> image features
    sentences --(vocabulary)--> word ids
    VSE: minimise the pairwise ranking loss; keep the epoch with the best validation R-sum
    decoders: maximise the likelihood of the reference sentences given the image's joint vector

Everything runs on CUDA when PyTorch sees a GPU and on the CPU otherwise.
"""

from __future__ import annotations

import copy
import logging
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.errors import DatasetError
from engine.training.data import Example
from engine.training.decoders import SCNLM, DecoderConfig, LSTMDecoder, beam_search, caption_loss, greedy
from engine.training.features import BACKBONES, compute_features
from engine.training.metrics import caption_scores, retrieval
from engine.training.vocab import TAGS, Tagger, Vocabulary, tokenize
from engine.training.vse import VSE, PhraseBatch, VSEConfig

log = logging.getLogger(__name__)
Progress = Callable[[str, float], None]


@dataclass
class TrainConfig:
    backbone: str = "efficientnet-lite0"
    #: see features.Backbone. "regions" (a trained region encoder over the frozen map) against
    #: the paper's "avg" (a linear map of the pooled feature): docs/training.md, seed-models.md.
    pooling: str = "regions"
    region_size: int = 128  # width of the region encoder when pooling is "regions"
    embed_size: int = 256
    word_size: int = 128
    text_encoder: str = "lstm"  # "lstm" | "bow"
    margin: float = 0.2
    max_violation: bool = False
    #: With the max of hinges, the first epochs use the sum: from random weights the hardest
    #: negatives are noise, and the region encoder collapsed without this (validation R-sum
    #: 0.58 after six epochs against 5.51 with the sum; docs/training.md).
    warmup_epochs: int = 1
    epochs: int = 6  # validation R-sum gains < 0.02 per epoch by the sixth (regions)
    batch_size: int = 128
    lr: float = 5e-4
    grad_clip: float = 2.0
    #: Weight of the image-phrase pairs in the embedding's loss (Niu et al. 2017; 0: sentences
    #: only, as in Kiros et al.). Phrases come from a data set's "phrases" lists or, in the
    #: generated world, its objects. 1 (phrases count as much as sentences) against 0: the
    #: arithmetic probe 0.84 against 0.70, search and annotation R-sum 5.25 against 5.51
    #: (validation; docs/training.md).
    phrase_weight: float = 1.0
    decoders: tuple[str, ...] = ("lstm", "scnlm")
    #: What the LSTM decoder is conditioned on: the joint-space image vector, or the image
    #: features themselves (through its own layers, as in Show and Tell; for "regions" with
    #: attention over them). The SC-NLM always takes the joint-space vector, as in the paper.
    decoder_input: str = "features"
    decoder_epochs: int = 6
    decoder_lr: float = 2e-3
    decoder_hidden: int = 256
    min_count: int = 1
    max_words: int = 32  # longer sentences are cut (training only)
    beams: int = 3
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda"

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


# -- data in memory -----------------------------------------------------------------------------


@dataclass
class Split:
    """One split: image features and every sentence as word ids, with its image's row."""

    examples: list[Example]
    features: torch.Tensor  # [N, F]
    sentences: list[str]
    ids: list[list[int]]
    owner: np.ndarray  # [M] image row of each sentence
    tags: list[list[int]] = field(default_factory=list)  # structure tags of each sentence (+ <eos>)
    #: per image, its noun phrases as (word ids, key); filled for training with phrase pairs
    phrases: list[list[tuple[list[int], str]]] = field(default_factory=list)

    def add_phrases(self, vocab: Vocabulary, rng: np.random.Generator) -> None:
        self.phrases = [[(vocab.encode(text), key) for text, key in phrases_of(e, rng)] for e in self.examples]

    def phrase_batch(self, index: torch.Tensor, rng: np.random.Generator) -> PhraseBatch | None:
        """One phrase of the image of each sentence in ``index`` (rows whose image has none
        are left out), and which phrases also describe which rows' images."""
        owners = self.owner[index.numpy()]
        rows = [b for b, r in enumerate(owners) if self.phrases[r]]
        if not rows:
            return None
        chosen = [self.phrases[owners[b]][int(rng.integers(len(self.phrases[owners[b]])))] for b in rows]
        keys = [{key for _, key in self.phrases[owners[b]]} for b in rows]
        also_true = torch.tensor([[key in mine for _, key in chosen] for mine in keys], dtype=torch.bool)
        return PhraseBatch(torch.tensor(rows), pad([ids for ids, _ in chosen]), also_true)

    @classmethod
    def make(cls, examples: list[Example], features: np.ndarray, vocab: Vocabulary, tagger: Tagger, max_words: int):
        sentences, ids, owner, tags = [], [], [], []
        for row, example in enumerate(examples):
            for sentence in example.sentences:
                words = tokenize(sentence)[:max_words]
                if not words:
                    continue
                sentences.append(sentence)
                ids.append(vocab.ids(words))
                tags.append([*tagger.ids(words), TAGS.index("<eos>")])
                owner.append(row)
        return cls(examples, torch.from_numpy(features), sentences, ids, np.asarray(owner, dtype=np.int64), tags)


def phrases_of(example: Example, rng: np.random.Generator) -> list[tuple[str, str]]:
    """An image's noun phrases with their keys: a data set's own ``"phrases"`` list (each its
    own key) or, in the generated world, phrases drawn for its objects."""
    given = example.meta.get("phrases")
    if isinstance(given, list):
        return [(p, " ".join(tokenize(p))) for p in given if isinstance(p, str) and tokenize(p)]
    if "objects" in example.meta:
        from engine.training.world import object_phrases

        return object_phrases(example.meta, rng)
    return []


def pad(rows: Sequence[Sequence[int]], length: int | None = None) -> torch.Tensor:
    length = length or max(len(r) for r in rows)
    out = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r[:length], dtype=torch.long)
    return out


def sentence_batches(split: Split, batch_size: int, generator: torch.Generator):
    """Shuffled minibatches of (sentence index tensor) covering every sentence once."""
    order = torch.randperm(len(split.ids), generator=generator)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


# -- the joint embedding ------------------------------------------------------------------------


@torch.no_grad()
def embed_images(vse: VSE, split: Split, device: torch.device, batch: int = 512) -> np.ndarray:
    """Unit image vectors [N, D] of a split."""
    vse.eval()
    parts = [vse.image(split.features[i : i + batch].to(device)).cpu() for i in range(0, len(split.features), batch)]
    return torch.cat(parts).numpy()


@torch.no_grad()
def embed(vse: VSE, split: Split, device: torch.device, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Unit image vectors [N, D] and sentence vectors [M, D] of a split."""
    images = embed_images(vse, split, device, batch)
    sentences = []
    for i in range(0, len(split.ids), batch):
        ids = pad(split.ids[i : i + batch]).to(device)
        sentences.append(vse.text(ids, (ids > 0).long()).cpu())
    return images, torch.cat(sentences).numpy()


@torch.no_grad()
def encode_texts(vse: VSE, vocab: Vocabulary, texts: Sequence[str]) -> np.ndarray:
    """Unit sentence vectors of arbitrary texts (unknown words become <unk>)."""
    vse.eval()
    device = next(vse.parameters()).device
    ids = pad([vocab.encode(t) or [vocab.unk_id] for t in texts]).to(device)
    return vse.text(ids, (ids > 0).long()).cpu().numpy()


def rsum(metrics: dict[str, dict[str, float]]) -> float:
    return sum(metrics[d][k] for d in ("annotation", "search") for k in ("r1", "r5", "r10"))


def train_vse(
    config: TrainConfig, vocab: Vocabulary, train: Split, val: Split, progress: Progress | None = None
) -> tuple[VSE, list[dict]]:
    device = config.resolved_device()
    torch.manual_seed(config.seed)
    vse_config = VSEConfig(
        feature_size=train.features.size(1),
        region_size=config.region_size if config.pooling == "regions" else 0,
        vocab_size=len(vocab),
        word_size=config.word_size,
        embed_size=config.embed_size,
        text_encoder=config.text_encoder,
        margin=config.margin,
        max_violation=config.max_violation,
    )
    vse = VSE(vse_config)
    if "+colour" in config.pooling or config.pooling == "regions":
        vse.image.standardise.fit(train.features)  # colours and CNN activations live on different scales
    vse = vse.to(device)
    optimizer = torch.optim.Adam(vse.parameters(), lr=config.lr)
    steps = config.epochs * math.ceil(len(train.ids) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(config.seed)
    phrase_rng = np.random.default_rng(config.seed)
    if config.phrase_weight > 0:
        train.add_phrases(vocab, phrase_rng)
    best, best_state, history = -1.0, None, []
    for epoch in range(config.epochs):
        vse.train()
        started, total = time.perf_counter(), 0.0
        for index in sentence_batches(train, config.batch_size, generator):
            ids = pad([train.ids[i] for i in index.tolist()]).to(device)
            features = train.features[torch.from_numpy(train.owner[index.numpy()])].to(device)
            phrases = train.phrase_batch(index, phrase_rng) if train.phrases else None
            loss = vse.loss(
                features,
                ids,
                (ids > 0).long(),
                config.max_violation and epoch >= config.warmup_epochs,
                None if phrases is None else phrases.to(device),
                config.phrase_weight,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(vse.parameters(), config.grad_clip)
            optimizer.step()
            schedule.step()
            total += loss.item()
        images, sentences = embed(vse, val, device)
        metrics = retrieval(images, sentences, val.owner)
        score = rsum(metrics)
        history.append({"epoch": epoch + 1, "loss": total, "val_rsum": score, "seconds": time.perf_counter() - started})
        if score > best:
            best, best_state = score, copy.deepcopy(vse.state_dict())
        if progress:
            progress(
                f"embedding epoch {epoch + 1}/{config.epochs}: loss {total:.0f}, validation R-sum {score:.2f}",
                (epoch + 1) / config.epochs,
            )
    assert best_state is not None
    vse.load_state_dict(best_state)
    vse.eval()
    return vse, history


# -- the decoders -------------------------------------------------------------------------------


def uses_features(kind: str, config: TrainConfig) -> bool:
    return kind == "lstm" and config.decoder_input == "features"


def decoder_content(kind: str, config: TrainConfig, vse: VSE, split: Split) -> np.ndarray:
    """What decoder ``kind`` is conditioned on, for every image of ``split``."""
    if uses_features(kind, config):
        return split.features.numpy()
    return embed_images(vse, split, config.resolved_device())


def make_decoder(kind: str, config: TrainConfig, vocab: Vocabulary, feature_size: int = 0) -> LSTMDecoder | SCNLM:
    content_size = feature_size if uses_features(kind, config) else config.embed_size
    region_size = config.region_size if uses_features(kind, config) and config.pooling == "regions" else 0
    decoder_config = DecoderConfig(
        vocab_size=len(vocab), content_size=content_size, region_size=region_size, hidden_size=config.decoder_hidden
    )
    if kind == "lstm":
        return LSTMDecoder(decoder_config)
    if kind == "scnlm":
        return SCNLM(decoder_config)
    raise ValueError(f"unknown decoder {kind!r} (lstm or scnlm)")


def train_decoder(
    kind: str,
    config: TrainConfig,
    vocab: Vocabulary,
    vse: VSE,
    train: Split,
    progress: Progress | None = None,
) -> LSTMDecoder | SCNLM:
    """Teacher-forced maximum likelihood: input <bos> w_1..w_n, target w_1..w_n <eos>."""
    device = config.resolved_device()
    torch.manual_seed(config.seed + 1)
    content_t = torch.from_numpy(decoder_content(kind, config, vse, train))
    decoder = make_decoder(kind, config, vocab, train.features.size(1))
    if uses_features(kind, config):
        assert isinstance(decoder, LSTMDecoder)
        decoder.standardise.fit(train.features)
    decoder = decoder.to(device)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=config.decoder_lr)
    steps = config.decoder_epochs * math.ceil(len(train.ids) / config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.decoder_lr, total_steps=steps, pct_start=0.1
    )
    generator = torch.Generator().manual_seed(config.seed + 1)
    for epoch in range(config.decoder_epochs):
        decoder.train()
        total, count = 0.0, 0
        for index in sentence_batches(train, config.batch_size, generator):
            rows = index.tolist()
            words = [train.ids[i] for i in rows]
            inputs = pad([[vocab.bos_id, *w] for w in words]).to(device)
            targets = pad([[*w, vocab.eos_id] for w in words]).to(device)
            v = content_t[torch.from_numpy(train.owner[index.numpy()])].to(device)
            if isinstance(decoder, LSTMDecoder):
                logits = decoder(decoder.read(v), inputs)
            else:
                logits = decoder(v, inputs, pad([train.tags[i] for i in rows]).to(device))
            loss = caption_loss(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(decoder.parameters(), config.grad_clip)
            optimizer.step()
            schedule.step()
            total, count = total + loss.item() * len(rows), count + len(rows)
        if progress:
            progress(
                f"{kind} decoder epoch {epoch + 1}/{config.decoder_epochs}: cross-entropy {total / count:.3f}",
                (epoch + 1) / config.decoder_epochs,
            )
    decoder.eval()
    return decoder


@torch.no_grad()
def generate(
    decoder: LSTMDecoder | SCNLM,
    content: np.ndarray,
    vocab: Vocabulary,
    *,
    beams: int = 1,
    templates: torch.Tensor | None = None,
    max_length: int = 20,
    batch: int = 256,
) -> list[str]:
    """A caption per content vector (greedy when ``beams`` is 1, else beam search)."""
    device = next(decoder.parameters()).device
    out: list[str] = []
    for start in range(0, len(content), batch):
        v = torch.from_numpy(content[start : start + batch]).to(device)
        if isinstance(decoder, LSTMDecoder):
            v = decoder.read(v)
        t = templates[start : start + batch].to(device) if templates is not None else None

        def next_logits(rows: torch.Tensor, prefix: torch.Tensor, v: torch.Tensor = v, t=t) -> torch.Tensor:
            prefix = prefix.to(device)
            if isinstance(decoder, SCNLM):
                assert t is not None, "the SC-NLM needs structure templates"
                return decoder.next_logits(v[rows.to(device)], prefix, t[rows.to(device)]).cpu()
            return decoder.next_logits(v[rows.to(device)], prefix, prefix.size(1)).cpu()

        n = len(v)
        if beams == 1:
            tokens = greedy(next_logits, n, max_length, vocab.bos_id, vocab.eos_id)
        else:
            tokens = beam_search(next_logits, n, beams, max_length, vocab.bos_id, vocab.eos_id)
        out += [vocab.decode(t) for t in tokens]
    return out


def nearest_templates(images: np.ndarray, train_sentences: np.ndarray, train: Split) -> torch.Tensor:
    """The structure (tag sequence) of the training sentence nearest to each image."""
    nearest = np.argmax(images @ train_sentences.T, axis=1)
    return pad([train.tags[int(i)] for i in nearest])


# -- the whole run ------------------------------------------------------------------------------


@dataclass
class Trained:
    config: TrainConfig
    vocab: Vocabulary
    tagger: Tagger
    vse: VSE
    decoders: dict[str, LSTMDecoder | SCNLM]
    splits: dict[str, Split]
    history: list[dict]
    seconds: dict[str, float]
    hardware: str

    def test_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        return embed(self.vse, self.splits["test"], self.config.resolved_device())


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA), PyTorch {torch.__version__}"
    import os

    return f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, PyTorch {torch.__version__}"


def load_splits(
    examples: list[Example],
    config: TrainConfig,
    cache_dir: Path,
    progress: Progress | None = None,
) -> tuple[Vocabulary, Tagger, dict[str, Split]]:
    by_split = {name: [e for e in examples if e.split == name] for name in ("train", "val", "test")}
    for name, items in by_split.items():
        if not items:
            raise DatasetError(f"the data set has no {name} images")
    if config.backbone not in BACKBONES:
        raise DatasetError(f"unknown backbone {config.backbone!r}")
    train_sentences = [s for e in by_split["train"] for s in e.sentences]
    vocab = Vocabulary.build(train_sentences, config.min_count)
    tagger = Tagger.learn(train_sentences)
    splits = {}
    for name, items in by_split.items():
        features = compute_features(
            [e.path for e in items], config.backbone, cache_dir, pooling=config.pooling, progress=progress
        )
        splits[name] = Split.make(items, features, vocab, tagger, config.max_words)
    return vocab, tagger, splits


def run(
    examples: list[Example],
    config: TrainConfig,
    cache_dir: Path,
    progress: Progress | None = None,
) -> Trained:
    """Train the embedding and the decoders the config names."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    vocab, tagger, splits = load_splits(examples, config, cache_dir, progress)
    seconds["features"] = time.perf_counter() - started
    torch.set_num_threads(max(1, torch.get_num_threads()))
    started = time.perf_counter()
    vse, history = train_vse(config, vocab, splits["train"], splits["val"], progress)
    seconds["embedding"] = time.perf_counter() - started
    decoders = {}
    for kind in config.decoders:
        started = time.perf_counter()
        decoders[kind] = train_decoder(kind, config, vocab, vse, splits["train"], progress)
        seconds[kind] = time.perf_counter() - started
    return Trained(config, vocab, tagger, vse, decoders, splits, history, seconds, hardware(config.resolved_device()))


def evaluate(trained: Trained, *, beams: Sequence[int] = (1, 3)) -> dict:
    """Retrieval in both directions and, for every decoder and search, caption scores on the
    test split (plus, on the generated world, the share of captions that name every object's
    colour and kind correctly)."""
    test = trained.splits["test"]
    images, sentences = trained.test_embeddings()
    report: dict = {"retrieval": retrieval(images, sentences, test.owner), "captions": {}}
    references = [list(e.sentences) for e in test.examples]
    templates = None
    for kind, decoder in trained.decoders.items():
        if isinstance(decoder, SCNLM) and templates is None:
            _, train_sentences = embed(trained.vse, trained.splits["train"], trained.config.resolved_device())
            templates = nearest_templates(images, train_sentences, trained.splits["train"])
        content = decoder_content(kind, trained.config, trained.vse, test)
        for k in beams:
            captions = generate(decoder, content, trained.vocab, beams=k, templates=templates)
            scores: dict[str, object] = dict(caption_scores(references, captions))
            scores["attributes"] = attribute_accuracy(test.examples, captions)
            if scores["attributes"] is not None:  # the generated world: by number of objects
                for label, n in (("attributes_one_object", 1), ("attributes_two_objects", 2)):
                    rows = [i for i, e in enumerate(test.examples) if len(e.meta["objects"]) == n]
                    scores[label] = attribute_accuracy([test.examples[i] for i in rows], [captions[i] for i in rows])
            scores["examples"] = captions[:5]
            report["captions"][f"{kind}/{'greedy' if k == 1 else f'beam {k}'}"] = scores
    return report


def attribute_accuracy(examples: Sequence[Example], captions: Sequence[str]) -> float | None:
    """Share of captions naming every object's colour and kind correctly (generated world only)."""
    if not examples or "objects" not in examples[0].meta:
        return None
    from engine.training.world import attributes_named

    return float(np.mean([attributes_named(c, e.meta) for e, c in zip(examples, captions, strict=True)]))


def config_json(config: TrainConfig) -> dict:
    data = asdict(config)
    data["decoders"] = list(config.decoders)
    return data

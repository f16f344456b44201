"""Words <-> ids, and the part-of-speech structure the SC-NLM is conditioned on.

The vocabulary is built from the training sentences (words seen at least ``min_count``
times; the rest become ``<unk>``) and saved as a Hugging Face ``tokenizers`` word-level
``tokenizer.json``, so the exported bundle tokenises queries exactly as training did, with
the same library the engine uses for every other model.

Structure tags: Kiros et al. condition the SC-NLM on the part-of-speech sequence of the
sentence to be generated. No tagger can be installed offline here, so tags come from a small
closed-class lexicon (determiners, numbers, prepositions, conjunctions, verbs, pronouns) and
one rule for open-class words learned from the training data: a word that is mostly followed
by another open-class word is an adjective, otherwise a noun. On captions ("two small red
circles on a striped background") this gives the tags a tagger would.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from engine.training.data import tokenize

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)


class Vocabulary:
    """Word ids for training and export. Ids 0-3 are ``<pad> <unk> <bos> <eos>``."""

    def __init__(self, words: Iterable[str]) -> None:
        self.itos: list[str] = list(SPECIALS) + [w for w in words if w not in SPECIALS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}

    @classmethod
    def build(cls, sentences: Iterable[str], min_count: int = 1) -> Vocabulary:
        counts = Counter(w for s in sentences for w in tokenize(s))
        return cls(sorted(w for w, c in counts.items() if c >= min_count))

    def __len__(self) -> int:
        return len(self.itos)

    pad_id, unk_id, bos_id, eos_id = 0, 1, 2, 3

    def ids(self, words: Iterable[str]) -> list[int]:
        return [self.stoi.get(w, self.unk_id) for w in words]

    def encode(self, sentence: str) -> list[int]:
        return self.ids(tokenize(sentence))

    def decode(self, ids: Iterable[int]) -> str:
        words = []
        for i in ids:
            if i == self.eos_id:
                break
            if i >= len(SPECIALS):
                words.append(self.itos[i])
        return " ".join(words)

    def to_json(self) -> list[str]:
        return self.itos

    def save_tokenizer(self, path: Path) -> None:
        """A word-level ``tokenizer.json`` that splits and lowercases like :func:`tokenize`."""
        from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

        tokenizer = Tokenizer(models.WordLevel(vocab=self.stoi, unk_token=UNK))
        tokenizer.normalizer = normalizers.Sequence(
            [normalizers.Lowercase(), normalizers.Replace(Regex(r"[^a-z0-9']+"), " ")]
        )
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
        tokenizer.add_special_tokens(list(SPECIALS))
        tokenizer.save(str(path))


# -- structure (part-of-speech) tags ------------------------------------------------------------

CLOSED_CLASS = {
    "DET": "a an the this that these those some every each another its their his her".split(),
    "NUM": "one two three four five six seven eight nine ten pair couple few several many both".split(),
    "ADP": "on in at of with near by under over above below beside behind across into onto from for against "
    "to around along next up down off out through toward towards among between inside outside".split(),
    "CONJ": "and or but while as".split(),
    "VERB": "is are was were be being been has have had there showing shows show shown depicting depicts "
    "featuring features sitting standing lying looking holding playing walking running riding "
    "wearing see seen can".split(),
    "PRON": "it they he she we you i them him".split(),
}
TAGS = ("<pad>", "<bos>", "<eos>", "DET", "NUM", "ADP", "CONJ", "VERB", "PRON", "ADJ", "NOUN")
_CLOSED = {word: tag for tag, words in CLOSED_CLASS.items() for word in words}


class Tagger:
    """Coarse part-of-speech tags from the closed-class lexicon plus a learned adjective rule."""

    def __init__(self, adjectives: Iterable[str]) -> None:
        self.adjectives = frozenset(adjectives)
        self.index = {t: i for i, t in enumerate(TAGS)}

    @classmethod
    def learn(cls, sentences: Iterable[str]) -> Tagger:
        before_open: Counter[str] = Counter()
        seen: Counter[str] = Counter()
        for sentence in sentences:
            words = tokenize(sentence)
            for word, after in zip(words, [*words[1:], None], strict=True):
                if word in _CLOSED:
                    continue
                seen[word] += 1
                if after is not None and after not in _CLOSED:
                    before_open[word] += 1
        return cls(w for w, n in seen.items() if before_open[w] * 2 > n)

    def tag(self, words: list[str]) -> list[str]:
        return [_CLOSED.get(w) or ("ADJ" if w in self.adjectives else "NOUN") for w in words]

    def ids(self, words: list[str]) -> list[int]:
        return [self.index[t] for t in self.tag(words)]

    def to_json(self) -> str:
        return json.dumps(sorted(self.adjectives))

"""Caption decoders conditioned on the joint-space image vector (the "content" vector).

1. ``SCNLM`` — the structure-content neural language model of Kiros et al. (2014), section 4:
   a log-bilinear language model whose prediction of the next word's representation adds,
   to the usual context term, a term from the *content* vector v (here the image's joint
   embedding) gated by the *structure* of the sentence still to come (the part-of-speech
   tags t_n .. t_n+k):

       s     = sum_j  S_j e(t_{n+j})                     (structure, k+1 tags ahead)
       u     = max(0, W_u [(A s) * (B v)] + U s + V v + b)  (structure-content vector)
       r_hat = sum_i  C_i r(w_{n-i})  +  C_m u          (context words + structure-content)
       P(w_n = w | ...) = softmax_w(r_hat . q(w) + b_w)

   At generation time the structure is the tag sequence of the training sentence nearest to
   the image in the joint space (content from the image, structure borrowed by retrieval).

2. ``LSTMDecoder`` — the modern stand-in: an LSTM whose input at every step is the previous
   word's vector concatenated with v, and whose initial state is a function of v. It is the
   decoder the app exports (its ONNX graph maps a prefix to next-word logits; the greedy and
   beam search loops run in NumPy in the engine). It may instead read the image features
   (``decoder_input="features"``, as in Show and Tell). For a feature map it then has its
   own region encoder, trained by the captioning loss, and *attends* over the regions: at
   every step the LSTM's state picks the regions it is talking about (Luong et al. 2015,
   attention on top of the LSTM, so all steps still run at once and export as one graph).
   Naming "a red star and a blue ring" needs to know that the red thing is the star; a
   pooled vector does not keep that, the regions do.

Both decode with :func:`greedy` and :func:`beam_search` below (length-normalised beam scores).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from engine.training.vocab import TAGS, Vocabulary
from engine.training.vse import RegionEncoder, Standardise

EOS_ID = Vocabulary.eos_id


@dataclass
class DecoderConfig:
    vocab_size: int = 0
    content_size: int = 1024  # (a feature map's channels when region_size > 0)
    region_size: int = 0  # > 0: the content is a feature map, read by a region encoder
    word_size: int = 256
    hidden_size: int = 512  # LSTM state; SC-NLM representation size
    dropout: float = 0.2
    context: int = 5  # SC-NLM: previous words it sees
    ahead: int = 3  # SC-NLM: structure tags it sees, from the current one on
    max_length: int = 20


class LSTMDecoder(nn.Module):
    """P(w_t | w_<t, v): an LSTM fed [word vector; C v] at every step, started from v."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.word_size, padding_idx=0)
        self.standardise = Standardise(config.content_size)  # identity unless fitted (raw features)
        self.regions = RegionEncoder(config.content_size, config.region_size) if config.region_size else None
        size = 2 * config.region_size if config.region_size else config.content_size
        self.content = nn.Linear(size, config.word_size)  # C
        self.init_h = nn.Linear(size, config.hidden_size)
        self.init_c = nn.Linear(size, config.hidden_size)
        self.rnn = nn.LSTM(2 * config.word_size, config.hidden_size, batch_first=True)
        if config.region_size:  # attention over the regions
            self.query = nn.Linear(config.hidden_size, config.region_size, bias=False)
            self.combine = nn.Linear(config.hidden_size + config.region_size, config.hidden_size)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden_size, config.vocab_size)

    def read(self, content: torch.Tensor) -> torch.Tensor:
        """What the decoder is conditioned on, from the raw content: the joint-space vector as
        it is, standardised features [B, F], or a feature map as region vectors [B, cells, R].
        Done once per image (in the exported bundle, by the image graph), not at every step."""
        x = self.standardise(content.float())
        if self.regions is None:
            return x
        return self.regions.vectors(x)

    def forward(self, content: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """``content`` from :meth:`read`, ``ids`` [B, T] starting with <bos> -> logits [B, T, V]."""
        words = self.drop(self.embed(ids))
        cells = content if content.dim() == 3 else None
        if cells is not None:  # the whole picture: mean and maximum over the regions
            content = RegionEncoder.pool(cells)
        c = torch.tanh(self.content(content))
        inputs = torch.cat([words, c.unsqueeze(1).expand(-1, ids.size(1), -1)], dim=-1)
        state = (torch.tanh(self.init_h(content)).unsqueeze(0), torch.tanh(self.init_c(content)).unsqueeze(0))
        hidden, _ = self.rnn(inputs, state)
        if cells is not None:  # each step reads the regions its state asks for
            scores = self.query(hidden) @ cells.transpose(1, 2) / cells.size(-1) ** 0.5  # [B, T, cells]
            context = torch.softmax(scores, dim=-1) @ cells  # [B, T, R]
            hidden = torch.tanh(self.combine(torch.cat([hidden, context], dim=-1)))
        return self.out(self.drop(hidden))

    def next_logits(self, content: torch.Tensor, prefix: torch.Tensor, position: int) -> torch.Tensor:
        return self.forward(content, prefix)[:, -1]


class SCNLM(nn.Module):
    """The structure-content neural language model (log-bilinear, conditioned on v and tags)."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_size
        self.words_in = nn.Embedding(config.vocab_size, d, padding_idx=0)  # r(w)
        self.words_out = nn.Embedding(config.vocab_size, d)  # q(w)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))  # b_w
        self.context = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(config.context))  # C_i
        self.tags = nn.Embedding(len(TAGS), d, padding_idx=0)
        self.structure = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(config.ahead + 1))  # S_j
        self.gate_s = nn.Linear(d, d, bias=False)  # A
        self.gate_v = nn.Linear(config.content_size, d, bias=False)  # B
        self.mix = nn.Linear(d, d)  # W_u (and b)
        self.from_s = nn.Linear(d, d, bias=False)  # U
        self.from_v = nn.Linear(config.content_size, d, bias=False)  # V
        self.to_r = nn.Linear(d, d, bias=False)  # C_m
        self.drop = nn.Dropout(config.dropout)
        for table in (self.words_in, self.words_out, self.tags):  # small start: logits near uniform
            nn.init.uniform_(table.weight, -0.1, 0.1)

    def forward(self, content: torch.Tensor, words: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        """Logits for every position at once.

        ``words`` [B, T] is the decoder input <bos> w_1 .. w_T-1 (as for the LSTM): position n
        predicts w_n+1 from words[:, n-c+1 .. n]. ``tags`` [B, >= T]: the tag of every target
        position (the last one <eos>), padded with 0; position n sees tags n .. n+k.
        """
        c, k = self.config.context, self.config.ahead
        batch, length = words.shape
        padded = F.pad(words, (c - 1, 0), value=2)  # <bos> before the start
        r = self.drop(self.words_in(padded))  # [B, T + c - 1, d]
        r_hat = torch.zeros(batch, length, r.size(-1), device=r.device)
        for i in range(c):  # C_i acts on the word i+1 places back
            r_hat = r_hat + self.context[i](r[:, c - 1 - i : c - 1 - i + length])
        tags = F.pad(tags, (0, max(0, length + k - tags.size(1))), value=0)[:, : length + k]
        t = self.tags(tags)  # [B, T + k, d]
        s = sum(self.structure[j](t[:, j : j + length]) for j in range(k + 1))
        v = content.unsqueeze(1)
        u = F.relu(self.mix(self.gate_s(s) * self.gate_v(v)) + self.from_s(s) + self.from_v(v))
        r_hat = r_hat + self.to_r(self.drop(u))
        return r_hat @ self.words_out.weight.t() + self.bias

    def next_logits(self, content: torch.Tensor, prefix: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        """Logits of the word after ``prefix`` [B, t] (which starts with <bos>) under the tag
        ``template`` [B, L]: the sentence ends exactly where the template does."""
        logits = self.forward(content, prefix, template)[:, -1]
        position = prefix.size(1) - 1
        tag = template[:, position] if position < template.size(1) else torch.zeros_like(template[:, 0])
        at_end = (tag == TAGS.index("<eos>")) | (tag == 0)
        eos = EOS_ID
        ended = torch.full_like(logits, float("-inf"))
        ended[:, eos] = 0.0
        logits[:, eos] = float("-inf")
        return torch.where(at_end.unsqueeze(1), ended, logits)


# -- search -----------------------------------------------------------------------------------

NextLogits = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (row image index, prefix) -> logits


@torch.no_grad()
def greedy(next_logits: NextLogits, n: int, max_length: int, bos: int, eos: int) -> list[list[int]]:
    """The most likely word at every step, for ``n`` images at once."""
    rows = torch.arange(n)
    prefix = torch.full((n, 1), bos, dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    for _ in range(max_length):
        token = next_logits(rows, prefix).argmax(-1)
        token[done] = 0
        prefix = torch.cat([prefix, token.unsqueeze(1)], dim=1)
        done |= token == eos
        if done.all():
            break
    return [_until_eos(p[1:].tolist(), eos) for p in prefix]


@torch.no_grad()
def beam_search(
    next_logits: NextLogits, n: int, beams: int, max_length: int, bos: int, eos: int, length_penalty: float = 1.0
) -> list[list[int]]:
    """Beam search over all ``n`` images at once; the winner has the best sum of log
    probabilities divided by length ** length_penalty. A finished beam keeps its score and
    only extends with padding."""
    k = beams
    rows = torch.arange(n).repeat_interleave(k)
    prefix = torch.full((n * k, 1), bos, dtype=torch.long)
    scores = torch.full((n, k), float("-inf"))
    scores[:, 0] = 0.0  # all beams start identical: expand only the first
    lengths = torch.zeros(n * k)
    finished = torch.zeros(n * k, dtype=torch.bool)
    for _ in range(max_length):
        logp = F.log_softmax(next_logits(rows, prefix).float(), dim=-1)
        vocab = logp.size(-1)
        # A finished beam may only "emit" padding, at no cost.
        frozen = torch.full((vocab,), float("-inf"))
        frozen[0] = 0.0
        logp = torch.where(finished.unsqueeze(1), frozen, logp)
        candidates = (scores.view(-1, 1) + logp).view(n, k * vocab)
        top, flat = candidates.topk(k, dim=1)
        source = (flat // vocab) + torch.arange(n).unsqueeze(1) * k
        token = flat % vocab
        source, token = source.view(-1), token.view(-1)
        was_finished = finished[source]
        prefix = torch.cat([prefix[source], token.unsqueeze(1)], dim=1)
        lengths = lengths[source] + (~was_finished).float()
        finished = was_finished | (token == eos)
        scores = top
        if finished.all():
            break
    normalised = scores.view(-1) / lengths.clamp(min=1) ** length_penalty
    best = normalised.view(n, k).argmax(1) + torch.arange(n) * k
    return [_until_eos(prefix[b, 1:].tolist(), eos) for b in best.tolist()]


def _until_eos(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos)] if eos in tokens else tokens


def caption_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over real target words (padding, id 0, ignored)."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=0)

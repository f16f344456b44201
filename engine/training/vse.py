"""The visual-semantic embedding of Kiros, Salakhutdinov & Zemel (2014), section 3.

    image:     x  = W_I q                  (q: the frozen CNN feature, W_I: a linear map)
    sentence:  v  = h_T                    (the last hidden state of an LSTM over word vectors)
    score:     s(x, v) = x . v             (both unit-normalised: cosine)
    loss:      sum_k max(0, a - s(x, v) + s(x, v_k)) + sum_k max(0, a - s(v, x) + s(v, x_k))

The contrastive v_k are the other sentences of the minibatch, the x_k its other images. The
"hardest negative" variant (Faghri et al., VSE++) keeps only the largest hinge per row and
column instead of the sum; both are offered and compared in the results table.

``region_size > 0`` replaces the linear map of a pooled feature by a small region encoder over
the backbone's feature map (``pooling="regions"``): every cell of the map is embedded by the
same two-layer network, and the cells' mean and maximum are mapped linearly into the joint
space. This is the region level of Niu et al. (2017) with the regions a fixed grid; it is what
lets the embedding say *which* shape is red (docs/training.md).

``text_encoder="bow"`` swaps the LSTM for the mean of the word vectors: the linear encoder
with which the paper shows its multimodal regularities (image(blue car) - "blue" + "red").

Phrases (Niu et al. 2017): beside its sentences, an image is paired with noun phrases of what
it shows ("a red star", "two small blue circles"), under the same ranking loss with a weight.
Niu et al. pair phrases with annotated regions; here the region is the whole image. A phrase
names only one object's colour and kind, so this loss asks the image vector to say what each
object is apart from where it is and what is behind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class VSEConfig:
    feature_size: int = 1280  # the backbone's pooled feature (regions: the map's channels)
    region_size: int = 0  # > 0: a region encoder of this width over a feature map
    vocab_size: int = 0
    word_size: int = 300
    embed_size: int = 1024  # the joint space (and the LSTM's hidden size)
    text_encoder: str = "lstm"  # "lstm" | "bow"
    margin: float = 0.2
    max_violation: bool = False  # hardest negative only (VSE++) instead of the sum


class Standardise(nn.Module):
    """x -> (x - mean) / std with the training set's statistics, kept in the model (and so in
    the exported graph): features of different kinds (CNN activations, colour shares) start on
    one scale. The identity until :meth:`fit` is called; on plain CNN features it is not used,
    as it lowered validation R-sum (4.87 against 5.03 on the generated world)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, size: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("std", torch.ones(size))

    def fit(self, x: torch.Tensor, batch: int = 1024) -> None:
        """Per-feature statistics of ``x`` [N, F], or per-channel ones of maps [N, C, H, W]."""
        dims = (0, 2, 3) if x.dim() == 4 else (0,)
        total = torch.zeros(x.size(1), dtype=torch.float64)
        squares = torch.zeros_like(total)
        for i in range(0, len(x), batch):  # in slices: maps may be stored in half precision
            part = x[i : i + batch].double()
            total += part.sum(dims)
            squares += (part * part).sum(dims)
        n = x.numel() / x.size(1)
        mean = total / n
        std = (squares / n - mean * mean).clamp(min=0).sqrt()
        self.mean.copy_(mean.float())
        self.std.copy_(std.float().clamp(min=1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)
        return (x - self.mean) / self.std


class RegionEncoder(nn.Module):
    """Feature map [N, C, H, W] -> [N, 2 R]: each cell through two 1x1 layers (a shared
    per-region network), then the mean and the maximum over the cells. The maximum keeps a
    small object's region from being averaged away."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.cells = nn.Sequential(nn.Conv2d(channels, width, 1), nn.ReLU(), nn.Conv2d(width, width, 1), nn.ReLU())

    def vectors(self, fmap: torch.Tensor) -> torch.Tensor:
        """One vector per cell: [N, H W, R]."""
        return self.cells(fmap).flatten(2).transpose(1, 2)

    @staticmethod
    def pool(vectors: torch.Tensor) -> torch.Tensor:
        """[N, cells, R] -> [N, 2 R]: the mean and the maximum over the cells."""
        return torch.cat([vectors.mean(dim=1), vectors.amax(dim=1)], dim=1)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.pool(self.vectors(fmap))


class ImageEncoder(nn.Module):
    """CNN feature -> unit vector in the joint space (one linear map, as in the paper; or a
    region encoder and then a linear map, for feature maps)."""

    def __init__(self, config: VSEConfig) -> None:
        super().__init__()
        self.standardise = Standardise(config.feature_size)
        self.regions = RegionEncoder(config.feature_size, config.region_size) if config.region_size else None
        fan_in = 2 * config.region_size if config.region_size else config.feature_size
        self.proj = nn.Linear(fan_in, config.embed_size)
        # Xavier initialisation as in the paper's released code (scaled to fan in + fan out).
        r = (6.0 / (fan_in + config.embed_size)) ** 0.5
        nn.init.uniform_(self.proj.weight, -r, r)
        nn.init.zeros_(self.proj.bias)

    def pooled(self, features: torch.Tensor) -> torch.Tensor:
        """What the linear map reads: the feature itself, or the region encoder's output."""
        x = self.standardise(features.float())  # region maps are kept in half precision
        return self.regions(x) if self.regions is not None else x

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(self.pooled(features)), dim=-1)


class SentenceEncoder(nn.Module):
    """Word ids -> unit vector: the LSTM's hidden state after the last word (or, for ``bow``,
    a linear map of the mean word vector)."""

    def __init__(self, config: VSEConfig) -> None:
        super().__init__()
        self.kind = config.text_encoder
        self.embed = nn.Embedding(config.vocab_size, config.word_size, padding_idx=0)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        if self.kind == "lstm":
            self.rnn = nn.LSTM(config.word_size, config.embed_size, batch_first=True)
        elif self.kind == "bow":
            self.proj = nn.Linear(config.word_size, config.embed_size, bias=False)
        else:
            raise ValueError(f"unknown text encoder {self.kind!r} (lstm or bow)")

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``ids`` [B, T] right-padded with 0, ``mask`` [B, T] 1 on words."""
        words = self.embed(ids)
        if self.kind == "bow":
            m = mask.unsqueeze(-1).to(words.dtype)
            mean = (words * m).sum(1) / m.sum(1).clamp(min=1.0)
            return F.normalize(self.proj(mean), dim=-1)
        states, _ = self.rnn(words)  # padding is on the right: states before it are unaffected
        last = (mask.sum(1) - 1).clamp(min=0).long()
        h = states.gather(1, last.view(-1, 1, 1).expand(-1, 1, states.size(-1))).squeeze(1)
        return F.normalize(h, dim=-1)


def ranking_loss(
    images: torch.Tensor,
    sentences: torch.Tensor,
    margin: float,
    max_violation: bool,
    also_true: torch.Tensor | None = None,
) -> torch.Tensor:
    """The pairwise ranking loss in both directions; row i of each is a matching pair.

    Several sentences of one image may share a batch: pairs with the same image are not
    counted as contrastive (found by identical image vectors below). ``also_true[i, j]`` marks
    more pairs that are not contrastive: text j also describes image i (phrases: two images
    that both hold a red star).
    """
    scores = images @ sentences.t()  # [B, B]
    positive = scores.diag().view(-1, 1)
    cost_s = (margin + scores - positive).clamp(min=0)  # image -> contrastive sentences
    cost_im = (margin + scores - positive.t()).clamp(min=0)  # sentence -> contrastive images
    same = torch.eye(scores.size(0), dtype=torch.bool, device=scores.device)
    # Identical image vectors in the batch (two captions of one image) are not contrastive.
    same |= (images @ images.t()) > 1 - 1e-6
    if also_true is not None:
        same |= also_true
    cost_s = cost_s.masked_fill(same, 0)
    cost_im = cost_im.masked_fill(same, 0)
    if max_violation:
        return cost_s.max(1)[0].sum() + cost_im.max(0)[0].sum()
    return cost_s.sum() + cost_im.sum()


class VSE(nn.Module):
    """The joint embedding: both encoders and the loss."""

    def __init__(self, config: VSEConfig) -> None:
        super().__init__()
        self.config = config
        self.image = ImageEncoder(config)
        self.text = SentenceEncoder(config)

    def forward(self, features: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.loss(features, ids, mask, self.config.max_violation)

    def loss(
        self,
        features: torch.Tensor,
        ids: torch.Tensor,
        mask: torch.Tensor,
        max_violation: bool,
        phrases: PhraseBatch | None = None,
        phrase_weight: float = 0.0,
    ) -> torch.Tensor:
        """The ranking loss of the sentences and, with ``phrases``, ``phrase_weight`` times the
        same loss between the images and one noun phrase of each (Niu et al. 2017's phrase
        level, with the whole image as the phrase's region)."""
        images = self.image(features)
        loss = ranking_loss(images, self.text(ids, mask), self.config.margin, max_violation)
        if phrases is not None and phrase_weight > 0:
            phrase_vectors = self.text(phrases.ids, (phrases.ids > 0).long())
            loss = loss + phrase_weight * ranking_loss(
                images[phrases.rows], phrase_vectors, self.config.margin, max_violation, phrases.also_true
            )
        return loss


class PhraseBatch(NamedTuple):
    """Noun phrases for some rows of a sentence batch."""

    rows: torch.Tensor  # [P] rows of the batch whose image has phrases
    ids: torch.Tensor  # [P, L] word ids of one phrase of each
    also_true: torch.Tensor  # [P, P] bool: phrase j also describes the image of row i

    def to(self, device: torch.device) -> PhraseBatch:
        return PhraseBatch(self.rows.to(device), self.ids.to(device), self.also_true.to(device))

"""Same-shaped stand-ins for real pretrained models, exported in the real folder layouts.

The Hugging Face Hub cannot be reached from the machines this project is built and tested on,
so neither the real weights nor their exact graphs are available. What *is* known is each
model's architecture (open_clip and transformers configs) and the layout its ONNX export uses
(Immich's model repositories; optimum's image-to-text exports). This module builds PyTorch
modules of those shapes with random weights and exports them in those layouts, so that:

* tests pull, import, index, search and caption with tiny versions through the real code;
* ``benchmarks/bench_model_shapes.py`` measures the speed of full-size versions on this CPU.

Random weights give the right *cost* (the same layers, widths and sequence lengths), not the
right *answers*. Tests that need meaningful answers switch on ``colour_axes``: a hand-set path
that puts a photo's mean colour and the words red/green/blue onto the first three embedding axes.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from onnx import helper
from torch import nn
from torch.nn import functional as F

OPSET = 17

# -- building blocks ---------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head attention written out (exports to plain MatMul/Softmax)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        return x.reshape(b, t, self.heads, c // self.heads).transpose(1, 2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        out = scores.softmax(dim=-1) @ v
        b, h, t, d = out.shape
        return self.out(out.transpose(1, 2).reshape(b, t, h * d))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.attend(self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x)), mask)


class Block(nn.Module):
    """Pre-norm transformer block (CLIP, ViT)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask)
        return x + self.mlp(self.ln2(x))


class VisionTransformer(nn.Module):
    """ViT: patches -> class token + positions -> blocks. Returns every token's state."""

    def __init__(self, image_size: int, patch: int, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.patchify = nn.Conv2d(3, width, patch, stride=patch)
        tokens = (image_size // patch) ** 2 + 1
        self.cls = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
        self.ln_pre = nn.LayerNorm(width)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_post = nn.LayerNorm(width)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patchify(pixels).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        x = self.ln_pre(x)
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)


# -- joint embedding (CLIP / SigLIP / M-CLIP shapes) -------------------------------------------


@dataclass(frozen=True)
class ClipShape:
    """The shape of a CLIP-family model and of its Immich export."""

    name: str
    image_size: int
    patch: int
    vision_width: int
    vision_layers: int
    vision_heads: int
    text_width: int
    text_layers: int
    text_heads: int
    context_length: int
    vocab_size: int
    embed_dim: int
    #: how the text tower pools: "eot" (OpenAI CLIP: the highest id), "last" (SigLIP), "mean" (M-CLIP)
    text_pool: str = "eot"
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    resize_mode: str = "shortest"
    interpolation: str = "bicubic"
    clean: str | None = None  # open_clip text_cfg.tokenizer_kwargs.clean


#: Full-size shapes of the catalogue's joint models (from their open_clip / M-CLIP configs).
VIT_B_32 = ClipShape("ViT-B-32", 224, 32, 768, 12, 12, 512, 12, 8, 77, 49408, 512, "eot")
SIGLIP_B_16 = ClipShape(
    "ViT-B-16-SigLIP",
    224,
    16,
    768,
    12,
    12,
    768,
    12,
    12,
    64,
    32000,
    768,
    "last",
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    resize_mode="squash",
    clean="canonicalize",
)
#: M-CLIP XLM-Roberta-Large text tower (24 layers, width 1024) over an OpenCLIP ViT-B-16-plus-240
#: image tower. The real vocabulary has 250,002 entries; lookup cost does not depend on its size,
#: so the stand-in uses 32,000 to keep the graph under ONNX's 2 GB protobuf limit.
MCLIP_XLMR_B16PLUS = ClipShape(
    "XLM-Roberta-Large-Vit-B-16Plus", 240, 16, 896, 12, 14, 1024, 24, 16, 77, 32000, 640, "mean"
)


class ClipVisual(nn.Module):
    def __init__(self, shape: ClipShape, colour_axes: float = 0.0) -> None:
        super().__init__()
        self.vit = VisionTransformer(
            shape.image_size, shape.patch, shape.vision_width, shape.vision_layers, shape.vision_heads
        )
        self.proj = nn.Linear(shape.vision_width, shape.embed_dim, bias=False)
        self.colour_axes = colour_axes
        self.register_buffer("mean", torch.tensor(shape.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(shape.std).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.proj(self.vit(image)[:, 0])
        if self.colour_axes:
            rgb = (image * self.std + self.mean).mean(dim=(2, 3))  # the photo's mean colour, 0..1
            rgb = rgb - rgb.mean(dim=1, keepdim=True)  # what stands out from grey
            x = x + F.pad(rgb * self.colour_axes, (0, x.shape[1] - 3))
        return F.normalize(x, dim=-1)


class ClipTextual(nn.Module):
    def __init__(self, shape: ClipShape, colour_tokens: dict[int, int] | None = None, strength: float = 0.0) -> None:
        super().__init__()
        self.shape = shape
        self.embed = nn.Embedding(shape.vocab_size, shape.text_width)
        self.pos = nn.Parameter(torch.randn(1, shape.context_length, shape.text_width) * 0.01)
        self.blocks = nn.ModuleList(Block(shape.text_width, shape.text_heads) for _ in range(shape.text_layers))
        self.ln = nn.LayerNorm(shape.text_width)
        self.proj = nn.Linear(shape.text_width, shape.embed_dim, bias=False)
        axes = None
        if colour_tokens:  # only the test models carry the hand-set path (it is a vocab x embed table)
            axes = torch.zeros(shape.vocab_size, shape.embed_dim)
            for token, axis in colour_tokens.items():
                axes[token, axis] = strength
        self.register_buffer("axes", axes)
        t = shape.context_length
        self.register_buffer("causal", torch.ones(t, t, dtype=torch.bool).tril())

    def forward(self, text: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        ids = text.long()
        t = ids.shape[1]
        x = self.embed(ids) + self.pos[:, :t]
        mask = self.causal[:t, :t] if self.shape.text_pool == "eot" else None
        for block in self.blocks:
            x = block(x, mask)
        x = self.ln(x)
        if self.shape.text_pool == "eot":
            pooled = x[torch.arange(x.shape[0]), ids.argmax(dim=-1)]
        elif self.shape.text_pool == "last":
            pooled = x[:, -1]
        else:
            m = attention_mask.to(x.dtype).unsqueeze(-1) if attention_mask is not None else torch.ones_like(x[..., :1])
            pooled = (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
        out = self.proj(pooled)
        if self.axes is not None:
            out = out + self.axes[ids].sum(dim=1)
        return F.normalize(out, dim=-1)


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], dynamic=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            opset_version=OPSET,
            dynamic_axes=dynamic,
            dynamo=False,
        )


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def export_immich_clip(
    folder: Path,
    shape: ClipShape,
    tokenizer_json: Path,
    *,
    pad_token: str,
    colour_axes: float = 0.0,
    colour_tokens: dict[int, int] | None = None,
    seed: int = 0,
) -> tuple[ClipVisual, ClipTextual]:
    """Write ``folder`` in the layout of an Immich CLIP model repository and return the modules.

    As Immich's exporter does: ``visual/model.onnx`` takes ``image`` [1, 3, S, S] and
    ``textual/model.onnx`` takes ``text`` [1, context] int32 (M-CLIP: ``input_ids`` and
    ``attention_mask``); both return a unit ``embedding``; ``config.json`` is the open_clip model
    config, ``visual/preprocess_cfg.json`` the open_clip preprocessing config.
    """
    torch.manual_seed(seed)
    visual = ClipVisual(shape, colour_axes).eval()
    textual = ClipTextual(shape, colour_tokens, colour_axes).eval()
    s = shape.image_size
    _export(visual, (torch.randn(1, 3, s, s),), folder / "visual" / "model.onnx", ["image"], ["embedding"])
    ids = torch.ones(1, shape.context_length, dtype=torch.int32)
    if shape.text_pool == "mean":
        _export(
            textual,
            (ids, torch.ones_like(ids)),
            folder / "textual" / "model.onnx",
            ["input_ids", "attention_mask"],
            ["embedding"],
        )
    else:
        _export(textual, (ids,), folder / "textual" / "model.onnx", ["text"], ["embedding"])
    text_cfg: dict[str, object] = {
        "context_length": shape.context_length,
        "vocab_size": shape.vocab_size,
        "width": shape.text_width,
        "heads": shape.text_heads,
        "layers": shape.text_layers,
    }
    if shape.clean:
        text_cfg["tokenizer_kwargs"] = {"clean": shape.clean}
    write_json(
        folder / "config.json",
        {
            "embed_dim": shape.embed_dim,
            "vision_cfg": {
                "image_size": s,
                "layers": shape.vision_layers,
                "width": shape.vision_width,
                "patch_size": shape.patch,
            },
            "text_cfg": text_cfg,
        },
    )
    write_json(
        folder / "visual" / "preprocess_cfg.json",
        {
            "size": [s, s],
            "mode": "RGB",
            "mean": list(shape.mean),
            "std": list(shape.std),
            "interpolation": shape.interpolation,
            "resize_mode": shape.resize_mode,
            "fill_color": 0,
        },
    )
    (folder / "textual").mkdir(parents=True, exist_ok=True)
    (folder / "textual" / "tokenizer.json").write_bytes(tokenizer_json.read_bytes())
    write_json(folder / "textual" / "tokenizer_config.json", {"pad_token": pad_token, "model_max_length": 77})
    write_json(folder / "textual" / "special_tokens_map.json", {"pad_token": pad_token})
    return visual, textual


# -- encoder-decoder captioner (ViT + GPT-2 shapes) --------------------------------------------


@dataclass(frozen=True)
class CaptionerShape:
    name: str
    image_size: int
    patch: int
    encoder_width: int
    encoder_layers: int
    encoder_heads: int
    decoder_width: int
    decoder_layers: int
    decoder_heads: int
    vocab_size: int
    positions: int = 64
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    #: GPT-2 ties its output layer to its token embeddings. With random weights that makes the
    #: decoder repeat its input token, so the test models leave them untied.
    tied: bool = True


#: nlpconnect/vit-gpt2-image-captioning: ViT-B/16 (224) encoder, GPT-2 small decoder.
VIT_GPT2 = CaptionerShape("vit-gpt2", 224, 16, 768, 12, 12, 768, 12, 12, 50257)


class DecoderBlock(nn.Module):
    """GPT-2 block with cross-attention to the encoder (as transformers' add_cross_attention)."""

    def __init__(self, width: int, heads: int, encoder_width: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
        self.ln_cross = nn.LayerNorm(width)
        self.cross = Attention(width, heads)
        self.cross.k = nn.Linear(encoder_width, width)
        self.cross.v = nn.Linear(encoder_width, width)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Linear(4 * width, width))

    def forward(self, x, encoder, past_k, past_v, mask):
        h = self.ln1(x)
        k = torch.cat([past_k, self.attn.split(self.attn.k(h))], dim=2)
        v = torch.cat([past_v, self.attn.split(self.attn.v(h))], dim=2)
        x = x + self.attn.attend(self.attn.split(self.attn.q(h)), k, v, mask)
        h = self.ln_cross(x)
        c = self.cross
        x = x + c.attend(c.split(c.q(h)), c.split(c.k(encoder)), c.split(c.v(encoder)), None)
        return x + self.mlp(self.ln2(x)), k, v


class CaptionDecoder(nn.Module):
    """GPT-2-shaped decoder. ``forward(ids, encoder, *past)`` -> (logits, *present)."""

    def __init__(self, shape: CaptionerShape) -> None:
        super().__init__()
        self.shape = shape
        self.embed = nn.Embedding(shape.vocab_size, shape.decoder_width)
        self.pos = nn.Embedding(shape.positions, shape.decoder_width)
        self.blocks = nn.ModuleList(
            DecoderBlock(shape.decoder_width, shape.decoder_heads, shape.encoder_width)
            for _ in range(shape.decoder_layers)
        )
        self.ln = nn.LayerNorm(shape.decoder_width)
        self.head = nn.Linear(shape.decoder_width, shape.vocab_size, bias=False)
        if shape.tied:
            self.head.weight = self.embed.weight

    def empty_past(self, batch: int) -> list[torch.Tensor]:
        s = self.shape
        zero = torch.zeros(batch, s.decoder_heads, 0, s.decoder_width // s.decoder_heads)
        return [zero] * (2 * s.decoder_layers)

    def forward(self, input_ids: torch.Tensor, encoder: torch.Tensor, *past: torch.Tensor):
        past_len = past[0].shape[2] if past else 0
        t = input_ids.shape[1]
        positions = torch.arange(t, device=input_ids.device) + past_len
        x = self.embed(input_ids) + self.pos(positions)
        keys = torch.arange(t + past_len, device=input_ids.device)
        mask = keys[None, :] <= positions[:, None]  # causal over cache + new tokens
        if not past:
            past = tuple(self.empty_past(input_ids.shape[0]))
        present = []
        for i, block in enumerate(self.blocks):
            x, k, v = block(x, encoder, past[2 * i], past[2 * i + 1], mask)
            present += [k, v]
        return (self.head(self.ln(x)), *present)


class CaptionEncoder(nn.Module):
    def __init__(self, shape: CaptionerShape) -> None:
        super().__init__()
        self.vit = VisionTransformer(
            shape.image_size, shape.patch, shape.encoder_width, shape.encoder_layers, shape.encoder_heads
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.vit(pixel_values)


def past_names(layers: int, prefix: str) -> list[str]:
    return [f"{prefix}.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]


def _symbolic(name: str, like: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
    """A value of ``like``'s type and rank with every dimension symbolic (the branches differ)."""
    rank = len(like.type.tensor_type.shape.dim)
    dims = [f"{name}_{axis}" for axis in range(rank)]
    return helper.make_tensor_value_info(name, like.type.tensor_type.elem_type, dims)


def merge_decoders(no_past: Path, with_past: Path, target: Path) -> None:
    """Join a no-cache and a with-cache decoder into one graph with an ``If`` on
    ``use_cache_branch`` (the ``decoder_model_merged.onnx`` layout optimum writes)."""
    first, later = onnx.load(str(no_past)), onnx.load(str(with_past))

    def as_branch(model: onnx.ModelProto, prefix: str) -> onnx.GraphProto:
        graph = model.graph
        outer = {i.name for i in graph.input}
        rename = {}
        for node in graph.node:
            for name in [*node.input, *node.output]:
                if name and name not in outer:
                    rename.setdefault(name, prefix + name)
        for init in graph.initializer:
            rename.setdefault(init.name, prefix + init.name)
        nodes = []
        for node in graph.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = prefix + node.name
            copy.input[:] = [rename.get(n, n) if n else n for n in node.input]
            copy.output[:] = [rename.get(n, n) for n in node.output]
            nodes.append(copy)
        inits = []
        for init in graph.initializer:
            copy = onnx.TensorProto()
            copy.CopyFrom(init)
            copy.name = rename[init.name]
            inits.append(copy)
        outputs = [_symbolic(rename.get(o.name, o.name), o) for o in graph.output]
        return helper.make_graph(nodes, prefix + "branch", [], outputs, inits)

    out_names = [o.name for o in first.graph.output]
    if out_names != [o.name for o in later.graph.output]:
        raise ValueError("the two decoders must have the same outputs")
    use_cache = helper.make_tensor_value_info("use_cache_branch", onnx.TensorProto.BOOL, [1])
    node = helper.make_node(
        "If",
        ["use_cache_branch"],
        out_names,
        then_branch=as_branch(later, "with_past_"),
        else_branch=as_branch(first, "no_past_"),
    )
    outputs = [_symbolic(o.name, o) for o in first.graph.output]
    inputs = [*later.graph.input, use_cache]
    graph = helper.make_graph([node], "merged_decoder", inputs, outputs)
    merged = helper.make_model(graph, opset_imports=list(first.opset_import))
    merged.ir_version = first.ir_version
    onnx.checker.check_model(merged)
    onnx.save(merged, str(target))


def export_hf_captioner(
    folder: Path,
    shape: CaptionerShape,
    tokenizer_json: Path,
    *,
    eos_token_id: int,
    max_length: int = 20,
    seed: int = 0,
    forms: tuple[str, ...] = ("plain", "with_past", "merged"),
) -> tuple[CaptionEncoder, CaptionDecoder]:
    """Write ``folder`` in the layout of an optimum image-to-text export (encoder_model.onnx,
    decoder_model.onnx, decoder_with_past_model.onnx, decoder_model_merged.onnx, tokenizer.json,
    config.json, generation_config.json, preprocessor_config.json)."""
    torch.manual_seed(seed)
    encoder, decoder = CaptionEncoder(shape).eval(), CaptionDecoder(shape).eval()
    s, layers = shape.image_size, shape.decoder_layers
    _export(
        encoder,
        (torch.randn(1, 3, s, s),),
        folder / "encoder_model.onnx",
        ["pixel_values"],
        ["last_hidden_state"],
        {"pixel_values": {0: "batch"}, "last_hidden_state": {0: "batch"}},
    )
    states = encoder(torch.randn(2, 3, s, s)).detach()
    present = past_names(layers, "present")
    past = past_names(layers, "past_key_values")
    seq_axes = {name: {0: "batch", 2: "past_sequence"} for name in present}
    plain = folder / "decoder_model.onnx"
    _export(
        decoder,
        (torch.ones(2, 3, dtype=torch.long), states),
        plain,
        ["input_ids", "encoder_hidden_states"],
        ["logits", *present],
        {"input_ids": {0: "batch", 1: "sequence"}, "encoder_hidden_states": {0: "batch"}, **seq_axes},
    )
    head_dim = shape.decoder_width // shape.decoder_heads
    example_past = tuple(torch.randn(2, shape.decoder_heads, 3, head_dim) for _ in past)
    with_past = folder / "decoder_with_past_model.onnx"
    _export(
        decoder,
        (torch.ones(2, 1, dtype=torch.long), states, *example_past),
        with_past,
        ["input_ids", "encoder_hidden_states", *past],
        ["logits", *present],
        {
            "input_ids": {0: "batch", 1: "sequence"},
            "encoder_hidden_states": {0: "batch"},
            **{name: {0: "batch", 2: "past_sequence"} for name in past},
            **seq_axes,
        },
    )
    if "merged" in forms:
        merge_decoders(plain, with_past, folder / "decoder_model_merged.onnx")
    if "plain" not in forms:
        plain.unlink()
    if "with_past" not in forms:
        with_past.unlink()
    (folder / "tokenizer.json").write_bytes(tokenizer_json.read_bytes())
    write_json(
        folder / "config.json",
        {
            "architectures": ["VisionEncoderDecoderModel"],
            "model_type": "vision-encoder-decoder",
            "decoder_start_token_id": eos_token_id,
            "eos_token_id": eos_token_id,
            "pad_token_id": eos_token_id,
            "decoder": {
                "model_type": "gpt2",
                "n_layer": layers,
                "n_head": shape.decoder_heads,
                "n_embd": shape.decoder_width,
                "vocab_size": shape.vocab_size,
                "bos_token_id": eos_token_id,
                "eos_token_id": eos_token_id,
            },
            "encoder": {"model_type": "vit", "image_size": s, "patch_size": shape.patch},
        },
    )
    write_json(
        folder / "generation_config.json",
        {
            "decoder_start_token_id": eos_token_id,
            "bos_token_id": eos_token_id,
            "eos_token_id": eos_token_id,
            "pad_token_id": eos_token_id,
            "max_length": max_length,
        },
    )
    write_json(
        folder / "preprocessor_config.json",
        {
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": list(shape.mean),
            "image_std": list(shape.std),
            "image_processor_type": "ViTImageProcessor",
            "resample": 2,
            "rescale_factor": 1 / 255,
            "size": {"height": s, "width": s},
        },
    )
    return encoder, decoder

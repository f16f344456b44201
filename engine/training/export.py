"""Export the trained seed models as a model bundle the app runs like any other.

    visual.onnx   pixels [N, 3, S, S]                    -> embedding [N, D]   (backbone + image encoder),
                                                            features           (what the decoder reads:
                                                            [N, F], or region vectors [N, cells, R])
    textual.onnx  input_ids, attention_mask [N, T]       -> embedding [N, D]   (LSTM sentence encoder)
    decoder.onnx  input_ids [N, T], encoder_hidden_states -> logits [N, T, V]  (LSTM decoder)
    tokenizer.json, model.json (preprocessing, SHA-256s, metrics)

The decoder graph maps a whole prefix to next-word logits; the greedy and beam search loops
are the engine's, in NumPy (:mod:`engine.models.encoder_decoder`, cache mode ``none``). With
sentences of a dozen words, re-reading the prefix costs far less than the image graph.

Every graph is checked against PyTorch on inputs it was not traced with; the export fails
when ONNX Runtime and PyTorch differ by more than 1e-4 anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from engine.errors import ModelError
from engine.models.manifest import MANIFEST_NAME, Manifest, load_manifest, staged_bundle, write_manifest
from engine.training.decoders import LSTMDecoder
from engine.training.features import BACKBONES, Backbone, preprocess_for
from engine.training.graphs import export_graph, largest_difference
from engine.training.train import Trained, config_json, decoder_content, uses_features
from engine.training.vse import VSE

TOLERANCE = 1e-4


class ImageGraph(nn.Module):
    """pixels -> (joint-space embedding, features): with a ``decoder`` that reads the image
    features, what it reads (:meth:`LSTMDecoder.read`, e.g. its region vectors); otherwise
    what the image encoder's linear map reads."""

    def __init__(self, backbone: Backbone, vse: VSE, decoder: LSTMDecoder | None) -> None:
        super().__init__()
        self.backbone, self.image, self.decoder = backbone, vse.image, decoder

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(pixels)
        embedding = self.image(features)
        if self.decoder is not None:
            return embedding, self.decoder.read(features)
        return embedding, self.image.pooled(features)


class TextGraph(nn.Module):
    def __init__(self, vse: VSE) -> None:
        super().__init__()
        self.text = vse.text

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.text(input_ids, attention_mask)


class DecoderGraph(nn.Module):
    def __init__(self, decoder: LSTMDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, input_ids: torch.Tensor, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(encoder_hidden_states, input_ids)


def _sample_ids(rows: int, length: int, vocab: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.randint(1, length + 1, (rows,), generator=generator)
    lengths[0] = length
    ids = torch.randint(4, vocab, (rows, length), generator=generator)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    return ids * mask, mask


def export_bundle(
    trained: Trained,
    target: Path,
    metrics: dict | None = None,
    *,
    bundle_id: str = "photoseek-seed",
    version: str = "1.0.0",
    name: str | None = None,
) -> Manifest:
    """Write the bundle to ``target`` (atomically) and return its parsed manifest."""
    if "lstm" not in trained.decoders:
        raise ModelError("export needs the LSTM decoder (train with decoders including 'lstm')")
    if target.exists() and not (target / MANIFEST_NAME).is_file() and any(target.iterdir()):
        raise ModelError(f"{target} exists and is not a model bundle; choose an empty or new folder")
    config = trained.config
    vse = trained.vse.cpu().eval()
    decoder = trained.decoders["lstm"].cpu().eval()
    assert isinstance(decoder, LSTMDecoder)
    backbone = Backbone(config.backbone, config.pooling)
    size = BACKBONES[config.backbone][0]
    vocab_size = len(trained.vocab)
    generator = torch.Generator().manual_seed(1234)
    # Real decoder inputs (validation images) for tracing and checking the decoder graph.
    with torch.no_grad():
        content = decoder.read(torch.from_numpy(decoder_content("lstm", config, vse, trained.splits["val"])[:6]))
    decoder_reads = "features" if uses_features("lstm", config) else "embedding"

    with staged_bundle(target) as staging:
        image_graph = ImageGraph(backbone, vse, decoder if decoder_reads == "features" else None)
        text_graph, decoder_graph = TextGraph(vse), DecoderGraph(decoder)
        export_graph(
            image_graph,
            (torch.randn(2, 3, size, size),),
            staging / "visual.onnx",
            ["pixels"],
            ["embedding", "features"],
            {"pixels": {0: "batch"}, "embedding": {0: "batch"}, "features": {0: "batch"}},
        )
        export_graph(
            text_graph,
            _sample_ids(2, 7, vocab_size, generator),
            staging / "textual.onnx",
            ["input_ids", "attention_mask"],
            ["embedding"],
            {
                "input_ids": {0: "batch", 1: "length"},
                "attention_mask": {0: "batch", 1: "length"},
                "embedding": {0: "batch"},
            },
        )
        export_graph(
            decoder_graph,
            (
                torch.randint(4, vocab_size, (2, 5), generator=generator),
                content[:2],
            ),
            staging / "decoder.onnx",
            ["input_ids", "encoder_hidden_states"],
            ["logits"],
            {
                "input_ids": {0: "batch", 1: "length"},
                "encoder_hidden_states": {0: "batch"},
                "logits": {0: "batch", 1: "length"},
            },
        )
        ids, mask = _sample_ids(5, 11, vocab_size, generator)
        diffs = {
            "visual.onnx": largest_difference(
                image_graph, staging / "visual.onnx", {"pixels": torch.rand(3, 3, size, size) * 2 - 1}
            ),
            "textual.onnx": largest_difference(
                text_graph, staging / "textual.onnx", {"input_ids": ids, "attention_mask": mask}
            ),
            "decoder.onnx": largest_difference(
                decoder_graph,
                staging / "decoder.onnx",
                {
                    "input_ids": torch.randint(4, vocab_size, (4, 9), generator=generator),
                    "encoder_hidden_states": content[2:6],
                },
            ),
        }
        worst = max(diffs.values())
        if worst > TOLERANCE:
            raise ModelError(f"ONNX export differs from PyTorch by {worst:g} (more than {TOLERANCE:g}): {diffs}")
        trained.vocab.save_tokenizer(staging / "tokenizer.json")
        spec = preprocess_for(config.backbone)
        preprocess = {
            "size": spec.size,
            "resize": spec.resize,
            "crop": spec.crop,
            "mean": list(spec.mean),
            "std": list(spec.std),
            "layout": spec.layout,
            "interpolation": spec.interpolation,
        }
        metrics = metrics or {}
        write_manifest(
            staging,
            {
                "id": bundle_id,
                "version": version,
                "kind": "joint-embedding",
                "name": name or f"Seed model ({config.backbone} + LSTM, trained locally)",
                "description": "Visual-semantic embedding and LSTM caption decoder (Kiros et al. 2014), "
                "trained with `photoseek train`.",
                "license": "Apache-2.0",
                "source": "trained locally with photoseek train",
                "embedding_size": config.embed_size,
                "languages": ["en"],
                "files": {"visual.onnx": {}, "textual.onnx": {}, "decoder.onnx": {}, "tokenizer.json": {}},
                "image": {
                    "file": "visual.onnx",
                    "input": "pixels",
                    "output": "embedding",
                    "extra_outputs": ["features"],
                    "preprocess": preprocess,
                },
                "text": {
                    "file": "textual.onnx",
                    "tokenizer": "tokenizer.json",
                    "context_length": config.max_words,
                    "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask"},
                    "output": "embedding",
                    "pooling": "none",
                    "pad_token": "<pad>",
                },
                "captioner": {
                    "type": "encoder-decoder",
                    "encoder": {
                        "file": "visual.onnx",
                        "input": "pixels",
                        "output": decoder_reads,
                        "preprocess": preprocess,
                        "same_as_image": True,
                    },
                    "decoder": {"file": "decoder.onnx", "cache": "none"},
                    "tokenizer": "tokenizer.json",
                    "decoder_start_token_id": trained.vocab.bos_id,
                    "eos_token_id": trained.vocab.eos_id,
                    "pad_token_id": trained.vocab.pad_id,
                    "max_length": 20,
                    "num_beams": config.beams,
                    "length_penalty": 1.0,
                },
                "search": {"cutoff": float(metrics.get("cutoff", 0.0)), "text_in_photo_weight": 0.0},
                "metrics": {k: v for k, v in metrics.items() if k != "cutoff"},
                "training": {
                    "config": config_json(config),
                    "seconds": trained.seconds,
                    "hardware": trained.hardware,
                    "export_max_abs_diff": diffs,
                    "vocabulary": len(trained.vocab),
                },
            },
        )
        (staging / "training.json").write_text(json.dumps({"history": trained.history}, indent=1) + "\n")
    return load_manifest(target)

"""A tiny joint-embedding bundle built with onnx.helper, for fast tests without torch.

Its joint space is 3-d colour space: a photo's vector is its mean colour, and the words "red",
"green" and "blue" are the three axes. So "red" must find the red photo first — a real,
checkable behaviour through the real manifest, ONNX Runtime, tokenizer and pipeline.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, pre_tokenizers

from engine.models.builtin import BUILTIN_REVISION
from engine.models.manifest import write_manifest

WORDS = ["[PAD]", "[UNK]", "red", "green", "blue", "photo", "a", "of"]
SIZE = 8


def _image_graph(path: Path) -> None:
    # pixels are (x - 0.5) / 0.5 normalised -> back to [0, 1], mean over H and W -> [N, 3]
    pixels = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])
    emb = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 3])
    probs = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 3])
    colours = helper.make_tensor_value_info("colours", TensorProto.FLOAT, ["batch", 11])
    half = numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half")
    ten = numpy_helper.from_array(np.array(10.0, dtype=np.float32), "ten")
    # colours: put the mean colour into the red/green/blue slots (3, 6, 7) of the 11 colour terms
    scatter = np.zeros((3, 11), dtype=np.float32)
    scatter[0, 3] = scatter[1, 6] = scatter[2, 7] = 1.0
    scatter_t = numpy_helper.from_array(scatter, "scatter")
    nodes = [
        helper.make_node("Mul", ["pixels", "half"], ["scaled"]),
        helper.make_node("Add", ["scaled", "half"], ["rgb"]),
        helper.make_node("ReduceMean", ["rgb"], ["mean4"], axes=[2, 3], keepdims=0),
        helper.make_node("Identity", ["mean4"], ["embedding"]),
        helper.make_node("Mul", ["mean4", "ten"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        helper.make_node("MatMul", ["mean4", "scatter"], ["raw_colours"]),
        helper.make_node("Softmax", ["raw_colours"], ["colours"], axis=1),
    ]
    graph = helper.make_graph(nodes, "tiny_image", [pixels], [emb, probs, colours], [half, ten, scatter_t])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def _text_graph(path: Path) -> None:
    table = np.zeros((len(WORDS), 3), dtype=np.float32)
    table[WORDS.index("red"), 0] = 1.0
    table[WORDS.index("green"), 1] = 1.0
    table[WORDS.index("blue"), 2] = 1.0
    for filler in ("photo", "a", "of", "[UNK]"):
        table[WORDS.index(filler)] = 0.05
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])
    out = helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq", 3])
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["hidden"], axis=0)]
    graph = helper.make_graph(nodes, "tiny_text", [ids], [out], [numpy_helper.from_array(table, "table")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def _tokenizer(path: Path) -> None:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))


def make_tiny_bundle(folder: Path, model_id: str = "tiny-rgb", version: str = "1", revision: int | None = None) -> Path:
    """Write the tiny bundle into ``folder`` and return it; ``revision`` is its build's (for one
    that stands in for the built-in model; default: the current build's)."""
    folder.mkdir(parents=True, exist_ok=True)
    _image_graph(folder / "visual.onnx")
    _text_graph(folder / "textual.onnx")
    _tokenizer(folder / "tokenizer.json")
    labels = {
        "classes": [
            {"name": "red thing", "synonyms": [], "everyday": ["thing"]},
            {"name": "green thing", "synonyms": [], "everyday": ["thing"]},
            {"name": "blue thing", "synonyms": [], "everyday": ["thing"]},
        ],
        "colours": ["black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown"],
    }
    (folder / "labels.json").write_text(json.dumps(labels))
    write_manifest(
        folder,
        {
            "id": model_id,
            "version": version,
            "kind": "joint-embedding",
            "name": "Tiny RGB test model",
            "license": "CC0-1.0",
            "embedding_size": 3,
            "files": {"visual.onnx": {}, "textual.onnx": {}, "tokenizer.json": {}, "labels.json": {}},
            "image": {
                "file": "visual.onnx",
                "input": "pixels",
                "output": "embedding",
                "extra_outputs": ["probs", "colours"],
                "preprocess": {"size": SIZE, "mean": [0.5] * 3, "std": [0.5] * 3},
            },
            "text": {
                "file": "textual.onnx",
                "tokenizer": "tokenizer.json",
                "context_length": 16,
                "inputs": {"input_ids": "input_ids"},
                "output": "hidden",
                "pooling": "mean",
            },
            "captioner": {"type": "labels", "labels": "labels.json"},
            "search": {"cutoff": 0.5},
            "build": {"revision": BUILTIN_REVISION if revision is None else revision},
        },
    )
    return folder

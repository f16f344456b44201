"""Exporting a PyTorch module to ONNX and checking the graph against it (opset 17)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from engine.errors import ModelError


def export_graph(
    module: nn.Module, example: tuple, path: Path, inputs: list[str], outputs: list[str], axes: dict
) -> None:
    """Trace ``module`` on ``example`` into an ONNX graph at ``path``.

    The TorchScript exporter writes real opset 17 (the dynamo one silently writes 18)."""
    with warnings.catch_warnings(), torch.no_grad():
        # Tracing warns about shape checks inside nn.LSTM and constant folding; the check
        # against PyTorch on fresh inputs (largest_difference) tells whether the graph is right.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            module.eval(),
            example,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def largest_difference(module: nn.Module, path: Path, feeds: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between ONNX Runtime and PyTorch on ``feeds``."""
    with torch.no_grad():
        out = module.eval()(*feeds.values())
    expected = [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {k: v.numpy() for k, v in feeds.items()})
    worst = 0.0
    for a, b in zip(got, expected, strict=True):
        if a.shape != b.shape:
            raise ModelError(f"{path.name}: ONNX output shape {a.shape} differs from PyTorch {b.shape}")
        worst = max(worst, float(np.abs(a - b).max()))
    return worst

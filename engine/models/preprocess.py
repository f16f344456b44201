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
    """Resize (shortest side to ``size``, or squash to a square) and centre-crop.

    The crop is resized directly (PIL's ``box``): the same pixels as resizing the whole image
    and cropping it (to rounding, at most 2/255 apart), without computing the columns or rows
    the crop throws away.
    """
    size = spec.size
    resample = _RESAMPLE[spec.interpolation]
    if image.mode != "RGB":
        image = image.convert("RGB")
    if spec.resize == "squash":
        return image.resize((size, size), resample, reducing_gap=3.0)
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    if spec.crop == "none":
        return image.resize((new_w, new_h), resample, reducing_gap=3.0)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    sx, sy = width / new_w, height / new_h  # input pixels per output pixel
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    return image.resize((size, size), resample, box=box, reducing_gap=3.0)


def to_tensor(images: list[Image.Image], spec: Preprocess) -> np.ndarray:
    """A float32 batch in the manifest's layout, normalised with its mean and std (0..1 scale)."""
    batch = np.stack([np.asarray(resize_and_crop(im, spec)) for im in images])  # uint8, NHWC
    shape: tuple[int, ...] = (3,)
    if spec.layout == "NCHW":
        batch, shape = batch.transpose(0, 3, 1, 2), (3, 1, 1)
    std = np.asarray(spec.std, dtype=np.float32) * 255.0
    mean = np.asarray(spec.mean, dtype=np.float32) * 255.0
    # (x - mean) / std as x * (1 / std) - mean / std: the uint8 pixels are read once, straight
    # into a contiguous float32 batch, instead of four passes over float copies.
    out = np.multiply(batch, (1.0 / std).reshape(shape), dtype=np.float32, order="C")
    out -= (mean / std).reshape(shape)
    return out

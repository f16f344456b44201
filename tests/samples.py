"""Generated sample files for the decoding tests and the fuzzers: every format a photo library
holds, made here (no sample photo is downloaded)."""

from __future__ import annotations

import io

import numpy as np
import tifffile
from PIL import Image


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def gradient(w: int = 320, h: int = 240) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=2))


def make_dng(width: int = 384, height: int = 256, *, preview: bool = True, orientation: int = 1) -> bytes:
    """A small but real DNG: a 16-bit RGGB Bayer mosaic of a red scene in a SubIFD, and (if
    ``preview``) an RGB preview in IFD0, the way cameras and converters write them."""
    rng = np.random.default_rng(0)
    cfa = np.zeros((height, width), np.uint16)
    cfa[0::2, 0::2] = 3000
    cfa[0::2, 1::2] = cfa[1::2, 0::2] = 500
    cfa[1::2, 1::2] = 300
    cfa += rng.integers(0, 50, cfa.shape, dtype=np.uint16)
    camera_tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, "Photoseek Test Camera", True),  # UniqueCameraModel
        (271, "s", 0, "Photoseek", True),  # Make
        (272, "s", 0, "Test Camera", True),  # Model
        (274, "H", 1, orientation, True),  # Orientation
        # ColorMatrix1 (identity, as signed rationals) and AsShotNeutral
        (50721, "2i", 9, (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1), True),
        (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True),
    ]
    raw_tags = [
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern: RGGB
        (50717, "I", 1, 4095, True),  # WhiteLevel
    ]
    buf = io.BytesIO()
    with tifffile.TiffWriter(buf) as tif:
        if preview:
            small = np.zeros((height // 4, width // 4, 3), np.uint8)
            small[..., 0] = 220
            small[..., 1:] = 30
            tif.write(small, photometric="rgb", subfiletype=1, subifds=1, extratags=camera_tags)
            tif.write(cfa, photometric=32803, subfiletype=0, extratags=raw_tags)
        else:
            tif.write(cfa, photometric=32803, subfiletype=0, extratags=camera_tags + raw_tags)
    return buf.getvalue()


def seeds() -> list[bytes]:
    """Valid files of every supported kind, for mutation by the fuzzers."""
    base = gradient(48, 32)
    out = [encode(base, fmt) for fmt in ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP")]
    out.append(encode(base, "JPEG", progressive=True))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x0132] = "2021:07:04 12:00:00"
    out.append(encode(base, "JPEG", exif=exif.tobytes()))
    out.append(encode(base.convert("CMYK"), "JPEG"))
    out.append(encode(Image.fromarray(np.arange(48 * 32, dtype=np.uint16).reshape(32, 48)), "PNG"))
    out.append(encode(base.convert("RGBA"), "PNG"))
    frames = [base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    out.append(encode(frames[0], "GIF", save_all=True, append_images=frames[1:]))
    out.append(encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]))
    out.append(encode(base, "TIFF", compression="tiff_lzw"))
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        out.append(encode(base, "HEIF"))
    except (ImportError, KeyError, OSError, ValueError):
        pass
    out.append(make_dng(64, 48))
    out.append(make_dng(64, 48, preview=False))
    return out

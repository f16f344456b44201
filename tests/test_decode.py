"""Decoding every format a photo library holds, and refusing hostile files with a reason."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from engine.errors import DecodeError
from engine.ingest.decode import decode_photo, fingerprint, sniff


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def gradient(w=320, h=240) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=2))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF"])
def test_common_formats_decode(fmt):
    photo = decode_photo(encode(gradient(), fmt), min_side=64)
    assert photo.image.mode == "RGB"
    assert (photo.width, photo.height) == (320, 240)
    assert photo.format == fmt


def test_heic_decodes():
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    try:
        data = encode(gradient(), "HEIF")
    except (KeyError, OSError, ValueError) as exc:  # no HEVC encoder in this libheif build
        pytest.skip(f"cannot write HEIF here: {exc}")
    photo = decode_photo(data, min_side=64)
    assert photo.format == "HEIF" and (photo.width, photo.height) == (320, 240)


def test_large_jpeg_is_decoded_at_reduced_size():
    photo = decode_photo(encode(gradient(4000, 3000), "JPEG"), min_side=224)
    assert (photo.width, photo.height) == (4000, 3000)
    assert min(photo.image.size) >= 224 and photo.image.size[0] <= 1000


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    image = Image.new("RGB", (200, 100), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 100, 100))  # left half red when upright
    exif = Image.Exif()
    exif[0x0112] = orientation
    photo = decode_photo(encode(image, "JPEG", exif=exif.tobytes()), min_side=100)
    rotated = orientation in (5, 6, 7, 8)
    assert photo.orientation == orientation
    assert photo.image.size == ((100, 200) if rotated else (200, 100))
    assert (photo.width, photo.height) == ((100, 200) if rotated else (200, 100))


def test_cmyk_16bit_palette_and_alpha_become_rgb():
    cmyk = decode_photo(encode(gradient().convert("CMYK"), "JPEG"), min_side=32)
    assert cmyk.image.mode == "RGB"
    deep = Image.fromarray((np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16))
    grey16 = decode_photo(encode(deep, "PNG"), min_side=32)
    values = np.asarray(grey16.image)[..., 0]
    assert values.min() < 10 and values.max() > 245  # scaled, not clipped to white
    clear = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    assert np.asarray(decode_photo(encode(clear, "PNG"), min_side=8).image).min() == 255  # on white
    assert decode_photo(encode(gradient().convert("P"), "PNG"), min_side=8).image.mode == "RGB"


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    pixel = decode_photo(buf.getvalue(), min_side=8).image.getpixel((5, 5))
    assert pixel[0] > 200 and pixel[1] < 50


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"Hello, this is a text file.\n", "text file"),
        (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video"),
        (b"%PDF-1.7\n", "PDF"),
        (_png_claiming(100_000, 100_000), "decompression bomb"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20, "damaged"),
    ],
)
def test_hostile_inputs_get_a_reason(data, reason):
    with pytest.raises(DecodeError) as info:
        decode_photo(data)
    assert reason.lower() in info.value.reason.lower()


def test_truncated_files_are_refused():
    for fmt in ("JPEG", "PNG"):
        data = encode(gradient(), fmt)
        with pytest.raises(DecodeError, match=r"truncated|damaged"):
            decode_photo(data[: len(data) // 2])


def test_sniff_and_fingerprint():
    assert sniff(b"\xff\xd8\xff\xe1") == "JPEG"
    assert sniff(b"\x00\x00\x00\x1cftypheic") == "HEIF"
    assert sniff(b"GIF89a") == "GIF"
    assert sniff(b"plain text") is None
    assert fingerprint(b"abc") == fingerprint(b"abc") != fingerprint(b"abd")


def test_read_photo_file_reads_the_whole_file(tmp_path):
    from engine.ingest.decode import read_photo_file

    data = np.random.default_rng(0).integers(0, 256, 3_000_001, dtype=np.uint8).tobytes()
    (tmp_path / "a.jpg").write_bytes(data)
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert read_photo_file(tmp_path / "a.jpg", len(data)) == data
    assert read_photo_file(tmp_path / "empty.jpg", 0) == b""


def test_read_photo_file_shows_a_file_that_grew(tmp_path, monkeypatch):
    """It reads one byte past the size it saw, so a file still being written comes back with
    another length than its size (the indexer then leaves it for the next sync)."""
    import os

    from engine.ingest import decode

    path = tmp_path / "growing.jpg"
    path.write_bytes(b"x" * 1000)
    real_fstat = os.fstat

    def fstat_before_growth(fd):  # the size the file had when it was opened
        info = real_fstat(fd)
        return os.stat_result((*info[:6], 600, *info[7:]))

    monkeypatch.setattr(decode.os, "fstat", fstat_before_growth)
    assert len(decode.read_photo_file(path, 600)) == 601


def test_read_photo_file_refuses_folders_and_pipes(tmp_path):
    import os

    from engine.ingest.decode import read_photo_file

    with pytest.raises(DecodeError, match="folder"):
        read_photo_file(tmp_path, 0)
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(DecodeError, match="not a regular file"):
        read_photo_file(tmp_path / "pipe.jpg", 0)

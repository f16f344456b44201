"""Reading a photo file safely.

Every file is untrusted. :func:`decode_photo` either returns a small RGB image (orientation
applied, reduced-size JPEG decoding) with the photo's metadata, or raises :class:`DecodeError`
with a reason a person can act on. It never writes anything.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import xxhash
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from engine.errors import DecodeError, FileVanishedError

try:  # HEIC/HEIF (and AVIF where Pillow lacks it) through libheif
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_SUPPORTED = True
except ImportError:  # pragma: no cover - pillow-heif is a declared dependency
    HEIF_SUPPORTED = False

try:  # camera RAW through LibRaw
    import rawpy

    RAW_SUPPORTED = True
except ImportError:  # pragma: no cover - rawpy is a declared dependency where a wheel exists
    rawpy = None  # type: ignore[assignment]
    RAW_SUPPORTED = False


#: Larger photos are refused: a small file declaring huge dimensions is a decompression bomb.
MAX_PIXELS = 250_000_000
#: Files above this size are fingerprinted from samples instead of in full (see fingerprint()).
FULL_HASH_LIMIT = 64 * 1024 * 1024
#: Files above this size are not read at all (no photo format needs this much).
MAX_FILE_BYTES = 1024 * 1024 * 1024

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False

#: Camera RAW formats (decoded with LibRaw, from the embedded preview where there is one).
RAW_EXTENSIONS = frozenset(
    {".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".orf", ".rw2", ".raf", ".pef"}
    | {".srw", ".3fr", ".fff", ".iiq", ".mos", ".mef", ".mrw", ".x3f", ".erf", ".kdc", ".dcr", ".rwl"}
)
PHOTO_EXTENSIONS = (
    frozenset(
        {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".tif", ".tiff", ".bmp", ".dib"}
        | {".heic", ".heif", ".hif", ".avif"}
    )
    | RAW_EXTENSIONS
)
#: Never photos: skipped by the scan without opening them.
NOT_PHOTO_EXTENSIONS = frozenset(
    {".xmp", ".txt", ".json", ".xml", ".html", ".htm", ".md", ".pdf", ".doc", ".docx", ".xls", ".xlsx"}
    | {".csv", ".zip", ".gz", ".tar", ".7z", ".iso", ".dmg", ".exe", ".dll", ".so", ".py", ".sh", ".ini"}
    | {".mp4", ".mov", ".avi", ".mkv", ".m4v", ".3gp", ".mts", ".m2ts", ".wmv", ".webm", ".lrv"}
    | {".mp3", ".wav", ".aac", ".m4a", ".flac", ".ogg", ".db", ".sqlite", ".thm", ".aae"}
    | {".pp3", ".dop", ".on1"}  # editors' sidecar files
)

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}


def sniff(head: bytes) -> str | None:
    """The image format the first bytes of a file announce, or None."""
    if head[:4] == b"II*\x00" and head[8:10] == b"CR":  # Canon CR2 (a TIFF underneath)
        return "RAW"
    if head[:4] in (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00") or head.startswith(b"FUJIFILMCCD-RAW"):
        return "RAW"  # Olympus ORF, Panasonic RW2, Fujifilm RAF
    if head[4:12] == b"ftypcrx ":  # Canon CR3
        return "RAW"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[:2] == b"BM" and len(head) >= 14:
        return "BMP"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "AVIF" if head[8:12] in (b"avif", b"avis") else "HEIF"
    return None


def describe_non_image(head: bytes) -> str:
    """A short guess at what a non-image file is, for the failure reason."""
    if not head:
        return "empty file (0 bytes)"
    if head[4:8] == b"ftyp" or head[:4] == b"\x1aE\xdf\xa3" or head[:4] == b"RIFF":
        return "a video or other media file, not a photo"
    if head.startswith(b"%PDF"):
        return "a PDF document, not a photo"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive, not a photo"
    try:
        text = head.decode("utf-8")
        if all(ch.isprintable() or ch in "\r\n\t" for ch in text):
            return "a text file, not a photo"
    except UnicodeDecodeError:
        pass
    return "not a recognised image format"


def fingerprint(data: bytes | None = None, path: Path | None = None, size: int | None = None) -> str:
    """A content fingerprint: XXH3-128 of the whole content, or of size + three 1 MiB samples
    for files larger than :data:`FULL_HASH_LIMIT` (so a 100 MB RAW costs a few milliseconds).

    XXH3 hashes a 5 MB camera JPEG in about 0.1 ms where BLAKE2b takes about 5 ms; a
    fingerprint only has to tell a user's own photos apart, not resist forgery. A file that
    cannot be read raises :class:`DecodeError` (:class:`FileVanishedError` if it is gone), as
    :func:`read_photo_file` does."""
    digest = xxhash.xxh3_128()
    if data is not None:
        digest.update(data)
        return digest.hexdigest()
    assert path is not None and size is not None
    chunk = 1 << 20
    digest.update(b"sampled:%d:" % size)
    try:
        with path.open("rb") as handle:
            for offset in (0, max(0, size // 2 - chunk // 2), max(0, size - chunk)):
                handle.seek(offset)
                digest.update(handle.read(chunk))
    except OSError as exc:
        raise unreadable(exc) from exc
    return digest.hexdigest()


@dataclass
class DecodedPhoto:
    """A photo reduced for the encoders, with what was learned about it."""

    image: Image.Image  # RGB, orientation applied, shortest side >= the requested size (when possible)
    format: str
    width: int  # full size, after orientation
    height: int
    orientation: int
    taken_at: str | None  # ISO 8601 from EXIF, when present


def _exif_info(image: Image.Image) -> tuple[int, str | None]:
    try:
        exif = image.getexif()
    except Exception:  # a broken EXIF block must not fail the photo
        return 1, None
    orientation = exif.get(0x0112, 1)
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        orientation = 1
    taken = None
    try:
        raw = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)
        if isinstance(raw, bytes):
            raw = raw.decode("ascii", "ignore")
        if isinstance(raw, str) and raw.strip(" \x00"):
            taken = datetime.strptime(raw.strip(" \x00")[:19], "%Y:%m:%d %H:%M:%S").isoformat()
    except (ValueError, KeyError, TypeError, AttributeError):
        taken = None
    return orientation, taken


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any mode to 8-bit RGB; transparency becomes white; 16-bit and float are scaled, not clipped."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float32)
        top = 65535.0 if mode.startswith("I;16") else max(float(array.max()), 1.0)
        if mode == "F":
            low = float(array.min())
            array, top = array - low, max(float(array.max()) - low, 1e-6)
        grey = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "P", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def decode_photo(data: bytes, *, min_side: int = 224, name: str | None = None) -> DecodedPhoto:
    """Decode ``data`` into a reduced RGB image whose shortest side is at least ``min_side``.

    JPEGs are decoded at a reduced scale (DCT scaling) when that still gives ``min_side``; the
    first frame of animations is used; camera RAW files (known by their content or, for the
    TIFF-based ones, by the extension of ``name``) use their embedded preview. Raises
    :class:`DecodeError` with a reason for anything else — and never another exception.
    """
    if not data:
        raise DecodeError("empty file (0 bytes)")
    kind = sniff(data[:32])
    if kind == "RAW" or (kind == "TIFF" and (_raw_name(name) or _is_dng(data))):
        return _decode_raw(data, min_side)
    if kind is None:
        raise DecodeError(describe_non_image(data[:512]))
    if kind in ("HEIF", "AVIF") and not HEIF_SUPPORTED:
        raise DecodeError(f"{kind} photos need pillow-heif, which is not installed")
    with warnings.catch_warnings():
        # Pillow warns about damage it works around (corrupt EXIF, tags past the end): the photo
        # either decodes or fails with a reason, so those warnings are noise here.
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width <= 0 or height <= 0:
                raise DecodeError(f"invalid dimensions {width}x{height}")
            if width * height > MAX_PIXELS:
                raise DecodeError(
                    f"image too large ({width}x{height} = {width * height / 1e6:.0f} MP; "
                    f"limit {MAX_PIXELS / 1e6:.0f} MP), possibly a decompression bomb"
                )
            orientation, taken = _exif_info(image)
            if getattr(image, "is_animated", False):
                image.seek(0)
            if image.format == "JPEG":
                # DCT scaling: decode at 1/2, 1/4 or 1/8 size as long as both sides stay >= min_side.
                image.draft("RGB", (min_side, min_side))
            image.load()
            picture = _to_rgb(ImageOps.exif_transpose(image) or image)
        except DecodeError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DecodeError(f"image too large, possibly a decompression bomb ({exc})") from exc
        except UnidentifiedImageError as exc:
            raise DecodeError(f"damaged {kind} file (its content cannot be read)") from exc
        # RuntimeError: libheif's failures (pillow-heif), e.g. a size that differs from the header's.
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, RuntimeError, struct.error) as exc:
            message = str(exc) or exc.__class__.__name__
            if "truncated" in message.lower() or isinstance(exc, EOFError):
                raise DecodeError(f"truncated or damaged {kind} file: {message}") from exc
            raise DecodeError(f"damaged {kind} file: {message}") from exc
        except MemoryError as exc:
            raise DecodeError("not enough memory to decode this image") from exc
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    if picture.width < 1 or picture.height < 1:
        raise DecodeError("image has no pixels")
    return DecodedPhoto(image=picture, format=kind, width=width, height=height, orientation=orientation, taken_at=taken)


_RAW_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}
_TRANSPOSE = {
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_270,
    8: Image.Transpose.ROTATE_90,
}


def _raw_name(name: str | None) -> bool:
    return bool(name) and os.path.splitext(name or "")[1].lower() in RAW_EXTENSIONS


def _is_dng(data: bytes) -> bool:
    """A TIFF whose first IFD carries the DNGVersion tag (read without decoding anything)."""
    endian = "<" if data[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack_from(endian + "I", data, 4)
        (count,) = struct.unpack_from(endian + "H", data, offset)
        for i in range(min(count, 1024)):
            (tag,) = struct.unpack_from(endian + "H", data, offset + 2 + 12 * i)
            if tag == 50706:
                return True
    except struct.error:  # points outside the file: not a DNG, the normal decode says why
        return False
    return False


def _raw_preview(raw: object, min_side: int) -> tuple[Image.Image, int] | None:
    """The embedded preview (image, its own EXIF orientation) if it is large enough."""
    assert rawpy is not None
    try:
        thumb = raw.extract_thumb()  # type: ignore[attr-defined]
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            decoded = decode_photo(thumb.data, min_side=min_side)
        except DecodeError:
            return None  # a broken preview: develop the RAW data instead
        image, orientation = decoded.image, decoded.orientation
    else:
        try:
            image, orientation = _developed_image(np.asarray(thumb.data)), 1
        except DecodeError:
            return None  # a broken preview: develop the RAW data instead
    if min(image.size) < min_side:
        return None
    return image, orientation


def _developed_image(developed: np.ndarray) -> Image.Image:
    """The RGB image of developed RAW data: LibRaw gives one channel for monochrome sensors
    (and for some damaged files), three otherwise."""
    if developed.ndim == 3 and developed.shape[2] == 1:
        developed = developed[:, :, 0]
    if developed.ndim not in (2, 3) or (developed.ndim == 3 and developed.shape[2] != 3) or developed.dtype != np.uint8:
        raise DecodeError(f"damaged camera RAW file (developed to an array of shape {developed.shape})")
    return Image.fromarray(np.ascontiguousarray(developed)).convert("RGB")


def _decode_raw(data: bytes, min_side: int) -> DecodedPhoto:
    """A camera RAW file: its embedded preview, or the RAW data developed at half size."""
    if rawpy is None:
        raise DecodeError("camera RAW files need rawpy, which is not installed")
    try:
        with rawpy.imread(io.BytesIO(data)) as raw:
            sizes = raw.sizes
            if sizes.raw_width * sizes.raw_height > MAX_PIXELS or sizes.width <= 0 or sizes.height <= 0:
                raise DecodeError(f"invalid or too large RAW dimensions {sizes.raw_width}x{sizes.raw_height}")
            width, height = sizes.width, sizes.height
            orientation = _RAW_FLIP_TO_ORIENTATION.get(sizes.flip, 1)
            preview = _raw_preview(raw, min_side)
            if preview is not None:
                picture, own = preview
                if own != 1:  # the preview carried (and applied) its own orientation
                    orientation = own
                elif orientation in _TRANSPOSE:
                    picture = picture.transpose(_TRANSPOSE[orientation])
            else:
                developed = raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8, user_flip=0)
                picture = _developed_image(developed)
                if orientation in _TRANSPOSE:
                    picture = picture.transpose(_TRANSPOSE[orientation])
    except DecodeError:
        raise
    except rawpy.LibRawError as exc:
        raise DecodeError(f"damaged or unsupported camera RAW file ({exc or exc.__class__.__name__})") from exc
    except (MemoryError, rawpy.LibRawUnsufficientMemoryError) as exc:
        raise DecodeError("not enough memory to decode this RAW file") from exc
    except (OSError, ValueError) as exc:
        raise DecodeError(f"damaged camera RAW file ({exc})") from exc
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return DecodedPhoto(image=picture, format="RAW", width=width, height=height, orientation=orientation, taken_at=None)


def unreadable(exc: OSError) -> DecodeError:
    """Why a file could not be opened or read, in the words shown to the user."""
    if isinstance(exc, FileNotFoundError):
        return FileVanishedError()
    if isinstance(exc, PermissionError):
        return DecodeError("permission denied")
    if isinstance(exc, IsADirectoryError):
        return DecodeError("is a folder, not a file")
    return DecodeError(f"cannot read the file ({exc.strerror or exc})")


def read_photo_file(path: Path, size: int) -> bytes:
    """The bytes of a photo file, refusing absurd sizes before reading.

    The file is opened without blocking and checked to be a regular file, so a pipe or device
    that took a photo's name (or replaced one after the folder was listed) cannot stall indexing.
    """
    if size > MAX_FILE_BYTES:
        raise DecodeError(f"file too large to be a photo ({size / 1e9:.1f} GB)")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise unreadable(exc) from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise DecodeError("is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise DecodeError("not a regular file (a pipe, socket or device)")
        if info.st_size > MAX_FILE_BYTES:
            raise DecodeError(f"file too large to be a photo ({info.st_size / 1e9:.1f} GB)")
        # One byte past the size just seen: a file that grew or shrank since comes back with
        # another length, which the indexer treats as still being written. (A buffered read of
        # MAX_FILE_BYTES + 1 allocated that gigabyte for every photo: 2 ms of page mapping per
        # 3 MB JPEG, against 0.35 ms for the read itself.)
        limit = min(info.st_size, MAX_FILE_BYTES) + 1
        with os.fdopen(fd, "rb", buffering=0) as handle:
            fd = -1  # the file object owns it now
            chunks: list[bytes] = []
            while limit > 0:
                chunk = handle.read(limit)
                if not chunk:
                    break
                chunks.append(chunk)
                limit -= len(chunk)
            return b"".join(chunks)
    except OSError as exc:
        raise unreadable(exc) from exc
    finally:
        if fd >= 0:
            os.close(fd)

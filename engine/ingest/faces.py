"""Finding faces in photos, so that "a person", "people" or "a portrait" find photos of people.

The built-in model's classifier knows the 1,000 ImageNet classes, and none of them is a person:
without this, a portrait is "a military uniform" or "a football helmet". Faces are found with
MTCNN (Zhang et al. 2016, "Joint Face Detection and Alignment using Multi-task Cascaded
Convolutional Networks"): a small fully convolutional network proposes face windows over an
image pyramid, and two more networks (24 and 48 pixels) keep the real faces and refine their
boxes. The weights ship inside the ``mtcnn`` package (MIT licence) as plain arrays; this module
writes the three networks as ONNX graphs in memory (a few milliseconds, no file, no TensorFlow
or torch) and runs them with ONNX Runtime.

It runs beside text reading, in the second indexing pass, on the same 640-pixel image.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from engine.errors import ModelError

log = logging.getLogger(__name__)

ENGINE_ID = "mtcnn-1"
#: Smallest face looked for, as a share of the image's shorter side. Smaller faces (a crowd
#: in the distance) do not make a photo one "of people".
MIN_FACE_SHARE = 0.06
#: The smallest face, in pixels, that the proposal network can see at all.
_CELL = 12
_SCALE_STEP = 0.709
#: Face probability each stage needs. The last is stricter than MTCNN's usual 0.7: a false
#: "person" in a photo of a dog or of pebbles would be shown for "a person", which is worse
#: than missing a face in profile (docs/builtin-model.md: how it was chosen).
THRESHOLDS = (0.6, 0.7, 0.95)


@dataclass(frozen=True)
class Face:
    """A face: its box as fractions of the image's width and height, and its probability."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float

    def as_list(self) -> list[float]:
        return [round(v, 4) for v in (self.x1, self.y1, self.x2, self.y2, self.score)]


def available() -> bool:
    """Whether the detector's weights are installed (the ``mtcnn`` package)."""
    return _weights_folder() is not None


def people_phrase(faces: int) -> str:
    """How the people in a photo are put into words for the text encoder."""
    if faces <= 0:
        return ""
    if faces == 1:
        return "a photo of a person"
    if faces == 2:
        return "a photo of two people"
    return "a photo of a group of people"


def faces_sentence(faces: int) -> str:
    """What a caption says about the faces found (only what the detector saw)."""
    if faces <= 0:
        return ""
    if faces == 1:
        return "A face in the photo."
    return f"{faces} faces in the photo." if faces > 9 else f"{_NUMBERS[faces].capitalize()} faces in the photo."


_NUMBERS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _weights_folder() -> Path | None:
    # The package's own module imports TensorFlow; only its files are read, so it is located
    # without being imported. The packaged application carries the files alone.
    spec = importlib.util.find_spec("mtcnn")
    packages = list(spec.submodule_search_locations or []) if spec else []
    if hasattr(sys, "_MEIPASS"):
        packages.append(str(Path(sys._MEIPASS) / "mtcnn"))
    for package in packages:
        folder = Path(package) / "assets" / "weights"
        if (folder / "pnet.lz4").is_file():
            return folder
    return None


def _load(name: str) -> list[np.ndarray]:
    import joblib

    folder = _weights_folder()
    if folder is None:
        raise ModelError("the face detector needs the 'mtcnn' package (pip install mtcnn)")
    path = folder / f"{name}.lz4"
    try:
        arrays = joblib.load(path)
    except (OSError, ValueError, EOFError) as exc:
        raise ModelError(f"cannot read the face detector's weights {path}: {exc}") from exc
    return [np.asarray(a, dtype=np.float32) for a in arrays]


class _Graph:
    """A small convolutional network written as an ONNX graph, layer by layer, from the
    ``mtcnn`` package's arrays (Keras layout: convolutions HWIO, dense layers IO)."""

    def __init__(self, weights: list[np.ndarray]) -> None:
        self.weights = list(weights)
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.last = "image"

    def _const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name))
        return name

    def _node(self, op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        self.last = name
        return name

    def conv(self, name: str, source: str | None = None) -> str:
        kernel, bias = self.weights.pop(0), self.weights.pop(0)
        w = self._const(f"{name}.w", kernel.transpose(3, 2, 0, 1))  # HWIO -> OIHW
        b = self._const(f"{name}.b", bias)
        return self._node("Conv", [source or self.last, w, b], name)

    def prelu(self, name: str, channels_first: bool = True) -> str:
        alpha = self.weights.pop(0).reshape(-1)
        slope = alpha.reshape(-1, 1, 1) if channels_first else alpha
        return self._node("PRelu", [self.last, self._const(f"{name}.a", slope)], name)

    def pool(self, name: str, size: int, same: bool) -> str:
        # Keras "same" pads at the end, as SAME_UPPER does.
        pad = {"auto_pad": "SAME_UPPER"} if same else {}
        return self._node("MaxPool", [self.last], name, kernel_shape=[size, size], strides=[2, 2], **pad)

    def flatten_like_keras(self, name: str) -> str:
        # The dense weights expect Keras' Permute((2, 1, 3)) then Flatten of an NHWC tensor:
        # (N, C, H, W) -> (N, W, H, C) -> (N, W*H*C).
        self._node("Transpose", [self.last], f"{name}.t", perm=[0, 3, 2, 1])
        return self._node("Flatten", [self.last], name, axis=1)

    def dense(self, name: str, source: str | None = None) -> str:
        kernel, bias = self.weights.pop(0), self.weights.pop(0)
        w, b = self._const(f"{name}.w", kernel), self._const(f"{name}.b", bias)
        return self._node("Gemm", [source or self.last, w, b], name)

    def softmax(self, name: str, source: str, axis: int) -> str:
        return self._node("Softmax", [source], name, axis=axis)

    def model(self, outputs: list[str], side: int | None) -> bytes:
        from onnx import TensorProto, helper

        if self.weights:
            raise ModelError(f"the face detector's weights do not fit its network ({len(self.weights)} arrays left)")
        shape: list[Any] = ["n", 3, side or "h", side or "w"]
        graph = helper.make_graph(
            self.nodes,
            "mtcnn",
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
            self.initializers,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        return bytes(model.SerializeToString())


#: The three networks' bodies, layer by layer: ``None`` is a convolution (its kernel from the
#: weights) followed by a PReLU; ``(size, same)`` is max pooling, padded at the end or not.
_Pool = tuple[int, bool]
_BODIES: dict[str, list[_Pool | None]] = {
    "pnet": [None, (2, True), None, None],
    "rnet": [None, (3, True), None, (3, False), None],
    "onet": [None, (3, True), None, (3, False), None, (2, True), None],
}


def _graph(name: str, side: int | None) -> bytes:
    """One network as an ONNX graph with outputs ``box`` (offsets) and ``face_prob``: the
    convolutional body, then 1x1 convolutions (the proposal network, any image size) or a dense
    layer and dense heads (the 24- and 48-pixel networks; the 48-pixel one also has landmarks,
    which are not used)."""
    g = _Graph(_load(name))
    for n, layer in enumerate(_BODIES[name]):
        if layer is None:
            g.conv(f"conv{n}")
            g.prelu(f"prelu{n}")
        else:
            g.pool(f"pool{n}", *layer)
    if side is None:
        features = g.last
        g.conv("box", features)
        logits = g.conv("face", features)
    else:
        g.flatten_like_keras("flat")
        g.dense("fc")
        features = g.prelu("prelu_fc", channels_first=False)
        g.dense("box", features)
        if name == "onet":
            g.dense("landmarks", features)
        logits = g.dense("face", features)
    g.softmax("face_prob", logits, axis=1)
    return g.model(["box", "face_prob"], side)


def _nms(boxes: np.ndarray, threshold: float, by_min: bool = False) -> np.ndarray:
    """Indices of ``boxes`` (x1, y1, x2, y2, score, ...) kept by greedy non-maximum
    suppression, best first; overlap is intersection over union, or over the smaller box."""
    if len(boxes) == 0:
        return np.empty(0, dtype=np.int64)
    x1, y1, x2, y2, score = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-score, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        overlap = inter / np.minimum(area[i], area[rest]) if by_min else inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w / 2 - side / 2
    out[:, 1] = boxes[:, 1] + h / 2 - side / 2
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _refine(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    out[:, :4] = boxes[:, :4] + offsets * np.stack([w, h, w, h], axis=1)
    return out


def _normalise(pixels: np.ndarray) -> np.ndarray:
    """NHWC uint8 -> NCHW float, as the networks were trained: (x - 127.5) / 128."""
    return ((pixels.astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2)


def _patches(pixels: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
    """Each box cut out of ``pixels`` (HWC; zeros outside the image) and resized to ``side``
    pixels by plain bilinear sampling, as the networks were trained (TensorFlow's
    ``crop_and_resize``)."""
    import cv2

    height, width = pixels.shape[:2]
    out = np.zeros((len(boxes), side, side, 3), dtype=np.uint8)
    for n, (x1, y1, x2, y2) in enumerate(np.round(boxes[:, :4]).astype(np.int64)):
        if x2 <= x1 or y2 <= y1:
            continue
        crop = np.zeros((y2 - y1 + 1, x2 - x1 + 1, 3), dtype=np.uint8)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2 + 1, width), min(y2 + 1, height)
        if sx2 > sx1 and sy2 > sy1:
            crop[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = pixels[sy1:sy2, sx1:sx2]
        out[n] = cv2.resize(crop, (side, side), interpolation=cv2.INTER_LINEAR)
    return _normalise(out)


class FaceDetector:
    """MTCNN on ONNX Runtime. One instance per thread (sessions are shared safely, but the
    detector is cheap to make)."""

    def __init__(
        self, min_face_share: float = MIN_FACE_SHARE, thresholds: tuple[float, float, float] = THRESHOLDS
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        self._sessions = [
            ort.InferenceSession(_graph(name, side), options, providers=providers)
            for name, side in (("pnet", None), ("rnet", 24), ("onet", 48))
        ]
        self.min_face_share = min_face_share
        self.thresholds = thresholds

    def _run(self, stage: int, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        box, prob = self._sessions[stage].run(["box", "face_prob"], {"image": batch})
        return box, prob

    def detect(self, image: Image.Image) -> list[Face]:
        """Faces in ``image`` (any size; 640 pixels on the longer side is what indexing uses)."""
        image = image.convert("RGB")
        pixels = np.asarray(image)
        width, height = image.size
        min_face = max(_CELL, self.min_face_share * min(width, height))
        boxes = self._propose(image, min_face)
        for stage, side in ((1, 24), (2, 48)):
            if len(boxes) == 0:
                return []
            offsets, prob = self._run(stage, _patches(pixels, boxes, side))
            boxes = boxes.copy()
            boxes[:, 4] = prob[:, 1]
            boxes = _refine(boxes, offsets)
            boxes = boxes[boxes[:, 4] > self.thresholds[stage]]
            # After the last stage, overlap is measured against the smaller box: a face inside
            # a larger box of the same face goes.
            boxes = _square(boxes[_nms(boxes, 0.7)]) if stage == 1 else boxes[_nms(boxes, 0.7, by_min=True)]
        sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        boxes = boxes[sides >= min_face * 0.8]
        return [
            Face(
                float(np.clip(b[0] / width, 0, 1)),
                float(np.clip(b[1] / height, 0, 1)),
                float(np.clip(b[2] / width, 0, 1)),
                float(np.clip(b[3] / height, 0, 1)),
                float(b[4]),
            )
            for b in boxes
        ]

    def _propose(self, image: Image.Image, min_face: float) -> np.ndarray:
        width, height = image.size
        scale = _CELL / min_face
        found: list[np.ndarray] = []
        while min(width, height) * scale >= _CELL:
            w, h = max(1, int(np.ceil(width * scale))), max(1, int(np.ceil(height * scale)))
            pixels = np.asarray(image.resize((w, h), Image.Resampling.BILINEAR))
            offsets, prob = self._run(0, _normalise(pixels[None]))
            face = prob[0, 1]
            ys, xs = np.nonzero(face > self.thresholds[0])
            if len(ys):
                # A cell of the last feature map sees a 12-pixel window, 2 pixels apart.
                x1 = (xs * 2 + 1) / scale
                y1 = (ys * 2 + 1) / scale
                x2 = (xs * 2 + _CELL) / scale
                y2 = (ys * 2 + _CELL) / scale
                cells = np.stack([x1, y1, x2, y2, face[ys, xs]], axis=1)
                cells = _refine(cells, offsets[0][:, ys, xs].T)
                found.append(cells[_nms(cells, 0.5)])
            scale *= _SCALE_STEP
        if not found:
            return np.empty((0, 5), dtype=np.float32)
        boxes = np.concatenate(found)
        return _square(boxes[_nms(boxes, 0.7)])

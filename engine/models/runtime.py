"""ONNX Runtime sessions and the one place where the execution provider is chosen.

``onnxruntime-gpu`` lists CUDA and TensorRT as available even on machines where they cannot
load; only a created session tells what really runs. So the choice is made here, the session
is asked afterwards, and a GPU that was wanted but not obtained becomes a visible warning.
"""

from __future__ import annotations

import base64
import ctypes.util
import functools
import logging
import os
import platform
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import onnxruntime as ort

from engine.errors import ModelError

log = logging.getLogger(__name__)

# ONNX Runtime prints CUDA loading errors (severity 3) to stderr on machines without CUDA; the
# outcome is reported through DeviceReport instead. PHOTOSEEK_ORT_LOG=0..4 shows its own log
# (0 = everything), for instance to see which CUDA library failed to load.
ort.set_default_logger_severity(int(os.environ.get("PHOTOSEEK_ORT_LOG", "4")))

Device = Literal["auto", "cpu", "gpu"]
DEVICES: tuple[str, ...] = ("auto", "cpu", "gpu")

_GPU_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
    "ROCMExecutionProvider",
)


@dataclass
class DeviceReport:
    """What was asked for, what was tried, and what actually runs."""

    requested: str
    tried: list[str]
    active: list[str] = field(default_factory=list)
    warning: str | None = None
    #: Why a GPU session could not be created, when ONNX Runtime said so with an error.
    failure: str | None = None

    @property
    def on_gpu(self) -> bool:
        return any(p in _GPU_PROVIDERS for p in self.active)

    def describe(self) -> str:
        where = ", ".join(p.removesuffix("ExecutionProvider") for p in self.active) or "not started"
        return f"{where}" + (f" (warning: {self.warning})" if self.warning else "")


def tensorrt_present(system: str | None = None) -> bool:
    """Whether the TensorRT runtime library can be found (``PHOTOSEEK_TENSORRT=1``/``0`` decides instead).

    onnxruntime-gpu lists the TensorRT provider whether or not TensorRT is installed, so the
    library itself is looked for; without it, trying the provider only produces load errors.
    """
    override = os.environ.get("PHOTOSEEK_TENSORRT")
    if override in ("0", "1"):
        return override == "1"
    if (system or platform.system()) == "Darwin":
        return False
    return any(ctypes.util.find_library(name) for name in ("nvinfer", "nvinfer_10"))


def gpu_providers_for_platform(
    available: list[str] | None = None, system: str | None = None, tensorrt: bool | None = None
) -> list[str]:
    """GPU providers worth trying on this platform, best first, among those ONNX Runtime lists:
    TensorRT (when its library is present) and CUDA on Linux and Windows, ROCm on Linux,
    DirectML on Windows, CoreML on macOS."""
    available = ort.get_available_providers() if available is None else available
    system = system or platform.system()
    if system == "Darwin":
        wanted = ["CoreMLExecutionProvider"]
    elif system == "Windows":
        wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "DmlExecutionProvider"]
    else:
        wanted = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "ROCMExecutionProvider"]
    if not (tensorrt_present(system) if tensorrt is None else tensorrt):
        wanted = [p for p in wanted if p != "TensorrtExecutionProvider"]
    return [p for p in wanted if p in available]


def provider_options(name: str) -> dict[str, str]:
    """Options Photoseek passes to a provider."""
    if name == "TensorrtExecutionProvider":
        # Building a TensorRT engine takes minutes: keep the built engines between runs.
        from engine import paths

        cache = paths.cache_dir() / "tensorrt"
        cache.mkdir(parents=True, exist_ok=True)
        return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache)}
    return {}


def gpu_hardware_present(system: str | None = None) -> bool | None:
    """Whether a GPU device is visible: True/False on Linux (NVIDIA or AMD driver nodes),
    None (unknown) elsewhere."""
    system = system or platform.system()
    if system != "Linux":
        return None
    return (
        Path("/proc/driver/nvidia/version").exists()
        or any(Path("/dev").glob("nvidia[0-9]*"))
        or Path("/dev/kfd").exists()
    )


def choose_providers(
    device: str = "auto",
    available: list[str] | None = None,
    system: str | None = None,
    hardware: bool | None = None,
    tensorrt: bool | None = None,
) -> list[str]:
    """The provider list to hand to ONNX Runtime for ``device`` (auto, cpu or gpu).

    ``auto`` skips GPU providers when the platform can tell that no GPU is present (ONNX Runtime
    would only fail to load them); ``gpu`` always tries them so that a failure is reported.
    ``available``, ``system``, ``hardware`` and ``tensorrt`` default to what this machine has.
    """
    if device not in DEVICES:
        raise ModelError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "auto":
        hardware = gpu_hardware_present(system) if hardware is None else hardware
        if hardware is False:
            return ["CPUExecutionProvider"]
    return [*gpu_providers_for_platform(available, system, tensorrt), "CPUExecutionProvider"]


#: The graph of :func:`int8_probe`, serialised (a test checks that the two agree): made once
#: here so that finding out about the CPU needs neither the onnx package nor its import time.
_INT8_PROBE = base64.b64decode(
    "CAgSCXBob3Rvc2VlazrMAgpJCgF4Cgd4X3NjYWxlCgZ4X3plcm8KAXcKB3dfc2NhbGUKBndfemVybwoHeV9zY2FsZQoGeV96ZXJvEgF5"
    "IgtRTGluZWFyQ29udhIKc2F0dXJhdGlvbioREAFCB3hfc2NhbGVKBAAAgD8qDRACQgZ4X3plcm9KAQAqTwgBCEAIAQgBEANCAXdKQH9/"
    "f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f38qEwgBEAFCB3dfc2NhbGVK"
    "BAAAgD8qDwgBEANCBndfemVyb0oBACoREAFCB3lfc2NhbGVKBM3sIUYqDRACQgZ5X3plcm9KAQBaGwoBeBIWChQIAhIQCgIIAQoCCEAK"
    "AggCCgIIAmIbCgF5EhYKFAgCEhAKAggBCgIIAQoCCAIKAggCQgQKABAR"
)
_PROBE_CHANNELS = 64


def int8_probe() -> bytes:
    """A one-layer 8-bit graph that shows whether the CPU's 8-bit kernels saturate: uint8
    activations of 255 times int8 weights of 127 over 64 channels sum to 2,072,640, which the
    output scale maps to 200. x86 CPUs without VNNI (AVX2, and AVX-512 before Cascade Lake)
    add such products in pairs into 16 bits that saturate at 32,767, and give 101. (Needs the
    onnx package; the app runs the bytes kept in ``_INT8_PROBE``.)"""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    constants = {
        "x_scale": np.array(1.0, np.float32),
        "x_zero": np.array(0, np.uint8),
        "w": np.full((1, _PROBE_CHANNELS, 1, 1), 127, np.int8),
        "w_scale": np.array([1.0], np.float32),
        "w_zero": np.array([0], np.int8),
        "y_scale": np.array(_PROBE_CHANNELS * 255 * 127 / 200, np.float32),
        "y_zero": np.array(0, np.uint8),
    }
    graph = helper.make_graph(
        [helper.make_node("QLinearConv", ["x", *constants], ["y"])],
        "saturation",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, _PROBE_CHANNELS, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 1, 2, 2])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in constants.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8, producer_name="photoseek"
    )
    return bytes(model.SerializeToString())


def probe_result(options: ort.SessionOptions | None = None) -> list[int]:
    """What the probe graph gives on this CPU (200 everywhere where the sum is exact)."""
    import numpy as np

    options = options or ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(_INT8_PROBE, sess_options=options, providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": np.full((1, _PROBE_CHANNELS, 2, 2), 255, np.uint8)})
    return [int(v) for v in np.asarray(y).ravel()]


@functools.cache
def int8_saturates() -> bool:
    """Whether this CPU's fast 8-bit kernels saturate (run once a process, ~10 ms)."""
    try:
        return any(v != 200 for v in probe_result())
    except Exception as exc:  # ORT raises its own exception types; the safe answer is yes
        log.warning("could not check this CPU's 8-bit kernels (%s); using the exact ones", exc)
        return True


def exact_int8(options: ort.SessionOptions) -> ort.SessionOptions:
    """Make the CPU run 8-bit graphs without saturating (and return ``options``).

    On x86 CPUs without VNNI (AVX2 and early AVX-512: AMD before Zen 4, Intel before Cascade
    Lake, many desktops and laptops in use) ONNX Runtime multiplies uint8 activations by int8
    weights with an instruction (VPMADDUBSW) whose 16-bit sums saturate; ``session.x64quantprecision``
    makes it use exact kernels there instead. Measured on an AMD EPYC (Zen 3, AVX2, no VNNI), the
    built-in model's 8-bit image graph against its float graph on the sample photos: least cosine
    0.959 without it, 0.994 with it, the float graph's top class kept on 62 % and 83 % of the
    photos, 5.0 and 6.5 ms per photo, the float graph 12.9 (docs/builtin-model.md).

    The setting is asked for only where :func:`int8_saturates` finds it is needed: on a CPU with
    VNNI, which sums into 32 bits, it gives the same vectors (bit for bit, on the sample photos)
    and is slower: 5.7 against 3.0 ms per photo on an Intel Xeon with AVX-512 VNNI, where the
    float graph takes 5.1."""
    if int8_saturates():
        options.add_session_config_entry("session.x64quantprecision", "1")
    return options


def default_threads() -> int:
    override = os.environ.get("PHOTOSEEK_THREADS")
    if override:
        return max(1, int(override))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


class SessionFactory:
    """Creates ONNX Runtime sessions for one device setting and records what they run on."""

    def __init__(self, device: str = "auto", threads: int | None = None) -> None:
        self.device = device
        self.threads = threads or default_threads()
        self.providers = choose_providers(device)
        self.report = DeviceReport(requested=device, tried=list(self.providers))
        if device == "gpu" and self.cpu_only:
            self.report.warning = "a GPU was requested but this ONNX Runtime has no GPU provider"
        elif device == "gpu" and gpu_hardware_present() is False:
            # Said before a session starts (`status` starts none), and again if one falls back.
            self.report.warning = "a GPU was requested but none was found on this computer; the CPU runs the models"
        self._lock = threading.Lock()
        log.info("execution providers to try for device=%s: %s; %d threads", device, self.providers, self.threads)

    @property
    def cpu_only(self) -> bool:
        """Whether sessions can only run on the CPU (no GPU provider to try)."""
        return self.providers == ["CPUExecutionProvider"]

    def create(self, path: Path, *, name: str = "") -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle inference threads must not spin-wait: the decode threads, the other sessions
        # (text, search, text reading) and the GUI share the same few cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        exact_int8(options)
        providers = [(p, provider_options(p)) for p in self.providers]
        try:
            session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # ORT raises its own exception types
            if self.cpu_only:
                raise ModelError(f"cannot load {path.name}: {exc}") from exc
            log.warning("session for %s failed on %s (%s); using the CPU", path.name, self.providers, exc)
            with self._lock:
                self.report.failure = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            try:
                session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
            except Exception as exc2:
                raise ModelError(f"cannot load {path.name}: {exc2}") from exc2
        active = session.get_providers()
        self._record(active, name or path.name)
        return session

    def _record(self, active: list[str], name: str) -> None:
        with self._lock:
            for provider in active:
                if provider not in self.report.active:
                    self.report.active.append(provider)
            wanted_gpu = [p for p in self.providers if p in _GPU_PROVIDERS]
            got_gpu = [p for p in active if p in _GPU_PROVIDERS]
            if wanted_gpu and not got_gpu:
                why = f" ({self.report.failure})" if self.report.failure else ""
                self.report.warning = (
                    f"a GPU was {'requested' if self.device == 'gpu' else 'found'} "
                    f"({', '.join(p.removesuffix('ExecutionProvider') for p in wanted_gpu)}) "
                    f"but could not be used{why}; running on the CPU"
                )
                if self.device == "gpu":
                    log.warning("%s: %s", name, self.report.warning)
                else:
                    log.info("%s: %s", name, self.report.warning)
            log.info("%s runs on %s", name, ", ".join(active))

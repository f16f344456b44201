"""The execution-provider choice, and the fall-back to the CPU when a GPU cannot be used."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from engine.cli import main
from engine.errors import ModelError
from engine.models import runtime
from engine.models.runtime import SessionFactory, choose_providers

ALL = [
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "ROCMExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
    "CPUExecutionProvider",
]
CPU = "CPUExecutionProvider"


@pytest.mark.parametrize(
    ("system", "tensorrt", "expected"),
    [
        ("Linux", False, ["CUDAExecutionProvider", "ROCMExecutionProvider", CPU]),
        ("Linux", True, ["TensorrtExecutionProvider", "CUDAExecutionProvider", "ROCMExecutionProvider", CPU]),
        ("Windows", False, ["CUDAExecutionProvider", "DmlExecutionProvider", CPU]),
        ("Windows", True, ["TensorrtExecutionProvider", "CUDAExecutionProvider", "DmlExecutionProvider", CPU]),
        ("Darwin", True, ["CoreMLExecutionProvider", CPU]),
    ],
)
def test_gpu_providers_per_platform_best_first(system, tensorrt, expected):
    assert choose_providers("gpu", available=ALL, system=system, tensorrt=tensorrt) == expected
    assert choose_providers("auto", available=ALL, system=system, hardware=True, tensorrt=tensorrt) == expected


def test_only_providers_onnx_runtime_lists_are_tried():
    assert choose_providers("gpu", available=["DmlExecutionProvider", CPU], system="Windows") == [
        "DmlExecutionProvider",
        CPU,
    ]
    assert choose_providers("gpu", available=[CPU], system="Linux") == [CPU]


def test_cpu_and_auto_without_a_gpu_use_the_cpu_only():
    assert choose_providers("cpu", available=ALL, system="Linux") == [CPU]
    assert choose_providers("auto", available=ALL, system="Linux", hardware=False) == [CPU]
    # Where the platform cannot tell whether a GPU is there (Windows, macOS), auto tries it.
    assert choose_providers("auto", available=ALL, system="Windows", tensorrt=False)[0] == "CUDAExecutionProvider"
    # Asking for the GPU still tries it, so that the failure is reported rather than hidden.
    assert "CUDAExecutionProvider" in choose_providers("gpu", available=ALL, system="Linux", hardware=False)


def test_unknown_device_is_an_error():
    with pytest.raises(ModelError, match="unknown device"):
        choose_providers("tpu")


def test_tensorrt_is_tried_only_when_present_or_asked(monkeypatch):
    monkeypatch.setenv("PHOTOSEEK_TENSORRT", "1")
    assert runtime.tensorrt_present("Linux")
    monkeypatch.setenv("PHOTOSEEK_TENSORRT", "0")
    assert not runtime.tensorrt_present("Linux")
    assert "TensorrtExecutionProvider" not in choose_providers("gpu", available=ALL, system="Linux")
    monkeypatch.delenv("PHOTOSEEK_TENSORRT")
    monkeypatch.setattr(runtime.ctypes.util, "find_library", lambda name: None)
    assert not runtime.tensorrt_present("Linux")
    monkeypatch.setattr(runtime.ctypes.util, "find_library", lambda name: f"lib{name}.so")
    assert runtime.tensorrt_present("Linux") and not runtime.tensorrt_present("Darwin")


def test_a_gpu_that_cannot_be_used_falls_back_to_the_cpu_with_a_warning(tiny_bundle):
    """On this machine (no GPU) asking for one must end on the CPU, visibly."""
    factory = SessionFactory("gpu")
    session = factory.create(tiny_bundle / "visual.onnx")
    assert session.get_providers() == [CPU]
    report = factory.report
    assert report.active == [CPU] and not report.on_gpu
    assert report.warning
    if "CUDAExecutionProvider" in ort.get_available_providers():  # onnxruntime-gpu: listed, not usable
        assert "CUDA" in report.tried[0] and "could not be used" in report.warning
    else:
        assert "no GPU provider" in report.warning


def test_a_gpu_session_that_fails_to_start_is_retried_on_the_cpu(tiny_bundle, monkeypatch):
    real = ort.InferenceSession

    def session(path, sess_options=None, providers=None):
        names = [p[0] if isinstance(p, tuple) else p for p in providers or []]
        if names != [CPU]:
            raise RuntimeError("CUDA failure 100: no CUDA-capable device is detected")
        return real(path, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(runtime.ort, "InferenceSession", session)
    monkeypatch.setattr(runtime, "choose_providers", lambda device: ["CUDAExecutionProvider", CPU])
    factory = SessionFactory("gpu")
    assert factory.create(tiny_bundle / "visual.onnx").get_providers() == [CPU]
    assert "no CUDA-capable device" in (factory.report.warning or "")


def test_status_and_doctor_show_the_provider_and_the_warning(tmp_path, tiny_bundle, rgb_folder, capsys):
    db = str(tmp_path / "lib.sqlite3")
    model = ["--model", str(tiny_bundle)]
    assert main(["index", str(rgb_folder), "--db", db, "--device", "gpu", *model]) == 0
    capsys.readouterr()
    assert main(["status", "--db", db, "--device", "gpu", *model]) == 0
    out = capsys.readouterr().out
    assert "device:   --device gpu: chosen" in out
    assert "last run: CPU" in out and "WARNING:  last run:" in out
    if runtime.gpu_hardware_present() is False:  # said before any session starts (it said nothing)
        assert "WARNING:  a GPU was requested but none was found on this computer" in out
    assert main(["doctor", "--db", db, "--device", "gpu", *model]) == 0
    out = capsys.readouterr().out
    assert "sessions run on: CPU" in out and "WARNING:" in out
    assert main(["doctor", "--db", db, "--device", "cpu", *model]) == 0
    out = capsys.readouterr().out
    assert "sessions run on: CPU" in out and "WARNING" not in out
    assert "image 3-d (visual.onnx)" in out  # the graph file the image session runs


# -- the 8-bit image graph for the CPU ----------------------------------------------------


@pytest.fixture
def bundle_with_cpu_graph(tmp_path, tiny_bundle):
    """The tiny bundle with a second image graph named as the CPU one (a copy, so that which
    one a session was made from is told by its file name)."""
    import json
    import shutil

    from engine.models.manifest import write_manifest

    folder = tmp_path / "tiny-cpu"
    shutil.copytree(tiny_bundle, folder)
    shutil.copyfile(folder / "visual.onnx", folder / "visual-cpu.onnx")
    data = json.loads((folder / "model.json").read_text())
    data["image"]["cpu_file"] = "visual-cpu.onnx"
    data["files"] = {name: {} for name in [*data["files"], "visual-cpu.onnx"]}
    write_manifest(folder, data)
    return folder


def _image_encoder(folder, factory):
    from engine.models.encoders import ImageEncoder
    from engine.models.manifest import load_manifest

    encoder = ImageEncoder(load_manifest(folder, verify=True), factory)
    encoder._session.get()
    return encoder.graph_file


def test_the_cpu_runs_the_cpu_graph(bundle_with_cpu_graph, tiny_bundle):
    assert _image_encoder(bundle_with_cpu_graph, SessionFactory("cpu")) == "visual-cpu.onnx"
    # A bundle without one runs its only graph.
    assert _image_encoder(tiny_bundle, SessionFactory("cpu")) == "visual.onnx"


def test_a_gpu_runs_the_float_graph_and_a_failed_gpu_the_cpu_graph(bundle_with_cpu_graph, monkeypatch):
    monkeypatch.setattr(runtime, "choose_providers", lambda device: ["CUDAExecutionProvider", CPU])
    made = []

    class OnGpu:
        def get_providers(self):
            return ["CUDAExecutionProvider", CPU]

    factory = SessionFactory("gpu")
    monkeypatch.setattr(factory, "create", lambda path, name="": made.append(path.name) or OnGpu())
    assert _image_encoder(bundle_with_cpu_graph, factory) == "visual.onnx" and made == ["visual.onnx"]

    # ONNX Runtime lists CUDA here but cannot use it: the session ends on the CPU, so the
    # CPU graph replaces it.
    assert _image_encoder(bundle_with_cpu_graph, SessionFactory("gpu")) == "visual-cpu.onnx"


def test_a_cpu_graph_must_be_listed_under_files(bundle_with_cpu_graph):
    import json

    from engine.models.manifest import load_manifest

    data = json.loads((bundle_with_cpu_graph / "model.json").read_text())
    del data["files"]["visual-cpu.onnx"]
    (bundle_with_cpu_graph / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"visual-cpu\.onnx is used but not listed"):
        load_manifest(bundle_with_cpu_graph)


def test_a_similar_output_must_be_an_extra_output_of_the_image_graph(tmp_path):
    import json

    from engine.models.manifest import load_manifest
    from tests.tiny_model import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path / "tiny")
    assert load_manifest(bundle).image.similar_output is None  # photos compared by their embeddings
    data = json.loads((bundle / "model.json").read_text())
    data["image"]["similar_output"] = "probs"
    (bundle / "model.json").write_text(json.dumps(data))
    assert load_manifest(bundle).image.similar_output == "probs"
    data["image"]["similar_output"] = "similar"
    (bundle / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match=r"image\.similar_output 'similar' is not an extra output"):
        load_manifest(bundle)


def test_8_bit_graphs_run_exactly_on_cpus_without_vnni(tmp_path):
    """uint8 activations times int8 weights, summed: 64 channels of 255 x 127 = 2,072,640, which
    the output scale maps to 200. x86 CPUs without VNNI (AVX2) add such products in pairs into
    16 bits that saturate at 32,767, giving 101, unless the session asks for exact kernels (on
    other CPUs both give 200). The built-in model's 8-bit graph lost 0.04 of cosine that way."""
    import numpy as np

    path = tmp_path / "conv-int8.onnx"
    path.write_bytes(runtime.int8_probe())
    session = SessionFactory("cpu").create(path)
    (y,) = session.run(None, {"x": np.full((1, 64, 2, 2), 255, np.uint8)})
    assert (y == 200).all(), y


def test_the_kept_probe_is_the_probe_graph():
    assert runtime.int8_probe() == runtime._INT8_PROBE


@pytest.mark.parametrize("saturates", [True, False])
def test_exact_kernels_are_asked_for_only_where_the_cpu_needs_them(monkeypatch, saturates):
    # On CPUs with VNNI the exact kernels give the same sums, slower (5.7 against 3.0 ms a photo).
    monkeypatch.setattr(runtime, "int8_saturates", lambda: saturates)
    options = runtime.exact_int8(ort.SessionOptions())
    if saturates:
        assert options.get_session_config_entry("session.x64quantprecision") == "1"
    else:
        with pytest.raises(RuntimeError):
            options.get_session_config_entry("session.x64quantprecision")


def test_the_probe_finds_what_the_fast_kernels_give():
    fast = runtime.probe_result()
    assert runtime.int8_saturates() == (fast != [200] * 4)
    # With the exact kernels every CPU sums exactly.
    options = ort.SessionOptions()
    options.add_session_config_entry("session.x64quantprecision", "1")
    assert runtime.probe_result(options) == [200] * 4

"""Build the Linux desktop package: one folder with ``photoseek-desktop`` and ``photoseek``.

    python packaging/build_linux.py [--model-python PYTHON] [--out dist]

Steps: build the built-in model bundle (needs torch, which only the builder needs), run PyInstaller
on ``packaging/photoseek.spec`` (one folder, one executable, torch and unused Qt pieces left out,
pillow-heif's x265 encoder replaced by a stand-in built with the C++ compiler), add
``photoseek-desktop`` as a link to ``photoseek``, strip the libraries (checking that each still
loads), add the desktop entry, the icons rendered from the SVG and the install scripts, check that
torch is not in the package, and write ``photoseek-VERSION-linux-ARCH.tar.gz`` with its ``.sha256``.

The interpreter running this script needs PyInstaller and Photoseek's runtime dependencies
(``pip install -e '.[gui]' pyinstaller``); ``--model-python`` needs the ``builtin`` extra.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from trim import X265_STANDIN_SYMBOLS, dynamic_symbols, elf_info

REPO = Path(__file__).resolve().parent.parent
PACKAGING = REPO / "packaging"
ICON_SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
APP = "photoseek"


def version() -> str:
    match = re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    if not match:
        raise SystemExit("no version in pyproject.toml")
    return match.group(1)


def run(cmd: list[str], **kwargs: object) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def build_model(model_python: str, work: Path) -> Path:
    """Build the built-in bundle with the repository's code into ``work/modeldata``."""
    data = work / "modeldata"
    shutil.rmtree(data, ignore_errors=True)
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        PHOTOSEEK_DATA_DIR=str(data),
        PHOTOSEEK_CACHE_DIR=str(work / "modelcache"),
        PHOTOSEEK_BUNDLED_MODELS=str(work / "no-bundled-models"),  # always a fresh build
        PHOTOSEEK_RESOURCES=str(REPO / "resources"),
    )
    run([model_python, "-m", "engine.cli", "models", "build"], cwd=REPO, env=env)
    bundle = data / "models" / "photoseek-builtin"
    if not (bundle / "model.json").is_file():
        raise SystemExit(f"the model build wrote no bundle at {bundle}")
    return bundle


def render_icons(svg: Path, target: Path) -> None:
    """PNG icons of every hicolor size, rendered from the SVG with Qt's SVG renderer."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg} is not a valid SVG")
    for size in ICON_SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter)
        painter.end()
        out = target / f"{size}x{size}" / "apps" / f"{APP}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(out)):
            raise SystemExit(f"could not write {out}")
    scalable = target / "scalable" / "apps" / f"{APP}.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(svg, scalable)


def strip_libraries(internal: Path) -> int:
    """Strip the symbols of every library that still has them; returns the bytes saved.

    Stripping some libraries that auditwheel patched makes them unloadable (numpy's OpenBLAS:
    "ELF load command address/offset not page-aligned"), so each library is checked with ``ldd``
    after stripping and put back as it was if it no longer loads."""
    strip, ldd = shutil.which("strip"), shutil.which("ldd")
    if not strip or not ldd:
        print("strip or ldd not found; the package keeps its symbols (about 50 MB more)")
        return 0
    env = dict(os.environ, LD_LIBRARY_PATH=str(internal))

    def loads(lib: Path) -> bool:
        return subprocess.run([ldd, str(lib)], env=env, capture_output=True).returncode == 0

    files = []
    for lib in sorted(internal.rglob("*.so*")):
        if lib.is_file() and not lib.is_symlink() and (info := elf_info(lib)) is not None and info.has_symtab:
            files.append(lib)
    print(f"+ strip --strip-unneeded ({len(files)} libraries with symbols, each checked with ldd)", flush=True)
    saved, kept = 0, []
    with tempfile.TemporaryDirectory() as tmp:
        backup = Path(tmp) / "original"
        for lib in files:
            if not loads(lib):  # cannot tell whether stripping breaks it: leave it alone
                kept.append(lib)
                continue
            shutil.copy2(lib, backup)
            before = lib.stat().st_size
            subprocess.run([strip, "--strip-unneeded", str(lib)], check=True)
            if loads(lib):
                saved += before - lib.stat().st_size
            else:
                shutil.copy2(backup, lib)
                kept.append(lib)
    if kept:
        print("  kept unstripped (would not load, or could not be checked):", ", ".join(p.name for p in kept))
    return saved


def torch_in_package(folder: Path) -> list[str]:
    """Every trace of torch in the folder: files, and modules in the executables' archives."""
    found = [
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.name in ("torch", "libtorch.so", "libtorch_cpu.so", "libc10.so") or p.name.startswith("torch-")
    ]
    from PyInstaller.archive.readers import CArchiveReader

    for exe in sorted({(folder / APP).resolve(), (folder / f"{APP}-desktop").resolve()}):
        archive = CArchiveReader(str(exe))
        for name in archive.toc:
            if name.endswith(".pyz") or name == "PYZ.pyz" or name.startswith("PYZ"):
                pyz = archive.open_embedded_archive(name)
                found += [f"{exe.name}:{m}" for m in pyz.toc if m == "torch" or m.startswith("torch.")]
    return found


def x265_in_package(internal: Path) -> str:
    """Which x265 the package has: "stand-in" (the spec's, which cannot encode), "real" or "none"."""
    kinds = set()
    for lib in internal.rglob("libx265*.so*"):
        if lib.is_file() and not lib.is_symlink():
            exported = (dynamic_symbols(lib) or (set(), set()))[0]
            kinds.add("stand-in" if all(X265_STANDIN_SYMBOLS.fullmatch(sym) for sym in exported) else "real")
    return "real" if "real" in kinds else "stand-in" if kinds else "none"


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-python", default=sys.executable, help="interpreter with the builtin extra (torch)")
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="where the folder and tarball go")
    parser.add_argument("--work", type=Path, default=REPO / "build" / "packaging", help="scratch folder")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        raise SystemExit("build_linux.py builds the Linux package; see packaging/README.md for the others")
    ver, arch = version(), platform.machine()
    work, out = args.work.resolve(), args.out.resolve()
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    began = time.perf_counter()

    start = time.perf_counter()
    bundle = build_model(args.model_python, work)
    timings["model_build_s"] = time.perf_counter() - start

    start = time.perf_counter()
    env = dict(os.environ, PHOTOSEEK_PACK_MODEL=str(bundle))
    dist = work / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    run(
        [sys.executable, "-m", "PyInstaller", str(PACKAGING / "photoseek.spec"), "--noconfirm", "--clean",
         "--log-level", "WARN", "--distpath", str(dist), "--workpath", str(work / "pyinstaller")],
        cwd=REPO, env=env,
    )  # fmt: skip
    timings["pyinstaller_s"] = time.perf_counter() - start

    folder = dist / APP
    # One executable; the GUI command is a link to it (entry.py picks by the name started as).
    (folder / f"{APP}-desktop").symlink_to(APP)
    start = time.perf_counter()
    timings["strip_saved_mb"] = strip_libraries(folder / "_internal") / 1e6
    timings["strip_s"] = time.perf_counter() - start
    share = folder / "share"
    render_icons(REPO / "resources" / "icons" / f"{APP}.svg", share / "icons" / "hicolor")
    (share / "applications").mkdir(parents=True, exist_ok=True)
    shutil.copy2(PACKAGING / "linux" / f"{APP}.desktop.in", share / "applications" / f"{APP}.desktop.in")
    for script in ("install.sh", "uninstall.sh"):
        shutil.copy2(PACKAGING / "linux" / script, folder / script)
        (folder / script).chmod(0o755)
    shutil.copy2(REPO / "resources" / "sample_photos" / "LICENSES.md", folder / "SAMPLE_PHOTOS_LICENSES.md")
    (folder / "VERSION").write_text(f"{ver}\n")

    x265 = x265_in_package(folder / "_internal")
    if x265 == "real":
        print("note: the package has the real x265 encoder (21 MB; see the spec's x265 line above for why)")

    leaked = torch_in_package(folder)
    if leaked:
        raise SystemExit(f"torch is in the package: {leaked[:10]}")

    # The tarball unpacks into photoseek-VERSION/; install.sh inside it installs per user.
    out.mkdir(parents=True, exist_ok=True)
    final = out / f"{APP}-{ver}"
    shutil.rmtree(final, ignore_errors=True)
    shutil.move(str(folder), final)
    tarball = out / f"{APP}-{ver}-linux-{arch}.tar.gz"
    start = time.perf_counter()
    with tarfile.open(tarball, "w:gz", compresslevel=6) as tar:
        tar.add(final, arcname=final.name)
    timings["tarball_s"] = time.perf_counter() - start
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    tarball.with_name(tarball.name + ".sha256").write_text(f"{digest}  {tarball.name}\n")

    info = {
        "version": ver,
        "folder": str(final),
        "folder_bytes": du(final),
        "tarball": str(tarball),
        "tarball_bytes": tarball.stat().st_size,
        "sha256": digest,
        "x265": x265,
        **{k: round(v, 1) for k, v in timings.items()},
        "total_s": round(time.perf_counter() - began, 1),
    }
    (work / "build-info.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Check the Linux package the way a user meets it, and measure it.

    python packaging/check_package.py [--build [--model-python PY]] [--tarball dist/photoseek-*.tar.gz]
                                      [--cold] [--results build/packaging/check.json]

Verifies the tarball's SHA-256, unpacks it into a temporary folder and, with a clean environment
(no Python on PATH that matters, no PYTHONPATH, isolated PHOTOSEEK_DATA_DIR, no network where
``unshare -rn`` is allowed):

* torch is not in the package (files and the executables' module archives);
* every library in it loads (``ldd``; what it needs from the system is listed);
* the Qt platform plugins xcb, offscreen (and wayland when PySide6 has it) are there;
* the packaged ``photoseek`` indexes the bundled sample photos and finds the right ones, using
  the prebuilt model (nothing is built into the user folder), and its text reading (OCR) finds
  the words in the one sample photo that has some;
* it reads a HEIC photo (one of the samples written as HEIC with this interpreter's pillow-heif);
* the packaged ``photoseek-desktop`` starts offscreen and paints its first window, and runs a few
  seconds while indexing: no traceback, no missing Qt plugin;
* ``install.sh`` / ``uninstall.sh`` work in a throwaway HOME and keep the user's data.

Prints sizes and start-up times and writes them to ``--results``. ``--cold`` drops the page
cache before the first start of each executable (needs root) to time a truly cold start.
Runs by hand (minutes): not part of pytest or CI.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "packaging"))
from build_linux import du, torch_in_package  # noqa: E402

BAD_OUTPUT = (
    "Traceback",
    "ModuleNotFoundError",
    "ImportError",
    "Could not load the Qt platform plugin",
    "could not find or load the Qt platform plugin",
    "qt.qpa.plugin: Could not",
)
failures: list[str] = []


def check(ok: bool, what: str, detail: str = "") -> bool:
    print(f"{'PASS' if ok else 'FAIL'}  {what}" + (f"  ({detail})" if detail else ""), flush=True)
    if not ok:
        failures.append(what)
    return ok


def bad_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(b in line for b in BAD_OUTPUT)]


class Sandbox:
    """A clean environment for the packaged executables: own HOME and data folders, no network."""

    def __init__(self, base: Path, app: Path) -> None:
        self.base, self.app = base, app
        self.no_net = subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0

    def env(self, name: str, **extra: str) -> dict[str, str]:
        home = self.base / name
        home.mkdir(parents=True, exist_ok=True)
        env = {
            "HOME": str(home),
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PHOTOSEEK_DATA_DIR": str(home / "data"),
            "PHOTOSEEK_CACHE_DIR": str(home / "cache"),
            "HF_HUB_OFFLINE": "1",
        }
        env.update(extra)
        return env

    def cmd(self, args: list[str]) -> list[str]:
        return (["unshare", "-rn"] if self.no_net else []) + args

    def run(self, exe: str, args: list[str], env: dict[str, str], timeout: float = 300) -> tuple[float, str, str, int]:
        start = time.perf_counter()
        proc = subprocess.run(
            self.cmd([str(self.app / exe), *args]), env=env, capture_output=True, text=True, timeout=timeout
        )
        return time.perf_counter() - start, proc.stdout, proc.stderr, proc.returncode


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def gui_first_paint(box: Sandbox, name: str, x11: bool = False) -> tuple[float | None, str]:
    """Seconds from starting photoseek-desktop (fresh user folder) to its first paint: offscreen,
    or with ``x11`` in a real X11 window on a virtual display (xvfb-run, included in the time)."""
    if x11:
        env = box.env(name, PHOTOSEEK_QUIT_AFTER_FIRST_PAINT="1")
        command = ["xvfb-run", "-a", str(box.app / "photoseek-desktop")]
    else:
        env = box.env(name, QT_QPA_PLATFORM="offscreen", PHOTOSEEK_QUIT_AFTER_FIRST_PAINT="1")
        command = [str(box.app / "photoseek-desktop")]
    start = time.perf_counter()
    proc = subprocess.Popen(box.cmd(command), env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen: float | None = None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "first paint" in line and seen is None:
            seen = time.perf_counter() - start
    proc.wait(timeout=60)
    return seen, "".join(lines)


def _write_heic(image: Any, path: Path) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    image.save(path, quality=80)


def _write_avif(image: Any, path: Path) -> None:
    image.save(path, "AVIF", quality=80)


def photo_format(box: Sandbox, folder: Path, samples: Path, kind: str) -> None:
    """The packaged ``photoseek`` reads a HEIC photo (libheif with libde265; the package's x265 is
    a stand-in that cannot encode) and an AVIF one (Pillow's libavif; OpenCV's libavif in the
    package is a stand-in): the coffee-cup sample written in that format here, beside a JPEG of
    something else, is indexed and found for "a cup of coffee"."""
    name = f"coffee-cup.{kind.lower()}"
    try:
        from PIL import Image

        folder.mkdir(parents=True)
        with Image.open(samples / "coffee-cup-on-saucer.jpg") as image:
            {"HEIC": _write_heic, "AVIF": _write_avif}[kind](image, folder / name)
    except Exception as exc:  # no pillow-heif, or no encoder for it here: nothing to test with
        print(f"info  no {kind} photo tried (could not write one here: {exc})")
        return
    shutil.copy2(samples / "red-motorcycle-in-garage.jpg", folder)
    env = box.env(f"cli-{kind.lower()}")
    _secs, _out, err, rc = box.run("photoseek", ["index", "--no-text", str(folder)], env)
    states = []
    library = Path(env["PHOTOSEEK_DATA_DIR"]) / "library.sqlite3"
    if library.is_file():
        with contextlib.closing(sqlite3.connect(library)) as conn:
            states = conn.execute("SELECT state, error FROM photos WHERE rel_path = ?", (name,)).fetchall()
    detail = str(states) if rc == 0 else err[-300:]
    check(rc == 0 and states == [("indexed", None)], f"packaged photoseek reads a photo in {kind}", detail)
    _secs, out, _err, rc = box.run("photoseek", ["search", "a cup of coffee", "--json", "--limit", "1"], env)
    hits = [Path(json.loads(line)["path"]).name for line in out.splitlines() if line.startswith("{")]
    check(rc == 0 and hits == [name], f"search 'a cup of coffee' finds the photo in {kind}", ", ".join(hits))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", action="store_true", help="run packaging/build_linux.py first")
    parser.add_argument("--model-python", default=sys.executable, help="passed to build_linux.py")
    parser.add_argument("--tarball", type=Path, help="default: the newest dist/photoseek-*-linux-*.tar.gz")
    parser.add_argument("--cold", action="store_true", help="drop the page cache before first starts (root)")
    parser.add_argument("--seconds", type=float, default=8.0, help="how long the GUI runs while indexing")
    parser.add_argument("--results", type=Path, default=REPO / "build" / "packaging" / "check.json")
    args = parser.parse_args(argv)

    if args.build:
        build = [sys.executable, str(REPO / "packaging" / "build_linux.py"), "--model-python", args.model_python]
        subprocess.run(build, check=True)
    tarball = args.tarball or max((REPO / "dist").glob("photoseek-*-linux-*.tar.gz"), key=os.path.getmtime)
    results: dict[str, object] = {"tarball": str(tarball), "tarball_bytes": tarball.stat().st_size}

    recorded = tarball.with_name(tarball.name + ".sha256").read_text().split()[0]
    check(hashlib.sha256(tarball.read_bytes()).hexdigest() == recorded, "tarball matches its .sha256")

    with tempfile.TemporaryDirectory(prefix="photoseek-check-") as tmp:
        base = Path(tmp)
        with tarfile.open(tarball) as tar:
            tar.extractall(base / "unpacked", filter="data")
        (app,) = (base / "unpacked").iterdir()
        results["folder_bytes"] = du(app)
        internal = app / "_internal"

        leaked = torch_in_package(app)
        check(not leaked, "torch is not in the package", ", ".join(leaked[:5]))
        check(not list(app.rglob("*torch*")), "no file named *torch* in the package")
        plugins = internal / "PySide6" / "Qt" / "plugins" / "platforms"
        for plugin in ("libqxcb.so", "libqoffscreen.so"):
            check((plugins / plugin).is_file(), f"Qt platform plugin {plugin}")
        import PySide6

        source_plugins = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms"
        if (source_plugins / "libqwayland.so").exists() or list(source_plugins.glob("libqwayland*")):
            check(bool(list(plugins.glob("libqwayland*"))), "Qt platform plugin wayland")
        missing = subprocess.run(["ldd", str(plugins / "libqxcb.so")], capture_output=True, text=True).stdout
        results["xcb_needs_from_system"] = sorted(
            {line.split()[0] for line in missing.splitlines() if "not found" in line}
        )
        # Every library in the folder still loads after the build dropped and stripped things
        # (what ldd cannot find is looked for on the user's system: listed, not a failure).
        broken, from_system = [], set()
        for lib in sorted(internal.rglob("*.so*")):
            if lib.is_file() and not lib.is_symlink():
                proc = subprocess.run(
                    ["ldd", str(lib)], env={"LD_LIBRARY_PATH": str(internal)}, capture_output=True, text=True
                )
                if proc.returncode:
                    broken.append(f"{lib.relative_to(internal)}: {(proc.stderr or proc.stdout).strip()[-200:]}")
                from_system |= {line.split()[0] for line in proc.stdout.splitlines() if "not found" in line}
        check(not broken, "every library in the package loads (ldd)", "; ".join(broken[:3]))
        results["libraries_needed_from_system"] = sorted(from_system)
        check((internal / "resources" / "models" / "photoseek-builtin" / "model.json").is_file(), "prebuilt model")
        icons = app / "share" / "icons" / "hicolor"
        sizes = [size for size in (16, 22, 24, 32, 48, 64, 128, 256, 512)
                 if (icons / f"{size}x{size}" / "apps" / "photoseek.png").is_file()]  # fmt: skip
        check(len(sizes) == 9 and (icons / "scalable" / "apps" / "photoseek.svg").is_file(), "icons 16-512 + SVG")
        samples = internal / "resources" / "sample_photos"
        check(len(list(samples.glob("*.jpg"))) > 10, "sample photos")

        box = Sandbox(base / "homes", app)
        results["network_cut"] = box.no_net
        print(f"info  network {'cut with unshare -rn' if box.no_net else 'NOT cut (unshare not allowed)'}")

        # Command line: cold start, index the samples, search them.
        results["cold_cache_dropped"] = bool(args.cold and drop_caches())
        starts = []
        for _ in range(4):
            secs, out, err, rc = box.run("photoseek", ["--version"], box.env("cli-version"))
            check(rc == 0 and out.startswith("photoseek "), "packaged photoseek --version", out.strip())
            starts.append(secs)
        results["cli_start_first_s"] = round(starts[0], 3)
        results["cli_start_warm_median_s"] = round(statistics.median(starts[1:]), 3)

        env = box.env("cli")
        secs, out, err, rc = box.run("photoseek", ["index", str(samples)], env)
        check(rc == 0 and not bad_lines(err), "packaged photoseek indexes the sample photos", f"{secs:.1f} s")
        results["cli_index_samples_s"] = round(secs, 1)
        if rc:
            print(err[-3000:])
        # Text reading (RapidOCR on OpenCV) ran in the package: one sample photo has words on it.
        library = Path(env["PHOTOSEEK_DATA_DIR"]) / "library.sqlite3"
        texts = []
        if library.is_file():
            with contextlib.closing(sqlite3.connect(library)) as conn:
                texts = [row[0] for row in conn.execute("SELECT text FROM photo_text WHERE text != ''")]
        check(bool(texts), "text reading (OCR) finds words in the sample photos", "; ".join(texts)[:80])
        # The face detector (its weights and OpenCV) ran in the package: three sample portraits.
        faces = 0
        if library.is_file():
            with contextlib.closing(sqlite3.connect(library)) as conn:
                faces = sum(n for (n,) in conn.execute("SELECT faces FROM photo_faces"))
        check(faces >= 3, "the face detector finds the faces in the sample portraits", f"{faces} faces")
        for query, expected in (
            ("a motorcycle", "red-motorcycle-in-garage"),
            ("a cup of coffee", "coffee-cup"),
            ("a person", "astronaut-eileen-collins"),
        ):
            secs, out, err, rc = box.run("photoseek", ["search", query, "--json", "--limit", "3"], env)
            hits = [json.loads(line)["path"] for line in out.splitlines() if line.startswith("{")]
            check(
                rc == 0 and any(expected in Path(h).name for h in hits),
                f"search {query!r} finds {expected}",
                ", ".join(Path(h).name for h in hits),
            )
        for kind in ("HEIC", "AVIF"):
            photo_format(box, base / f"{kind.lower()}-photos", samples, kind)
        secs, out, err, rc = box.run("photoseek", ["models", "list"], env)
        check(rc == 0 and "photoseek-builtin" in out, "models list shows the built-in model")
        user_models = Path(env["PHOTOSEEK_DATA_DIR"]) / "models"
        check(not (user_models / "photoseek-builtin").exists(), "the shipped model was used, nothing was built")

        # Desktop app: first paint (cold, then warm), then a few seconds of indexing.
        if args.cold:
            drop_caches()
        paints = []
        for i in range(4):
            seen, err = gui_first_paint(box, f"gui-paint-{i}")
            check(seen is not None and not bad_lines(err), "packaged photoseek-desktop paints its window", str(seen))
            if bad_lines(err):
                print("\n".join(bad_lines(err)[:10]))
            paints.append(seen or float("nan"))
        results["gui_first_paint_first_s"] = round(paints[0], 3)
        results["gui_first_paint_warm_median_s"] = round(statistics.median(paints[1:]), 3)

        if shutil.which("xvfb-run") and not results["xcb_needs_from_system"]:
            seen, err = gui_first_paint(box, "gui-x11", x11=True)
            check(seen is not None and not bad_lines(err), "packaged photoseek-desktop opens an X11 window (Xvfb)")
            results["gui_first_paint_x11_xvfb_s"] = round(seen, 3) if seen else None
        else:
            print("info  no X11 window tried (needs xvfb-run and the xcb libraries listed above)")

        env = box.env("gui-run", QT_QPA_PLATFORM="offscreen")
        proc = subprocess.Popen(
            box.cmd([str(app / "photoseek-desktop")]),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(args.seconds)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        check(alive, f"packaged photoseek-desktop runs {args.seconds:.0f} s offscreen")
        check(not bad_lines(err + out), "no traceback or missing plugin in its output", "; ".join(bad_lines(err)[:3]))
        library = Path(env["PHOTOSEEK_DATA_DIR"]) / "library.sqlite3"
        check(library.is_file(), "it created its library in the user data folder, outside the app folder")

        # Per-user install and uninstall in a throwaway HOME.
        home = base / "install-home"
        (home / ".local" / "share" / "photoseek").mkdir(parents=True)
        keep = home / ".local" / "share" / "photoseek" / "library.sqlite3"
        keep.write_text("user data")
        ienv = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
        proc = subprocess.run([str(app / "install.sh")], env=ienv, capture_output=True, text=True)
        installed = home / ".local" / "lib" / "photoseek"
        link = home / ".local" / "bin" / "photoseek"
        desktop = home / ".local" / "share" / "applications" / "photoseek.desktop"
        icon = home / ".local" / "share" / "icons" / "hicolor" / "256x256" / "apps" / "photoseek.png"
        check(proc.returncode == 0 and link.is_symlink() and desktop.is_file() and icon.is_file(), "install.sh")
        entry = desktop.read_text() if desktop.is_file() else ""
        check(f'Exec="{installed}/photoseek-desktop"' in entry and "Icon=photoseek" in entry,
              "desktop entry points at the installed app")  # fmt: skip
        validator = shutil.which("desktop-file-validate")
        if validator and desktop.is_file():
            proc = subprocess.run([validator, str(desktop)], capture_output=True, text=True)
            check(proc.returncode == 0, "desktop-file-validate", proc.stdout.strip())
        out = subprocess.run([str(link), "--version"], env=ienv, capture_output=True, text=True).stdout
        check(out.startswith("photoseek "), "the ~/.local/bin/photoseek link runs", out.strip())
        proc = subprocess.run([str(installed / "uninstall.sh")], env=ienv, capture_output=True, text=True)
        check(
            proc.returncode == 0 and not installed.exists() and not link.exists() and not desktop.exists(),
            "uninstall.sh removes the app, links and menu entry",
        )
        check(keep.read_text() == "user data", "uninstall.sh keeps the user's library")

    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print("FAILED: " + "; ".join(failures) if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

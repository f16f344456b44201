"""packaging/trim.py: the ELF reading and the pruning the package build relies on."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "packaging"))
import trim  # noqa: E402


def _some_extension_module() -> Path:
    import _ctypes

    return Path(_ctypes.__file__)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF is the Linux format")
def test_elf_info_agrees_with_readelf():
    readelf = shutil.which("readelf")
    if not readelf:
        pytest.skip("readelf is not installed")
    for path in (_some_extension_module(), Path(sys.executable).resolve()):
        out = subprocess.run([readelf, "-dS", "-W", str(path)], capture_output=True, text=True, check=True).stdout
        info = trim.elf_info(path)
        assert info is not None
        assert info.needed == re.findall(r"\(NEEDED\).*\[(.*)\]", out)
        assert info.has_symtab == bool(re.search(r"\]\s+\.symtab\s", out))


def test_elf_info_of_other_files(tmp_path: Path):
    text = tmp_path / "notes.txt"
    text.write_text("not a library")
    assert trim.elf_info(text) is None
    odd = tmp_path / "odd.so"
    odd.write_bytes(b"\x7fELF\x01\x01\x01" + bytes(57))  # 32-bit ELF: not something it reads
    with pytest.raises(ValueError):
        trim.elf_info(odd)


def _fake_needs(monkeypatch: pytest.MonkeyPatch, needs: dict[str, list[str]]) -> None:
    monkeypatch.setattr(trim, "elf_info", lambda src: trim.ElfInfo(needs.get(src, []), False))


def test_prune_drops_the_patterns_and_what_only_they_need(monkeypatch: pytest.MonkeyPatch):
    _fake_needs(
        monkeypatch,
        {
            "src/plugin_net.so": ["libNet.so.6"],
            "src/libNet.so.6": ["libkrb5.so.3"],
            "src/gui.so": ["libGui.so.6", "libshared.so.1"],
            "src/plugin_old.so": ["libshared.so.1"],
        },
    )
    binaries = [
        ("Qt/plugins/tls/plugin_net.so", "src/plugin_net.so", "BINARY"),
        ("Qt/plugins/platforms/plugin_old.so", "src/plugin_old.so", "BINARY"),
        ("Qt/lib/libNet.so.6", "src/libNet.so.6", "BINARY"),
        ("libkrb5.so.3", "src/libkrb5.so.3", "BINARY"),
        ("libshared.so.1", "src/libshared.so.1", "BINARY"),
        ("Qt/lib/libGui.so.6", "src/libGui.so.6", "BINARY"),
        ("gui.so", "src/gui.so", "EXTENSION"),
        ("libNet.so.6", "Qt/lib/libNet.so.6", "SYMLINK"),
        ("libGui.so.6", "Qt/lib/libGui.so.6", "SYMLINK"),
    ]
    datas = [("Qt/translations/qt_de.qm", "src/qt_de.qm", "DATA"), ("resources/x.json", "src/x.json", "DATA")]
    kept_binaries, kept_datas, gone = trim.prune_toc(
        binaries,
        datas,
        ["Qt/plugins/tls/*", "Qt/plugins/platforms/plugin_old.so", "Qt/translations/*"],
        ["libNet.so.*", "libkrb5.so.*", "libshared.so.*"],
    )
    assert [dest for dest, _, _ in kept_binaries] == [
        "libshared.so.1",  # still needed by gui.so
        "Qt/lib/libGui.so.6",
        "gui.so",
        "libGui.so.6",
    ]
    assert kept_datas == [("resources/x.json", "src/x.json", "DATA")]
    assert "libkrb5.so.3" in gone and "libNet.so.6" in gone  # the chain, and the link to what went


def test_prune_keeps_every_candidate_when_a_library_cannot_be_read(monkeypatch: pytest.MonkeyPatch):
    def unreadable(src: str) -> trim.ElfInfo:
        raise ValueError(f"{src}: no readable section headers")

    monkeypatch.setattr(trim, "elf_info", unreadable)
    binaries = [("plugin.so", "src/plugin.so", "BINARY"), ("libonly.so.1", "src/libonly.so.1", "BINARY")]
    kept, _datas, gone = trim.prune_toc(binaries, [], ["plugin.so"], ["libonly.so.*"])
    assert kept == [("libonly.so.1", "src/libonly.so.1", "BINARY")]
    assert gone == ["plugin.so"]


def _nm_dynamic(path: Path) -> tuple[set[str], set[str]]:
    """(defined, undefined) as ``nm -D`` lists them, without versions; a name with a hidden version
    (``name@VERSION``, not ``name@@VERSION``) is not exported."""
    out = subprocess.run(["nm", "-D", str(path)], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        fields = line.split()
        name = fields[-1]
        if len(fields) == 2:  # no address: undefined (U, or w for weak)
            undefined.add(name.split("@")[0])
        elif "@" not in name or "@@" in name:
            defined.add(name.split("@")[0])
    return defined, undefined


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF is the Linux format")
def test_dynamic_symbols_agree_with_nm():
    if not shutil.which("nm"):
        pytest.skip("nm is not installed")
    import ctypes.util

    libraries = [_some_extension_module(), Path(sys.executable).resolve()]
    for name in ("stdc++", "m"):
        found = ctypes.util.find_library(name)
        if found:
            candidates = [Path(p) / found for p in ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64")]
            libraries += [p for p in candidates if p.is_file()][:1]
    for path in libraries:
        assert trim.dynamic_symbols(path) == _nm_dynamic(path), path


def _cc(tmp_path: Path, name: str, source: str, *link: str) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler or not shutil.which("c++"):
        pytest.skip("no C and C++ compilers")
    (tmp_path / f"{name}.c").write_text(source)
    out = tmp_path / name
    subprocess.run(
        [compiler, "-shared", "-fPIC", f"-Wl,-soname,{name}", "-o", str(out), str(tmp_path / f"{name}.c"),
         f"-L{tmp_path}", "-Wl,-rpath,$ORIGIN", *link],
        check=True,
    )  # fmt: skip
    return out


def _fake_x265(tmp_path: Path) -> Path:
    return _cc(
        tmp_path,
        "libx265-fake.so.217",
        "const void *x265_api_get_217(int d) { static int api; return &api; }\n"
        "void x265_cleanup(void) {}\n"
        "void *x265_encoder_open_217(void *p) { return p; }\n",
    )


def _fake_libheif(tmp_path: Path, source: str) -> Path:
    """A stand-in for libheif, linked to the fake x265 and using what ``source`` uses of it."""
    return _cc(tmp_path, "libheif-fake.so.1", source, "-l:libx265-fake.so.217")


def _can_encode(heif: Path) -> str:
    """Load the fake libheif in a fresh process (one process keeps the first library of a name it
    loads), binding every symbol at once as Python does, and ask it whether it has an encoder."""
    code = "import ctypes, os, sys; print(ctypes.CDLL(sys.argv[1], mode=os.RTLD_NOW).can_encode())"
    return subprocess.run(
        [sys.executable, "-c", code, str(heif)], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF is the Linux format")
def test_stub_x265_replaces_x265_when_only_its_api_entry_point_is_used(tmp_path: Path):
    x265 = _fake_x265(tmp_path)
    heif = _fake_libheif(
        tmp_path,
        "const void *x265_api_get_217(int);\nvoid x265_cleanup(void);\n"
        "int can_encode(void) { return x265_api_get_217(8) != 0; }\nvoid unload(void) { x265_cleanup(); }\n",
    )
    assert _can_encode(heif) == "1"
    binaries = [
        ("fake.libs/libx265-fake.so.217", str(x265), "BINARY"),
        ("fake.libs/libheif-fake.so.1", str(heif), "BINARY"),
        ("libx265-fake.so.217", "fake.libs/libx265-fake.so.217", "SYMLINK"),
    ]
    toc, note = trim.stub_x265(binaries, tmp_path / "work")
    standin = tmp_path / "work" / "libx265-fake.so.217"
    assert "replaced" in note, note
    assert toc == [(binaries[0][0], str(standin), "BINARY"), binaries[1], binaries[2]]
    exported = trim.dynamic_symbols(standin)[0]
    assert {"x265_api_get_217", "x265_cleanup"} <= exported and "x265_encoder_open_217" not in exported
    assert trim.elf_info(standin).needed[:1] == ["libstdc++.so.6"]
    # The fake libheif, put beside the stand-in, loads and is told there is no encoder.
    packaged = tmp_path / "packaged"
    packaged.mkdir()
    shutil.copy2(standin, packaged / standin.name)
    shutil.copy2(heif, packaged / heif.name)
    assert _can_encode(packaged / heif.name) == "0"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF is the Linux format")
def test_stub_x265_keeps_x265_when_more_of_it_is_used(tmp_path: Path):
    x265 = _fake_x265(tmp_path)
    heif = _fake_libheif(
        tmp_path, "void *x265_encoder_open_217(void *);\nvoid *encode(void *p) { return x265_encoder_open_217(p); }\n"
    )
    binaries = [("libx265-fake.so.217", str(x265), "BINARY"), ("libheif-fake.so.1", str(heif), "BINARY")]
    toc, note = trim.stub_x265(binaries, tmp_path / "work")
    assert toc == binaries
    assert note == "x265 kept: libx265-fake.so.217 is used for x265_encoder_open_217"
    unused = [("libx265-fake.so.217", str(x265), "BINARY")]
    assert trim.stub_x265(unused, tmp_path / "work") == (unused, "x265 kept: nothing links to libx265-fake.so.217")
    assert trim.stub_x265(binaries[1:], tmp_path / "work") == (binaries[1:], "no x265 in the package")


def _fake_video(tmp_path: Path) -> list[tuple[str, str, str]]:
    """A TOC like OpenCV's: a user linked to a video library (one symbol version, a data symbol),
    which links to a codec only it uses; both link to a library the user needs itself."""
    _cc(tmp_path, "libshared.so.1", "int shared(void) { return 7; }\n")
    _cc(tmp_path, "libcodec.so.3", "int codec(void) { return 3; }\n")
    (tmp_path / "vid.map").write_text("VID_62 { global: vid_open; vid_close; vid_flags; local: *; };\n")
    _cc(
        tmp_path,
        "libvid.so.62",
        "int codec(void); int shared(void);\nint vid_flags = 1;\n"
        "int vid_open(void) { return codec() + shared(); }\nvoid vid_close(void) {}\n",
        f"-Wl,--version-script={tmp_path / 'vid.map'}",
        "-l:libcodec.so.3",
        "-l:libshared.so.1",
    )
    _cc(
        tmp_path,
        "user.so",
        "int vid_open(void); int shared(void);\n"
        "int add(void) { return shared(); }\nint play(void) { return vid_open(); }\n",
        "-l:libvid.so.62",
        "-l:libshared.so.1",
    )
    return [
        (f"libs/{name}", str(tmp_path / name), "BINARY")
        for name in ("user.so", "libvid.so.62", "libcodec.so.3", "libshared.so.1")
    ]


def _call(library: Path, function: str) -> subprocess.CompletedProcess[str]:
    code = "import ctypes, os, sys; print(getattr(ctypes.CDLL(sys.argv[1], mode=os.RTLD_NOW), sys.argv[2])())"
    return subprocess.run([sys.executable, "-c", code, str(library), function], capture_output=True, text=True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF is the Linux format")
def test_stand_in_replaces_a_library_used_for_functions_and_leaves_out_what_only_it_needs(tmp_path: Path):
    binaries = _fake_video(tmp_path)
    assert _call(tmp_path / "user.so", "play").stdout.strip() == "10"
    toc, note = trim.stand_in(binaries, tmp_path / "work", ["libs/libvid*.so*"])
    standin = tmp_path / "work" / "libvid.so.62"
    assert note.startswith("stand-ins for libvid.so.62; left out: libcodec.so.3; "), note
    assert toc == [binaries[0], ("libs/libvid.so.62", str(standin), "BINARY"), binaries[3]]
    exported = trim.exports(standin)
    assert exported["vid_open"] == trim.Export(True, "VID_62") and "vid_close" not in exported
    assert "libcodec.so.3" not in trim.elf_info(standin).needed
    packaged = tmp_path / "packaged"
    packaged.mkdir()
    for _dest, src, _kind in toc:
        shutil.copy2(src, packaged / Path(src).name)
    # The user loads beside the stand-in, binding every symbol at once (its version too), and
    # works as long as it does not call the library; a call stops it with a message.
    assert _call(packaged / "user.so", "add").stdout.strip() == "7"
    stopped = _call(packaged / "user.so", "play")
    assert stopped.returncode != 0 and "vid_open of libvid.so.62 was left out of this package" in stopped.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF is the Linux format")
def test_stand_in_keeps_everything_when_a_library_is_used_for_data_or_for_what_it_links_to(tmp_path: Path):
    binaries = _fake_video(tmp_path)
    _cc(tmp_path, "reader.so", "extern int vid_flags;\nint flags(void) { return vid_flags; }\n", "-l:libvid.so.62")
    binaries.append(("libs/reader.so", str(tmp_path / "reader.so"), "BINARY"))
    assert trim.stand_in(binaries, tmp_path / "work", ["libs/libvid*.so*"]) == (
        binaries,
        "kept: libvid.so.62 is used for data (vid_flags)",
    )
    # A user that takes a symbol from what the library links to (loaded only through it) would
    # not load beside the stand-in without it.
    source = "int codec(void);\nint encode(void) { return codec(); }\n"
    _cc(tmp_path, "coder.so", source, "-Wl,--no-as-needed", "-l:libvid.so.62")
    coder = [*binaries[:3], ("libs/coder.so", str(tmp_path / "coder.so"), "BINARY")]
    assert _call(tmp_path / "coder.so", "encode").stdout.strip() == "3"
    assert trim.stand_in(coder, tmp_path / "work", ["libs/libvid*.so*"]) == (
        coder,
        "kept: coder.so takes codec from a library left out",
    )
    # Patterns name destinations: the same library in another folder is never touched.
    assert trim.stand_in(binaries, tmp_path / "work", ["other.libs/libvid*"]) == (binaries, "nothing to stand in for")

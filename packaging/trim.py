"""Trimming the package: read ELF headers, and drop what PyInstaller collected that is never loaded.

Used by ``photoseek.spec`` (dropping from the analysis, putting a stand-in in place of x265) and
``build_linux.py`` (stripping). Reads only what it needs of 64-bit little-endian ELF files (x86_64,
aarch64): the DT_NEEDED names, whether a symbol table is still there, and the names in the dynamic
symbol table. No dependency beyond the standard library (building the x265 stand-in needs a C++
compiler).
"""

from __future__ import annotations

import fnmatch
import mmap
import os
import re
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple, TypeVar

SHT_SYMTAB, SHT_DYNAMIC, SHT_DYNSYM, SHT_GNU_VERSYM, SHT_GNU_VERDEF, DT_NEEDED = 2, 6, 11, 0x6FFFFFFF, 0x6FFFFFFD, 1
STB_LOCAL, SHN_UNDEF, VERSYM_HIDDEN, STT_FUNC, STT_GNU_IFUNC, VER_FLG_BASE = 0, 0, 0x8000, 2, 10, 1
T = TypeVar("T")
Sections = list[tuple[int, int, int, int]]  # (type, offset, size, link) of each section header


class ElfInfo(NamedTuple):
    needed: list[str]  # DT_NEEDED names, in order
    has_symtab: bool  # not stripped: a .symtab section is still there


def _sections(path: str | os.PathLike[str], m: mmap.mmap, size: int) -> Sections:
    """(type, offset, size, link) of every section header; ValueError when there are none to read."""
    (shoff,) = struct.unpack_from("<Q", m, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", m, 0x3A)
    if not shoff or shnum == 0 or shentsize < 64 or shoff + shnum * shentsize > size:
        raise ValueError(f"{path}: no readable section headers")
    sections = []
    for i in range(shnum):
        fields = struct.unpack_from("<IIQQQQIIQQ", m, shoff + i * shentsize)
        sections.append((fields[1], fields[4], fields[5], fields[6]))
    return sections


def _cstring(m: mmap.mmap, at: int) -> str:
    return m[at : m.find(b"\0", at)].decode("utf-8", "replace")


def _read_elf(path: str | os.PathLike[str], read: Callable[[mmap.mmap, int, Sections], T]) -> T | None:
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            return None
        if len(head) < 64 or head[4] != 2 or head[5] != 1:
            raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
        size = os.fstat(f.fileno()).st_size
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return read(m, size, _sections(path, m, size))


def elf_info(path: str | os.PathLike[str]) -> ElfInfo | None:
    """The DT_NEEDED names of an ELF file and whether it still has a symbol table; None when the
    file is not ELF. ValueError for an ELF file this cannot read (32-bit, big-endian, no section
    headers)."""

    def read(m: mmap.mmap, size: int, sections: Sections) -> ElfInfo:
        needed: list[str] = []
        for kind, offset, length, link in sections:
            if kind != SHT_DYNAMIC or link >= len(sections):
                continue
            strtab = sections[link][1]
            for pos in range(offset, min(offset + length, size) - 15, 16):
                tag, value = struct.unpack_from("<qQ", m, pos)
                if tag == 0:
                    break
                if tag == DT_NEEDED:
                    needed.append(_cstring(m, strtab + value))
        return ElfInfo(needed, any(kind == SHT_SYMTAB for kind, *_ in sections))

    return _read_elf(path, read)


def dynamic_symbols(path: str | os.PathLike[str]) -> tuple[set[str], set[str]] | None:
    """The names an ELF file exports (global and weak symbols it defines, less those of a hidden,
    non-default version) and the names it needs from other libraries (undefined symbols), from its
    dynamic symbol table, without versions; None when the file is not ELF. ValueError as for
    ``elf_info``."""

    def read(m: mmap.mmap, size: int, sections: Sections) -> tuple[set[str], set[str]]:
        defined: set[str] = set()
        undefined: set[str] = set()
        versions = next((offset for kind, offset, _length, _link in sections if kind == SHT_GNU_VERSYM), None)
        for kind, offset, length, link in sections:
            if kind != SHT_DYNSYM or link >= len(sections):
                continue
            strtab = sections[link][1]
            for index in range(1, min(length, size - offset) // 24):  # entry 0 is the null symbol
                name, info, _other, shndx = struct.unpack_from("<IBBH", m, offset + index * 24)
                if not name or info >> 4 == STB_LOCAL:
                    continue
                if shndx == SHN_UNDEF:
                    undefined.add(_cstring(m, strtab + name))
                elif versions is None or not struct.unpack_from("<H", m, versions + 2 * index)[0] & VERSYM_HIDDEN:
                    defined.add(_cstring(m, strtab + name))
        return defined, undefined

    return _read_elf(path, read)


class Export(NamedTuple):
    function: bool  # a function (or an indirect one), not data
    version: str | None  # the version it is defined in (None: unversioned or the library's base)


def exports(path: str | os.PathLike[str]) -> dict[str, Export] | None:
    """What an ELF file exports (as ``dynamic_symbols``), with each name's kind and version; None
    when the file is not ELF. ValueError as for ``elf_info``."""

    def read(m: mmap.mmap, size: int, sections: Sections) -> dict[str, Export]:
        names: dict[int, str] = {}  # version index -> name, from the version definitions
        for kind, offset, length, link in sections:
            if kind != SHT_GNU_VERDEF or link >= len(sections):
                continue
            strtab, at = sections[link][1], offset
            while offset <= at < min(offset + length, size) - 19:
                _v, flags, index, _count, _hash, aux, following = struct.unpack_from("<HHHHIII", m, at)
                if not flags & VER_FLG_BASE:
                    names[index] = _cstring(m, strtab + struct.unpack_from("<I", m, at + aux)[0])
                if not following:
                    break
                at += following
        out: dict[str, Export] = {}
        versions = next((offset for kind, offset, _length, _link in sections if kind == SHT_GNU_VERSYM), None)
        for kind, offset, length, link in sections:
            if kind != SHT_DYNSYM or link >= len(sections):
                continue
            strtab = sections[link][1]
            for index in range(1, min(length, size - offset) // 24):
                name, info, _other, shndx = struct.unpack_from("<IBBH", m, offset + index * 24)
                if not name or info >> 4 == STB_LOCAL or shndx == SHN_UNDEF:
                    continue
                version = struct.unpack_from("<H", m, versions + 2 * index)[0] if versions is not None else 0
                if not version & VERSYM_HIDDEN:
                    function = info & 0xF in (STT_FUNC, STT_GNU_IFUNC)
                    out[_cstring(m, strtab + name)] = Export(function, names.get(version & 0x7FFF))
        return out

    return _read_elf(path, read)


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def prune_toc(
    binaries: list[tuple[str, str, str]],
    datas: list[tuple[str, str, str]],
    drop: Iterable[str],
    drop_if_unneeded: Iterable[str],
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]], list[str]]:
    """Remove from PyInstaller's TOCs the entries whose destination matches a ``drop`` pattern, then
    the libraries matching ``drop_if_unneeded`` (by file name) that no library left needs, repeated
    until nothing more goes; the links to what was removed go too. Returns (binaries, datas, the
    destinations removed). If an ELF file left cannot be read, nothing of ``drop_if_unneeded`` goes."""
    drop, drop_if_unneeded = list(drop), list(drop_if_unneeded)
    removed = {dest for dest, _src, _kind in binaries + datas if _matches(dest, drop)}
    while True:
        kept = [(dest, src) for dest, src, kind in binaries if kind != "SYMLINK" and dest not in removed]
        try:
            infos = [elf_info(src) for _dest, src in kept]
        except ValueError as exc:
            print(f"trim: {exc}; keeping every library that might be needed")
            break
        needed = {name for info in infos if info is not None for name in info.needed}
        orphans = {
            dest for dest, _src in kept if _matches(Path(dest).name, drop_if_unneeded) and Path(dest).name not in needed
        }
        if not orphans:
            break
        removed |= orphans

    def keep(entry: tuple[str, str, str]) -> bool:
        dest, src, kind = entry
        return dest not in removed and not (kind == "SYMLINK" and src in removed)

    gone = sorted(removed | {dest for dest, src, kind in binaries if kind == "SYMLINK" and src in removed})
    return [e for e in binaries if keep(e)], [e for e in datas if keep(e)], gone


# x265 is pillow-heif's HEVC encoder; libheif links to it at load time for its encoder plugin, so it
# cannot simply be left out. What libheif may take from x265 for a stand-in to be enough: the
# entry point that hands out the encoder's API (``x265_api_get_<build>``), the clean-up it calls
# when it unloads its plugins, and ``std::ios_base_library_init``, which x265 exports from the
# newer C++ runtime it was built with and the bundled libstdc++ lacks.
X265_STANDIN_SYMBOLS = re.compile(r"x265_api_get_\d+|x265_cleanup|_ZSt21ios_base_library_initv")
_X265_STANDIN_SOURCE = """\
// Stand-in for x265, the HEVC encoder that libheif links to: Photoseek only decodes HEIC (libde265
// does that). Only libheif's encoder plugin calls x265; asked for the encoder's API it gets none
// and refuses to encode ("Bit depth not supported by x265").
#include <ios>

extern "C" {
%s}

// As in libstdc++ (GCC 13 and later): an empty function whose only use is to be linked to, so that
// the standard streams are set up before the library that refers to it starts.
namespace std {
void ios_base_library_init() {}
}
static std::ios_base::Init standard_streams;
"""
_X265_STANDIN_C = {
    "x265_cleanup": "void x265_cleanup(void) {}\n",
    "x265_api_get": "const void *%s(int bit_depth) { (void)bit_depth; return 0; }\n",
}


def _symbols(path: str | os.PathLike[str]) -> tuple[set[str], set[str]]:
    return dynamic_symbols(path) or (set(), set())


def _names(binaries: list[tuple[str, str, str]]) -> dict[str, str]:
    """File name -> source of every library in the TOC, links included (named by the link)."""
    by_dest = {dest: src for dest, src, kind in binaries if kind != "SYMLINK"}
    by_name = {Path(dest).name: src for dest, src in by_dest.items()}
    by_name.update(
        {Path(dest).name: by_dest[src] for dest, src, kind in binaries if kind == "SYMLINK" and src in by_dest}
    )
    return by_name


def _linked(lib: str, needs: dict[str, list[str]], by_name: dict[str, str], skip: Iterable[str] = ()) -> set[str]:
    """Every library in the TOC (``by_name``, see ``_names``) that ``lib`` links to, directly or not
    (``needs``: each library's DT_NEEDED names), except ``skip`` and what only they link to."""
    seen: set[str] = set(skip)
    todo = [lib]
    while todo:
        for dep in (by_name.get(name) for name in needs[todo.pop()]):
            if dep and dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen - set(skip)


def stub_x265(
    binaries: list[tuple[str, str, str]], work: str | os.PathLike[str]
) -> tuple[list[tuple[str, str, str]], str]:
    """Put a stand-in built in ``work`` in the place of x265 (``libx265*.so*``, 21 MB) in PyInstaller's
    binaries TOC: the same name, exporting what the libraries linking to it take from it, none of
    which encodes. Only when, of what x265 exports, those libraries use nothing but what
    ``X265_STANDIN_SYMBOLS`` matches and what the other libraries they link to (in the TOC) also
    export, a C++ compiler is there, and the stand-in it built exports all of it; otherwise x265
    stays. Returns the TOC and a line saying what was done."""
    by_name = _names(binaries)
    found = sorted({src for name, src in by_name.items() if fnmatch.fnmatch(name, "libx265*.so*")})
    if not found:
        return binaries, "no x265 in the package"
    compiler = shutil.which("c++") or shutil.which("g++")
    if not compiler:
        return binaries, "x265 kept: no C++ compiler (c++) to build its stand-in"
    replace: dict[str, str] = {}
    try:
        needs = {src: (elf_info(src) or ElfInfo([], False)).needed for src in set(by_name.values())}

        for src in found:
            name = next(n for n, s in by_name.items() if s == src and fnmatch.fnmatch(n, "libx265*.so*"))
            exported = _symbols(src)[0]
            users = [lib for lib, needed in needs.items() if name in needed]
            if not users:
                return binaries, f"x265 kept: nothing links to {name}"
            wanted: set[str] = set()
            for lib in users:
                elsewhere = set().union(*(_symbols(dep)[0] for dep in _linked(lib, needs, by_name, skip=[src])))
                wanted |= (_symbols(lib)[1] & exported) - elsewhere
            unknown = sorted(sym for sym in wanted if not X265_STANDIN_SYMBOLS.fullmatch(sym))
            if unknown:
                return binaries, f"x265 kept: {name} is used for {', '.join(unknown[:5])}"
            folder = Path(work)
            folder.mkdir(parents=True, exist_ok=True)
            source, target = folder / "x265-standin.cc", folder / name
            functions = [_X265_STANDIN_C.get(sym, _X265_STANDIN_C["x265_api_get"] % sym) for sym in sorted(wanted)
                         if sym.startswith("x265_")]  # fmt: skip
            source.write_text(_X265_STANDIN_SOURCE % "".join(functions))
            proc = subprocess.run(
                [compiler, "-shared", "-fPIC", "-O2", "-s", f"-Wl,-soname,{name}", "-o", str(target), str(source)],
                capture_output=True, text=True,
            )  # fmt: skip
            if proc.returncode or not wanted <= _symbols(target)[0]:
                return binaries, f"x265 kept: building its stand-in failed: {proc.stderr.strip()[-300:]}"
            replace[src] = str(target)
    except ValueError as exc:
        return binaries, f"x265 kept: {exc}"
    toc = [(dest, src if kind == "SYMLINK" else replace.get(src, src), kind) for dest, src, kind in binaries]
    saved = sum(os.path.getsize(src) - os.path.getsize(new) for src, new in replace.items())
    return toc, f"x265 replaced by a stand-in that cannot encode ({saved / 1e6:.1f} MB less)"


#: OpenCV's video input and output (FFmpeg) and its AVIF image codec. OpenCV is in the package for
#: RapidOCR, which, like the face detector, hands it decoded pixels only (Pillow reads every photo);
#: nothing in Photoseek opens a video or an image file with OpenCV. cv2 links to these libraries at
#: load time all the same (about 41 MB with the codecs, TLS and DRM libraries only they link to).
#: Destinations in the package, so that the same libraries of other packages (Pillow's libavif, which
#: decodes AVIF photos) are never touched.
OPENCV_UNUSED = tuple(
    f"opencv_python*.libs/{name}*.so*" for name in ("libavcodec", "libavformat", "libavutil", "libswscale", "libavif")
)
_STANDIN_C = """\
// Stand-in for %s: the package never calls it (packaging/trim.py, stand_in). Should it ever be
// called, the program stops with a message rather than carrying on without it.
#include <stdio.h>
#include <stdlib.h>

static void missing(const char *name) {
    fprintf(stderr, "photoseek: %%s of %s was left out of this package\\n", name);
    abort();
}
%s"""


def stand_in(
    binaries: list[tuple[str, str, str]], work: str | os.PathLike[str], patterns: Iterable[str]
) -> tuple[list[tuple[str, str, str]], str]:
    """Put stand-ins built in ``work`` in the place of the libraries whose destinations match
    ``patterns`` in PyInstaller's binaries TOC, and leave out what only those libraries linked to.

    A stand-in has the library's name and exports, in the same symbol version, what the other
    libraries linking to it take from it (less what the other libraries they link to export), as
    functions that stop the program with a message: enough to load, for code that never calls
    them. All or nothing: every match is replaced only when each is used for functions alone, in
    at most one symbol version, a C compiler is there, each stand-in built exports all it must
    and no library left would miss a symbol; otherwise the TOC is returned as it was. Returns the
    TOC and a line saying what was done."""
    patterns = list(patterns)
    by_name = _names(binaries)
    targets = {src: Path(dest).name for dest, src, kind in binaries if kind != "SYMLINK" and _matches(dest, patterns)}
    if not targets:
        return binaries, "nothing to stand in for"
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        return binaries, "kept: no C compiler (cc) to build stand-ins"
    replace: dict[str, str] = {}
    try:
        needs = {src: (elf_info(src) or ElfInfo([], False)).needed for src in set(by_name.values())}

        folder = Path(work)
        folder.mkdir(parents=True, exist_ok=True)
        for src, name in targets.items():
            exported = exports(src) or {}
            users = [lib for lib, needed in needs.items() if name in needed and lib not in targets]
            wanted: set[str] = set()
            for lib in users:
                elsewhere = set().union(*(_symbols(dep)[0] for dep in _linked(lib, needs, by_name, skip=targets)))
                wanted |= (_symbols(lib)[1] & exported.keys()) - elsewhere
            data = sorted(sym for sym in wanted if not exported[sym].function)
            if data:
                return binaries, f"kept: {name} is used for data ({', '.join(data[:3])})"
            versions = {exported[sym].version for sym in wanted}
            if len(versions) > 1:
                return binaries, f"kept: {name} is used in more than one symbol version"
            source, target = folder / f"{name}.c", folder / name
            source.write_text(
                _STANDIN_C
                % (
                    name,
                    name,
                    "".join(f'void *{sym}(void) {{ missing("{sym}"); return 0; }}\n' for sym in sorted(wanted)),
                )
            )
            command = [compiler, "-shared", "-fPIC", "-O2", "-s", f"-Wl,-soname,{name}", "-o", str(target), str(source)]
            version = next(iter(versions), None)
            if version:
                script = folder / f"{name}.map"
                script.write_text(
                    f"{version} {{\n  global: {' '.join(f'{sym};' for sym in sorted(wanted))}\n  local: *;\n}};\n"
                )
                command.insert(1, f"-Wl,--version-script={script}")
            proc = subprocess.run(command, capture_output=True, text=True)
            built = exports(target) if proc.returncode == 0 else None
            if built is None or any(sym not in built or built[sym].version != version for sym in wanted):
                why = proc.stderr.strip()[-300:] or "it does not export all it must"
                return binaries, f"kept: building the stand-in for {name} failed: {why}"
            replace[src] = str(target)
        # What only the replaced libraries linked to goes too (never a library of another use).
        before = set().union(*(_linked(src, needs, by_name) for src in targets)) - set(targets)
        gone: set[str] = set()
        while True:
            live = set(by_name.values()) - gone - set(targets)
            orphans = before - gone - {by_name.get(name) for src in live for name in needs[src]}
            if not orphans:
                break
            gone |= orphans
        # A library left that took a symbol from one that goes (loaded only through a replaced
        # one), and that nothing left exports, would not load: then everything stays.
        offered = set().union(*(_symbols(src)[0] for src in live), *(_symbols(t)[0] for t in replace.values()))
        lost = set().union(*(_symbols(src)[0] for src in gone)) - offered
        for src in live:
            taken = sorted(_symbols(src)[1] & lost)
            if taken:
                return binaries, f"kept: {Path(src).name} takes {', '.join(taken[:3])} from a library left out"
    except ValueError as exc:
        return binaries, f"kept: {exc}"
    dropped = {dest for dest, src, kind in binaries if kind != "SYMLINK" and src in gone}
    toc = [
        (dest, src if kind == "SYMLINK" else replace.get(src, src), kind)
        for dest, src, kind in binaries
        if dest not in dropped and not (kind == "SYMLINK" and src in dropped)
    ]
    saved = sum(os.path.getsize(s) - os.path.getsize(t) for s, t in replace.items()) + sum(map(os.path.getsize, gone))
    standins = ", ".join(sorted(targets.values()))
    names = ", ".join(sorted(Path(s).name for s in gone)) or "nothing"
    return toc, f"stand-ins for {standins}; left out: {names}; {saved / 1e6:.1f} MB less"

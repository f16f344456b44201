"""Trimming the package: read ELF headers, and drop what PyInstaller collected that is never loaded.

Used by ``photoseek.spec`` (dropping from the analysis) and ``build_linux.py`` (stripping). Reads
only what it needs of 64-bit little-endian ELF files (x86_64, aarch64): the DT_NEEDED names and
whether a symbol table is still there. No dependency beyond the standard library.
"""

from __future__ import annotations

import fnmatch
import mmap
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

SHT_SYMTAB, SHT_DYNAMIC, DT_NEEDED = 2, 6, 1


class ElfInfo(NamedTuple):
    needed: list[str]  # DT_NEEDED names, in order
    has_symtab: bool  # not stripped: a .symtab section is still there


def elf_info(path: str | os.PathLike[str]) -> ElfInfo | None:
    """The DT_NEEDED names of an ELF file and whether it still has a symbol table; None when the
    file is not ELF. ValueError for an ELF file this cannot read (32-bit, big-endian, no section
    headers)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            return None
        if len(head) < 64 or head[4] != 2 or head[5] != 1:
            raise ValueError(f"{path}: not a 64-bit little-endian ELF file")
        size = os.fstat(f.fileno()).st_size
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            (shoff,) = struct.unpack_from("<Q", m, 0x28)
            shentsize, shnum = struct.unpack_from("<HH", m, 0x3A)
            if not shoff or shnum == 0 or shentsize < 64 or shoff + shnum * shentsize > size:
                raise ValueError(f"{path}: no readable section headers")
            # (type, offset, size, link) of every section header.
            sections = []
            for i in range(shnum):
                fields = struct.unpack_from("<IIQQQQIIQQ", m, shoff + i * shentsize)
                sections.append((fields[1], fields[4], fields[5], fields[6]))
            needed: list[str] = []
            for kind, offset, length, link in sections:
                if kind != SHT_DYNAMIC or link >= shnum:
                    continue
                strtab = sections[link][1]
                for pos in range(offset, min(offset + length, size) - 15, 16):
                    tag, value = struct.unpack_from("<qQ", m, pos)
                    if tag == 0:
                        break
                    if tag == DT_NEEDED:
                        end = m.find(b"\0", strtab + value)
                        needed.append(m[strtab + value : end].decode("utf-8", "replace"))
            return ElfInfo(needed, any(kind == SHT_SYMTAB for kind, *_ in sections))


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

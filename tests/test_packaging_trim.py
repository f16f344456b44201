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

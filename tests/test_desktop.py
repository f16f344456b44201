"""The desktop app, offscreen, with the tiny RGB model: search, captions, folders, problems, quitting."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from desktop_app.main import Session, build
from desktop_app.photo_model import THUMB, PhotoRole
from engine import paths
from engine.library import Library
from tests.conftest import damage, solid

Qt = pytest.importorskip("PySide6.QtCore").Qt

SYNC_TIMEOUT_MS = 60_000
DEBOUNCE_WAIT_MS = 600  # more than the search field's debounce (250 ms)


@pytest.fixture
def open_window(qtbot, tmp_path, tiny_bundle):
    windows = []

    def opener(*args: str):
        window = build(["--db", str(tmp_path / "lib.sqlite3"), "--model", str(tiny_bundle), "--device", "cpu", *args])
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield opener
    for window in windows:
        window.close()  # stops indexing and the watcher before the library closes under them
        window.library.close()


def wait_synced(qtbot, window) -> None:
    """Until the window has handled the end of its first indexing run (a signal waited for
    here could have been sent before the wait began listening)."""
    qtbot.waitUntil(lambda: window.syncs_finished >= 1, timeout=SYNC_TIMEOUT_MS)
    assert not window.status_text.text().startswith("Indexing stopped"), window.status_text.text()


def search(qtbot, window, text: str):
    window.search.clear()
    # The answer to this text: the window also searches again by itself when the library changes.
    with qtbot.waitSignal(window.searcher.results, timeout=10_000, check_params_cb=lambda t, _r: t == text) as blocker:
        qtbot.keyClicks(window.search, text)  # the debounce timer fires the search
    return blocker.args[1]


def test_typed_query_puts_the_expected_photo_first_and_shows_its_caption(qtbot, open_window, rgb_folder):
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    assert window.model.rowCount() == 3
    search(qtbot, window, "blue")
    first = window.model.index(0).data(PhotoRole)
    assert first.path.name == "blue.jpg"
    qtbot.waitUntil(lambda: window.detail.photo is not None and window.detail.photo.path.name == "blue.jpg")
    assert first.caption and window.detail.caption.text() == first.caption
    assert "blue.jpg" in window.detail.facts.text()
    assert window.model.rowCount() == 1  # the others score below the cutoff
    assert window.status_text.text() == "1 photo for “blue”, best first"


def test_open_says_why_when_a_photo_cannot_be_opened(qtbot, open_window, rgb_folder, monkeypatch):
    import dataclasses

    from PySide6.QtGui import QDesktopServices

    opened: list[str] = []

    def no_application(url):  # type: ignore[no-untyped-def]
        opened.append(url.toLocalFile())
        return False

    monkeypatch.setattr(QDesktopServices, "openUrl", no_application)
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    photo = window.library.photo(rgb_folder / "red.jpg")
    window.detail.show_photo(photo)
    window.detail.actions["Open"].click()  # no application for it on this desktop
    assert opened == [str(photo.path)]
    assert window.status_text.text() == f"No application could open {photo.path}"
    gone = dataclasses.replace(photo, path=photo.path.with_name("gone.jpg"))
    window.detail.show_photo(gone)
    window.detail.actions["Open"].click()
    assert opened == [str(photo.path)]
    assert window.status_text.text().startswith(f"{gone.path} is not there any more")
    window.detail.actions["Reveal"].click()  # the folder is there
    assert opened == [str(photo.path), str(photo.path.parent)]


def test_a_full_page_of_results_is_not_called_all_that_match(qtbot, open_window, rgb_folder, monkeypatch):
    import desktop_app.tasks
    import desktop_app.window

    for module in (desktop_app.tasks, desktop_app.window):
        monkeypatch.setattr(module, "SEARCH_LIMIT", 2)
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    search(qtbot, window, "a thing")
    assert window.model.rowCount() == 2
    assert window.status_text.text() == "The 2 best of the library for “a thing”"


def test_query_that_matches_nothing_says_so(qtbot, open_window, rgb_folder):
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    assert search(qtbot, window, "red").hits
    window.settings.setValue(window._cutoff_key(), 0.999)
    results = search(qtbot, window, "purple")
    assert not results.hits
    assert window.model.rowCount() == 0 and window.detail.photo is None
    assert window.message.isVisible() and "no photo" in window.message.text().lower()
    assert window.status_text.text() == "No photo matches “purple”"  # not the last search's count
    from PySide6.QtCore import Qt

    qtbot.keyClick(window.search, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: window.model.rowCount() == 3)


def test_a_query_that_cannot_be_searched_says_why(qtbot, open_window, rgb_folder):
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    assert search(qtbot, window, "red").hits
    window.search.clear()
    with qtbot.waitSignal(window.searcher.failed, timeout=10_000) as blocker:
        qtbot.keyClicks(window.search, "like:nowhere.jpg")
    assert blocker.args == ["like:nowhere.jpg", "like:nowhere.jpg: no such photo in the library or on disk"]
    assert window.model.rowCount() == 0 and window.detail.photo is None
    assert window.message.isVisible() and window.message.text() == blocker.args[1] + "."
    assert window.status_text.text() == "Could not search for “like:nowhere.jpg”"


def test_adding_a_folder_indexes_it_and_problems_lists_a_corrupt_file(
    qtbot, open_window, rgb_folder, tmp_path, monkeypatch
):
    import os

    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    more = tmp_path / "more"
    solid(more / "yellow.jpg", (230, 220, 20))
    (more / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (more / "gone.jpg").symlink_to(tmp_path / "moved-away.jpg")  # a link to a photo that is not there
    locked = more / "locked"
    solid(locked / "hidden-from-us.jpg", (10, 10, 10))
    real = os.scandir

    def refuse(path="."):  # a subfolder without read permission (the tests may run as root)
        if os.fspath(path) == str(locked.resolve()):
            raise PermissionError(13, "Permission denied", str(locked))
        return real(path)

    monkeypatch.setattr(os, "scandir", refuse)
    with qtbot.waitSignal(window.sync.finished, timeout=SYNC_TIMEOUT_MS):
        window.add_folder(more)
    assert {r.path for r in window.library.roots()} == {rgb_folder.resolve(), more.resolve()}
    assert window.model.rowCount() == 5
    window.show_problems()
    table = window.problems_dialog.table
    rows = sorted((table.item(n, 0).text(), table.item(n, 1).text()) for n in range(table.rowCount()))
    assert all(table.item(n, 1).toolTip() == table.item(n, 1).text() for n in range(table.rowCount()))
    assert len(rows) == 3 and rows[0][0].endswith("broken.jpg") and rows[0][1]
    assert rows[1] == (str(more.resolve() / "gone.jpg"), "cannot read the file: a link to a file that is not there")
    assert rows[2] == (str(locked.resolve()), "cannot look into the folder: permission denied")
    # The unreadable file is not counted as a photo (it said "5 photos, 2 could not be read").
    assert window.status_text.text() == "4 photos, 2 files and 1 folder could not be read (see Problems)"


def test_removing_a_folder_can_be_undone_without_indexing_again(qtbot, open_window, rgb_folder, monkeypatch):
    from PySide6.QtWidgets import QInputDialog, QLabel, QPushButton

    from desktop_app.window import NO_FOLDERS

    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    asked: list[str] = []

    def answer_yes(_parent, _title, text, verb):  # type: ignore[no-untyped-def]
        asked.append(text)
        return verb == "Remove"

    monkeypatch.setattr(QInputDialog, "getItem", lambda *a: pytest.fail("asked which of the one folder to remove"))
    monkeypatch.setattr("desktop_app.window.confirm", answer_yes)
    window.remove_folder_dialog()
    assert len(asked) == 1 and f"Remove {rgb_folder.resolve()} from the library?" in asked[0]

    def undo_button():
        buttons = [b for b in window.statusBar().findChildren(QPushButton) if b.text() == "Undo" and b.isVisible()]
        return buttons[0] if buttons else None

    def removed_line():
        return [label.text() for label in window.statusBar().findChildren(QLabel) if label.isVisible()]

    qtbot.waitUntil(lambda: undo_button() is not None, timeout=10_000)
    assert window.model.rowCount() == 0 and window.library.roots() == []
    assert window.message.isVisible() and window.message.text() == NO_FOLDERS  # what to do next
    search(qtbot, window, "red")  # a search meanwhile keeps saying how to start
    assert window.message.isVisible() and window.message.text() == NO_FOLDERS
    window.search.clear()
    # What was removed stays said beside its Undo, whatever the status line says meanwhile.
    window._update_counts()
    qtbot.wait(1500)
    assert f"Removed {rgb_folder.name} (3 photos)." in removed_line() and undo_button() is not None
    assert window.status_text.text() == "0 photos"  # kept up to date, behind the removal's line
    with qtbot.waitSignal(window.sync.finished, timeout=SYNC_TIMEOUT_MS) as blocker:
        undo_button().click()
    report, _status = blocker.args[0]
    assert report.index is not None and (report.index.embedded, report.index.reused) == (0, 3)
    assert undo_button() is None and window.status_text.isVisible()  # used once, then gone
    assert not window.message.isVisible()
    assert window.model.rowCount() == 3 and [r.path for r in window.library.roots()] == [rgb_folder.resolve()]
    assert (rgb_folder / "red.jpg").exists()


def test_first_start_without_a_folder_opens_the_sample_photos(qtbot, open_window):
    window = open_window()
    grid, detail = window.splitter.sizes()
    assert grid > detail  # the photos get most of the width
    qtbot.waitUntil(lambda: len(window.library.roots()) == 1, timeout=10_000)
    assert window.library.roots()[0].path == paths.SAMPLE_PHOTOS_DIR.resolve()


def test_the_window_opens_before_the_model_is_loaded(qtbot, open_window, rgb_folder, monkeypatch):
    """A first start builds the built-in model (about fifteen seconds): in the background, with
    the window already open, not before it on the GUI thread."""
    import threading

    loaded_on: list[str] = []
    load = Library._load

    def recording_load(self, name):  # type: ignore[no-untyped-def]
        loaded_on.append(threading.current_thread().name)
        return load(self, name)

    monkeypatch.setattr(Library, "_load", recording_load)
    first = open_window(str(rgb_folder))  # a library with photos and captions, opened again below
    wait_synced(qtbot, first)
    first.close()
    first.library.close()
    window = open_window()
    wait_synced(qtbot, window)
    assert window.model.rowCount() == 3 and window.library.model_loaded
    assert loaded_on and threading.main_thread().name not in loaded_on, loaded_on


def test_the_model_and_where_it_runs_show_once_indexing_starts(qtbot, open_window, rgb_folder):
    """Not only when the run ends: the text-reading pass after indexing takes hours on a large library."""
    window = open_window(str(rgb_folder))
    seen: list[str] = []
    window.sync.progress.connect(lambda *_: seen.append(window.device_label.text()))  # after the window's slot
    wait_synced(qtbot, window)
    assert seen and seen[0] == f"{window.library.model.manifest.name} on CPU", seen


def test_a_library_that_cannot_be_indexed_still_searches_and_says_so(qtbot, open_window, rgb_folder, monkeypatch):
    """A library on read-only media: indexing cannot start, searching works."""
    from engine.errors import LibraryError

    first = open_window(str(rgb_folder))
    wait_synced(qtbot, first)
    first.close()
    first.library.close()

    def read_only(*_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise LibraryError("cannot lock the library for writing (lib.sqlite3.lock: Read-only file system)")

    monkeypatch.setattr(Library, "sync", read_only)
    window = open_window()
    qtbot.waitUntil(lambda: window.syncs_finished == 1, timeout=SYNC_TIMEOUT_MS)
    assert window.status_text.text().startswith("Indexing stopped: cannot lock the library for writing")
    assert window.watch_label.text() == "Not indexing" and "Read-only" in window.watch_label.toolTip()
    assert [hit.photo.path.name for hit in search(qtbot, window, "blue").hits] == ["blue.jpg"]
    assert window.device_label.text() == f"{window.library.model.manifest.name} on CPU"  # not "Model: loading"
    assert window.watch_label.text() == "Not indexing"


def test_photos_found_show_while_the_model_is_still_loading(qtbot, open_window, rgb_folder, monkeypatch):
    import threading

    release = threading.Event()
    load = Library._load

    def slow_load(self, name):  # type: ignore[no-untyped-def]
        release.wait(30)  # the built-in model's first build
        return load(self, name)

    monkeypatch.setattr(Library, "_load", slow_load)
    window = open_window(str(rgb_folder))
    try:
        qtbot.waitUntil(lambda: window.model.rowCount() == 3, timeout=10_000)
        assert not window.library.model_loaded
        assert {window.model.photo_at(n).state for n in range(3)} == {"pending"}
        window.search.setText("blue")  # typed meanwhile: answered once the model is ready
        window.run_search()
        assert window.message.isVisible()
        assert window.message.text() == "Searching for “blue” once the model is ready…"
    finally:
        release.set()
    with qtbot.waitSignal(window.searcher.results, timeout=SYNC_TIMEOUT_MS):
        pass
    wait_synced(qtbot, window)
    assert {photo.state for photo in window.library.photos()} == {"indexed"}


def test_quitting_mid_indexing_stops_quickly_and_leaves_a_sound_library(qtbot, open_window, tmp_path):
    folder = tmp_path / "many"
    for n in range(240):
        solid(folder / f"p{n:03d}.jpg", (n % 256, (7 * n) % 256, (13 * n) % 256), size=(640, 480))
    window = open_window(str(folder))
    with qtbot.waitSignal(window.sync.progress, timeout=SYNC_TIMEOUT_MS):
        pass
    started = time.perf_counter()
    window.close()
    stopped_in = time.perf_counter() - started
    print(f"closing the window mid-indexing took {stopped_in:.2f} s")
    assert not window.sync.running
    assert stopped_in < 5.0  # a generous bound for a shared CI machine; bench_gui.py measures it
    window.library.close()
    with sqlite3.connect(tmp_path / "lib.sqlite3") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert (
            conn.execute("SELECT count(*) FROM photos GROUP BY root_id, rel_path HAVING count(*) > 1").fetchall() == []
        )
    with Library(tmp_path / "lib.sqlite3", model=str(window.library.model.manifest.root), device="cpu") as again:
        assert again.status()["pending"] > 0  # the run was really interrupted
        report = again.sync(read_text=False)
        assert report.index is not None
        status = again.status()
        assert status["photos"] == 240 and status["indexed"] == 240


def test_desktop_app_talks_to_the_engine_only():
    """No SQL, no ONNX Runtime and no folder walking in the GUI."""
    import ast

    root = Path(__file__).resolve().parent.parent / "desktop_app"
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert not name.startswith(("sqlite3", "onnxruntime", "engine.store")), f"{path.name} imports {name}"
        assert "os.walk" not in path.read_text() and ".rglob(" not in path.read_text(), path.name


def test_a_photo_copied_into_a_watched_folder_appears_without_a_restart(qtbot, open_window, rgb_folder):
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    qtbot.waitUntil(lambda: window.service is not None and window.service.running, timeout=10_000)
    assert window.watch_label.text().startswith("Watching 1 folder")
    solid(rgb_folder / "late" / "yellow.jpg", (230, 220, 20))
    qtbot.waitUntil(lambda: window.model.rowCount() == 4, timeout=30_000)
    qtbot.waitUntil(
        lambda: (
            (window.library.photo(rgb_folder / "late" / "yellow.jpg") or object()).__dict__.get("state") == "indexed"
        ),
        timeout=30_000,
    )


def test_signals_do_not_lose_references_to_true():
    """PySide6 6.12.0 decrements True's reference count on every emit() (Python < 3.12): the
    app would abort after a few thousand progress and thumbnail signals."""
    import sys

    from PySide6.QtCore import QObject, Signal

    class Emitter(QObject):
        ping = Signal(str, int)

    emitter = Emitter()
    before = sys.getrefcount(True)
    for n in range(200):
        emitter.ping.emit("x", n)
    assert sys.getrefcount(True) - before > -50


def test_preferences_offer_stronger_models_with_their_cost(qtbot, open_window, rgb_folder):
    from PySide6.QtCore import QSettings

    from desktop_app.window import PreferencesDialog

    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    dialog = PreferencesDialog(window, QSettings(), window.library.model.id, 0.3, 0.3)
    qtbot.addWidget(dialog)
    names = [dialog.download.itemData(i) for i in range(dialog.download.count())]
    assert "clip-vit-b32" in names
    dialog.download.setCurrentIndex(names.index("clip-vit-b32"))
    info = dialog.download_info.text()
    assert "MB download" in info and "photos/s" in info and "ms per query" in info
    assert dialog.model.findData(window.library.model.id) >= 0  # the model in use is listed


def test_the_model_in_use_cannot_be_removed_from_preferences(qtbot, tmp_path, tiny_bundle, rgb_folder, monkeypatch):
    import shutil

    from PySide6.QtWidgets import QDialog, QMessageBox

    from desktop_app.window import PreferencesDialog

    installed = paths.models_dir() / "tiny-rgb"
    shutil.copytree(tiny_bundle, installed)
    window = build(["--db", str(tmp_path / "lib.sqlite3"), "--model", "tiny-rgb", "--device", "cpu", str(rgb_folder)])
    qtbot.addWidget(window)
    wait_synced(qtbot, window)
    said: list[str] = []
    monkeypatch.setattr(QMessageBox, "information", lambda _parent, _title, text: said.append(text))
    monkeypatch.setattr("desktop_app.window.confirm", lambda *a: pytest.fail("asked to remove the model in use"))
    shown: list[PreferencesDialog] = []

    def press_remove(dialog):  # the user opens Preferences and presses Remove on the model shown
        shown.append(dialog)
        assert not dialog.remove_button.isEnabled()  # offered only for models not in use
        dialog.remove_button.click()
        return QDialog.DialogCode.Rejected

    monkeypatch.setattr(PreferencesDialog, "exec", press_remove)
    window.show_preferences()
    [dialog] = shown
    assert dialog.model.currentData() == "tiny-rgb" and dialog.model.findText("tiny-rgb@1 (in use)") < 0
    assert said == [] and installed.is_dir()
    window.close()
    window.library.close()


def test_results_refreshed_by_new_photos_keep_the_photo_the_person_is_looking_at(qtbot, open_window, rgb_folder):
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    window.settings.setValue(window._cutoff_key(), -1.0)  # every photo in the results
    search(qtbot, window, "red")
    assert window.model.rowCount() == 3
    window.grid.setCurrentIndex(window.model.index(2))
    looked_at = window.selected_photo()
    # New photos arrived: the window searches again by itself.
    with qtbot.waitSignal(window.searcher.results, timeout=10_000):
        window._apply_changes()
    assert window.selected_photo() is not None and window.selected_photo().id == looked_at.id
    assert window.detail.photo is not None and window.detail.photo.id == looked_at.id
    # In the library's own view too, when the number of photos changes.
    qtbot.keyClick(window.search, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.model.searching)
    window.grid.setCurrentIndex(window.model.index(1))
    looked_at = window.selected_photo()
    solid(rgb_folder / "late.jpg", (230, 220, 20))
    qtbot.waitUntil(lambda: window.model.rowCount() == 4, timeout=30_000)
    assert window.selected_photo() is not None and window.selected_photo().id == looked_at.id


def test_the_detail_panel_never_shows_a_photo_that_is_gone(qtbot, open_window, rgb_folder):
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    search(qtbot, window, "blue")
    assert window.detail.photo is not None
    qtbot.keyClick(window.search, Qt.Key.Key_Escape)  # the search cleared: nothing selected
    qtbot.waitUntil(lambda: not window.model.searching)
    assert window.detail.photo is None and not window.detail.actions["Open"].isEnabled()


def test_down_from_the_search_field_goes_to_the_results(qtbot, open_window, rgb_folder):
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    search(qtbot, window, "blue")
    window.grid.clearSelection()
    window.grid.setCurrentIndex(window.model.index(-1))
    window.activateWindow()
    window.search.setFocus()
    qtbot.keyClick(window.search, Qt.Key.Key_Down)
    assert window.grid.currentIndex().row() == 0


def test_letters_typed_on_the_photos_start_a_search(qtbot, open_window, rgb_folder):
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    search(qtbot, window, "blue")
    window.activateWindow()
    window.grid.setFocus()
    qtbot.keyClick(window.grid, "r")  # (Qt jumped to a file name starting with the letters)
    assert window.search.hasFocus() and window.search.text() == "r"  # the search typed replaced
    qtbot.keyClicks(window.search, "ed")  # the next letters, where the focus now is
    assert window.search.text() == "red"


def test_similar_but_waits_for_the_change_and_keeps_its_hint(qtbot, open_window, rgb_folder):
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    search(qtbot, window, "blue")
    searched = []
    window.searcher.results.connect(lambda text, _r: searched.append(text))
    window.detail.actions["Similar, but…"].click()
    qtbot.wait(DEBOUNCE_WAIT_MS)
    assert not [t for t in searched if t.startswith("like:")]  # (the watcher may search "blue" again)
    assert window.message.isVisible() and "-blue +red" in window.message.text()


def test_a_photo_that_could_not_be_read_offers_no_find_similar(qtbot, open_window, rgb_folder):
    (rgb_folder / "notes.jpg").write_text("not a photo")
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    [failed] = window.library.problems()
    window.detail.show_photo(failed)
    assert window.detail.actions["Open"].isEnabled()
    assert not window.detail.actions["Find similar"].isEnabled()
    assert not window.detail.actions["Similar, but…"].isEnabled()


def test_find_similar_leaves_out_the_photo_and_its_copies(tmp_path, tiny_bundle, rgb_folder):
    (rgb_folder / "copy-of-red.jpg").write_bytes((rgb_folder / "red.jpg").read_bytes())
    library = Library(tmp_path / "lib.sqlite3", model=str(tiny_bundle), device="cpu")
    try:
        library.add_root(rgb_folder)
        library.sync()
        names = [h.photo.path.name for h in library.similar(rgb_folder / "red.jpg").hits]
        assert "red.jpg" not in names and "copy-of-red.jpg" not in names and names
    finally:
        library.close()


def test_a_cutoff_chosen_in_preferences_belongs_to_the_model(qtbot, open_window, rgb_folder, monkeypatch):
    from PySide6.QtWidgets import QDialog

    from desktop_app.window import PreferencesDialog

    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    chosen = {"value": window.library.model.cutoff}
    accepted = QDialog.DialogCode.Accepted
    monkeypatch.setattr(PreferencesDialog, "exec", lambda self: (self.cutoff.setValue(chosen["value"]), accepted)[1])
    window.show_preferences()  # OK with the model's own cutoff: nothing is stored
    assert window._cutoff() is None
    chosen["value"] = 0.42
    window.show_preferences()
    assert window._cutoff() == pytest.approx(0.42)
    assert window._cutoff_key().startswith("cutoff/") and window._cutoff_key() != "cutoff/"


def test_the_photos_cannot_be_collapsed_away(qtbot, open_window, rgb_folder):
    window = open_window(str(rgb_folder))
    window.splitter.setSizes([0, 2000])  # dragging the handle to the window's left edge
    assert window.splitter.sizes()[0] > 0


def test_photos_the_watcher_removes_leave_the_count(qtbot, open_window, rgb_folder):
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    qtbot.waitUntil(lambda: window.service is not None and window.service.running, timeout=10_000)
    assert window.status_text.text().startswith("3 photos")
    (rgb_folder / "green.png").unlink()
    qtbot.waitUntil(lambda: window.model.rowCount() == 2, timeout=30_000)
    qtbot.waitUntil(lambda: window.status_text.text().startswith("2 photos"), timeout=5_000)


def test_the_status_line_of_find_similar_names_the_photo(qtbot, open_window, rgb_folder):
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    search(qtbot, window, f'like:"{rgb_folder / "red.jpg"}"')
    assert window.status_text.text() == "2 photos like “red.jpg”, best first"
    window.settings.setValue(window._cutoff_key(), 0.9999)  # as chosen in Preferences: nothing passes
    search(qtbot, window, f'like:"{rgb_folder / "green.png"}"')
    assert window.status_text.text() == "No photo looks like “green.png”"


def two_folders(qtbot, open_window, rgb_folder, tmp_path):
    """A window on ``rgb_folder`` and a second folder, "other", with one pink photo; both indexed."""
    other = tmp_path / "other"
    solid(other / "pink.jpg", (240, 120, 200))
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    window.add_folder(other)
    qtbot.waitUntil(lambda: window.syncs_finished >= 2, timeout=SYNC_TIMEOUT_MS)
    return window, other


def test_a_folder_that_goes_offline_and_comes_back_is_said_and_its_photos_follow(
    qtbot, open_window, rgb_folder, tmp_path
):
    window, other = two_folders(qtbot, open_window, rgb_folder, tmp_path)
    qtbot.waitUntil(lambda: window.watch_label.text() == "Watching 2 folders", timeout=10_000)
    window.settings.setValue(window._cutoff_key(), -1.0)  # every photo a result
    search(qtbot, window, "pink")
    assert window.model.rowCount() == 4
    away = tmp_path / "unplugged"
    other.rename(away)  # a drive unplugged
    qtbot.waitUntil(lambda: window.watch_label.text() == "Watching 1 folder, 1 offline", timeout=20_000)
    assert "The folder other is offline" in window.statusBar().currentMessage()
    qtbot.waitUntil(lambda: window.model.rowCount() == 3, timeout=5_000)  # its photo leaves the results
    away.rename(other)
    qtbot.waitUntil(lambda: window.watch_label.text() == "Watching 2 folders", timeout=20_000)
    assert window.statusBar().currentMessage() == "The folder other is back"
    qtbot.waitUntil(lambda: window.model.rowCount() == 4, timeout=5_000)


def test_removing_a_folder_during_a_search_searches_what_is_left(qtbot, open_window, rgb_folder, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QInputDialog

    window, other = two_folders(qtbot, open_window, rgb_folder, tmp_path)
    window.settings.setValue(window._cutoff_key(), -1.0)
    search(qtbot, window, "red")
    assert window.model.rowCount() == 4
    monkeypatch.setattr(QInputDialog, "getItem", lambda *a: (str(other.resolve()), True))
    monkeypatch.setattr("desktop_app.window.confirm", lambda *a: True)
    with qtbot.waitSignal(window.searcher.results, timeout=10_000, check_params_cb=lambda t, _r: t == "red"):
        window.remove_folder_dialog()
    assert window.model.searching and window.model.rowCount() == 3


def test_the_window_takes_over_once_another_process_stops_writing(
    qtbot, open_window, rgb_folder, tmp_path, monkeypatch
):
    import desktop_app.window
    from engine.store.lock import WriterLock

    monkeypatch.setattr(desktop_app.window, "BUSY_POLL_MS", 100)
    first = open_window(str(rgb_folder))
    wait_synced(qtbot, first)
    first.close()
    first.library.close()
    other = WriterLock(tmp_path / "lib.sqlite3")  # as `photoseek watch` in another process holds it
    other.acquire()
    try:
        window = open_window()
        qtbot.waitUntil(lambda: window.syncs_finished == 1, timeout=SYNC_TIMEOUT_MS)
        assert "being updated by" in window.status_text.text() and window.watch_label.text() == "Not indexing"
        qtbot.wait(500)
        assert window.syncs_finished == 1  # still refused: nothing is tried while the lock is held
    finally:
        other.release()
    qtbot.waitUntil(lambda: window.syncs_finished == 2, timeout=SYNC_TIMEOUT_MS)
    qtbot.waitUntil(lambda: window.watch_label.text().startswith("Watching 1 folder"), timeout=10_000)
    assert window.model.rowCount() == 3


def test_photos_another_process_indexes_show_while_it_writes(
    qtbot, open_window, rgb_folder, tmp_path, tiny_bundle, monkeypatch
):
    import desktop_app.window
    import engine.library

    monkeypatch.setattr(desktop_app.window, "BUSY_POLL_MS", 100)
    monkeypatch.setattr(engine.library, "RELOAD_SECONDS", 0.0)
    first = open_window(str(rgb_folder))
    wait_synced(qtbot, first)
    first.close()
    first.library.close()
    # `photoseek watch` in another process: it holds the library and indexes a new photo later.
    other = Library(tmp_path / "lib.sqlite3", model=str(tiny_bundle), device="cpu")
    other._writer_lock.acquire()
    try:
        window = open_window()
        qtbot.waitUntil(lambda: window.syncs_finished == 1, timeout=SYNC_TIMEOUT_MS)
        window.settings.setValue(window._cutoff_key(), -1.0)
        search(qtbot, window, "red")
        assert window.model.rowCount() == 3
        solid(rgb_folder / "late" / "red-again.jpg", (225, 15, 25))
        other.sync()
        qtbot.waitUntil(lambda: window.model.rowCount() == 4, timeout=10_000)
        assert window.model.searching and window.syncs_finished == 1  # shown, not indexed here
    finally:
        other._writer_lock.release()
        other.close()


def _damaged_library(tmp_path, tiny_bundle, rgb_folder, table: str) -> Path:
    db = tmp_path / "lib.sqlite3"
    with Library(db, model=str(tiny_bundle), device="cpu") as library:
        library.add_root(rgb_folder)
        library.sync()
    damage(db, table)  # the folders stay readable
    return db


@pytest.mark.parametrize(
    "table",
    [
        "captions",  # read as the window opens: it cannot open
        "photos",  # read first by the indexing run that starts with the window
    ],
)
def test_a_damaged_library_is_kept_aside_and_a_new_one_starts_with_its_folders(
    qtbot, tmp_path, tiny_bundle, rgb_folder, monkeypatch, table
):
    from engine.store.db import check_library

    db = _damaged_library(tmp_path, tiny_bundle, rgb_folder, table)
    asked = []
    monkeypatch.setattr("desktop_app.main.ask_start_new", lambda *question: asked.append(question) or True)
    session = Session(["--db", str(db), "--model", str(tiny_bundle), "--device", "cpu"])
    assert session.open()
    first = session.window
    qtbot.addWidget(first)
    qtbot.waitUntil(lambda: len(asked) == 1, timeout=SYNC_TIMEOUT_MS)
    window = session.window
    try:
        [(path, error, folders)] = asked
        assert (path, folders) == (db, [rgb_folder]) and "malformed" in error
        assert (window is first) == (table == "captions")  # the first window was replaced
        [kept] = [f for f in tmp_path.glob("lib.sqlite3.damaged-*") if not f.name.endswith(("-wal", "-shm"))]
        assert "is damaged" in check_library(kept)  # kept as it was, for a rescue
        if window is not first:
            qtbot.addWidget(window)
        wait_synced(qtbot, window)
        assert check_library(db) == "ok"
        assert sorted(p.path.name for p in window.library.photos()) == ["blue.jpg", "green.png", "red.jpg"]
    finally:
        window.close()
        window.library.close()


def test_a_damaged_library_is_left_as_it_is_when_the_user_says_no(tmp_path, tiny_bundle, rgb_folder, monkeypatch):
    db = _damaged_library(tmp_path, tiny_bundle, rgb_folder, "captions")
    before = db.read_bytes()
    monkeypatch.setattr("desktop_app.main.ask_start_new", lambda *question: False)
    session = Session(["--db", str(db), "--model", str(tiny_bundle), "--device", "cpu"])
    assert not session.open() and session.window is None
    assert db.read_bytes() == before and not list(tmp_path.glob("*.damaged-*"))


def test_find_similar_keeps_its_photo_for_similar_but(qtbot, open_window, rgb_folder):
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    window.settings.setValue(window._cutoff_key(), -1.0)  # every photo a result
    search(qtbot, window, "red")
    red = window.detail.photo
    assert red is not None and red.path.name == "red.jpg"
    like = f'like:"{red.path}"'
    with qtbot.waitSignal(window.searcher.results, timeout=10_000, check_params_cb=lambda t, _r: t == like):
        window.detail.actions["Find similar"].click()
    qtbot.wait(50)
    assert window.model.rowCount() == 2 and not window.grid.currentIndex().isValid()
    assert window.detail.photo is not None and window.detail.photo.path == red.path  # not the first result
    window.detail.actions["Similar, but…"].click()
    assert window.search.text() == like + " "
    # A result picked replaces it in the detail panel, as anywhere else.
    window.grid.setCurrentIndex(window.model.index(0))
    assert window.detail.photo.path != red.path


def test_find_similar_shows_its_results_from_the_top(qtbot, open_window, tmp_path):
    folder = tmp_path / "many"
    for i in range(60):
        solid(folder / f"p{i:02}.jpg", (4 * i, 200 - 3 * i, 90))
    window = open_window(str(folder))
    window.resize(760, 620)
    wait_synced(qtbot, window)
    window.settings.setValue(window._cutoff_key(), -1.0)  # every photo a result
    bar = window.grid.verticalScrollBar()
    last = window.model.index(window.model.rowCount() - 1)
    window.grid.setCurrentIndex(last)  # a photo far down the grid: the view scrolls to it
    window.grid.scrollTo(last)
    assert bar.value() > 0
    like = f'like:"{window.detail.photo.path}"'
    with qtbot.waitSignal(window.searcher.results, timeout=10_000, check_params_cb=lambda t, _r: t == like):
        window.detail.actions["Find similar"].click()
    qtbot.wait(50)
    assert window.model.rowCount() == 59 and bar.value() == 0  # the best first, in view (it kept the old place)


def test_the_status_line_names_like_photos_without_their_folders(qtbot, open_window, rgb_folder):
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    window.settings.setValue(window._cutoff_key(), -1.0)
    search(qtbot, window, f'like:"{rgb_folder / "red.jpg"}" -blue')
    assert window.status_text.text() == "2 photos for “like:red.jpg -blue”, best first"


def test_adding_a_folder_already_in_the_library_says_so(qtbot, open_window, rgb_folder, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    warned: list[object] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a: warned.append(a))
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    with qtbot.waitSignal(window.sync.finished, timeout=SYNC_TIMEOUT_MS):
        window.add_folder(rgb_folder)
    assert window.statusBar().currentMessage() == f"Already in the library: {rgb_folder.name}"
    assert len(window.library.roots()) == 1
    # A folder inside it as well, without a warning to dismiss.
    window.add_folder(rgb_folder / "sub")
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().endswith(f"inside {rgb_folder.name}"), timeout=5000)
    assert window.statusBar().currentMessage() == f"Already in the library, inside {rgb_folder.name}"
    assert len(window.library.roots()) == 1 and warned == []


def test_a_confirmation_is_not_given_by_pressing_enter(qtbot, open_window, rgb_folder):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from desktop_app.window import confirm

    window = open_window()
    seen: list[list[str]] = []

    def press_enter() -> None:
        box = QApplication.activeModalWidget()
        assert isinstance(box, QMessageBox)
        seen.append(sorted(b.text().replace("&", "") for b in box.buttons()))
        qtbot.keyClick(box, Qt.Key.Key_Return)

    QTimer.singleShot(100, press_enter)
    assert confirm(window, "Remove the folder?", "Remove it?", "Remove") is False
    assert seen == [["Cancel", "Remove"]]


def test_a_long_status_line_does_not_widen_the_window(qtbot, open_window, rgb_folder):
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    line = "Indexing photos: 12,345 of 67,890, 3.2 photos/s, 4 h 12 min left " + "and more words " * 10
    window.status_text.setText(line)
    assert window.statusBar().minimumSizeHint().width() < 700
    assert window.status_text.toolTip() == line  # all of it, where the window is too narrow


def test_thumbnails_of_any_shape_take_the_same_square(qtbot, open_window, rgb_folder):
    # The file names under the thumbnails then line up in rows.
    solid(rgb_folder / "tall.jpg", (200, 200, 20), size=(48, 120))
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    model = window.model

    def icons():
        return [model.data(model.index(row), Qt.ItemDataRole.DecorationRole) for row in range(model.rowCount())]

    # Asked for once (the view may have asked already), then ready from the thumbnail cache.
    qtbot.waitUntil(lambda: all(icon is not model._loading for icon in icons()), timeout=10_000)
    sizes = {(s.width(), s.height()) for icon in icons() for s in icon.availableSizes()}
    assert sizes == {(THUMB, THUMB)}


def test_two_folders_removed_in_a_row_share_one_note_and_one_undo(qtbot, open_window, rgb_folder, tmp_path):
    from PySide6.QtWidgets import QPushButton

    window, other = two_folders(qtbot, open_window, rgb_folder, tmp_path)
    for folder in (rgb_folder.resolve(), other.resolve()):
        window.remove_folder(folder)
        qtbot.waitUntil(lambda f=folder: f not in [r.path for r in window.library.roots()], timeout=10_000)
    qtbot.waitUntil(lambda: len(window.removal.folders) == 2, timeout=10_000)
    assert window.removal.label.text() == "Removed 2 folders (4 photos)."
    assert window.removal.label.toolTip() == f"Removed {rgb_folder.name} (3 photos) and other (1 photo)."
    undos = [b for b in window.statusBar().findChildren(QPushButton) if b.text() == "Undo" and b.isVisible()]
    assert len(undos) == 1 and not window.status_text.isVisible()
    with qtbot.waitSignal(window.sync.finished, timeout=SYNC_TIMEOUT_MS):
        undos[0].click()
    qtbot.waitUntil(lambda: len(window.library.roots()) == 2, timeout=SYNC_TIMEOUT_MS)
    assert not window.removal.isVisible() and window.status_text.isVisible()
    # Both folders' photos back, the second's too though it was added while the first was scanned.
    qtbot.waitUntil(lambda: window.library.photo_count() == 4 and window.model.rowCount() == 4, timeout=30_000)


def test_a_search_that_finds_nothing_says_so_when_photos_change(qtbot, open_window, rgb_folder):
    window = open_window(str(rgb_folder))
    wait_synced(qtbot, window)
    window.settings.setValue(window._cutoff_key(), 0.999)
    search(qtbot, window, "purple")
    assert window.model.rowCount() == 0
    window._show_counts_or_matches()  # as after the watcher's batch
    assert window.status_text.text() == "No photo matches “purple”"

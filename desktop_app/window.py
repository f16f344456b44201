"""The main window: search field, thumbnail grid, detail panel, status bar."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

from PySide6.QtCore import QEvent, QItemSelectionModel, QObject, QSettings, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QDesktopServices,
    QGuiApplication,
    QImage,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPixmap,
    QShortcut,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListView,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from desktop_app.photo_model import THUMB, PhotoListModel, PhotoRole
from desktop_app.tasks import SEARCH_LIMIT, Searcher, SyncTask, Thumbnailer
from engine.errors import InsideRootError, LibraryBusyError, PhotoseekError, QueryError
from engine.ingest.scan import FILE_PROBLEM
from engine.library import Library, Photo, Root, SearchResults, is_damage
from engine.models.catalogue import catalogue, find, measured_cost
from engine.models.registry import installed
from engine.search.query import abbreviate, parse
from engine.wording import counted

log = logging.getLogger(__name__)

DETAIL = 1024  # pixels of the detail view's picture
DEBOUNCE_MS = 250
UNDO_MS = 15_000  # how long a removed folder's Undo is offered
BUSY_POLL_MS = 5000  # how often the window checks whether another process still writes the library
NO_FOLDERS = "The library has no folders yet: Add folder, or drop a photo folder on this window."


def _like_names(text: str) -> str | None:
    """For a query that is only ``like:`` photos, their file names (“beach.jpg”), else None."""
    try:
        query = parse(text)
    except QueryError:
        return None
    if query.is_similar:
        return ", ".join(f"“{Path(t).name}”" for t in query.like)
    return None


def _like(photo: Photo) -> str:
    return f'like:"{photo.path}"'


def _sentence(message: str) -> str:
    """An engine message ("no photo matches well enough") as a sentence; one that begins with
    the query's own words (``like:x.jpg: ...``) keeps them as typed."""
    if not message.startswith("like:"):
        message = message[:1].upper() + message[1:]
    return message if message.endswith(".") else message + "."


def _matches(count: int, text: str) -> str:
    """The status bar's line for a search's results. Every photo above the model's relevance
    floor is listed, best first: many are not matches in any strict sense, so the line does not
    say so."""
    like = _like_names(text)
    shown = abbreviate(text)
    if count == 0:
        return f"No photo looks like {like}" if like else f"No photo matches “{shown}”"
    if count >= SEARCH_LIMIT:
        return f"The {count} photos most like {like}" if like else f"The {count} best of the library for “{shown}”"
    photos = counted(count, "photo")
    return f"{photos} like {like}, best first" if like else f"{photos} for “{shown}”, best first"


def confirm(parent: QWidget, title: str, text: str, verb: str) -> bool:
    """Asks before doing something; the buttons say what (“Remove”, “Cancel”), and Cancel is the
    default, so that Enter pressed by habit does nothing."""
    box = QMessageBox(QMessageBox.Icon.Question, title, text, QMessageBox.StandardButton.Cancel, parent)
    act = box.addButton(verb, QMessageBox.ButtonRole.AcceptRole)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is act


class _Background(QObject):
    """Runs a library call that writes (add or remove a folder, switch model) off the GUI thread."""

    done = Signal(object, object)  # callback, result or exception

    def __init__(self) -> None:
        super().__init__()
        self.done.connect(lambda callback, result: callback(result))

    def run(self, work: Callable[[], object], callback: Callable[[object], None]) -> None:
        def target() -> None:
            try:
                result = work()
            except PhotoseekError as exc:  # the user's to read (a folder already added, ...)
                log.warning("%s", exc)
                result = exc
            except Exception as exc:
                log.exception("background work failed")
                result = exc
            self.done.emit(callback, result)

        threading.Thread(target=target, daemon=True).start()


class _Changes(QObject):
    committed = Signal()
    #: A folder went offline or came back ("offline" or "online", its path), from the watcher's thread.
    folder = Signal(str, str)


class RemovalNote(QWidget):
    """What was just removed, with its Undo, in the status line's place for a while (the line
    goes on being kept up to date behind it). A second folder removed meanwhile joins the note,
    and Undo adds back every folder it names."""

    undo = Signal(list)  # the folders to add back
    closed = Signal()

    def __init__(self) -> None:
        super().__init__()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 12, 0)
        self.label = ElidedLabel()
        self.button = QPushButton("Undo")
        row.addWidget(self.label, 1)
        row.addWidget(self.button)
        self.folders: list[tuple[Path, int]] = []
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(UNDO_MS)
        self.timer.timeout.connect(self.close_note)
        self.button.clicked.connect(self._undo)
        self.setVisible(False)

    def add(self, folder: Path, photos: int) -> None:
        self.folders.append((folder, photos))
        parts = [f"{f.name or f} ({counted(p, 'photo')})" for f, p in self.folders]
        named = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        if len(parts) == 1:
            self.label.setText(f"Removed {named}.")
        else:  # short enough for a narrow window's status bar; the folders in the tooltip
            total = sum(p for _, p in self.folders)
            self.label.setText(f"Removed {len(parts)} folders ({counted(total, 'photo')}).")
        self.label.setToolTip(f"Removed {named}.")
        folders = ", ".join(str(f) for f, _ in self.folders)
        self.button.setToolTip(f"Add {folders} back; the photos are not indexed again")
        self.setVisible(True)
        self.timer.start()  # from the last removal

    def _undo(self) -> None:
        folders = [f for f, _ in self.folders]
        self.close_note()
        self.undo.emit(folders)

    def close_note(self) -> None:
        self.timer.stop()
        self.folders = []
        self.setVisible(False)
        self.closed.emit()


class ElidedLabel(QLabel):
    """A one-line label that ends in “…” where the window is too narrow for all of it, rather
    than pushing the window wider (or cutting words off unmarked); the whole line is its tooltip."""

    elide = Qt.TextElideMode.ElideRight

    def setText(self, text: str) -> None:  # type: ignore[override]
        super().setText(text)
        self.setToolTip(text)

    def minimumSizeHint(self) -> QSize:
        return QSize(60, super().minimumSizeHint().height())

    def paintEvent(self, _event: Any) -> None:
        area = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), self.elide, area.width())
        QPainter(self).drawText(area, int(self.alignment()), text)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} bytes"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds} s"


class DetailPanel(QWidget):
    """The selected photo, large, with its caption, facts and actions."""

    find_similar = Signal(object)
    similar_but = Signal(object)
    said = Signal(str)  # a line for the status bar

    def __init__(self, thumbnails: Thumbnailer) -> None:
        super().__init__()
        self.thumbnails = thumbnails
        self.photo: Photo | None = None
        self.picture = QLabel("Select a photo to see it here.")
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(240, 200)
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.caption.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self.caption.setFont(font)
        self.facts = QLabel()
        self.facts.setWordWrap(True)
        self.facts.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.facts.setStyleSheet("color: palette(placeholder-text);")
        # Two rows of buttons: the panel stays narrow enough for the photos to keep their room.
        buttons = QGridLayout()
        self.actions: dict[str, QPushButton] = {}
        for n, (name, slot) in enumerate(
            (
                ("Open", self._open),
                ("Reveal", self._reveal),
                ("Copy path", self._copy),
                ("Find similar", lambda: self.find_similar.emit(self.photo)),
                ("Similar, but…", lambda: self.similar_but.emit(self.photo)),
            )
        ):
            button = QPushButton(name)
            button.clicked.connect(slot)
            button.setEnabled(False)
            buttons.addWidget(button, n // 3, n % 3)
            self.actions[name] = button
        layout = QVBoxLayout(self)
        layout.addWidget(self.picture, 1)
        layout.addWidget(self.caption)
        layout.addWidget(self.facts)
        layout.addLayout(buttons)
        thumbnails.ready.connect(self._picture_ready)

    def show_photo(self, photo: Photo | None) -> None:
        self.photo = photo
        for button in self.actions.values():
            button.setEnabled(photo is not None)
        indexed = photo is not None and photo.state == "indexed" and photo.content_id is not None
        for name in ("Find similar", "Similar, but…"):
            self.actions[name].setEnabled(indexed)
            why = "This file could not be read" if photo is not None and photo.state == "failed" else "Not indexed yet"
            self.actions[name].setToolTip("" if indexed or photo is None else why)
        if photo is None:
            self.picture.setPixmap(QPixmap())
            self.picture.setText("Select a photo to see it here.")
            self.caption.clear()
            self.facts.clear()
            return
        if photo.state == "failed":
            self.caption.setText(f"Photoseek could not read this file: {photo.error}")
        else:
            self.caption.setText(photo.caption or "No caption yet: this photo is waiting to be indexed.")
        facts = [f"<b>{photo.path.name}</b>", str(photo.path.parent)]
        if photo.taken_at:
            facts.append(f"Taken {photo.taken_at.replace('T', ' ')}")
        size = human_size(photo.size)
        if photo.width and photo.height:
            size = f"{photo.width} × {photo.height} pixels, {size}"
        facts.append(size)
        self.facts.setText("<br>".join(facts))
        image = self.thumbnails.get(photo.path, photo.mtime_ns, DETAIL)
        if image is None:
            self.picture.setPixmap(QPixmap())
            self.picture.setText("Loading…")
        else:
            self._set_picture(image)

    def _picture_ready(self, path: str, size: int, image: QImage) -> None:
        if self.photo is not None and size == DETAIL and path == str(self.photo.path):
            self._set_picture(image)

    def _set_picture(self, image: QImage) -> None:
        if image.isNull():
            self.picture.setPixmap(QPixmap())
            gone = self.photo is not None and not self.photo.path.exists()  # (the reader failed just now)
            self.picture.setText(
                "This photo is not there any more\n(moved, deleted, or on a drive that is not connected)."
                if gone
                else "This photo cannot be shown."
            )
            return
        self._full = QPixmap.fromImage(image)
        self._fit()

    def _fit(self) -> None:
        full = getattr(self, "_full", None)
        if full is not None and self.photo is not None:
            self.picture.setPixmap(
                full.scaled(
                    self.picture.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
                )
            )

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._fit()

    def _open(self) -> None:
        if self.photo:
            self._open_with_desktop(self.photo.path)

    def _reveal(self) -> None:
        if self.photo:
            self._open_with_desktop(self.photo.path.parent)

    def _open_with_desktop(self, path: Path) -> None:
        """Open a photo or folder with the desktop's application for it, or say why not."""
        if not path.exists():
            self.said.emit(f"{path} is not there any more (moved, deleted, or on a drive that is not connected)")
        elif not QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
            self.said.emit(f"No application could open {path}")

    def _copy(self) -> None:
        if self.photo:
            QGuiApplication.clipboard().setText(str(self.photo.path))
            self.said.emit(f"Copied the path of {self.photo.path.name}")


def problems_of(library: Library) -> list[tuple[str, str]]:
    """Each file that could not be read and each folder that could not be looked into, with why."""
    photos = [(str(photo.path), photo.error or "unknown") for photo in library.problems()]
    return photos + [(str(path), why) for path, why in library.unreadable()]


class ProblemsDialog(QDialog):
    def __init__(self, parent: QWidget, problems: list[tuple[str, str]]) -> None:
        super().__init__(parent)
        self.setWindowTitle("Problems")
        self.resize(760, 360)
        layout = QVBoxLayout(self)
        if not problems:
            layout.addWidget(QLabel("Every photo could be read."))
        self.table = QTableWidget(len(problems), 2)
        self.table.setVisible(bool(problems))  # (an empty table with its headers said nothing)
        self.table.setHorizontalHeaderLabels(["File or folder", "Reason"])
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        for row, (path, why) in enumerate(problems):
            for column, text in enumerate((path, why)):
                item = QTableWidgetItem(text)
                item.setToolTip(text)  # (a long path or reason is cut at the column's edge)
                self.table.setItem(row, column, item)
        self.table.resizeColumnToContents(0)
        if problems:
            count = len(problems)
            heading = "This one could not be read:" if count == 1 else f"These {count} could not be read:"
            layout.addWidget(QLabel(heading))
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


class PreferencesDialog(QDialog):
    def __init__(
        self,
        parent: QWidget,
        settings: QSettings,
        current_model: str,
        default_cutoff: float,
        cutoff: float,
        reference: bool = False,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        form = QFormLayout(self)
        self.model = QComboBox()
        for manifest in installed():
            self.model.addItem(f"{manifest.name} ({manifest.id})", manifest.id)
        if current_model and self.model.findData(current_model) < 0:  # a bundle used from its folder
            self.model.addItem(f"{current_model} (in use)", current_model)
        at = self.model.findData(current_model)
        if at >= 0:
            self.model.setCurrentIndex(at)
        self.import_button = QPushButton("Import folder…")
        self.import_button.setToolTip("A model folder in the Immich CLIP or Hugging Face image-to-text layout")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Delete the selected model's files (not the one in use)")
        self.model.currentIndexChanged.connect(
            lambda _i: self.remove_button.setEnabled(self.model.currentData() != current_model)
        )
        self.remove_button.setEnabled(self.model.currentData() != current_model)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addWidget(self.import_button)
        model_row.addWidget(self.remove_button)
        form.addRow("Model", model_row)
        form.addRow("", QLabel("Switching re-indexes in the background; search uses the old model until then."))
        self.device = QComboBox()
        for label, value in (("Automatic (GPU when there is one)", "auto"), ("CPU", "cpu"), ("GPU", "gpu")):
            self.device.addItem(label, value)
        self.device.setCurrentIndex(max(0, self.device.findData(settings.value("device", "auto"))))
        form.addRow("Run models on", self.device)
        form.addRow("", QLabel("Takes effect the next time Photoseek starts."))
        self.cutoff = QDoubleSpinBox()
        self.cutoff.setRange(-1.0, 1.0)
        self.cutoff.setSingleStep(0.01)
        self.cutoff.setDecimals(2)
        self.cutoff.setValue(cutoff)
        form.addRow("Relevance cutoff", self.cutoff)
        note = f"Higher shows fewer photos, lower more (model default {default_cutoff:.2f}; -1 shows every photo)."
        if reference:
            # The model's floor for a description (docs/quality.md), moved by the chosen cutoff.
            note += "\nPhotos that score barely above an unrelated photo are not shown either."
        form.addRow("", QLabel(note))
        # Stronger pretrained models are offered, never downloaded unasked.
        self.download = QComboBox()
        have = {m.id for m in installed()}
        for entry in catalogue().values():
            if entry.name not in have:
                self.download.addItem(f"{entry.title} ({entry.name})", entry.name)
        self.download_info = QLabel()
        self.download_info.setWordWrap(True)
        # Laid out for more lines than it needs at the dialog's width: at the top, not centred
        # below a blank gap.
        self.download_info.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.download_button = QPushButton("Download")
        self.download_button.setEnabled(self.download.count() > 0)
        self.download.currentIndexChanged.connect(self._describe_download)
        self._describe_download()
        row = QHBoxLayout()
        row.addWidget(self.download, 1)
        row.addWidget(self.download_button)
        form.addRow("Better models", row)
        form.addRow("", self.download_info)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _describe_download(self) -> None:
        name = self.download.currentData()
        if not name:
            self.download_info.setText("Every known model is installed.")
            return
        entry = find(name)
        self.download_info.setText(
            f"{entry.description} {entry.license}; {', '.join(entry.languages)}. Costs: {measured_cost(name)}. "
            "Needs a network connection to the Hugging Face Hub."
        )


class MainWindow(QMainWindow):
    #: The library file turned out damaged (SQLite's message): the application offers a new one.
    library_damaged = Signal(str)

    def __init__(self, library: Library, settings: QSettings, sync: SyncTask) -> None:
        super().__init__()
        self.library = library
        self.settings = settings
        self.sync = sync
        self.setWindowTitle("Photoseek")
        self.setAcceptDrops(True)
        self.resize(1280, 820)
        self.thumbnails = Thumbnailer()
        self.model = PhotoListModel(library, self.thumbnails)
        self.searcher = Searcher(library)
        self.background = _Background()
        self._last_query = ""
        self._refreshing = ""  # a query run again because photos changed: the view keeps its place
        self._similar_to: Photo | None = None  # the photo of the last Find similar
        self._closing = False
        self.service: Any = None  # engine.service.LibraryService while folders are watched
        self._status: dict[str, Any] | None = None
        self.syncs_finished = 0  # indexing runs whose end the window has handled

        self.search = QLineEdit()
        self.search.setPlaceholderText("Describe a photo: a red car in the snow, two dogs -people   (Ctrl+F)")
        self.search.setToolTip(
            "Words describe what to find; -word or not word pushes a concept away, +word adds one, "
            "like:photo.jpg starts from a photo (like:photo.jpg -blue +red)"
        )
        self.search.setClearButtonEnabled(True)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setVisible(False)
        self.grid = QListView()
        # Letters typed on the photos start a search (Qt would jump to a file name, which is not
        # how anyone looks for a photo in a grid of them).
        self.grid.installEventFilter(self)
        self.grid.setModel(self.model)
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setIconSize(QSize(THUMB, THUMB))
        self.grid.setGridSize(QSize(THUMB + 24, THUMB + 40))
        self.grid.setUniformItemSizes(True)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setLayoutMode(QListView.LayoutMode.Batched)
        self.grid.setBatchSize(400)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setWordWrap(False)
        self.grid.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.grid.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.detail = DetailPanel(self.thumbnails)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.search)
        left_layout.addWidget(self.message)
        left_layout.addWidget(self.grid, 1)
        left.setMinimumWidth(THUMB + 60)  # one column of photos, whatever the window's size
        self.splitter = QSplitter()
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setCollapsible(0, False)  # the photos never vanish; the detail panel may
        self.setCentralWidget(self.splitter)

        self._build_toolbar()
        self._build_status_bar()

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.run_search)
        self.search.textChanged.connect(lambda _t: self._debounce.start())
        self.search.returnPressed.connect(self.run_search)
        self.searcher.results.connect(self._show_results)
        self.searcher.failed.connect(self._search_failed)
        self.grid.selectionModel().currentChanged.connect(lambda current, _prev: self._select(current.row()))
        self.grid.activated.connect(lambda index: self._open_detail(index.row()))
        self.detail.find_similar.connect(self._find_similar)
        self.detail.similar_but.connect(self._similar_but)
        self.detail.said.connect(self.status_text.setText)

        QShortcut(QKeySequence.StandardKey.Find, self, activated=self._focus_search)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self._clear_search)
        QShortcut(
            QKeySequence(Qt.Key.Key_Space),
            self.grid,
            activated=lambda: self._open_detail(self.grid.currentIndex().row()),
        )
        QShortcut(QKeySequence.StandardKey.Quit, self, activated=self.close)
        down = QShortcut(QKeySequence(Qt.Key.Key_Down), self.search, activated=self._focus_grid)
        down.setContext(Qt.ShortcutContext.WidgetShortcut)
        # Whatever replaces the grid's rows (a search, a folder removed, photos deleted), the
        # detail panel shows the grid's current photo, or none: never one that is gone.
        self.model.modelReset.connect(lambda: self._select(self.grid.currentIndex().row()))

        self._changes = _Changes()
        self._refresh = QTimer(self)
        self._refresh.setSingleShot(True)
        self._refresh.setInterval(700)
        self._refresh.timeout.connect(self._apply_changes)
        self._changes.committed.connect(lambda: self._refresh.isActive() or self._refresh.start())
        library.subscribe(lambda _changes: self._changes.committed.emit())
        self._changes.folder.connect(self._folder_state)

        # While another process writes the library (a `photoseek watch` or `index`), the window
        # shows its photos as they come, checks now and then whether it is done, and then
        # indexes and watches itself.
        self._busy_poll = QTimer(self)
        self._busy_poll.setInterval(BUSY_POLL_MS)
        self._busy_poll.timeout.connect(self._take_over_if_free)

        sync.progress.connect(self._progress)
        sync.model_progress.connect(self._model_progress)
        sync.finished.connect(self._sync_finished)

        geometry = settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        splitter = settings.value("window/splitter")
        if splitter is not None and self.splitter.restoreState(splitter) and self.splitter.sizes()[0] == 0:
            self.splitter.setSizes([3000, 2000])  # saved by a version that let the photos collapse
        else:  # the photos get most of the width (the stretch factors only share out later growth)
            self.splitter.setSizes([3000, 2000])
        self.model.show_all()
        self._update_counts()

    # -- building ---------------------------------------------------------------------------

    def _build_toolbar(self) -> None:
        bar = QToolBar("Library")
        bar.setObjectName("library-toolbar")
        bar.setMovable(False)
        self.addToolBar(bar)
        for text, slot, shortcut in (
            ("Add folder…", self.add_folder_dialog, QKeySequence.StandardKey.Open),
            ("Remove folder…", self.remove_folder_dialog, None),
            ("Refresh", self.start_sync, QKeySequence.StandardKey.Refresh),
            ("Problems", self.show_problems, None),
            ("Preferences", self.show_preferences, QKeySequence.StandardKey.Preferences),
        ):
            action = QAction(text, self)
            action.triggered.connect(slot)
            if shortcut is not None:
                action.setShortcut(shortcut)
            bar.addAction(action)
            setattr(self, "action_" + text.split()[0].lower().strip("…"), action)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.status_text = ElidedLabel("Opening the library…")
        self.progress_bar = QProgressBar()
        self.progress_bar.setMaximumWidth(220)
        self.progress_bar.setVisible(False)
        self.watch_label = QLabel()
        self.device_label = ElidedLabel("Model: loading")
        for label in (self.watch_label, self.device_label):  # apart from each other and the line
            label.setContentsMargins(12, 0, 4, 0)
        self.device_label.setMaximumWidth(300)  # (a long model name took a narrow window's line)
        self.device_label.elide = Qt.TextElideMode.ElideMiddle  # "… on CPU" stays in view
        self.removal = RemovalNote()
        self.removal.undo.connect(lambda folders: [self.add_folder(folder) for folder in folders])
        self.removal.closed.connect(lambda: self.status_text.setVisible(True))
        bar.addWidget(self.removal, 1)
        bar.addWidget(self.status_text, 1)
        bar.addPermanentWidget(self.progress_bar)
        bar.addPermanentWidget(self.watch_label)
        bar.addPermanentWidget(self.device_label)

    # -- search -----------------------------------------------------------------------------

    def _cutoff_key(self) -> str:
        """Where the relevance cutoff chosen for the library's model is kept: each model scores
        on its own scale, so a cutoff chosen for one is not carried over to another."""
        return f"cutoff/{self.library.model_name or 'builtin'}"  # known before the model loads

    def _cutoff(self) -> float | None:
        """The cutoff the person chose for this model, or None: the model's own (a chosen one
        moves the model's floors by its difference from the model's cutoff)."""
        value = self.settings.value(self._cutoff_key())
        return None if value is None else float(value)  # type: ignore[arg-type]

    def run_search(self) -> None:
        self._debounce.stop()
        text = self.search.text().strip()
        self._last_query = text
        if not text:
            self.message.setVisible(False)
            self.model.show_all()
            if not self.sync.running:
                self._update_counts()
            return
        if not self.library.model_loaded:  # a first start builds it: the answer comes when it is ready
            # Above the photos, where the model's progress in the status bar does not replace it.
            self.message.setText(f"Searching for “{text}” once the model is ready…")
            self.message.setVisible(True)
        self.searcher.search(text, self._cutoff())

    def _show_results(self, text: str, results: SearchResults) -> None:
        if text != self.search.text().strip():
            return
        refresh = self._refreshing == text
        self._refreshing = ""
        self.thumbnails.forget_pending()
        with self._keeping_place(refresh):
            self.model.show_results(results.hits)
        self._show_model_once_loaded()  # a search loads the model where indexing could not
        if results.hits:
            self.status_text.setText(_matches(len(results.hits), text))
            self.message.setVisible(False)
            if not refresh:  # new results start at the top (the view kept the last list's place)
                self.grid.scrollToTop()
                if self._similar_source() is None:  # (Find similar keeps its photo in the panel)
                    self.grid.setCurrentIndex(self.model.index(0))
        else:
            message = _sentence(results.message or "no photo matches well enough")
            self.message.setText(NO_FOLDERS if not self.library.roots() else message)  # (how to start)
            self.message.setVisible(True)
            self.status_text.setText(_matches(0, text))
            self.detail.show_photo(self._similar_source())

    def _search_failed(self, text: str, message: str) -> None:
        if text == self.search.text().strip():
            self.model.show_results([])
            self.message.setText(_sentence(message))
            self.message.setVisible(True)
            self.status_text.setText(f"Could not search for “{abbreviate(text)}”")
            self.detail.show_photo(None)

    def _focus_grid(self) -> None:
        """Down from the search field: into the results, the first one selected."""
        if self.model.rowCount() == 0:
            return
        self.grid.setFocus()
        if not self.grid.currentIndex().isValid():
            self.grid.setCurrentIndex(self.model.index(0))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.grid and event.type() == QEvent.Type.KeyPress:
            key = cast(QKeyEvent, event)
            text = key.text()
            plain = not key.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier)
            if plain and text.isprintable() and text.strip():  # (Space and Enter show the photo)
                self._type_into_search(text)
                return True
        return super().eventFilter(watched, event)

    def _type_into_search(self, text: str) -> None:
        """Letters typed on the photos: a new search, typed on in the search field."""
        self._focus_search()
        self.search.insert(text)

    def _focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _clear_search(self) -> None:
        if self.search.text():
            self.search.clear()
            self.run_search()

    def _find_similar(self, photo: Photo | None) -> None:
        if photo is not None:
            self._similar_to = photo
            self.search.setText(_like(photo))
            self.run_search()
            self.grid.setFocus()  # not the search field, where typing would replace the query

    def _similar_but(self, photo: Photo | None) -> None:
        if photo is not None:
            self.search.setText(_like(photo) + " ")
            self._debounce.stop()  # nothing to search for until the change is typed
            self.search.setFocus()
            self.search.end(False)
            self.message.setText("Now add what to change, for example: -blue +red")
            self.message.setVisible(True)

    # -- selection --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _keeping_place(self, keep: bool = True) -> Iterator[None]:
        """Rows replaced because photos changed (the watcher, an indexing run): the same photo
        stays selected and the view stays where it was, rather than jumping to the top."""
        if not keep:
            yield
            return
        photo = self.selected_photo()
        scroll = self.grid.verticalScrollBar().value()
        yield
        row = self.model.row_of(photo) if photo is not None else -1
        if row >= 0:
            selection = self.grid.selectionModel()
            selection.setCurrentIndex(self.model.index(row), QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self.grid.verticalScrollBar().setValue(scroll)
        QTimer.singleShot(0, lambda: self.grid.verticalScrollBar().setValue(scroll))  # after the layout

    def _similar_source(self) -> Photo | None:
        """While the results of Find similar show, the photo it started from."""
        source = self._similar_to
        if source is not None and self.model.searching and self._last_query == _like(source):
            return source
        return None

    def _select(self, row: int) -> None:
        # With no result picked, the results of Find similar leave the photo they started from in
        # the detail panel: its "Similar, but…" is the natural next step.
        self.detail.show_photo(self.model.photo_at(row) if row >= 0 else self._similar_source())

    def _open_detail(self, row: int) -> None:
        if row < 0:
            return
        sizes = self.splitter.sizes()
        if len(sizes) == 2 and sizes[1] == 0:
            self.splitter.setSizes([sizes[0] * 3 // 5, sizes[0] * 2 // 5])
        self._select(row)

    def selected_photo(self) -> Photo | None:
        index = self.grid.currentIndex()
        return index.data(PhotoRole) if index.isValid() else None

    # -- folders ----------------------------------------------------------------------------

    def add_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a photo folder", str(Path.home()))
        if folder:
            self.add_folder(Path(folder))

    def add_folder(self, folder: Path) -> None:
        self.status_text.setText(f"Adding {folder}…")
        known = {root.id for root in self.library.roots()}

        def added(result: object) -> None:
            if isinstance(result, InsideRootError):  # nothing to do: said, not asked about
                self._update_counts()
                self.statusBar().showMessage(f"Already in the library, inside {result.root.name}", 8000)
                return
            if isinstance(result, Exception):
                QMessageBox.warning(self, "Cannot add the folder", str(result))
                self._update_counts()
                return
            self._show_empty_hint()  # the library has a folder now
            self.start_sync()
            if isinstance(result, Root) and result.id in known:  # said over the progress for a while
                self.statusBar().showMessage(f"Already in the library: {result.path.name or result.path}", 8000)

        self.background.run(lambda: self.library.add_root(folder), added)

    def remove_folder_dialog(self) -> None:
        roots = [str(r.path) for r in self.library.roots()]
        if not roots:
            QMessageBox.information(self, "Remove a folder", "The library has no folders.")
            return
        folder = roots[0]
        if len(roots) > 1:  # with one folder, the question below names it
            folder, ok = QInputDialog.getItem(
                self, "Remove a folder", "Folder to remove from the library:", roots, 0, False
            )
            if not ok:
                return
        if confirm(
            self,
            "Remove the folder?",
            f"Remove {folder} from the library?\n\nIts photos disappear from Photoseek; the files on disk are "
            "not touched. You can add the folder again at any time.",
            "Remove",
        ):
            self.remove_folder(Path(folder))

    def remove_folder(self, folder: Path) -> None:
        self.sync.stop()
        self.stop_watching()

        def removed(result: object) -> None:
            if isinstance(result, Exception):
                QMessageBox.warning(self, "Cannot remove the folder", str(result))
                return
            if self._last_query:  # the search, again, over the photos that are left
                self._search_again()
            else:
                self.model.show_all()
                self._update_counts()
            self.start_watching()
            self.removal.add(folder, result if isinstance(result, int) else 0)
            self.status_text.setVisible(False)

        self.background.run(lambda: self.library.remove_root(folder), removed)

    def dragEnterEvent(self, event: Any) -> None:
        urls = event.mimeData().urls()
        if urls and all(u.isLocalFile() and Path(u.toLocalFile()).is_dir() for u in urls):
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:
        for url in event.mimeData().urls():
            self.add_folder(Path(url.toLocalFile()))
        event.acceptProposedAction()

    # -- indexing ---------------------------------------------------------------------------

    def start_sync(self) -> None:
        """A full pass over the folders (start, Refresh, a folder added). The watcher pauses
        meanwhile, so that only one indexing run writes at a time, and resumes afterwards."""
        self.stop_watching()
        if not self.sync.running:
            self.status_text.setText("Looking for new and changed photos…")
            self.sync.start()

    def start_watching(self) -> None:
        if self._closing or (self.service is not None and self.service.running):
            return
        try:
            self.service = self.library.watch(
                on_progress=lambda p: self.sync.progress.emit("Indexing", p.done, p.total, p.rate, p.eta_s),
                on_event=self._watch_event,
            )
        except Exception as exc:  # another process writes to the library, a folder cannot be watched
            self.service = None
            self.watch_label.setText("Not watching folders")
            self.watch_label.setToolTip(str(exc))
            if isinstance(exc, LibraryBusyError):
                self._busy_poll.start()
            return
        self._show_watching()

    def _show_watching(self) -> None:
        roots = self.library.roots()
        online = sum(r.online for r in roots)
        offline = [r.path for r in roots if not r.online]
        text = f"Watching {counted(online, 'folder')}" if online else "No folders to watch"
        if offline:
            text += f", {len(offline)} offline"
        self.watch_label.setText(text)
        self.watch_label.setToolTip(
            "Offline (a drive not connected?), their photos kept: " + ", ".join(map(str, offline))
            if offline
            else "New photos appear as they arrive"
        )

    def _watch_event(self, event: Any) -> None:
        """From the watcher's thread: a folder's coming and going, for the window's thread."""
        if event.kind in ("offline", "online"):
            for path in event.roots or ():
                self._changes.folder.emit(event.kind, str(path))

    def _folder_state(self, kind: str, path: str) -> None:
        if self._closing:
            return
        if self.service is not None:
            self._show_watching()
        name = Path(path).name or path
        if kind == "offline":
            message = f"The folder {name} is offline (a drive not connected?); its photos are kept until it is back"
        else:
            message = f"The folder {name} is back"
        self.statusBar().showMessage(message, 8000)
        if self._last_query:  # its photos leave or rejoin the results
            self._search_again()

    def stop_watching(self) -> None:
        if self.service is not None:
            self.service.stop(timeout=10.0)
            self.service = None
            self.watch_label.setText("Watching paused")
            self.watch_label.setToolTip("Watching resumes once the library is up to date")

    def _progress(self, stage: str, done: int, total: int, rate: float, eta: object) -> None:
        self.progress_bar.setVisible(total > 0 and done < total)
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)
        eta_text = duration(eta if isinstance(eta, (int, float)) else None)
        if stage.startswith("Downloading"):
            self.status_text.setText(f"{stage} {done:,} of {total:,} MB")
            return
        speed = f", {rate:.1f} photos/s, {eta_text} left" if done and rate > 0 else ""  # (none measured yet)
        self.status_text.setText(f"{stage} photos: {done:,} of {total:,}{speed}")
        if done >= total and not self.sync.running:  # the watcher's batch is done: back to the counts
            QTimer.singleShot(1000, self._show_counts_or_matches)
        # Indexing has started, so the model is ready: say which it is and where it runs now,
        # not only when the whole run (text reading included: hours for a large library) ends.
        self._show_model_once_loaded()

    def _show_counts_or_matches(self) -> None:
        if self._closing or self.sync.running:
            return
        if self.model.searching and self._last_query:
            self.status_text.setText(_matches(self.model.rowCount(), self._last_query))
        elif not self.model.searching:
            self._update_counts()

    def _show_model_once_loaded(self) -> None:
        if self._status is None and self.library.model_loaded:
            self._status = self.library.model_status()
            self._show_device()

    def _model_progress(self, message: str, fraction: float) -> None:
        self.progress_bar.setVisible(fraction < 1.0)
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(int(fraction * 100))
        self.status_text.setText(f"Preparing the built-in model (first start only): {message}")

    def _sync_finished(self, result: object) -> None:
        self.syncs_finished += 1  # (a run that fails at once may end before anyone could listen)
        if self._closing:
            return
        self.progress_bar.setVisible(False)
        if isinstance(result, Exception):
            self.status_text.setText(f"Indexing stopped: {result}")
            # Stays in view (the status line changes with every search); searching still works.
            self.watch_label.setText("Not indexing")
            self.watch_label.setToolTip(str(result))
            self._show_model_once_loaded()
            if isinstance(result, LibraryBusyError):  # take over once the other process is done
                self._busy_poll.start()
            elif is_damage(result):
                self.library_damaged.emit(str(result))
            return
        report, status = result if isinstance(result, tuple) else (result, None)
        self._status = status
        self._apply_changes()
        index = getattr(report, "index", None)
        if index is not None and index.cancelled:
            self.status_text.setText("Indexing paused.")
        else:
            self._update_counts()
            self.start_watching()
        self._show_device()

    def _search_again(self) -> None:
        """The current search once more, because photos changed: the view keeps its place."""
        self._refreshing = self._last_query
        self.searcher.search(self._last_query, self._cutoff())

    def _take_over_if_free(self) -> None:
        if self._closing or self.sync.running:
            return
        if not self.library.writer_free():
            # Meanwhile the other process's photos are shown as it commits them (the vectors
            # are read again at most every RELOAD_SECONDS).
            if self.library.reload_if_changed():
                self._apply_changes()
            return
        self._busy_poll.stop()
        self.library.reload_index()  # the other process's photos, which this one has not seen
        self.status_text.setText("The other process is done: bringing the library up to date…")
        self.start_sync()

    def _apply_changes(self) -> None:
        if self._closing:
            return
        if self.model.searching:
            if self._last_query:
                self._search_again()
        else:
            with self._keeping_place():
                self.model.refresh()
            if self.sync.running:  # (its progress has the status line meanwhile)
                self._show_empty_hint()
            else:
                self._update_counts()  # photos added or removed by the watcher

    def _update_counts(self) -> None:
        failed = len(self.library.problems())  # files that are no photo it can read: not counted as photos
        walked = [why for _, why in self.library.unreadable()]  # folders (and links) the walk could not read
        files = failed + sum(why.startswith(FILE_PROBLEM) for why in walked)
        folders = len(walked) - (files - failed)
        count = self.library.photo_count() - failed
        text = f"{count:,} photo{'s' if count != 1 else ''}"
        if files or folders:
            parts = [counted(files, "file")] if files else []
            parts += [counted(folders, "folder")] if folders else []
            text += f", {' and '.join(parts)} could not be read (see Problems)"
        self.status_text.setText(text)
        self._show_empty_hint()

    def _show_empty_hint(self) -> None:
        """How to start, while the library has no folder (and so no photo) and no search runs."""
        if self.model.searching:
            return
        empty = self.model.rowCount() == 0 and not self.library.roots()  # (photos always have a folder)
        if empty or self.message.text() == NO_FOLDERS:
            self.message.setText(NO_FOLDERS if empty else "")
            self.message.setVisible(empty)

    def _show_device(self) -> None:
        status = self._status
        if not status:
            return
        device = status["device"]
        model = status["model"]["name"]
        providers = device.get("providers") or []
        where = "GPU" if device.get("on_gpu") else "CPU"
        self.device_label.setText(f"{model} on {where}")
        self.device_label.setToolTip("ONNX Runtime providers: " + ", ".join(providers))
        if device.get("warning"):
            self.device_label.setText(f"⚠ {model} on CPU")
            self.device_label.setStyleSheet("color: #b35c00; font-weight: bold;")
            self.device_label.setToolTip(str(device["warning"]))

    # -- dialogs ----------------------------------------------------------------------------

    def show_problems(self) -> None:
        self.problems_dialog = ProblemsDialog(self, problems_of(self.library))
        self.problems_dialog.show()

    def show_preferences(self) -> None:
        current = self.library.model_name or ""
        default_cutoff = 0.2
        reference = False
        if self.library.model_loaded:
            # The bundle's id, as the model list names it (its label carries the version too).
            current = self.library.model.manifest.id
            default_cutoff = self.library.model.cutoff
            reference = self.library.model.reference is not None
        chosen_cutoff = self._cutoff()
        dialog = PreferencesDialog(
            self,
            self.settings,
            current,
            default_cutoff,
            default_cutoff if chosen_cutoff is None else chosen_cutoff,
            reference,
        )
        dialog.download_button.clicked.connect(lambda: self._pull(dialog.download.currentData(), dialog))
        dialog.import_button.clicked.connect(lambda: self._import_model(dialog))
        dialog.remove_button.clicked.connect(lambda: self._remove_model(dialog.model.currentData(), current, dialog))
        # Deleted by Qt once closed: left to Python's shutdown, a child dialog that the lambdas
        # above hold was deleted twice ("shared QObject was deleted directly"), a crash on quit.
        dialog.finished.connect(dialog.deleteLater)
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        if dialog.device.currentData() != self.settings.value("device", "auto"):
            self.settings.setValue("device", dialog.device.currentData())
        if abs(dialog.cutoff.value() - default_cutoff) < 0.005:  # the model's own: nothing chosen
            self.settings.remove(self._cutoff_key())
        else:
            self.settings.setValue(self._cutoff_key(), dialog.cutoff.value())
        chosen = dialog.model.currentData()
        if chosen and chosen != current:
            self.status_text.setText(f"Switching to {chosen}: re-indexing in the background…")
            self.background.run(lambda: self.library.use_model(chosen), lambda _r: self.start_sync())
        if self._last_query:
            self.run_search()

    def _import_model(self, dialog: QDialog) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import a model folder", str(Path.home()))
        if not folder:
            return
        from engine.models.importers import import_folder

        dialog.reject()
        self.status_text.setText(f"Importing the model in {folder}…")

        def done(result: object) -> None:
            if isinstance(result, Exception):
                QMessageBox.warning(self, "Cannot import the model", str(result))
                self.status_text.setText("The model was not imported.")
            else:
                self.status_text.setText(f"Imported {getattr(result, 'label', folder)}: choose it in Preferences.")

        self.background.run(lambda: import_folder(folder), done)

    def _remove_model(self, name: str | None, in_use: str, dialog: QDialog) -> None:
        if not name:
            return
        if name == in_use or self.library.uses_model(name):
            QMessageBox.information(dialog, "Remove a model", f"{name} is in use; choose another model first.")
            return
        if not confirm(
            dialog,
            "Remove the model?",
            f"Delete the files of {name}? Photos indexed with it keep working with the model in use; "
            "you can download or import it again later.",
            "Delete",
        ):
            return
        from engine.models import registry

        dialog.reject()
        self.background.run(
            lambda: registry.remove(name),
            lambda r: self.status_text.setText(
                f"Could not remove {name}: {r}" if isinstance(r, Exception) else f"Removed the model {name}."
            ),
        )

    def _pull(self, name: str | None, dialog: QDialog) -> None:
        """Download a catalogue model in the background, with progress in the status bar."""
        if not name:
            return
        from engine.models import hub

        dialog.reject()
        self.status_text.setText(f"Downloading {name}…")
        self.progress_bar.setVisible(True)

        def progress(p: Any) -> None:
            self.sync.progress.emit(
                f"Downloading {name}:", p.bytes_done // 1_000_000, (p.bytes_total or 0) // 1_000_000, 0.0, None
            )

        def done(result: object) -> None:
            self.progress_bar.setVisible(False)
            if isinstance(result, Exception):
                QMessageBox.warning(self, "Download failed", str(result))
                self.status_text.setText(f"{name} was not installed.")
            else:
                self.status_text.setText(f"{name} is installed: choose it in Preferences to use it.")

        self.background.run(lambda: hub.pull(find(name), progress=progress), done)

    # -- closing ----------------------------------------------------------------------------

    def closeEvent(self, event: Any) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/splitter", self.splitter.saveState())
        self._closing = True
        self._refresh.stop()
        self._debounce.stop()
        self.status_text.setText("Stopping…")
        self.sync.cancel.set()
        self.stop_watching()
        self.sync.stop(timeout=10.0)
        self.thumbnails.shutdown()
        self.searcher.pool.waitForDone(2000)
        super().closeEvent(event)

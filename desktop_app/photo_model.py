"""The list model behind the thumbnail grid: every photo of the library, or a search's results.

The library can hold 100,000 photos, so rows are read from the engine in pages when the view
asks for them (``Library.photos(offset, limit)``); a page is a quick read, never a write.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap

from desktop_app.tasks import Thumbnailer
from engine.library import Library, Photo, SearchHit

PhotoRole = Qt.ItemDataRole.UserRole + 1
ScoreRole = Qt.ItemDataRole.UserRole + 2

THUMB = 160
PAGE = 512
ICONS_KEPT = 2000  # square thumbnail icons kept, as many as the thumbnails kept in memory


def placeholder(size: int, text: str = "") -> QPixmap:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(0, 0, 0, 0))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setBrush(QColor(128, 128, 128, 60))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.drawRoundedRect(4, 4, size - 8, size - 8, 8, 8)
    if text:
        painter.setPen(QColor(120, 120, 120))
        painter.drawText(pixmap.rect(), Qt.AlignmentFlag.AlignCenter, text)
    painter.end()
    return pixmap


class PhotoListModel(QAbstractListModel):
    def __init__(self, library: Library, thumbnails: Thumbnailer) -> None:
        super().__init__()
        self.library = library
        self.thumbnails = thumbnails
        self._count = 0
        self._pages: dict[int, list[Photo]] = {}
        self._hits: list[SearchHit] | None = None  # search mode when not None
        self._row_of: dict[str, int] = {}
        self._loading = QIcon(placeholder(THUMB))
        self._broken = QIcon(placeholder(THUMB, "cannot show"))
        self._icons: dict[int, QIcon] = {}  # the square icons of thumbnails, by their image
        thumbnails.ready.connect(self._thumbnail_ready)

    # -- contents -------------------------------------------------------------------------

    @property
    def searching(self) -> bool:
        return self._hits is not None

    def show_all(self) -> None:
        self.beginResetModel()
        self._hits = None
        self._pages = {}
        self._row_of = {}
        self._count = self.library.photo_count()
        self.endResetModel()

    def show_results(self, hits: list[SearchHit]) -> None:
        self.beginResetModel()
        self._hits = list(hits)
        self._row_of = {str(h.photo.path): n for n, h in enumerate(self._hits)}
        self.endResetModel()

    def refresh(self) -> None:
        """New or changed photos: re-read the pages (the view keeps its place)."""
        if self._hits is not None:
            return
        count = self.library.photo_count()
        self._pages = {}
        if count != self._count:
            self.beginResetModel()
            self._count = count
            self.endResetModel()
        elif count:
            self.dataChanged.emit(self.index(0), self.index(count - 1))

    def row_of(self, photo: Photo) -> int:
        """The row showing ``photo`` (by id), or -1: among the results, or in the pages of the
        library read so far (the photo's place is looked for where it was last)."""
        if self._hits is not None:
            return next((n for n, h in enumerate(self._hits) if h.photo.id == photo.id), -1)
        row = self._row_of.get(str(photo.path), -1)
        if 0 <= row < self._count:
            for page in {row // PAGE, max(0, row - 1) // PAGE, min(self._count - 1, row + 1) // PAGE}:
                self.photo_at(page * PAGE)  # reads the page
        for page, photos in self._pages.items():
            for n, p in enumerate(photos):
                if p.id == photo.id:
                    return page * PAGE + n
        return -1

    def photo_at(self, row: int) -> Photo | None:
        if self._hits is not None:
            return self._hits[row].photo if 0 <= row < len(self._hits) else None
        if not 0 <= row < self._count:
            return None
        page = row // PAGE
        if page not in self._pages:
            photos = self.library.photos(offset=page * PAGE, limit=PAGE)
            self._pages[page] = photos
            for n, p in enumerate(photos):
                self._row_of[str(p.path)] = page * PAGE + n
        photos = self._pages[page]
        offset = row - page * PAGE
        return photos[offset] if offset < len(photos) else None

    # -- Qt model API -----------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid():
            return 0
        return len(self._hits) if self._hits is not None else self._count

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        photo = self.photo_at(index.row())
        if photo is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return photo.path.name
        if role == Qt.ItemDataRole.ToolTipRole:
            return photo.caption or photo.error or photo.path.name
        if role == Qt.ItemDataRole.DecorationRole:
            image = self.thumbnails.get(photo.path, photo.mtime_ns, THUMB)
            if image is None:
                return self._loading
            if image.isNull():
                return self._broken
            return self._icon(image)
        if role == PhotoRole:
            return photo
        if role == ScoreRole and self._hits is not None:
            return self._hits[index.row()].score
        if role == Qt.ItemDataRole.SizeHintRole:
            return QSize(THUMB + 16, THUMB + 36)
        return None

    def _icon(self, image: QImage) -> QIcon:
        """The thumbnail centred on a square: every item's picture takes the same place, so that
        the file names below line up in rows whatever each photo's shape."""
        key = image.cacheKey()
        icon = self._icons.get(key)
        if icon is None:
            square = QPixmap(THUMB, THUMB)
            square.fill(QColor(0, 0, 0, 0))
            painter = QPainter(square)
            painter.drawImage((THUMB - image.width()) // 2, (THUMB - image.height()) // 2, image)
            painter.end()
            icon = QIcon(square)
            if len(self._icons) >= ICONS_KEPT:
                self._icons.pop(next(iter(self._icons)))
            self._icons[key] = icon
        return icon

    def _thumbnail_ready(self, path: str, size: int, _image: QImage) -> None:
        row = self._row_of.get(path)
        if row is not None and size == THUMB:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])

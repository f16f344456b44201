"""``photoseek-desktop [FOLDER]``: open the photo library window."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from engine import paths
from engine.wording import counted

log = logging.getLogger(__name__)


def _no_display() -> bool:
    """On Linux without X11 or Wayland (and no Qt platform chosen) no window can open."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="photoseek-desktop", description="Find photos by describing them.")
    parser.add_argument("folder", nargs="?", type=Path, help="a photo folder to open (and index)")
    parser.add_argument("--db", type=Path, help="library file (default: PHOTOSEEK_DB or the user data folder)")
    parser.add_argument("--model", help="model id or bundle folder (default: the library's, else built-in)")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), help="where models run (default: preferences)")
    return parser.parse_args(argv)


def build(argv: list[str] | None = None, folders: list[Path] | None = None):  # type: ignore[no-untyped-def]
    """Create the application's objects (used by main and by the tests); returns the window.
    ``folders`` are added to the library (a new library made in place of a damaged one)."""
    from PySide6.QtCore import QSettings

    from desktop_app.tasks import SyncTask
    from desktop_app.window import MainWindow
    from engine.errors import PhotoseekError
    from engine.library import Library

    args = parse_args(argv)
    # Settings live beside the default library in the user data folder (platformdirs).
    settings = QSettings(str(paths.data_dir() / "desktop.ini"), QSettings.Format.IniFormat)
    device = args.device or str(settings.value("device", "auto"))
    holder: list[SyncTask] = []
    library = Library(
        args.db, model=args.model, device=device, on_model_progress=lambda m, f: holder[0].model_progress.emit(m, f)
    )
    for folder in folders or []:
        try:
            library.add_root(folder)
        except PhotoseekError as exc:  # gone since, or inside another one
            log.warning("folder not added to the new library: %s", exc)
    try:
        sync = SyncTask(library)
        holder.append(sync)
        window = MainWindow(library, settings, sync)
    except BaseException:
        library.close()  # a library that fails here (damaged) is not left locked and open
        raise
    if args.folder is not None:
        window.add_folder(args.folder.expanduser().resolve())
    elif not library.roots():
        # A first start shows something useful at once: the bundled sample photos.
        window.add_folder(paths.SAMPLE_PHOTOS_DIR)
    else:
        window.start_sync()
    return window


def ask_start_new(path: Path, error: str, folders: list[Path]) -> bool:
    """Ask whether to set a damaged library aside and start a new one in its place."""
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(QMessageBox.Icon.Critical, "Photoseek", f"The library file {path} is damaged ({error}).")
    named = f" with its {counted(len(folders), 'folder')}" if folders else ""
    box.setInformativeText(
        f"Your photos are not affected. Photoseek can keep the damaged file beside it, renamed, and start "
        f"a new library{named}; the photos are then indexed again."
    )
    start = box.addButton("Start a new library", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Quit", QMessageBox.ButtonRole.RejectRole)
    box.exec()
    return box.clickedButton() is start


class Session:
    """The window on the library. A library found damaged, on opening or later, is offered to
    be set aside (kept, renamed) and replaced by a new one with the folders it named."""

    def __init__(self, argv: list[str] | None = None) -> None:
        self.argv = argv
        self.window: Any = None

    def open(self) -> bool:
        """Open the window; False after saying why the library cannot be opened."""
        from PySide6.QtWidgets import QMessageBox

        from engine.errors import PhotoseekError
        from engine.library import is_damage

        try:
            self._take(build(self.argv))
        except (PhotoseekError, OSError) as exc:
            log.error("cannot open the library: %s", exc)
            QMessageBox.critical(None, "Photoseek", f"Photoseek cannot open the library.\n\n{exc}")
            return False
        except Exception as exc:
            if not is_damage(exc):
                raise
            args = parse_args(self.argv)
            return self._start_anew(args.db or paths.default_db_path(), str(exc))
        return True

    def _take(self, window: Any) -> None:
        self.window = window
        window.library_damaged.connect(self._damaged_while_open)

    def _start_anew(self, path: Path, error: str) -> bool:
        """Ask, then set the damaged library aside and open a new one with its folders."""
        from engine.library import folders_of, set_aside

        log.error("the library %s is damaged: %s", path, error)
        folders = folders_of(path)
        if not ask_start_new(path, error, folders):
            return False
        if self.window is not None:
            self.window.close()  # stops indexing and watching before the library closes
            self.window.library.close()
        kept = set_aside(path)
        log.warning("the damaged library is kept as %s; a new one is made at %s", kept, path)
        self._take(build(self.argv, folders=folders))
        return True

    def _damaged_while_open(self, error: str) -> None:
        # Declined, the window stays: what it shows can still be searched; indexing has stopped.
        if self._start_anew(self.window.library.db_path, error):
            self.window.show()


def _quit_after_first_paint(window) -> None:  # type: ignore[no-untyped-def]
    """Start-up check for packaged builds: say when the photo grid first paints, then quit."""
    from PySide6.QtCore import QEvent, QObject, QTimer

    class FirstPaint(QObject):
        seen = False

        def eventFilter(self, _obj, event):  # type: ignore[no-untyped-def]
            if event.type() == QEvent.Type.Paint and not self.seen:
                self.seen = True
                print("photoseek-desktop: first paint", file=sys.stderr, flush=True)
                QTimer.singleShot(0, window.close)  # closeEvent stops the sync first
            return False

    window._first_paint = FirstPaint(window)  # kept alive with the window
    window.grid.viewport().installEventFilter(window._first_paint)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("PHOTOSEEK_LOG", "WARNING"))
    if _no_display():
        print(
            "photoseek-desktop: no display found (DISPLAY and WAYLAND_DISPLAY are unset), so no window can open.\n"
            "Showing the command-line demo instead; start photoseek-desktop from your desktop session.",
            file=sys.stderr,
        )
        from engine.cli import main as cli_main

        return cli_main(["demo"])
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    app.setApplicationName("Photoseek")
    app.setOrganizationName("Photoseek")
    app.setDesktopFileName("photoseek")  # matches photoseek.desktop (Wayland finds the icon by it)
    icon = paths.RESOURCES_DIR / "icons" / "photoseek.svg"
    if icon.is_file():
        from PySide6.QtGui import QIcon

        app.setWindowIcon(QIcon(str(icon)))
    session = Session(argv)
    if not session.open():
        return 1
    if os.environ.get("PHOTOSEEK_QUIT_AFTER_FIRST_PAINT"):
        _quit_after_first_paint(session.window)
    session.window.show()
    code = app.exec()
    session.window.library.close()  # the last window's (a new library may have replaced the first)
    return code


if __name__ == "__main__":
    raise SystemExit(main())

"""``photoseek-desktop [FOLDER]``: open the photo library window."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from engine import paths

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


def build(argv: list[str] | None = None):  # type: ignore[no-untyped-def]
    """Create the application's objects (used by main and by the tests); returns the window."""
    from PySide6.QtCore import QSettings

    from desktop_app.tasks import SyncTask
    from desktop_app.window import MainWindow
    from engine.library import Library

    args = parse_args(argv)
    # Settings live beside the default library in the user data folder (platformdirs).
    settings = QSettings(str(paths.data_dir() / "desktop.ini"), QSettings.Format.IniFormat)
    device = args.device or str(settings.value("device", "auto"))
    holder: list[SyncTask] = []
    library = Library(
        args.db, model=args.model, device=device, on_model_progress=lambda m, f: holder[0].model_progress.emit(m, f)
    )
    sync = SyncTask(library)
    holder.append(sync)
    window = MainWindow(library, settings, sync)
    if args.folder is not None:
        window.add_folder(args.folder.expanduser().resolve())
    elif not library.roots():
        # A first start shows something useful at once: the bundled sample photos.
        window.add_folder(paths.SAMPLE_PHOTOS_DIR)
    else:
        window.start_sync()
    return window


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
    window = build(argv)
    if os.environ.get("PHOTOSEEK_QUIT_AFTER_FIRST_PAINT"):
        _quit_after_first_paint(window)
    window.show()
    code = app.exec()
    window.library.close()
    return code


if __name__ == "__main__":
    raise SystemExit(main())

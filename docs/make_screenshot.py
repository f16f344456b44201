"""Make docs/screenshot.png: the real window on the sample photos, searching, a caption shown.

    xvfb-run -a -s "-screen 0 1400x900x24" python docs/make_screenshot.py   # a real X server
    QT_QPA_PLATFORM=offscreen python docs/make_screenshot.py                # without one

The library and settings go to a temporary folder; the user's own library is not touched.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUERY = os.environ.get("PHOTOSEEK_SCREENSHOT_QUERY", "a red flower")


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="photoseek-shot-"))
    os.environ.setdefault("PHOTOSEEK_DATA_DIR", str(tmp / "data"))
    os.environ.setdefault("PHOTOSEEK_CACHE_DIR", str(tmp / "cache"))
    os.environ["XDG_CONFIG_HOME"] = str(tmp / "config")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from desktop_app.main import build

    app = QApplication([])
    window = build(["--db", str(tmp / "library.sqlite3")])
    window.resize(1360, 860)
    window.show()
    out = ROOT / "docs" / "screenshot.png"

    def synced(_result: object) -> None:
        window.search.setText(QUERY)
        window.run_search()

    def shoot() -> None:
        screen = app.primaryScreen()
        picture = screen.grabWindow(0) if os.environ.get("DISPLAY") else window.grab()
        picture.save(str(out))
        print(f"written {out}")
        app.quit()

    def results(_text: str, _results: object) -> None:
        window.grid.setCurrentIndex(window.model.index(0))
        QTimer.singleShot(3000, shoot)  # thumbnails and the large picture arrive meanwhile

    window.sync.finished.connect(synced)
    window.searcher.results.connect(results)
    QTimer.singleShot(180_000, app.quit)
    app.exec()
    window.library.close()
    return 0 if out.exists() else 1


if __name__ == "__main__":
    raise SystemExit(main())

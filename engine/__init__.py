"""Photoseek's headless core: index photo folders, search them by description, caption them.

Nothing in this package imports Qt. The public entry point is :class:`engine.library.Library`.
"""

__version__ = "0.1.0"

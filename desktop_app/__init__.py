"""Photoseek's desktop app (PySide6), on top of the engine's public API."""

"""The library database: SQLite in WAL mode, one writer, any number of readers."""

from engine.store.db import connect, open_reader
from engine.store.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "connect", "open_reader"]

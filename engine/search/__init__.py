"""Search: query parsing, the in-memory vector index, ranking."""

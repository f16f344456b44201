"""Getting photos in: walking folders, decoding safely, the indexing pipeline, watching."""

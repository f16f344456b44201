"""Training the seed models: data sets, the visual-semantic embedding, the caption decoder, export."""

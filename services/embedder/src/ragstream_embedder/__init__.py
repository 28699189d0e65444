"""The embedder: owns the embedding model and the vector index; writes chunks, answers searches."""

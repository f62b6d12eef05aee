"""The vector store (Qdrant, local or server) and the embedder that fills it and searches it."""

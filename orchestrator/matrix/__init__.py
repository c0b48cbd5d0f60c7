"""MATRIX: read a MATRIX file within bounds and validate it into a typed Matrix (pure but for the read)."""

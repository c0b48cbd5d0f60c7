"""PLAN: expand a Matrix into its ordered CELLs with stable ids, check each CELL, split into SHARDs (pure)."""

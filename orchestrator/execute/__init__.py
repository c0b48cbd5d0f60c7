"""Execute a RUN's CELLs: one pinned, locked-down container per BATCH, in ROUNDs; owner lock; resume; progress."""

"""Reports: round bookkeeping in Redis, merging node results, storing and rendering reports."""

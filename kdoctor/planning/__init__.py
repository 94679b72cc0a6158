"""Planning a round: pure decisions from a spec, an inventory snapshot and the time (no I/O)."""

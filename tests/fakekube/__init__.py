"""A fake Kubernetes API server that speaks the real wire protocol (see :mod:`.server`)."""

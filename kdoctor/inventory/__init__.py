"""Where expected nodes and targets come from: the live worker registry, a static file, or the
Kubernetes API (only ``inventory.kubernetes`` talks to it)."""

"""Where expected nodes and targets come from, behind one small interface
(:class:`~kdoctor.inventory.source.InventorySource`): the live worker registry, a static file,
or the Kubernetes API (only ``inventory.kubernetes`` talks to it)."""

"""The Kubernetes API as kdoctor's inventory: the only package that imports the official
``kubernetes`` client (an import-linter contract).

=============  =============================================================================
module         job
=============  =============================================================================
``api``        credentials (kubeconfig or the pod's service account), raw JSON requests, and
               every client error turned into one line of kdoctor's
``records``    the few fields of Nodes, Pods, Services and Ingresses kdoctor uses (pure)
``reflector``  a list-then-watch cache of one collection (resourceVersion, re-list on 410)
``reasons``    why a Node has no live worker, in the API's words (pure)
``view``       records + worker registry → the planner's InventoryView (pure)
``source``     :class:`~kdoctor.inventory.kubernetes.source.KubernetesSource`
=============  =============================================================================

**API requests at 1,000 nodes.** A coordinator lists Nodes, agent pods, the agent Service and
the agent Ingress once when it plans its first round, then keeps them by watching: 4 watch
requests, renewed every 5 to 10 minutes (about 0.6 requests a minute per coordinator, however
many nodes or rounds). A round itself costs 0 requests for NetReach, 1 GET (the DNS Service) for
a Netdns ``targetDns`` round, and for an AppHttpHealthy round that names a ConfigMap and a Secret
2 GETs per node (each worker reads them itself: 2,000 at 1,000 nodes, spread over the second
the probes are published in). Listing everything every round instead would cost 4 lists per
round, one of them of all 1,000 Nodes (10-50 MB of JSON) — per round, per coordinator.
"""

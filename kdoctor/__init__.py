"""kdoctor: active inspection of a Kubernetes data plane from every node at once."""

__version__ = "0.1.0"

"""The lab: a kdoctor cluster on one machine, with real network paths that can really break.

Each node is a Linux network namespace joined to a bridge through a veth pair, with its own IPv4
and IPv6 address and a real ``kdoctor worker``; kube-proxy's Service handling is emulated with
the kernel's NAT, an nginx in its own namespace plays the Ingress. Needs root.
"""

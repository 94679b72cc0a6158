"""Who this node is: the addresses its agent listens on and advertises, its labels, and the name
its Celery worker goes by."""

from __future__ import annotations

import ipaddress


def detect_addresses() -> list[str]:
    """Every global unicast address of this machine (IPv4 first); loopback when there is none."""
    import psutil  # only when no address is given: the worker stays smaller without it

    v4: list[str] = []
    v6: list[str] = []
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            text = addr.address.split("%", 1)[0]
            try:
                ip = ipaddress.ip_address(text)
            except ValueError:
                continue  # MAC addresses and the like
            if ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified:
                continue
            (v4 if ip.version == 4 else v6).append(str(ip))
    found = sorted(set(v4)) + sorted(set(v6))
    return found or ["127.0.0.1", "::1"]


def split_families(addresses: list[str]) -> tuple[list[str], list[str]]:
    """Addresses by family; ``ValueError`` names the first that is not an IP address."""
    v4: list[str] = []
    v6: list[str] = []
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text.strip())
        except ValueError:
            raise ValueError(f"agent address {text!r} is not an IPv4 or IPv6 address") from None
        (v4 if ip.version == 4 else v6).append(str(ip))
    return v4, v6


def parse_labels(text: str) -> dict[str, str]:
    """``"a=b,c=d"`` → ``{"a": "b", "c": "d"}``; ``ValueError`` on an item without ``=``."""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"label {item!r} must look like key=value")
        labels[key] = value
    return labels


def worker_hostname(node: str) -> str:
    """The Celery hostname of a node's worker, as Flower shows it."""
    return f"kdoctor@{node}"

"""The lab's network: namespaces, veth pairs, a bridge, kube-proxy's NAT rules, and faults.

Every rule but one pair lives inside a node's namespace (deleting the namespace deletes them);
the host gets the bridge and the host ends of the veth pairs, all named ``kdlab<net>-*``, and one
``FORWARD`` accept rule per family for traffic within the bridge, tagged with a comment: where
``br_netfilter`` is loaded (Docker hosts, CI runners) bridged frames pass the host's ``FORWARD``
chain, whose policy there is often DROP.

Service emulation, in each node namespace (iptables and ip6tables, nft backend):

* ``nat OUTPUT``: ClusterIP and LoadBalancer address → chain ``KDLAB-SVC``, which DNATs new
  connections round-robin (``statistic --mode nth``) to every agent, as kube-proxy spreads them;
* ``nat PREROUTING``/``OUTPUT``: the NodePort on the node's own addresses → its own agent
  (``externalTrafficPolicy: Local``, so a NodePort result blames the node it names);
* ``filter INPUT``/``OUTPUT`` on ``eth0`` → chain ``KDLAB-FAULT``, empty until a fault is set;
* ``--slow``: an htb qdisc on ``eth0`` (this kernel has no ``netem``, so no fixed delay).
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence

from kdoctor.errors import SetupError
from kdoctor.lab.config import AGENT_PORT, NODE_PORT, SERVICE_PORT, LabConfig, Node

FAULT_CHAIN = "KDLAB-FAULT"
SERVICE_CHAIN = "KDLAB-SVC"
IFACE = "eth0"


def sh(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command (in namespace ``ns``); :class:`SetupError` with its stderr when it fails."""
    cmd = ["ip", "netns", "exec", ns, *args] if ns else list(args)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise SetupError(f"`{' '.join(cmd)}` failed: {done.stderr.strip() or done.stdout.strip()}")
    return done


def namespaces(prefix: str) -> list[str]:
    """Existing namespaces named ``<prefix>-*``."""
    out = sh("ip", "netns", "list").stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix + "-")]


def links(link_prefix: str) -> list[str]:
    """Existing host links whose name starts with ``link_prefix``."""
    out = sh("ip", "-o", "link", "show").stdout
    found = []
    for line in out.splitlines():
        name = line.split(":", 2)[1].strip().split("@", 1)[0]
        if name.startswith(link_prefix):
            found.append(name)
    return found


def _tag(config: LabConfig) -> str:
    return f"kdoctor-lab:{config.bridge}"


def make_bridge(config: LabConfig) -> None:
    for tool in ("iptables", "ip6tables"):
        sh(tool, "-I", "FORWARD", "-i", config.bridge, "-o", config.bridge, "-m", "comment", "--comment",
           _tag(config), "-j", "ACCEPT")
    sh("ip", "link", "add", config.bridge, "type", "bridge")
    sh("ip", "addr", "add", f"{config.bridge_v4}/24", "dev", config.bridge)
    sh("ip", "addr", "add", f"{config.bridge_v6}/64", "dev", config.bridge, "nodad")
    sh("ip", "link", "set", config.bridge, "up")


def make_namespace(config: LabConfig, ns: str, host_link: str, v4: str, v6: str) -> None:
    """A namespace with ``eth0`` on the bridge, its addresses and default routes via the host."""
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", host_link, "type", "veth", "peer", "name", IFACE, "netns", ns)
    sh("ip", "link", "set", host_link, "master", config.bridge)
    sh("ip", "link", "set", host_link, "up")
    sh("ip", "link", "set", "lo", "up", ns=ns)
    address_and_routes(config, ns, v4, v6)


def address_and_routes(config: LabConfig, ns: str, v4: str, v6: str) -> None:
    """(Re)configure ``eth0``: a link set down loses its IPv6 address and routes, so a cleared
    ``--down`` fault goes through here again; existing entries are left alone."""
    sh("sysctl", "-q", "-w", f"net.ipv6.conf.{IFACE}.keep_addr_on_down=1", ns=ns, check=False)
    for cmd in (("ip", "addr", "add", f"{v4}/24", "dev", IFACE),
                ("ip", "addr", "add", f"{v6}/64", "dev", IFACE, "nodad"),
                ("ip", "link", "set", IFACE, "up"),
                ("ip", "route", "add", "default", "via", config.bridge_v4),
                ("ip", "-6", "route", "add", "default", "via", config.bridge_v6)):
        done = sh(*cmd, ns=ns, check=False)
        if done.returncode != 0 and "exists" not in done.stderr and "already assigned" not in done.stderr:
            raise SetupError(f"`{' '.join(cmd)}` in {ns} failed: {done.stderr.strip()}")


def _tables(address: str) -> str:
    return "ip6tables" if ":" in address else "iptables"


def _dest(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def kube_proxy(config: LabConfig, node: Node, nodes: Sequence[Node]) -> None:
    """Install the Service and fault chains in ``node``'s namespace (see the module docstring)."""
    ns = node.namespace
    for tool, own, agents, virtual in (
        ("iptables", node.v4, [n.v4 for n in nodes], [a for a in config.cluster_ip + config.load_balancer
                                                        if ":" not in a]),
        ("ip6tables", node.v6, [n.v6 for n in nodes], [a for a in config.cluster_ip + config.load_balancer
                                                         if ":" in a]),
    ):
        sh(tool, "-t", "nat", "-N", SERVICE_CHAIN, ns=ns)
        count = len(agents)
        for index, agent in enumerate(agents):
            # Rule k sees the connections rules 0..k-1 left; taking every (count-k)-th of them
            # gives each agent the same share, round-robin.
            spread = (["-m", "statistic", "--mode", "nth", "--every", str(count - index), "--packet", "0"]
                      if index < count - 1 else [])
            sh(tool, "-t", "nat", "-A", SERVICE_CHAIN, "-p", "tcp", *spread,
               "-j", "DNAT", "--to-destination", _dest(agent, AGENT_PORT), ns=ns)
        for address in virtual:
            sh(tool, "-t", "nat", "-A", "OUTPUT", "-d", address, "-p", "tcp", "--dport", str(SERVICE_PORT),
               "-j", SERVICE_CHAIN, ns=ns)
        for chain in ("PREROUTING", "OUTPUT"):
            sh(tool, "-t", "nat", "-A", chain, "-d", own, "-p", "tcp", "--dport", str(NODE_PORT),
               "-j", "DNAT", "--to-destination", _dest(own, AGENT_PORT), ns=ns)
        sh(tool, "-N", FAULT_CHAIN, ns=ns)
        sh(tool, "-A", "INPUT", "-i", IFACE, "-j", FAULT_CHAIN, ns=ns)
        sh(tool, "-A", "OUTPUT", "-o", IFACE, "-j", FAULT_CHAIN, ns=ns)


def _exempt(config: LabConfig, ns: str) -> None:
    """Broker traffic (to and from the host's bridge address) and IPv6 neighbour discovery are
    never dropped: a lossy data plane must still be able to report what it measured."""
    for tool, host in (("iptables", config.bridge_v4), ("ip6tables", config.bridge_v6)):
        sh(tool, "-A", FAULT_CHAIN, "-s", host, "-j", "RETURN", ns=ns)
        sh(tool, "-A", FAULT_CHAIN, "-d", host, "-j", "RETURN", ns=ns)
    sh("ip6tables", "-A", FAULT_CHAIN, "-p", "ipv6-icmp", "-j", "RETURN", ns=ns)


def add_loss(config: LabConfig, node: Node, fraction: float) -> None:
    """Drop ``fraction`` of the node's packets, both directions, at random."""
    if not has_rules(node):
        _exempt(config, node.namespace)
    for tool in ("iptables", "ip6tables"):
        sh(tool, "-A", FAULT_CHAIN, "-m", "statistic", "--mode", "random", "--probability",
           f"{fraction:.4f}", "-j", "DROP", ns=node.namespace)


def add_drop(config: LabConfig, source: Node, destination: Node) -> None:
    """Refuse every new connection from ``source`` to ``destination`` (one way: connections the
    other way and their answers still pass)."""
    if not has_rules(source):
        _exempt(config, source.namespace)
    for address in (destination.v4, destination.v6):
        sh(_tables(address), "-A", FAULT_CHAIN, "-d", address, "-m", "conntrack", "--ctstate", "NEW",
           "-j", "DROP", ns=source.namespace)


def add_no_service(config: LabConfig, node: Node) -> None:
    """Break the node's Service path, as a kube-proxy that lost its rules would: new connections
    from it to the ClusterIP and LoadBalancer addresses are dropped (matched on the address before
    DNAT, so the same agents stay reachable directly and through the NodePort)."""
    if not has_rules(node):
        _exempt(config, node.namespace)
    for address in config.cluster_ip + config.load_balancer:
        sh(_tables(address), "-A", FAULT_CHAIN, "-m", "conntrack", "--ctstate", "NEW", "--ctorigdst", address,
           "-j", "DROP", ns=node.namespace)


def set_slow(config: LabConfig, node: Node, rate: str) -> None:
    """Rate-limit what the node sends (htb): under load its queue builds and latency grows.

    Traffic to the broker goes to an unlimited class, so the node still gets its work and its
    result out on time (a throttled result would turn a slow node into a ``timeout``).
    """
    ns = node.namespace
    sh("tc", "qdisc", "replace", "dev", IFACE, "root", "handle", "1:", "htb", "default", "20", ns=ns)
    sh("tc", "class", "replace", "dev", IFACE, "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit", ns=ns)
    sh("tc", "class", "replace", "dev", IFACE, "parent", "1:", "classid", "1:20", "htb", "rate", rate,
       "ceil", rate, "burst", "1600", "cburst", "1600", ns=ns)
    sh("tc", "filter", "replace", "dev", IFACE, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
       "match", "ip", "dst", f"{config.bridge_v4}/32", "flowid", "1:10", ns=ns)
    sh("tc", "filter", "replace", "dev", IFACE, "parent", "1:", "protocol", "ipv6", "prio", "2", "u32",
       "match", "ip6", "dst", f"{config.bridge_v6}/128", "flowid", "1:10", ns=ns)


def set_down(node: Node) -> None:
    """Unplug the node: its link goes down (its worker loses the broker too)."""
    sh("ip", "link", "set", IFACE, "down", ns=node.namespace)


def has_rules(node: Node) -> bool:
    out = sh("iptables", "-S", FAULT_CHAIN, ns=node.namespace).stdout
    return any(line.startswith("-A") for line in out.splitlines())


def clear(config: LabConfig, node: Node) -> None:
    """Remove every fault from ``node``."""
    for tool in ("iptables", "ip6tables"):
        sh(tool, "-F", FAULT_CHAIN, ns=node.namespace)
    sh("tc", "qdisc", "del", "dev", IFACE, "root", ns=node.namespace, check=False)
    address_and_routes(config, node.namespace, node.v4, node.v6)


def host_rules(config: LabConfig) -> list[tuple[str, str]]:
    """The lab's rules in the host's ``FORWARD`` chains, as (tool, ``-S`` line)."""
    found = []
    for tool in ("iptables", "ip6tables"):
        for line in sh(tool, "-S", "FORWARD", check=False).stdout.splitlines():
            if line.startswith("-A ") and _tag(config) in line:
                found.append((tool, line))
    return found


def remove(config: LabConfig) -> list[str]:
    """Delete the lab's namespaces (their rules go with them), host links and host rules;
    returns what went."""
    gone = []
    for tool, line in host_rules(config):
        sh(tool, "-D", *shlex.split(line)[1:], check=False)
        gone.append(f"{tool} rule {line}")
    for ns in namespaces(config.prefix):
        sh("ip", "netns", "del", ns, check=False)
        gone.append(f"namespace {ns}")
    for link in links(config.link_prefix):
        sh("ip", "link", "del", link, check=False)
        gone.append(f"link {link}")
    return gone

"""Who is to blame for a round's bad results. Pure: no I/O.

The matrix cells (:mod:`kdoctor.reports.matrix`) are read off the diagonal:

* a node whose row (what it sends) and column (what it receives) are both mostly bad is a broken
  ``node``; only its row: a broken ``source``; only its column: a broken ``destination``;
* a bad cell that no such node explains is a broken ``pair``.

"Mostly" is more than half of at least two probed cells not already explained by a node named
before, so a single bad pair never blames a whole node, and a broken node's bad cells in other
rows and columns are explained by it.

Paths that name no destination node (``clusterIP``, ``loadBalancer``, ``ingress``, and the URL of
an AppHttpHealthy or the server of a Netdns) are judged across sources: a path that fails from
most sources is a broken ``service`` (the Service, its NAT rules, the Ingress, the application or
the DNS server, not a node); one that fails from only a few sources blames those ``source`` nodes
(their kube-proxy, route or resolver path), unless the matrix already named them.

**Node statuses follow the blame** (:func:`blamed_statuses`), since the status column is what
people and alerts read:

=======================================  ==========================================================
the round found                          statuses
=======================================  ==========================================================
a broken ``node`` (row and column bad)   that node ``failed``, with the blame as its reason, even if
or ``destination`` (column bad)          everything it sent passed (its agent or inbound path broke)
a broken ``source``                      that node ``failed`` (its own row is bad)
a broken ``pair`` a → b                  a ``failed`` (the failed target is its), b unaffected
a broken ``service``                     no node: the round fails on the suspect line
a source whose every failed target went  ``passed``, with a note: ``2 targets failed, all to suspect
to a suspect node or service             node-c``; a failure anywhere else keeps it ``failed``
=======================================  ==========================================================
"""

from __future__ import annotations

from collections import defaultdict

from kdoctor.specs.mesh import node_order
from kdoctor.specs.results import MatrixCell, NodeDigest, NodeStatus, Suspect


def describe(suspect: Suspect) -> str:
    """One line naming a suspect, e.g. ``suspect node node-3: 3/3 pairs from it bad; ...``."""
    what = {"pair": f"{suspect.source} → {suspect.destination}", "service": suspect.target}.get(
        suspect.kind, suspect.node)
    return f"suspect {suspect.kind} {what}: {suspect.reason}"


def _mostly_bad(cells: list[MatrixCell]) -> bool:
    bad = sum(c.bad for c in cells)
    return len(cells) >= 2 and 2 * bad > len(cells)


def suspects(cells: list[MatrixCell]) -> list[Suspect]:
    """Nodes and pairs the bad cells point at (see the module docstring).

    Greedy: the node whose mostly-bad row and/or column hold the most bad cells is named first
    and its cells count as explained; rows and columns are then judged on what is left, so one
    broken destination does not make every source that probes it look half broken.
    """
    off = [c for c in cells if c.source != c.destination]
    rows: dict[str, list[MatrixCell]] = defaultdict(list)
    cols: dict[str, list[MatrixCell]] = defaultdict(list)
    for cell in off:
        rows[cell.source].append(cell)
        cols[cell.destination].append(cell)
    explained: set[tuple[str, str]] = set()
    found: list[Suspect] = []
    named: set[str] = set()

    def left(cells: list[MatrixCell]) -> list[MatrixCell]:
        return [c for c in cells if (c.source, c.destination) not in explained]

    while True:
        best: tuple[int, str, bool, bool] | None = None
        # Only a node touching an unexplained bad cell can score (a 1,000-node round has 10,000+
        # cells, almost all good): its row and column come from the index, not a scan.
        touched = {n for c in off if c.bad and (c.source, c.destination) not in explained
                   for n in (c.source, c.destination)}
        for node in sorted(touched - named):
            row, col = left(rows[node]), left(cols[node])
            row_bad, col_bad = _mostly_bad(row), _mostly_bad(col)
            score = sum(c.bad for c in row) * row_bad + sum(c.bad for c in col) * col_bad
            if score and (best is None or score > best[0]):
                best = (score, node, row_bad, col_bad)
        if best is None:
            break
        _, node, row_bad, col_bad = best
        named.add(node)
        row, col = rows[node], cols[node]
        out = f"{sum(c.bad for c in row)}/{len(row)} pairs from it bad"
        into = f"{sum(c.bad for c in col)}/{len(col)} pairs to it bad"
        if row_bad and col_bad:
            found.append(Suspect(kind="node", node=node, reason=f"{out}; {into}"))
        elif row_bad:
            found.append(Suspect(kind="source", node=node, reason=out))
        else:
            found.append(Suspect(kind="destination", node=node, reason=into))
        explained |= {(c.source, c.destination) for c in (row if row_bad else []) + (col if col_bad else [])}
    for cell in off:
        if cell.bad and (cell.source, cell.destination) not in explained:
            rate = "-" if cell.success_rate is None else f"{cell.success_rate:.2%}"
            found.append(Suspect(
                kind="pair", source=cell.source, destination=cell.destination,
                reason=f"{cell.failed_targets}/{cell.targets} targets failed, success {rate}"))
    return found


def path_suspects(paths: dict[str, dict[str, bool]], named: list[Suspect]) -> list[Suspect]:
    """Suspects from the Service paths: ``paths`` maps a path to each source and whether it failed."""
    blamed = {s.node for s in named if s.kind in ("node", "source")}
    found: list[Suspect] = []
    by_source: dict[str, list[str]] = defaultdict(list)
    for path, sources in sorted(paths.items()):
        bad = sorted((s for s, failed in sources.items() if failed), key=node_order)
        if not bad or len(sources) < 2:  # one source alone cannot tell its path from the Service
            continue
        if len(sources) >= 2 and 2 * len(bad) > len(sources):
            found.append(Suspect(kind="service", target=path,
                                 reason=f"fails from {len(bad)}/{len(sources)} sources"))
            continue
        for source in bad:
            if source not in blamed:
                by_source[source].append(f"{path} fails from it ({len(bad)}/{len(sources)} sources)")
    found += [Suspect(kind="source", node=source, reason="; ".join(why))
              for source, why in sorted(by_source.items(), key=lambda item: node_order(item[0]))]
    return found


def blamed_statuses(digests: dict[str, NodeDigest], found: list[Suspect]) -> dict[str, tuple[NodeStatus, str]]:
    """The nodes whose status the blame changes, with their new status and reason (see the module
    docstring's table)."""
    changed: dict[str, tuple[NodeStatus, str]] = {}
    broken_nodes = {s.node: s for s in found if s.kind in ("node", "destination") and s.node}
    broken_paths = {s.target for s in found if s.kind == "service" and s.target}
    for name, suspect in broken_nodes.items():
        digest = digests.get(name)
        if digest is not None and digest.status == "passed":
            changed[name] = ("failed", describe(suspect))
    for name, digest in digests.items():
        if digest.status != "failed" or name in broken_nodes:
            continue
        to_nodes = [c for c in digest.cells if c.failed]
        to_paths = [path for path, bad in digest.paths.items() if bad]
        if not to_nodes and not to_paths:
            continue  # failed for a reason of its own (unsent requests, a profile...): not ours to excuse
        if all(c.destination in broken_nodes for c in to_nodes) and all(p in broken_paths for p in to_paths):
            count = sum(c.failed for c in to_nodes) + len(to_paths)
            blamed = sorted({c.destination for c in to_nodes}, key=node_order)
            whom = [f"suspect node {n}" for n in blamed] + [f"suspect service {p}" for p in sorted(set(to_paths))]
            changed[name] = ("passed", f"{count} target(s) failed, all to {', '.join(whom)}")
    return changed

"""``kdoctor lab``: the click group (needs root). Its modules are imported when a lab command
runs, so the group costs every other ``kdoctor`` command nothing."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from kdoctor.lab.config import LabConfig
    from kdoctor.lab.lab import LabState
    from kdoctor.settings import Settings

MAX_NODES = 200  # as kdoctor.lab.config.MAX_NODES (node addresses 10.213.NET.11-210)


def _percent(text: str) -> float:
    value = float(text.strip().rstrip("%"))
    if not 0 < value <= 100:
        raise click.BadParameter(f"loss must be between 0 and 100 %; got {text!r}")
    return value / 100


@click.group()
@click.option("--prefix", default="kdoctor-lab", show_default=True,
              help="Name prefix of the lab's namespaces (and its state directory).")
@click.option("--net", "net_index", type=click.IntRange(0, 255), default=0, show_default=True,
              help="Subnet index: 10.213.NET.0/24, fd6b:6c61:NET::/64, links kdlabNET-*.")
@click.pass_context
def lab(ctx: click.Context, prefix: str, net_index: int) -> None:
    """A kdoctor cluster on this machine: N namespaces, real paths, real faults (root)."""
    from kdoctor.lab.config import LabConfig

    settings: Settings = ctx.obj
    ctx.meta["kdoctor.settings"] = settings
    ctx.obj = LabConfig(prefix=prefix, net=net_index, lab_dir=settings.lab_dir)


def _config(ctx: click.Context) -> LabConfig:
    config: LabConfig = ctx.obj
    return config


def _state(ctx: click.Context) -> LabState:
    from kdoctor.lab import lab as lab_mod

    state = lab_mod.load_state(_config(ctx))
    if state is None:
        raise click.UsageError(f"no lab {_config(ctx).prefix!r} is up: `kdoctor lab up` first")
    return state


@lab.command()
@click.option("--nodes", type=click.IntRange(1, MAX_NODES), default=4, show_default=True)
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for workers.")
@click.pass_context
def up(ctx: click.Context, nodes: int, timeout: float) -> None:
    """Build the lab: namespaces, bridge, Service NAT, Redis, nginx, workers, coordinator."""
    from kdoctor.lab import lab as lab_mod

    config = _config(ctx).model_copy(update={"nodes": nodes})
    state = lab_mod.up(config, ctx.meta["kdoctor.settings"], timeout=timeout,
                       say=lambda text: click.echo(f"lab: {text}", err=True))
    click.echo(f"lab {config.prefix} is up with {nodes} node(s)")
    for line in lab_mod.env_lines(state):
        click.echo(line)


@lab.command()
@click.pass_context
def down(ctx: click.Context) -> None:
    """Remove every namespace, link, rule and process of the lab (also after a crash)."""
    from kdoctor.lab import lab as lab_mod

    gone = lab_mod.down(_config(ctx))
    click.echo("removed: " + (", ".join(gone) if gone else "nothing (no lab)"))


@lab.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show what of the lab exists and runs, and the faults set (JSON)."""
    from kdoctor.lab import lab as lab_mod

    click.echo(json.dumps(lab_mod.status(_config(ctx)), indent=2))


@lab.command()
@click.pass_context
def env(ctx: click.Context) -> None:
    """Print shell exports that point kdoctor at the lab (eval "$(kdoctor lab env)")."""
    from kdoctor.lab import lab as lab_mod

    for line in lab_mod.env_lines(_state(ctx)):
        click.echo(line)


@lab.command()
@click.argument("node", required=False)
@click.option("--loss", default=None, metavar="PERCENT", help="Drop this share of the node's packets, e.g. 30%.")
@click.option("--slow", default=None, metavar="RATE", is_flag=False, flag_value="64kbit",
              help="Rate-limit what the node sends (htb), e.g. 64kbit [flag alone: 64kbit].")
@click.option("--down", "down_", is_flag=True, help="Take the node's link down.")
@click.option("--drop-from", "drop_from", default=None, metavar="NODE",
              help="With --to: refuse new connections from this node to the --to node (one way).")
@click.option("--to", "drop_to", default=None, metavar="NODE")
@click.option("--no-service", "no_service", is_flag=True,
              help="Break the node's Service path (ClusterIP, LoadBalancer), as a broken kube-proxy would.")
@click.option("--clear", is_flag=True, help="Remove the faults of NODE (of every node without NODE).")
@click.pass_context
def fault(ctx: click.Context, node: str | None, loss: str | None, slow: str | None, down_: bool,
          drop_from: str | None, drop_to: str | None, no_service: bool, clear: bool) -> None:
    """Break (or mend) a node: `lab fault node-2 --loss 30%`, `lab fault --drop-from node-1 --to node-2`."""
    from kdoctor.lab import lab as lab_mod

    state = _state(ctx)
    if (drop_from is None) != (drop_to is None):
        raise click.UsageError("--drop-from and --to go together")
    if drop_from is not None:
        if node is not None and node != drop_from:
            raise click.UsageError("give the source node either as NODE or as --drop-from, not both")
        node = drop_from
    if not clear and node is None:
        raise click.UsageError("name a NODE to break, or --clear")
    try:
        changes = lab_mod.fault(state, node, loss=_percent(loss) if loss else None, slow=slow, down_=down_,
                                drop_to=drop_to, no_service=no_service, clear=clear)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    for change in changes:
        click.echo(change)

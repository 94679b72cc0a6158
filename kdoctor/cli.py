"""The ``kdoctor`` command line.

Exit codes: 0 success (for ``run --wait``: the round passed), 1 the round failed, 2 a usage,
spec or connection error. Every option also reads its ``KDOCTOR_*`` environment variable.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from typing import TYPE_CHECKING, Any

import click

from kdoctor import __version__
from kdoctor.errors import KdoctorError, SpecError
from kdoctor.settings import Settings

if TYPE_CHECKING:
    from rich.console import Console



@functools.cache
def err_console() -> Console:
    """Standard error. Errors are one line each, however wide the terminal (or log) is."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


@functools.cache
def out_console() -> Console:
    """Standard output; piped output (CI logs, files) gets a wide fixed width so tables do not wrap.

    rich is imported when something is printed, not by every command (a node's worker prints
    nothing and stays smaller without it)."""
    from rich.console import Console

    return Console() if Console().is_terminal else Console(width=160)

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--broker", envvar="KDOCTOR_BROKER_URL", metavar="URL",
              help="Redis URL [env KDOCTOR_BROKER_URL; default redis://127.0.0.1:6379/0].")
@click.option("--log-level", envvar="KDOCTOR_LOG_LEVEL", metavar="LEVEL",
              help="DEBUG, INFO, WARNING (default) or ERROR.")
@click.option("--context", envvar="KDOCTOR_KUBERNETES_CONTEXT", metavar="NAME",
              help="Kubeconfig context of the kubernetes inventory [env KDOCTOR_KUBERNETES_CONTEXT].")
@click.version_option(__version__, prog_name="kdoctor")
@click.pass_context
def cli(ctx: click.Context, broker: str | None, log_level: str | None, context: str | None) -> None:
    """kdoctor: inspect a Kubernetes data plane from every node at once."""
    try:
        ctx.obj = Settings.from_env(broker_url=broker, log_level=log_level.upper() if log_level else None,
                                    kubernetes_context=context)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    logging.basicConfig(level=ctx.obj.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@cli.command()
@click.option("--node", envvar="KDOCTOR_NODE_NAME", required=True,
              help="This node's name (Kubernetes: spec.nodeName) [env KDOCTOR_NODE_NAME].")
@click.option("--agent-port", envvar="KDOCTOR_AGENT_PORT", type=int, default=None,
              help="Agent server port; 0 picks a free one [default 5710].")
@click.option("--agent-address", "addresses", multiple=True, metavar="ADDR",
              help="Address to listen on and advertise; repeat for IPv4 and IPv6 [default: every "
                   "global address, env KDOCTOR_AGENT_ADDRESSES].")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Node label; repeatable.")
@click.option("--node-address", "node_addresses", multiple=True, metavar="ADDR",
              help="The node's own address, where NodePorts listen; repeatable [env KDOCTOR_NODE_ADDRESSES; "
                   "default: the agent addresses].")
@click.option("--concurrency", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Probes that may run at once on this node (each in its own process). One keeps "
                   "rounds from measuring each other; the coordinator queues rounds for busy nodes.")
@click.option("--data-dir", envvar="KDOCTOR_DATA_DIR", metavar="DIR", default=None,
              help="The only directory DiskIO may write under [env KDOCTOR_DATA_DIR; default /var/lib/kdoctor].")
@click.pass_context
def worker(ctx: click.Context, node: str, agent_port: int | None, addresses: tuple[str, ...],
           labels: tuple[str, ...], node_addresses: tuple[str, ...], concurrency: int, data_dir: str | None) -> None:
    """Run a node's worker: probes from this node plus the agent other nodes probe."""
    import dataclasses

    from kdoctor.workers import identity
    from kdoctor.workers.node import WorkerOptions, run_worker

    settings = _settings(ctx)
    if data_dir:
        settings = dataclasses.replace(settings, data_dir=data_dir)
    addrs = list(addresses) or [a for a in settings.agent_addresses.split(",") if a.strip()]
    try:
        label_map = identity.parse_labels(",".join([settings.node_labels, *labels]))
        identity.split_families(addrs)
        own = list(node_addresses) or [a.strip() for a in settings.node_addresses.split(",") if a.strip()]
        identity.split_families(own)
        options = WorkerOptions(node=node, agent_port=settings.agent_port if agent_port is None else agent_port,
                                addresses=addrs, labels=label_map, concurrency=concurrency, node_addresses=own)
        from kdoctor.store.keys import check_node_name

        check_node_name(node)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    sys.exit(run_worker(settings, options))


def _inventory(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``kubernetes``, ``registry`` or the path of a static file that exists."""
    if value and value not in ("kubernetes", "registry"):
        from pathlib import Path

        if not Path(value).is_file():
            raise click.BadParameter(f"{value!r} is neither 'kubernetes', 'registry' nor an inventory file", ctx, param)
    return value


_inventory_option = click.option(
    "--inventory", envvar="KDOCTOR_INVENTORY", default=None, callback=_inventory, metavar="kubernetes|registry|FILE",
    help="Where expected nodes and targets come from: the Kubernetes API, the worker registry, or a static "
         "inventory YAML [env KDOCTOR_INVENTORY; default: kubernetes inside a pod, else registry].")


def _with_inventory(ctx: click.Context, inventory: str | None) -> Settings:
    import dataclasses

    settings = _settings(ctx)
    return dataclasses.replace(settings, inventory=inventory) if inventory else settings


@cli.command()
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Plan/finalize tasks handled at once.")
@_inventory_option
@click.pass_context
def coordinator(ctx: click.Context, concurrency: int, inventory: str | None) -> None:
    """Run the coordinator: plans rounds, enforces deadlines, writes reports."""
    from kdoctor.inventory.source import check_setup
    from kdoctor.workers.coordinator import run_coordinator

    settings = _with_inventory(ctx, inventory)
    check_setup(settings)  # refuse a bad file or missing credentials now rather than fail every round
    sys.exit(run_coordinator(settings, concurrency))


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@_inventory_option
@click.pass_context
def validate(ctx: click.Context, spec: str, inventory: str | None) -> None:
    """Check a spec file; print what is wrong with it (exit 2) or a summary (exit 0), and the
    kdoctor fields it sets that are accepted but not acted on."""
    from kdoctor.inventory.source import kind_of
    from kdoctor.specs import compat, load_spec

    model = load_spec(spec)
    click.echo(f"{spec}: valid {model.kind} {model.name!r}")
    for note in compat.ignored(model, kind_of(_with_inventory(ctx, inventory))):
        err_console().print(f"warning: {note}", highlight=False)


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--wait", is_flag=True, help="Wait for the report; exit 0 passed, 1 failed.")
@click.option("-o", "--output", type=click.Choice(["table", "json", "html"]), default="table", show_default=True,
              help="html: one self-contained page (with --wait), e.g. `> report.html`.")
@click.option("--timeout", type=float, default=None,
              help="Give up waiting after this many seconds [default: the round's own deadline].")
@_inventory_option
@click.pass_context
def run(ctx: click.Context, spec: str, wait: bool, output: str, timeout: float | None, inventory: str | None) -> None:
    """Submit one round of SPEC now (ConfigMaps, Secrets and DNS Services it names are checked
    against the kubernetes inventory first)."""
    from kdoctor.api import Client

    with Client(settings=_with_inventory(ctx, inventory)) as client:
        job = client.submit(spec, source="cli")
        if not wait:
            if output == "json":
                click.echo(json.dumps({"job": job.id, "report": job.round_id}))
            else:
                click.echo(f"submitted job {job.id}; report id {job.round_id}\n"
                           f"  kdoctor report {job.round_id}")
            return
        try:
            report = _wait_with_progress(job, timeout)
        except KeyboardInterrupt:
            # Only the waiting stops: the round is published and runs to its report.
            err_console().print(f"interrupted: round {job.round_id} keeps running; its report will be at "
                                f"`kdoctor report {job.round_id}`", highlight=False)
            sys.exit(130)
        _print_report(report, output)
        sys.exit(EXIT_PASSED if report.verdict == "passed" else EXIT_FAILED)


def _wait_with_progress(job: Any, timeout: float | None) -> Any:
    if not err_console().is_terminal:
        return job.wait(timeout)
    with err_console().status(f"waiting for {job.round_id}") as status:
        def show(progress: Any) -> None:
            if progress.phase == "queued":
                text = "queued, waiting for the coordinator to plan it"
            elif progress.phase == "waiting":
                text = f"{progress.published} node(s) start in {progress.start_at - progress.now:.1f} s"
            else:
                left = max(0.0, progress.deadline - progress.now)
                sent = f"{progress.sent:,} requests sent, " if progress.sent else ""
                text = (f"{progress.phase}: {sent}{progress.results}/{progress.published} node(s) reported, "
                        f"deadline in {left:.0f} s")
            status.update(f"{job.round_id}: {text}")
        return job.wait(timeout, on_progress=show)


def _print_report(report: Any, output: str) -> None:
    from kdoctor.reports import render

    if output == "json":
        click.echo(render.to_json(report))
    elif output == "html":
        from kdoctor.reports.html import to_html

        click.echo(to_html(report))
    else:
        render.print_report(report, out_console())


@cli.command()
@click.argument("report_id")
@click.option("-o", "--output", type=click.Choice(["table", "json", "html"]), default="table", show_default=True,
              help="html: one self-contained page, e.g. `> report.html`.")
@click.pass_context
def report(ctx: click.Context, report_id: str, output: str) -> None:
    """Show one report (ID as printed by `run` and `reports`)."""
    from kdoctor.api import Client

    with Client(settings=_settings(ctx)) as client:
        _print_report(client.report(report_id), output)


@cli.command()
@click.option("--limit", type=click.IntRange(1, 10000), default=20, show_default=True)
@click.option("--job", default=None, help="Only this job's rounds.")
@click.option("--kind", default=None, help="Only this kind (NetReach, AppHttpHealthy, Netdns, DiskIO).")
@click.option("--name", default=None, help="Only this task name.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def reports(ctx: click.Context, limit: int, job: str | None, kind: str | None, name: str | None,
            output: str) -> None:
    """List stored reports, newest first."""
    from kdoctor.api import Client
    from kdoctor.reports import render

    unreadable: list[str] = []
    with Client(settings=_settings(ctx)) as client:
        found = client.reports(limit=limit, job=job, kind=kind, name=name, unreadable=unreadable)
    if unreadable:
        shown = ", ".join(unreadable[:5]) + (f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else "")
        err_console().print(f"warning: skipped {len(unreadable)} unreadable stored report(s): {shown}",
                            highlight=False)
    if output == "json":
        click.echo(json.dumps([
            {"id": r.id, "job": r.job, "kind": r.task.kind, "name": r.task.name, "round": r.round,
             "verdict": r.verdict, "finished": r.finished.isoformat(), "nodes": r.summary.nodes}
            for r in found], indent=2))
    else:
        out_console().print(render.reports_table(found))


@cli.group(invoke_without_command=True)
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_inventory_option
@click.pass_context
def nodes(ctx: click.Context, output: str, inventory: str | None) -> None:
    """List the inventory's nodes and whether their workers are live (`nodes forget NODE`: remove
    one from the registry)."""
    from kdoctor.api import Client
    from kdoctor.reports import render

    settings = _with_inventory(ctx, inventory)
    ctx.obj = settings  # what `nodes forget` (a subcommand) reads
    if ctx.invoked_subcommand is not None:
        return
    with Client(settings=settings) as client:
        view = client.inventory()
        now = client.now()  # heartbeats are stamped on the broker's clock
    found = sorted([*view.expected, *view.skipped_nodes], key=lambda n: n.name)
    timeout = settings.node_timeout_seconds
    if output == "json":
        click.echo(json.dumps([{**n.to_json(), "state": render.node_state(n, now, timeout, view.skipped),
                                **({"skipped": view.skipped[n.name]} if n.name in view.skipped else {})}
                               for n in found], indent=2))
    elif not found:
        err_console().print(f"no node is known to the {view.source} inventory: start a worker "
                            "(`kdoctor worker --node NAME`) or give an inventory (--inventory)", highlight=False)
    else:
        out_console().print(render.nodes_table(found, now, timeout, view.skipped))


@nodes.command(name="forget")
@click.argument("names", nargs=-1, required=True, metavar="NODE...")
@click.pass_context
def nodes_forget(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Remove stopped or silent NODEs from the worker registry: rounds stop expecting them.

    For a node taken out of service outside Kubernetes (in Kubernetes, delete or cordon the Node).
    A node whose worker is running is refused: it would register again at its next heartbeat.
    """
    from kdoctor.api import Client
    from kdoctor.inventory.source import kind_of

    settings = _settings(ctx)
    with Client(settings=settings) as client:
        for name in names:
            client.forget_node(name)
            click.echo(f"forgot {name}")
    if kind_of(settings) == "static":
        err_console().print(f"note: a node the inventory file {settings.inventory} lists is still expected "
                            "(reported missing) until it is removed from the file", highlight=False)


@cli.command()
@click.pass_context
def beat(ctx: click.Context) -> None:
    """Run celery beat: fires the rounds of installed schedules (one active beat; others stand by)."""
    from kdoctor.workers.beat import run_beat

    sys.exit(run_beat(_settings(ctx)))


@cli.command()
@click.option("--basic-auth", envvar="KDOCTOR_FLOWER_BASIC_AUTH", default="", metavar="USER:PASSWORD",
              help="Required: Flower never runs without authentication [env KDOCTOR_FLOWER_BASIC_AUTH].")
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=5555, show_default=True)
@click.pass_context
def flower(ctx: click.Context, basic_auth: str, address: str, port: int) -> None:
    """Run Flower (web monitoring of workers and tasks) behind basic authentication."""
    from kdoctor.workers.flower import run_flower

    sys.exit(run_flower(_settings(ctx), basic_auth, address, port))


@cli.command()
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="/metrics port; 0: notifications only [env KDOCTOR_METRICS_PORT; default 5711].")
@click.option("--address", default=None, help="/metrics address [env KDOCTOR_METRICS_ADDRESS; default 127.0.0.1].")
@click.pass_context
def exporter(ctx: click.Context, port: int | None, address: str | None) -> None:
    """Run the exporter (one replica): results as Prometheus metrics, notifications of failed rounds."""
    import dataclasses

    from kdoctor.workers.exporter import run_exporter

    settings = _settings(ctx)
    if port is not None:
        settings = dataclasses.replace(settings, metrics_port=port)
    if address:
        settings = dataclasses.replace(settings, metrics_address=address)
    sys.exit(run_exporter(settings))


@cli.group()
def schedule() -> None:
    """Add, list and remove scheduled inspections (spec.schedule, fired by `kdoctor beat`)."""


@schedule.command(name="add")
@click.argument("spec", type=click.Path(dir_okay=False))
@_inventory_option
@click.pass_context
def schedule_add(ctx: click.Context, spec: str, inventory: str | None) -> None:
    """Install SPEC's schedule; prints the job id (reports are <job>-r<round>)."""
    from kdoctor.api import Client
    from kdoctor.specs import load_spec

    model = load_spec(spec)
    if model.spec.schedule.round_number == 0:
        err_console().print(f"{spec}: spec.schedule.roundNumber is 0: no round runs (kdoctor marks such a task "
                            "finished at once); nothing was installed", highlight=False)
        return
    with Client(settings=_with_inventory(ctx, inventory)) as client:
        job = client.schedule(model, source="cli")
    click.echo(job)


@schedule.command(name="list")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def schedule_list(ctx: click.Context, output: str) -> None:
    """List installed schedules, soonest first."""
    from rich.table import Table

    from kdoctor.api import Client

    with Client(settings=_settings(ctx)) as client:
        found = client.schedules()
    if output == "json":
        click.echo(json.dumps([s.to_json() for s in found], indent=2))
        return
    if not found:
        err_console().print("no schedule is installed (`kdoctor schedule add SPEC` installs one)", highlight=False)
        return
    table = Table(header_style="bold")
    for col in ("job", "kind", "name", "schedule", "rounds", "fired", "next (UTC)"):
        table.add_column(col)
    for s in found:
        table.add_row(s.job, s.kind, s.name, s.schedule, "forever" if s.rounds == -1 else str(s.rounds),
                      str(s.fired), f"{s.next_at:%Y-%m-%d %H:%M:%S}" if s.next_at else "-")
    out_console().print(table)


@schedule.command(name="rm")
@click.argument("job")
@click.pass_context
def schedule_rm(ctx: click.Context, job: str) -> None:
    """Remove the schedule of JOB (its reports are kept)."""
    from kdoctor.api import Client

    with Client(settings=_settings(ctx)) as client:
        if not client.unschedule(job):
            raise click.UsageError(f"no schedule for job {job!r} (see `kdoctor schedule list`)")
    click.echo(f"removed schedule {job}")


@cli.command()
@click.option("--nodes", "node_count", type=click.IntRange(2, 16), default=3, show_default=True,
              help="How many local workers (nodes) to start.")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def demo(ctx: click.Context, node_count: int, output: str) -> None:
    """Start Redis, a coordinator, workers, nginx and dnsmasq; run a round of each kind; print the reports.

    With --broker (or KDOCTOR_BROKER_URL), that Redis is used instead of a private one.
    """
    from kdoctor.local import demo as demo_mod

    broker = ctx.parent.params.get("broker") if ctx.parent else None
    reports_ = demo_mod.run_demo(_settings(ctx), node_count, broker, progress=err_console())
    for rep in reports_:
        _print_report(rep, output)
    sys.exit(EXIT_PASSED if all(r.verdict == "passed" for r in reports_) else EXIT_FAILED)


def _add_lab() -> None:
    from kdoctor.lab.cli import lab

    cli.add_command(lab)


_add_lab()


@cli.command()
@click.argument("file", required=False)
@click.option("--max-age", type=float, default=60.0, show_default=True,
              help="Seconds: a file older than this means the process stopped.")
@click.option("--ready", is_flag=True, help="Also require ready (a readiness check).")
@click.pass_context
def health(ctx: click.Context, file: str | None, max_age: float, ready: bool) -> None:
    """Check a role's health file (KDOCTOR_HEALTH_FILE): exit 0 healthy, 1 not, with the reason.

    Kubernetes probes run the same check as `python -m kdoctor.workers.healthfile FILE`, which
    starts in milliseconds."""
    from kdoctor.workers.healthfile import read_health

    path = file or _settings(ctx).health_file
    if not path:
        raise click.UsageError("give the health FILE or set KDOCTOR_HEALTH_FILE")
    ok, why = read_health(path, max_age, ready=ready)
    click.echo(why, err=not ok)
    sys.exit(0 if ok else 1)


@cli.command(name="settings")
def settings_cmd() -> None:
    """Print every KDOCTOR_* setting with its default and meaning (Markdown)."""
    click.echo("| variable | default | unit | meaning |\n|---|---|---|---|")
    for s in Settings.describe():
        default = f"`{s.default}`" if s.default != "" else "(empty)"
        click.echo(f"| `{s.env}` | {default} | {s.unit} | {s.doc} |")


def main() -> None:
    """Entry point: run the CLI and turn kdoctor errors into a message and exit code 2."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except click.Abort:
        err_console().print("aborted")
        sys.exit(130)
    except SpecError as exc:
        _error(str(exc))
        sys.exit(EXIT_USAGE)
    except KdoctorError as exc:
        _error(f"{type(exc).__name__}: {exc}")
        sys.exit(EXIT_USAGE)


def _error(text: str) -> None:
    from rich.text import Text

    err_console().print(Text.assemble(("error: ", "red"), text), highlight=False)

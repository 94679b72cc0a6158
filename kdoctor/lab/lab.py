"""``kdoctor lab up|down|status|env|fault``: build, inspect, break and remove a lab.

State lives in ``<lab dir>/<prefix>/state.json`` and is written before each step, so ``down``
after a crash (of ``up`` or of anything later) still finds everything: namespaces and links by
name prefix, processes inside namespaces by namespace, the others by pid or by the lab directory
on their command line.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from pydantic import BaseModel, Field

from kdoctor.errors import SetupError
from kdoctor.inventory.static import StaticInventory, StaticNode, StaticServices, dump
from kdoctor.lab import net, processes
from kdoctor.lab.config import AGENT_PORT, NODE_PORT, SERVICE_PORT, LabConfig, Node, nodes_of
from kdoctor.local.cluster import kdoctor_command
from kdoctor.local.redisserver import RedisServer
from kdoctor.settings import Settings
from kdoctor.store import nodes as registry

Say = Callable[[str], None]


class LabState(BaseModel):
    """What ``up`` made, as far as it got."""

    config: LabConfig
    broker_url: str = ""
    inventory: str = ""
    pids: dict[str, int] = Field(default_factory=dict)
    faults: dict[str, list[str]] = Field(default_factory=dict)
    ready: bool = False


def state_path(config: LabConfig) -> Path:
    return config.dir / "state.json"


def load_state(config: LabConfig) -> LabState | None:
    """The lab's state, or ``None`` when it is not up."""
    path = state_path(config)
    if not path.exists():
        return None
    return LabState.model_validate_json(path.read_text())


def _save(state: LabState) -> None:
    path = state_path(state.config)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(state.model_dump_json(indent=2))
    tmp.replace(path)


def require_root() -> None:
    if os.geteuid() != 0:
        raise SetupError("the lab needs root (network namespaces, veth pairs, iptables): run it with sudo")


def _lab_settings(state: LabState, settings: Settings) -> Settings:
    """The settings of the lab's own processes: the caller's, on the lab's broker and inventory
    (the lab's static file, unless the caller's inventory is a Kubernetes API, e.g. a fake one
    serving the lab's addresses)."""
    inventory = "kubernetes" if settings.inventory == "kubernetes" else state.inventory
    return dataclasses.replace(settings, broker_url=state.broker_url, inventory=inventory)


def _child_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update(settings.as_env())
    env["PYTHONUNBUFFERED"] = "1"
    return env


def up(config: LabConfig, settings: Settings, *, timeout: float = 60.0,
       say: Say = lambda _: None) -> LabState:
    """Build the lab and wait until every worker and the coordinator are live.

    The lab's workers and coordinator run with ``settings`` (heartbeat, deadlines, log level...),
    pointed at the lab's own Redis and inventory.
    """
    require_root()
    if (state_path(config).exists() or net.namespaces(config.prefix) or net.links(config.link_prefix)
            or net.host_rules(config)):
        raise SetupError(f"a lab {config.prefix!r} (net {config.net}) exists: `kdoctor lab down` first")
    for tool in ("ip", "iptables", "ip6tables", "tc", "nginx", "redis-server"):
        if shutil.which(tool) is None:
            raise SetupError(f"{tool} is not installed (Debian: iproute2, iptables, nginx, redis-server)")
    (config.dir / "logs").mkdir(parents=True, exist_ok=True)
    state = LabState(config=config)
    _save(state)
    try:
        return _build(state, settings, timeout, say)
    except BaseException:
        # Half a lab is worse than none: the next `up` would refuse to start.
        logs = config.dir / "logs"
        saved = Path(f"{config.dir}.failed-logs")
        shutil.rmtree(saved, ignore_errors=True)
        if logs.exists():
            shutil.copytree(logs, saved)
        down(config)
        raise


def _build(state: LabState, settings: Settings, timeout: float, say: Say) -> LabState:
    config = state.config
    nodes = nodes_of(config)

    say(f"network: bridge {config.bridge}, {config.nodes} node namespaces and an ingress")
    net.make_bridge(config)
    for node in nodes:
        net.make_namespace(config, node.namespace, config.host_link(node.index), node.v4, node.v6)
        net.kube_proxy(config, node, nodes)
    net.make_namespace(config, config.ingress_namespace, config.host_link(0), config.ingress_v4,
                       config.ingress_v6)

    say("redis on the bridge address")
    redis_dir = config.dir / "redis"
    redis_dir.mkdir(exist_ok=True)
    server = RedisServer(bind=config.bridge_v4, directory=str(redis_dir), extra_args=["--protected-mode", "no"])
    state.pids["redis"] = server.process.pid
    state.broker_url = server.url(0)
    state.inventory = str(config.dir / "inventory.yaml")
    Path(state.inventory).write_text(dump(inventory(config)))
    _save(state)

    say("nginx ingress")
    state.pids["ingress"] = _start_ingress(config, nodes)
    _save(state)

    settings = _lab_settings(state, settings)
    child_env = _child_env(settings)
    logs = config.dir / "logs"
    for node in nodes:
        args = kdoctor_command("worker", "--node", node.name, "--agent-port", str(AGENT_PORT),
                               "--agent-address", node.v4, "--agent-address", node.v6,
                               "--label", f"lab={config.prefix}", "--label", f"zone=zone-{node.index % 2}")
        state.pids[node.name] = processes.spawn(args, logs / f"{node.name}.log", child_env, ns=node.namespace)
        _save(state)
    state.pids["coordinator"] = processes.spawn(
        kdoctor_command("coordinator", "--inventory", settings.inventory), logs / "coordinator.log", child_env)
    _save(state)
    say(f"waiting for {config.nodes} workers and the coordinator")
    _wait_ready(state, timeout, settings)
    state.ready = True
    _save(state)
    return state


def inventory(config: LabConfig) -> StaticInventory:
    """The static inventory describing the lab."""
    return StaticInventory(
        nodes=[StaticNode(name=n.name, labels={"lab": config.prefix, "zone": f"zone-{n.index % 2}"},
                          ipv4=[n.v4], ipv6=[n.v6], agent_port=AGENT_PORT) for n in nodes_of(config)],
        services=StaticServices(port=SERVICE_PORT, cluster_ip=config.cluster_ip, node_port=NODE_PORT,
                                load_balancer=config.load_balancer, ingress=config.ingress_urls),
    )


_NGINX = """\
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/logs/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/nginx-tmp;
    proxy_temp_path {dir}/nginx-tmp;
    fastcgi_temp_path {dir}/nginx-tmp;
    uwsgi_temp_path {dir}/nginx-tmp;
    scgi_temp_path {dir}/nginx-tmp;
    upstream agents {{
{servers}
        keepalive 32;
    }}
    server {{
        listen {v4}:80;
        listen [{v6}]:80;
        location {path} {{
            proxy_pass http://agents;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
        }}
    }}
}}
"""


def _start_ingress(config: LabConfig, nodes: list[Node]) -> int:
    from kdoctor.lab.config import INGRESS_PATH

    (config.dir / "nginx-tmp").mkdir(exist_ok=True)
    servers = "\n".join(f"        server {n.v4}:{AGENT_PORT};\n        server [{n.v6}]:{AGENT_PORT};"
                        for n in nodes)
    conf = config.dir / "nginx.conf"
    conf.write_text(_NGINX.format(dir=config.dir, servers=servers, v4=config.ingress_v4, v6=config.ingress_v6,
                                  path=INGRESS_PATH))
    nginx = shutil.which("nginx") or "nginx"
    return processes.spawn([nginx, "-p", str(config.dir), "-c", str(conf), "-g", "daemon off;"],
                           config.dir / "logs" / "nginx.log", {"PATH": os.environ.get("PATH", "")},
                           ns=config.ingress_namespace)


def _wait_ready(state: LabState, timeout: float, settings: Settings) -> None:
    client = redis.Redis.from_url(state.broker_url, decode_responses=True)
    names = set(state.config.node_names())
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        dead = [name for name, pid in state.pids.items() if not processes.alive(pid)]
        if dead:
            log = state.config.dir / "logs" / f"{dead[0]}.log"
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""
            raise SetupError(f"lab process {dead[0]} exited:\n{tail}")
        now = time.time()
        live = {n.name for n in registry.nodes(client) if n.state(now, settings.node_timeout_seconds) == "live"}
        if names <= live and registry.live_coordinators(client, settings.coordinator_timeout_seconds):
            time.sleep(0.3)  # a registered worker starts consuming a moment later
            return
        time.sleep(0.1)
    raise SetupError(f"the lab was not ready within {timeout:g} s; logs in {state.config.dir / 'logs'}")


def down(config: LabConfig) -> list[str]:
    """Remove everything the lab made, whatever state it is in; returns what was removed."""
    require_root()
    state = load_state(config)
    gone: list[str] = []
    pids = set(state.pids.values()) if state else set()
    for ns in net.namespaces(config.prefix):
        pids.update(processes.netns_pids(ns))
    if config.dir.exists():
        pids.update(processes.pids_mentioning(str(config.dir)))
    pids = {p for p in pids if processes.alive(p)}
    if pids:
        processes.stop(sorted(pids))
        gone.append(f"{len(pids)} process(es)")
    gone += net.remove(config)
    limit = time.monotonic() + 5
    while net.links(config.link_prefix) and time.monotonic() < limit:
        time.sleep(0.05)  # veth pairs vanish a moment after their namespace
        net.remove(config)
    if config.dir.exists():
        shutil.rmtree(config.dir, ignore_errors=True)
        gone.append(f"directory {config.dir}")
    return gone


def leftovers(config: LabConfig) -> list[str]:
    """Anything of the lab that still exists (empty after a clean ``down``)."""
    found = [f"namespace {n}" for n in net.namespaces(config.prefix)]
    found += [f"link {n}" for n in net.links(config.link_prefix)]
    found += [f"{tool} rule {line}" for tool, line in net.host_rules(config)]
    if config.dir.exists():
        found.append(f"directory {config.dir}")
        found += [f"process {p}" for p in processes.pids_mentioning(str(config.dir))]
    return found


def status(config: LabConfig) -> dict[str, Any]:
    """What runs and which faults are set."""
    state = load_state(config)
    return {
        "up": state is not None,
        "ready": bool(state and state.ready),
        "namespaces": net.namespaces(config.prefix),
        "links": net.links(config.link_prefix),
        "processes": {k: processes.alive(v) for k, v in (state.pids.items() if state else [])},
        "brokerUrl": state.broker_url if state else "",
        "inventory": state.inventory if state else "",
        "faults": state.faults if state else {},
    }


def fault(state: LabState, node: str | None, *, loss: float | None = None, slow: str | None = None,
          down_: bool = False, drop_to: str | None = None, no_service: bool = False,
          clear: bool = False) -> list[str]:
    """Set (or clear) faults; returns a description of each change."""
    require_root()
    config = state.config
    all_nodes = nodes_of(config)
    changes: list[str] = []
    if clear:
        targets = [all_nodes[config.index_of(node) - 1]] if node else all_nodes
        for target in targets:
            net.clear(config, target)
            state.faults.pop(target.name, None)
            changes.append(f"{target.name}: faults cleared")
        _save(state)
        return changes
    if node is None:
        raise SetupError("name the node to break (or --clear)")
    target = all_nodes[config.index_of(node) - 1]
    notes = state.faults.setdefault(target.name, [])
    if loss is not None:
        net.add_loss(config, target, loss)
        notes.append(f"loss {loss:.0%}")
    if drop_to is not None:
        other = all_nodes[config.index_of(drop_to) - 1]
        net.add_drop(config, target, other)
        notes.append(f"drop → {other.name}")
    if no_service:
        net.add_no_service(config, target)
        notes.append("no Service path")
    if slow is not None:
        net.set_slow(config, target, slow)
        notes.append(f"slow {slow}")
    if down_:
        net.set_down(target)
        notes.append("down")
    if not notes:
        state.faults.pop(target.name, None)
    _save(state)
    changes.append(f"{target.name}: {', '.join(notes) or 'no fault'}")
    return changes


def env_lines(state: LabState) -> list[str]:
    """Shell lines that point kdoctor at the lab."""
    return [f"export KDOCTOR_BROKER_URL={state.broker_url}", f"export KDOCTOR_INVENTORY={state.inventory}"]


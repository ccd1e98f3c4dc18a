"""The network of the netns lab: one Linux network namespace per host, joined by a bridge.

The bridge lives in a namespace of its own (the lab namespace), so the machine's own
namespace gets no interface, address, route or rule. Each host namespace holds one end of
a veth pair (``eth0``, the host's scenario address and prefix, an on-link default route so
hosts on different subnets reach each other through the bridge) and the host's firewall
compiled into nftables (lab/nft.py). Deleting the namespaces removes every link, address
and ruleset with them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from wmilab.lab import nft
from wmilab.lab.state import LabState
from wmilab.model.world import World

__all__ = ["NetnsError", "create_network", "host_namespace", "lab_namespace",
           "namespace_exists", "namespace_pids", "remove_namespaces", "root_problem"]

NS_PREFIX = "wmilab-"
_UNSAFE = re.compile(r"[^a-z0-9]+")


class NetnsError(RuntimeError):
    """A namespace, link or ruleset could not be made; the message says which."""


def root_problem() -> str | None:
    """Why the netns lab cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return ("the netns lab needs root (network namespaces, veth links and nftables); "
                "run it as root, or use the loopback lab: wmilab lab FILE (without --netns)")
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return (f"the netns lab needs {tool!r} (Debian package {package}); install it, "
                    "or use the loopback lab: wmilab lab FILE (without --netns)")
    return None


def lab_namespace(key: str) -> str:
    return f"{NS_PREFIX}{key}"


def host_namespace(key: str, host: str) -> str:
    name = _UNSAFE.sub("-", host.lower()).strip("-")[:32] or "host"
    return f"{NS_PREFIX}{key}-{name}"


def _run(cmd: list[str], what: str, stdin: str | None = None) -> None:
    try:
        done = subprocess.run(cmd, input=stdin, text=True, capture_output=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NetnsError(f"{what}: {e}") from None
    if done.returncode != 0:
        raise NetnsError(f"{what}: {done.stderr.strip() or done.stdout.strip()}")


def namespace_exists(name: str) -> bool:
    return os.path.exists(f"/var/run/netns/{name}")


def namespace_pids(name: str) -> list[int]:
    """Processes inside network namespace ``name`` (``ip netns pids``); none if it is gone."""
    if not name.startswith(NS_PREFIX) or not namespace_exists(name):
        return []
    try:
        done = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [int(p) for p in done.stdout.split() if p.isdigit()]


def _add_namespace(state: LabState, name: str) -> None:
    # Written down before it exists: `down` after a crash removes it.
    state.namespaces.append(name)
    state.save()
    _run(["ip", "netns", "add", name], f"cannot create network namespace {name}")
    # IPv4 only (the model is IPv4): no IPv6 router solicitations in the captures.
    _run(["ip", "netns", "exec", name, "sysctl", "-q", "-w",
          "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
         f"cannot configure {name}")


def create_network(state: LabState, world: World) -> None:
    """Make the lab namespace with its bridge, and one namespace per host with its address
    and its firewall; each step is recorded in ``state`` before it is taken.

    The WMI port of each host is drawn when its process starts, which then compiles its
    ruleset again (lab/daemon.py); until then only what is known (135, static openings) is
    open."""
    lab = lab_namespace(state.key)
    _add_namespace(state, lab)
    _run(["ip", "-n", lab, "-batch", "-"], f"cannot create the bridge in {lab}",
         "link set lo up\nlink add br0 type bridge\nlink set br0 up\n")
    taken: set[str] = set()
    for i, (name, cfg) in enumerate(sorted(world.configs.items())):
        ns = host_namespace(state.key, name)
        if ns in taken:  # two names that read the same once made safe (WEB_1, web-1)
            ns = f"{ns}-{i}"
        taken.add(ns)
        state.hosts[name] = {"namespace": ns, "address": str(cfg.address.ip),
                             "interface": str(cfg.address)}
        _add_namespace(state, ns)
        # The firewall is in place before the host has an address: nothing slips through.
        model = world.host(name)
        peers = [world.host(other) for other in world.configs if other != name]
        try:
            nft.apply(nft.ruleset(model, peers=peers), ns)
        except nft.NftError as e:
            raise NetnsError(f"host {name}: {e}") from None
        _run(["ip", "-n", lab, "-batch", "-"], f"cannot link {name} to the bridge",
             f"link add h{i} type veth peer name eth0 netns {ns}\n"
             f"link set h{i} master br0\nlink set h{i} up\n")
        _run(["ip", "-n", ns, "-batch", "-"], f"cannot configure {name}'s address",
             f"link set lo up\naddr add {cfg.address} dev eth0\nlink set eth0 up\n"
             "route add default dev eth0\n")


def remove_namespaces(state: LabState) -> list[str]:
    """Delete every namespace the lab recorded (hosts first); returns the ones removed."""
    removed = []
    for name in reversed(state.namespaces):
        if not name.startswith(NS_PREFIX) or not namespace_exists(name):
            continue
        _run(["ip", "netns", "delete", name], f"cannot delete network namespace {name}")
        removed.append(name)
    return removed

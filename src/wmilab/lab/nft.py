"""A host's Windows Firewall compiled into an nftables ruleset for its network namespace.

Nothing here decides what Windows would allow. For every port an emulated program of the
host listens on (``HostModel.listeners``: 135, and the dynamic ports its RPC runtime drew
for WMI and a sink) and every port an exception opens statically, the
compiler asks the model who may connect (``HostModel.admission``, the same answer the flow
and the in-process gate use) and writes one ``accept`` rule for exactly those sources.
Everything else that arrives unsolicited is dropped without an answer, so a client's SYN
waits and times out, as against Windows Firewall (docs/lab.md).

The host's outbound rules go into an ``output`` chain the same way: for every other host of
the lab and each port a client connects to there (135, and the range WMI's port is drawn
from), the compiler asks the question ``flow`` asks on A's side of c1.rpcss-port and
c1.wmi-port (``steps.caller_outbound``) and writes a ``reject`` where the answer is no.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Literal

from wmilab import steps
from wmilab.host.service_sockets import SERVICE_MARK
from wmilab.model.addresses import Scope
from wmilab.model.firewall import Admission
from wmilab.model.world import HostModel

__all__ = ["TABLE", "NftError", "OutRule", "Rule", "apply", "compile_outbound", "compile_rules",
           "ruleset"]

TABLE = "wmilab"  # table inet wmilab, one per host namespace

# ICMP types Windows Firewall lets in when an ICMP setting allows them (model/firewall.py
# ICMP_TYPES: the inbound ones). The outbound types (3, 4, 11, 12) concern what the host
# sends; Choice: the Linux host in the namespace sends them as Linux does.
_INBOUND_ICMP = (8, 9, 13, 17)
_ANY = IPv4Network("0.0.0.0/0")


class NftError(RuntimeError):
    """nft refused a ruleset or could not be run."""


@dataclass(frozen=True)
class Rule:
    """One rule: ``protocol`` (tcp or icmp), port or ICMP type, the source networks it
    matches (``None``: any source) and its verdict. Rules keep the model's order (a WFAS
    block rule before the allow rules), and the first that matches decides, in nftables as
    in ``Admission.decide``."""

    protocol: str
    port: int
    sources: tuple[IPv4Network, ...] | None
    why: str
    verdict: str = "accept"  # or "drop"

    def text(self) -> str:
        match = f"tcp dport {self.port}" if self.protocol == "tcp" else (
            f"icmp type {self.port}")
        if self.sources is not None:
            nets = ", ".join(str(n) for n in self.sources)
            match = f"ip saddr {{ {nets} }} {match}"
        why = self.why.replace('"', "'")[:120]
        return f'{match} {self.verdict} comment "{why}"'


@dataclass(frozen=True)
class OutRule:
    """A connection the host's own firewall refuses: TCP to ``dest`` on ``spans``."""

    dest: IPv4Address
    spans: tuple[tuple[int, int], ...]
    why: str

    def text(self) -> str:
        ports = ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in self.spans)
        why = self.why.replace('"', "'")[:120]
        return (f"ip daddr {self.dest} tcp dport {{ {ports} }} "
                f'reject with icmpx type admin-prohibited comment "{why}"')


def compile_outbound(model: HostModel, peers: Sequence[HostModel]) -> list[OutRule]:
    """The connections to the other hosts of the lab that ``model``'s outbound rules refuse
    to its calling program: the model's answer for each peer's 135 and WMI range."""
    rules: list[OutRule] = []
    if steps.outbound_open(model):  # no outbound rule can refuse anything
        return rules
    for peer in peers:
        if peer.name == model.name:
            continue
        purposes: tuple[Literal["rpcss", "wmi"], ...] = ("rpcss", "wmi")
        for purpose in purposes:
            check = steps.caller_outbound(model, peer, purpose)
            if not check.ok:
                spans = (steps.EPM_PORTS if purpose == "rpcss" else peer.wmi_ports).spans
                rules.append(OutRule(peer.ip, spans, f"to {peer.name}: {check.reason}"))
    return rules


def _sources(scope: Scope, model: HostModel) -> tuple[IPv4Network, ...] | None:
    nets: list[IPv4Network] = []
    for net in scope.networks(model.subnet):
        if net == _ANY:
            return None
        if net not in nets:
            nets.append(net)
    return tuple(nets)


def _compiled(protocol: str, port: int, adm: Admission, model: HostModel,
              label: str) -> list[Rule]:
    """One nftables rule per rule of the admission, in its order (first match decides)."""
    return [Rule(protocol, port, _sources(r.scope, model), f"{label}{r.allow.rule}",
                 "accept" if r.allow.allowed else "drop") for r in adm.rules]


def compile_rules(model: HostModel, wmi_port: int | None = None,
                  sink: tuple[int, str] | None = None) -> list[Rule]:
    """The accept rules of ``model``'s effective firewall, for its emulated listeners (the
    WMI service on ``wmi_port`` and the sink ``(port, program)``: the dynamic ports the
    host's RPC runtime drew) and its statically opened TCP ports."""
    ports: dict[int, str] = {}
    for port, program in model.listeners(wmi_port, sink):
        ports.setdefault(port, program)
    for opened in model.firewall.open_ports():
        if opened.protocol == "TCP":
            # No emulated program listens there: the port's own exceptions decide, and an
            # admitted SYN gets the kernel's reset, as a closed port on Windows answers.
            ports.setdefault(opened.port, "")
    rules: list[Rule] = []
    for port, program in sorted(ports.items()):
        name = program.rsplit("\\", 1)[-1] or "no listener"
        rules += _compiled("tcp", port, model.admission(port, program), model, f"{name}: ")
    for icmp_type in _INBOUND_ICMP:
        rules += _compiled("icmp", icmp_type, model.admission(icmp_type, "", "ICMP"), model, "")
    return rules


def ruleset(model: HostModel, wmi_port: int | None = None,
            sink: tuple[int, str] | None = None, peers: Sequence[HostModel] = ()) -> str:
    """An ``nft -f`` script that replaces the table atomically (one transaction); ``peers``
    are the other hosts of the lab, for the output chain."""
    # Unsolicited packets no exception admits are dropped, not answered: Windows Firewall
    # logs them as dropped packets ("Log dropped packets", netsh `set logging`, bb490617) and
    # the client sees a connect timeout, RPC_S_SERVER_UNAVAILABLE (seed).
    policy = "drop"
    if not model.firewall.enabled:
        # The model says the firewall is off: nothing is filtered (closed ports reset).
        policy = "accept"
    lines = [
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        "  chain input {",
        f"    type filter hook input priority filter; policy {policy};",
        # Windows Firewall filters *unsolicited* traffic, statefully: replies to the host's
        # own connections come in (MSDocs ics/windows-firewall-start-page).
        "    ct state established,related accept",
        # Choice: traffic inside the host (loopback) is not filtered.
        '    iifname "lo" accept',
    ]
    lines += [f"    {r.text()}" for r in compile_rules(model, wmi_port, sink)]
    lines += [
        "  }",
        "  chain output {",
        "    type filter hook output priority filter; policy accept;",
        # Replies to connections the host accepted, and its loopback traffic, go out.
        "    ct state established,related accept",
        '    oifname "lo" accept',
        # The emulated WMI service's callback asked the model with its own program and
        # service before connecting (host/callback.py); the rules below are the calling
        # program's (host/service_sockets.py).
        f"    meta mark {SERVICE_MARK:#x} accept",
    ]
    # Choice (docs/choices.md): the host's own firewall refuses the connection before a SYN
    # leaves, so the program's connect() fails at once (EHOSTUNREACH from the local reject),
    # rather than waiting on a dropped SYN.
    lines += [f"    {r.text()}" for r in compile_outbound(model, peers)]
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def apply(script: str, namespace: str | None = None) -> None:
    """Load ``script`` with ``nft -f -`` in ``namespace`` (None: the current one)."""
    cmd = ["nft", "-f", "-"]
    if namespace is not None:
        cmd = ["ip", "netns", "exec", namespace, *cmd]
    try:
        done = subprocess.run(cmd, input=script, text=True, capture_output=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NftError(f"cannot run nft: {e}") from None
    if done.returncode != 0:
        raise NftError(f"nft refused the ruleset: {done.stderr.strip()}")

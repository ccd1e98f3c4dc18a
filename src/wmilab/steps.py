"""The step table: every step of the seed's two connections, and the one question each asks.

Each :class:`StepSpec` says which connection a step belongs to, which computer's settings
decide it (``"A"``, the caller, or ``"B"``, the called computer), its title, the HRESULT a
client sees when the step refuses, and where that rule comes from. The *questions* below are
the only place where a step's access decision is made: ``flow`` asks them to predict a call,
and the emulated hosts ask the very same functions on the wire (the firewall gate, RPCSS,
the WMI exporter, the sink and the callback). ``remedy`` registers one fix generator per step
id (``remedy.GENERATORS``), and a test holds the two tables together.

To add a step: add its id to :data:`ORDER`, a :class:`StepSpec` to :data:`TABLE`, its question
here, the call in ``flow.evaluate`` and in the emulated host where Windows takes that
decision, and a generator in ``remedy``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Literal

from wmilab import hresult as hr
from wmilab.model import callback as cb
from wmilab.model import firewall as fw
from wmilab.model import wmi as wmi_events
from wmilab.model.addresses import SourceTable
from wmilab.model.decision import Check
from wmilab.model.identity import Logon, Proof, Token
from wmilab.model.ports import RPC_ENDPOINT_MAPPER, PortRange
from wmilab.model.world import WINMGMT, HostModel, World

__all__ = [
    "C1_ACCESS", "C1_ACTIVATION", "C1_CLIENT_DCOM", "C1_LOGON", "C1_NAMESPACE", "C1_RPCSS",
    "C1_WMI_PORT", "C2_ACCESS", "C2_IDENTITY", "C2_RESOLVER_PORT", "C2_SINK_PORT", "ORDER",
    "TABLE", "FirewallHop", "StepSpec", "access", "activation", "callback_access",
    "callback_identity", "callback_ladder", "caller_outbound", "client_dcom", "logon",
    "namespace_login", "namespace_request", "outbound_open", "rpcss_port", "rpcss_sources", "sink_caller",
    "sink_port", "sink_sources", "wmi_port", "wmi_sources",
]

# Step ids, in the order Windows meets them.
C1_CLIENT_DCOM = "c1.client-dcom"
C1_RPCSS = "c1.rpcss-port"
C1_LOGON = "c1.logon"
C1_ACTIVATION = "c1.activation"
C1_WMI_PORT = "c1.wmi-port"
C1_ACCESS = "c1.access"
C1_NAMESPACE = "c1.namespace"
C2_IDENTITY = "c2.identity"
C2_RESOLVER_PORT = "c2.resolver-port"
C2_SINK_PORT = "c2.sink-port"
C2_ACCESS = "c2.access"

ORDER: tuple[str, ...] = (
    C1_CLIENT_DCOM, C1_RPCSS, C1_LOGON, C1_ACTIVATION, C1_WMI_PORT, C1_ACCESS, C1_NAMESPACE,
    C2_IDENTITY, C2_RESOLVER_PORT, C2_SINK_PORT, C2_ACCESS,
)
INDEX: dict[str, int] = {sid: i for i, sid in enumerate(ORDER)}


@dataclass(frozen=True)
class FirewallHop:
    """A step that is one TCP connection through a firewall: which listener it reaches."""

    purpose: Literal["rpcss", "wmi", "sink"]

    def port(self, listener: HostModel) -> int | None:
        """TCP 135, the fixed 24158 of a standalone WMI service (winmgmt /standalonehost,
        Learn "winmgmt"), or None for a dynamic RPC port: any of ``listener.rpc_ports``,
        picked when the program starts listening (KB 154596)."""
        if self.purpose == "rpcss":
            return RPC_ENDPOINT_MAPPER
        if self.purpose == "wmi" and listener.wmi_host.standalone:
            return listener.wmi_ports.spans[0][0]
        return None


def _always(code: hr.HResult) -> Callable[[Check], hr.HResult]:
    return lambda _check: code


def _activation_failure(check: Check) -> hr.HResult:
    # Refused launch/activation rights: 0x80070005 (seed, Connection 1 step 1). A disabled
    # winmgmt cannot be started: ERROR_SERVICE_DISABLED (Choice, docs/choices.md).
    if check.where == "service-disabled":
        return hr.ERROR_SERVICE_DISABLED
    return hr.E_ACCESSDENIED


def _namespace_failure(check: Check) -> hr.HResult:
    # MS-WMI 3.1.4.1.4: NTLMLogin without Enable Account + Remote Enable fails with
    # WBEM_E_ACCESS_DENIED; an unknown namespace with WBEM_E_INVALID_NAMESPACE (MS-WMI 2.2.11).
    return hr.WBEM_E_INVALID_NAMESPACE if check.where == "namespace" else hr.WBEM_E_ACCESS_DENIED


@dataclass(frozen=True)
class StepSpec:
    id: str
    connection: Literal[1, 2]
    decider: Literal["A", "B"]  # whose settings decide: the caller (A) or the called host (B)
    title: str
    failure: Callable[[Check], hr.HResult]  # the HRESULT a client sees when the step refuses
    source: str  # the public source of the rule
    hop: FirewallHop | None = None  # set for the firewall steps

    @property
    def index(self) -> int:
        return INDEX[self.id]


_UNAVAILABLE = _always(hr.RPC_S_SERVER_UNAVAILABLE)
_DENIED = _always(hr.E_ACCESSDENIED)

TABLE: dict[str, StepSpec] = {s.id: s for s in (
    # EnableDCOM = N on A: "Local clients cannot access remote DCOM servers" (MSDocs
    # com/enabledcom). Choice (docs/flow.md): reported as E_ACCESSDENIED.
    StepSpec(C1_CLIENT_DCOM, 1, "A", "A may make DCOM calls to other computers (EnableDCOM on A)",
             _DENIED, "MSDocs com/enabledcom"),
    # A dropped connection surfaces as RPC_S_SERVER_UNAVAILABLE (seed: 0x800706ba).
    StepSpec(C1_RPCSS, 1, "B", "A reaches RPCSS on B (TCP 135)", _UNAVAILABLE,
             "seed, Connection 1; TechNet cc737332", FirewallHop("rpcss")),
    # A failed network logon fails the DCOM call with E_ACCESSDENIED: "DCOM Access Denied ...
    # The Username/Password does not exist" (WMI team, "Let's troubleshoot WMI", part 1).
    StepSpec(C1_LOGON, 1, "B", "B logs on A's user (NTLM network logon)", _DENIED,
             "MS-NLMP 3.2.5; WMI team blog 2009-03-12 \"Let's troubleshoot WMI (Part 1)\""),
    # Without Remote Activation (and Remote Launch when winmgmt must be started) the
    # activation fails with 0x80070005 (seed, step 1; MSDocs com/launchpermission).
    StepSpec(C1_ACTIVATION, 1, "B",
             "B's DCOM lets the user activate WMI remotely (and launch it if stopped)",
             _activation_failure, "seed, Connection 1 step 1; MSDocs com/launchpermission; "
             "MS-DCOM 3.1.2.5.2.3"),
    StepSpec(C1_WMI_PORT, 1, "B", "A reaches the WMI service's dynamic RPC port on B",
             _UNAVAILABLE, "seed, Connection 1 step 2; KB154596", FirewallHop("wmi")),
    StepSpec(C1_ACCESS, 1, "B", "B's DCOM lets the user call into WMI remotely (remote access)",
             _DENIED, "MS-DCOM 3.1.1.5.4"),
    StepSpec(C1_NAMESPACE, 1, "B", "WMI on B accepts the login to the namespace (NTLMLogin)",
             _namespace_failure, "MS-WMI 3.1.4.1.4; MS-WMI 2.2.11"),
    # B does not call back at all (no anonymous callback on Vista and later without
    # AllowAnonymousCallback; an encrypted namespace and no trusted machine account). Choice
    # (docs/choices.md): E_ACCESSDENIED, as the seed's refused anonymous callback.
    StepSpec(C2_IDENTITY, 2, "B", "B picks the identity it calls the sink with",
             _DENIED, "MS-WMI 3.1.1.1.3; seed, Connection 2 step 3; Learn \"Setting up a "
             "Remote WMI Connection\" (CIMOM Settings)"),
    # Seed: "open the DCOM port TCP 135 on Computer A. If this port is not open, the error
    # 0x800706ba will occur."
    StepSpec(C2_RESOLVER_PORT, 2, "A", "B reaches the OXID resolver on A (TCP 135)", _UNAVAILABLE,
             "seed, Connection 2 step 1; MS-DCOM 3.2.4.1.1.1", FirewallHop("rpcss")),
    # Seed: add unsecapp.exe (or the application's own sink) to A's exceptions list.
    StepSpec(C2_SINK_PORT, 2, "A", "B reaches the sink's port on A", _UNAVAILABLE,
             "seed, Connection 2 step 2", FirewallHop("sink")),
    # Seed: an anonymous callback "fails with either the 0x80070005 error or the 0x8007000e
    # error". Choice (docs/flow.md): E_ACCESSDENIED when a DCOM security check refuses it.
    StepSpec(C2_ACCESS, 2, "A",
             "A's DCOM lets B's callback identity call the sink (remote access)", _DENIED,
             "seed, Connection 2 step 3; MS-DCOM 3.1.1.5.4"),
)}
assert tuple(TABLE) == ORDER, "the table lists every step once, in ORDER"


# ---- the questions: each asked by flow and by the emulated host ---------------------------


def _fw(v: fw.FirewallDecision) -> Check:
    return Check(v.allowed, v.rule, v.origin)


def client_dcom(a: HostModel) -> Check:
    """c1.client-dcom: may A make DCOM calls to other computers at all?"""
    return a.outgoing


# The endpoint mapper's port as a range, for the outbound questions (MS-RPCE 2.2.1.1.7).
EPM_PORTS = PortRange.of(((RPC_ENDPOINT_MAPPER, RPC_ENDPOINT_MAPPER),), "the endpoint mapper")


def outbound(sender: HostModel, dest: IPv4Address, ports: PortRange,
             program: str | None = None, service: str = "") -> Check:
    """The sender's own firewall on a port step: Windows Firewall with Advanced Security
    filters outbound connections too (model/wfas.py ``outbound``). ``program`` None: the
    calling program on A, which the scenario does not name."""
    return _fw(sender.outbound(dest, ports, program, service))


def caller_outbound(a: HostModel, b: HostModel, purpose: Literal["rpcss", "wmi"]) -> Check:
    """A's own side of c1.rpcss-port / c1.wmi-port: may the calling program on A connect out
    to B's TCP 135, or to B's WMI port? A cannot know which port of B's range WMI drew
    (KB 154596), so the question is about the whole range (Choice, docs/choices.md
    "Outbound rules"). Asked by flow, by the loopback lab's gate (host/gate.py) and by the
    netns lab's nftables compiler (lab/nft.py)."""
    return outbound(a, b.ip, EPM_PORTS if purpose == "rpcss" else b.wmi_ports)


def outbound_open(sender: HostModel) -> bool:
    """Does :func:`outbound` allow every connection of ``sender`` (no outbound block rule,
    default outbound Allow, or no WFAS at all)? The flow asks :func:`outbound` only when not."""
    return not sender.filters_outbound


def rpcss_port(listener: HostModel, source: IPv4Address) -> Check:
    """c1.rpcss-port (B) and c2.resolver-port (A): TCP 135, RPCSS in svchost.exe."""
    # RPCSS (endpoint mapper, activator, OXID resolver) is hosted by svchost.exe on XP SP2 and
    # Server 2003 (TechNet cc737332 Remote Administration exception).
    return _fw(listener.rpcss_inbound(source))


def rpcss_sources(listener: HostModel) -> SourceTable[Check]:
    """:func:`rpcss_port` for every source at once, from the same firewall answer
    (``HostModel.rpcss_admission``): per address as an integer, the Check; None where the
    refusal names the source (ask :func:`rpcss_port` then)."""
    return listener.rpcss_admission().table(listener.subnet).map(_fw)


def wmi_port(b: HostModel, source: IPv4Address, port: int | None = None) -> Check:
    """c1.wmi-port: the WMI service's dynamic RPC port (winmgmt runs in svchost.exe).

    Without ``port`` (flow): admitted only if every port of B's dynamic range is (the port is
    picked at run time, KB 154596). With ``port`` (the emulated host, which drew it from the
    same range): the same firewall rule for that one port.
    """
    if port is None:
        return _fw(b.wmi_inbound(source))
    return _fw(b.inbound(source, port, fw.SVCHOST, WINMGMT))


def wmi_sources(b: HostModel) -> SourceTable[Check] | None:
    """:func:`wmi_port` (flow's form, no ``port``) for every source at once, as
    :func:`rpcss_sources`; None when only :func:`wmi_port` can say (XP port openings in the
    dynamic range)."""
    adm = b.wmi_admission()
    return None if adm is None else adm.table(b.subnet).map(_fw)


def sink_sources(a: HostModel, program: str) -> SourceTable[Check] | None:
    """:func:`sink_port` (no ``port``) for every source at once, as :func:`wmi_sources`."""
    adm = a.sink_admission(program)
    return None if adm is None else adm.table(a.subnet).map(_fw)


def sink_port(a: HostModel, source: IPv4Address, program: str,
              port: int | None = None) -> Check:
    """c2.sink-port: the dynamic port of the program that hosts the sink (unsecapp.exe or
    the application); ``port`` as for :func:`wmi_port`."""
    if port is None:
        return _fw(a.sink_inbound(source, program))
    return _fw(a.inbound(source, port, program))


def sink_program(sink: str) -> str:
    """The program that hosts the callback sink on A, from a call's ``sink`` field."""
    # Seed: scripts and MMC snap-ins use %windir%\system32\wbem\unsecapp.exe; a C++ application
    # usually hosts its own sink, and then that program must be allowed on A.
    if sink.lower() == "unsecapp":
        return fw.UNSECAPP
    return fw.normalize_program(sink)


def logon(world: World, b: str, user: str, proof: Proof) -> Logon:
    """c1.logon (and every NTLM logon on an emulated host): how B logs the user on."""
    return world.directory.network_logon(b, user, proof)


def activation(b: HostModel, token: Token, level: int | None = None,
               source: str = "") -> Check:
    """c1.activation: the DCOM hardening (KB 5004442: below packet integrity refused on a
    hardened B, when ``level`` is known), then B's launch and activation permissions for WMI,
    for winmgmt's state (Remote Launch only when it must be started), and whether a stopped
    one can start."""
    if level is not None:
        check = b.check_activation_level(token, level, source)
        if not check.ok:
            return check
    return b.check_wmi_activation(token)


def access(host: HostModel, token: Token, server: Literal["wmi", "sink"],
           level: int | None = None) -> Check:
    """c1.access (B, the WMI object) and c2.access (A, the sink): DCOM Remote Access, after
    the RPC runtime's RestrictRemoteClients (which rejects an anonymous call first) and, for
    WMI at a known call ``level``, the standalone host's authentication level."""
    refused = host.check_anonymous_rpc(token)
    if refused is not None:
        return refused
    if server == "wmi" and level is not None and host.wmi_host.standalone:
        floor = host.check_wmi_call_level(level)
        if not floor.ok:
            return floor
    # MS-DCOM 3.1.1.5.4: the exporter checks the caller's access permission on every ORPC.
    return host.dcom.check_remote_access(token, server)


def namespace_login(b: HostModel, token: Token, namespace: str,
                    level: int | None = None) -> Check:
    """c1.namespace: NTLMLogin to the namespace (Enable Account + Remote Enable, or unknown),
    then, with ``level`` (flow), :func:`namespace_request` for the requests that follow."""
    return b.wmi.check_login(token, namespace, level)


def namespace_request(b: HostModel, namespace: str, level: int | None) -> Check:
    """c1.namespace, on the wire: a request (IWbemServices::ExecQuery and the rest) in a
    RequiresEncryption namespace below packet privacy is refused; NTLMLogin itself is not
    judged by level (MS-WMI 2.2.30.3; Learn WmiSdk/requiring-an-encrypted-connection-to-a-
    namespace: WMI rejects "incoming data requests")."""
    return b.wmi.check_encryption(namespace, level)


def callback_ladder(world: World, b: str, a: str | None,
                    namespace: str | None = None) -> tuple[cb.Rung, ...]:
    """c2.identity: every (identity, level) B tries when it calls the sink on A, for an
    asynchronous call in ``namespace`` (empty: B does not call back at all)."""
    bm = world.host(b)
    return cb.ladder(world.directory, b, a, anonymous=bm.anonymous_callback.ok,
                     privacy_only=namespace is not None
                     and bm.wmi.requires_encryption(namespace))


def callback_identity(world: World, b: str, a: str | None, namespace: str,
                      rungs: tuple[cb.Rung, ...]) -> Check:
    """c2.identity: does B call the sink back at all? Not when every identity it has for A is
    anonymous and it may not call anonymously (AllowAnonymousCallback, Vista and later), or
    when the namespace requires encryption and A does not know B's machine account."""
    if rungs:
        return Check(True, "B calls the sink back", "callback")
    bm = world.host(b)
    if bm.wmi.requires_encryption(namespace):
        # "Both incoming data requests and asynchronous callbacks must be encrypted" (Learn
        # WmiSdk/securing-wmi-namespaces): only an authenticated callback can be; B logs
        # WBEM_MC_WBEM_REQUIRES_ENCRYPTION_ASYNC_DENIED (Learn WmiSdk WMI Event Messages).
        return Check(False, f"{namespace} requires encryption, so {b} may call the sink back "
                     f"only at RPC_C_AUTHN_LEVEL_PKT_PRIVACY as its machine account, which "
                     f"{a or 'A'} does not recognize. "
                     + wmi_events.encryption_async_denied_event(namespace),
                     "encryption-callback")
    return Check(False, f"{bm.anonymous_callback.reason}, and every identity {b} has for "
                 f"{a or 'A'} is anonymous", "anonymous-callback")


def sink_caller(a: HostModel, token: Token, program: str, owner: str | None) -> Check:
    """c2.access, inside the sink program on A: unsecapp's own check of who calls a sink
    handed to ``owner`` (B), with UnsecAppAccessControlDefault = 1 (Learn
    IWbemUnsecuredApartment::CreateSinkStub; model/unsecapp.py). An application's own sink
    does not read the value."""
    if program != fw.UNSECAPP:
        return Check(True, "the application's own sink does no unsecapp access check",
                     "unsecapp")
    return a.check_unsecapp_caller(token, owner)


def _sink_access(a: HostModel, token: Token, program: str, owner: str | None) -> Check:
    # MS-DCOM 3.1.1.5.4: COM's access check first, then the call reaches the sink program.
    com = access(a, token, "sink")
    if not com.ok:
        return com
    own = sink_caller(a, token, program, owner)
    return com if own.ok else own


def callback_access(a: HostModel, rungs: tuple[cb.Rung, ...], program: str = fw.UNSECAPP,
                    owner: str | None = None) -> Check:
    """c2.access: does A admit one of B's callback identities (B = ``owner``, to whom the
    sink was handed)? The first admitted wins."""
    # MS-WMI 3.1.1.1.3 and its product-behavior note: B calls with its machine account and,
    # when that is refused, lowers the authentication level down to none on XP/2003; a call
    # without authentication arrives as ANONYMOUS LOGON.
    tokens = cb.identities(rungs)
    first = _sink_access(a, tokens[0], program, owner)
    if first.ok:
        return first
    for other in tokens[1:]:
        again = _sink_access(a, other, program, owner)
        if again.ok:
            return Check(True, f"{first.reason}; B retried without authentication and "
                         f"{again.reason}", again.where)
    return first

"""The seed's two connections as an ordered list of steps, evaluated on the model.

Connection 1 (A to B) is made by every call; Connection 2 (B back to the sink on
A) only by asynchronous calls (seed: "Synchronous and semisynchronous calls only
make Connection 1. Connection 2 occurs only with asynchronous calls.").

Each step asks the model one question and, when the answer is no, names the
HRESULT Windows gives at that point. The emulated hosts ask the same model
functions, so what this module predicts is what a client gets on the wire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from wmilab.model import firewall as fw
from wmilab.model import hresult as hr
from wmilab.model.decision import Check
from wmilab.model.identity import Token
from wmilab.model.world import HostModel, World

if TYPE_CHECKING:
    from wmilab.scenario import Call


class Step(NamedTuple):
    """One evaluated step of a connection (a named tuple: the flow makes millions)."""

    id: str
    connection: int
    host: str  # the computer whose setting decides this step
    title: str
    ok: bool
    detail: str
    hresult: hr.HResult | None = None
    where: str = ""  # which setting decided (firewall origin, "launch_limits", ...)


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

STEP_ORDER = (C1_CLIENT_DCOM, C1_RPCSS, C1_LOGON, C1_ACTIVATION, C1_WMI_PORT, C1_ACCESS,
              C1_NAMESPACE, C2_IDENTITY, C2_RESOLVER_PORT, C2_SINK_PORT, C2_ACCESS)

STEP_TITLES = {
    C1_CLIENT_DCOM: "A may make DCOM calls to other computers (EnableDCOM on A)",
    C1_RPCSS: "A reaches RPCSS on B (TCP 135)",
    C1_LOGON: "B logs on A's user (NTLM network logon)",
    C1_ACTIVATION: "B's DCOM lets the user activate WMI remotely (and launch it if stopped)",
    C1_WMI_PORT: "A reaches the WMI service's dynamic RPC port on B",
    C1_ACCESS: "B's DCOM lets the user call into WMI remotely (remote access)",
    C1_NAMESPACE: "WMI on B accepts the login to the namespace (NTLMLogin)",
    C2_IDENTITY: "B picks the identity it calls the sink with",
    C2_RESOLVER_PORT: "B reaches the OXID resolver on A (TCP 135)",
    C2_SINK_PORT: "B reaches the sink's port on A",
    C2_ACCESS: "A's DCOM lets B's callback identity call the sink (remote access)",
}


class Verdict(NamedTuple):
    call: Call
    steps: tuple[Step, ...]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    @property
    def failed(self) -> Step | None:
        for s in self.steps:
            if not s.ok:
                return s
        return None

    @property
    def hresult(self) -> hr.HResult:
        f = self.failed
        return hr.S_OK if f is None or f.hresult is None else f.hresult

    @property
    def result(self) -> str:
        return "ok" if self.ok else self.hresult.hex

    def matches(self) -> bool | None:
        if self.call.expect is None:
            return None
        return self.result in self.call.expect


def sink_program(call: Call) -> str:
    """The program that hosts the callback sink on A."""
    # Seed: scripts and MMC snap-ins use %windir%\system32\wbem\unsecapp.exe; a C++ application
    # usually hosts its own sink, and then that program must be allowed on A.
    if call.sink.lower() == "unsecapp":
        return fw.UNSECAPP
    return fw.normalize_program(call.sink)


def _fw_step(step_id: str, conn: int, host: HostModel, v: fw.Verdict) -> Step:
    # A dropped connection surfaces as RPC_S_SERVER_UNAVAILABLE (seed: 0x800706ba).
    return Step(step_id, conn, host.name, STEP_TITLES[step_id], v.allowed, v.rule,
                None if v.allowed else hr.RPC_S_SERVER_UNAVAILABLE, v.origin)


def _check_step(step_id: str, conn: int, host: HostModel, c: Check, fail: hr.HResult) -> Step:
    return Step(step_id, conn, host.name, STEP_TITLES[step_id], c.ok, c.reason,
                None if c.ok else fail, c.where)


def _security_c1(world: World, b: HostModel, call: Call) -> tuple[Step, ...]:
    """Logon, activation and the namespace login: the steps that do not depend on A's address.

    They depend only on B, the account and the namespace, so a world remembers them.
    """
    key = ("c1", b.name, call.user.upper(), call.password, call.namespace.lower())
    found = world.memo.get(key)
    if found is None:
        found = _security_c1_eval(world, b, call)
        world.memo[key] = found
    return found  # type: ignore[return-value]


def _security_c1_eval(world: World, b: HostModel, call: Call) -> tuple[Step, ...]:
    password = call.password
    if password is None:
        password = world.password_of(call.user)
    logon = world.directory.network_logon(
        b.name, call.user, lambda p: password is not None and p == password)
    # A failed network logon fails the DCOM call with E_ACCESSDENIED (facts.md; seed).
    steps = [Step(C1_LOGON, 1, b.name, STEP_TITLES[C1_LOGON], logon.ok, logon.reason,
                  None if logon.ok else hr.E_ACCESSDENIED, logon.kind)]
    if not logon.ok or logon.token is None:
        return tuple(steps)
    token = logon.token
    # Without Remote Activation (and Remote Launch when winmgmt must be started) the
    # activation fails with 0x80070005 (seed, step 1); a disabled winmgmt cannot be started.
    activation = b.check_wmi_activation(token)
    steps.append(_check_step(C1_ACTIVATION, 1, b, activation,
                             hr.ERROR_SERVICE_DISABLED if activation.where == "service-disabled"
                             else hr.E_ACCESSDENIED))
    if not steps[-1].ok:
        return tuple(steps)
    steps.append(_check_step(C1_ACCESS, 1, b, b.dcom.check_remote_access(token, "wmi"),
                             hr.E_ACCESSDENIED))
    if not steps[-1].ok:
        return tuple(steps)
    login = b.wmi.check_login(token, call.namespace)
    # NTLMLogin without Enable Account + Remote Enable: WBEM_E_ACCESS_DENIED (MS-WMI 3.1.4.1.4);
    # an unknown namespace: WBEM_E_INVALID_NAMESPACE (MS-WMI 2.2.11).
    fail = hr.WBEM_E_INVALID_NAMESPACE if login.where == "namespace" else hr.WBEM_E_ACCESS_DENIED
    steps.append(_check_step(C1_NAMESPACE, 1, b, login, fail))
    return tuple(steps)


def _callback_tokens(world: World, a: HostModel, b: HostModel) -> tuple[Token, ...]:
    # The identities depend on B and on A (its domain, its Guest account).
    key = ("cb", b.name, a.name)
    tokens = world.memo.get(key)
    if tokens is None:
        tokens = world.directory.callback_tokens(b.name, a.name)
        world.memo[key] = tokens
    return tokens  # type: ignore[return-value]


def evaluate(world: World, call: Call) -> Verdict:
    """Walk the call's connections in order and stop at the first step that fails."""
    a = world.host(call.source)
    b = world.host(call.target)
    steps: list[Step] = []
    add = steps.append
    # EnableDCOM = N on A: "Local clients cannot access remote DCOM servers" (MSDocs
    # com/enabledcom). Choice (docs/flow.md): reported as E_ACCESSDENIED.
    if not a.outgoing.ok:
        add(_check_step(C1_CLIENT_DCOM, 1, a, a.outgoing, hr.E_ACCESSDENIED))
        return Verdict(call, tuple(steps))
    # Connection 1, part 1: TCP 135 on B, to RPCSS in svchost.exe (seed; TechNet cc737332).
    s = _fw_step(C1_RPCSS, 1, b, b.rpcss_inbound(a.ip))
    add(s)
    if not s.ok:
        return Verdict(call, tuple(steps))
    security = _security_c1(world, b, call)
    # Order on the wire: logon at bind, activation on port 135, then the dynamic port,
    # then remote access and NTLMLogin on the WMI object (MS-DCOM 3.1.2.5.2.3; MS-WMI 3.2.3).
    for s in security[:2]:
        add(s)
        if not s.ok:
            return Verdict(call, tuple(steps))
    # The WMI service's port is picked from B's dynamic RPC range at run time (KB 154596).
    s = _fw_step(C1_WMI_PORT, 1, b, b.wmi_inbound(a.ip))
    add(s)
    if not s.ok:
        return Verdict(call, tuple(steps))
    for s in security[2:]:
        add(s)
        if not s.ok:
            return Verdict(call, tuple(steps))
    if call.mode != "async":
        return Verdict(call, tuple(steps))

    # Connection 2: B calls back the sink on A.
    tokens = _callback_tokens(world, a, b)
    token = tokens[0]
    if token.guest:
        # An untrusted machine account maps to an enabled Guest on A (KB 103390).
        who = (f"its machine account, which {a.name} does not know and logs on as "
               f"{token.name} (the Guest account is enabled)")
    elif not token.anonymous:
        who = "its machine account " + token.name
    elif world.directory.domain_of(b.name) is None:
        who = f"ANONYMOUS LOGON, because {b.name} is in a workgroup"
    else:
        who = (f"ANONYMOUS LOGON, because {a.name} neither trusts {b.name}'s domain nor "
               "has an enabled Guest account")
    add(Step(C2_IDENTITY, 2, b.name, STEP_TITLES[C2_IDENTITY], True,
             f"{b.name} calls back as {who}", None,
             "anonymous" if token.anonymous else "guest" if token.guest else "machine"))
    # Seed: "open the DCOM port TCP 135 on Computer A. If this port is not open, the error
    # 0x800706ba will occur."
    s = _fw_step(C2_RESOLVER_PORT, 2, a, a.rpcss_inbound(b.ip))
    add(s)
    if not s.ok:
        return Verdict(call, tuple(steps))
    # Seed: add unsecapp.exe (or the application's own sink) to A's exceptions list.
    s = _fw_step(C2_SINK_PORT, 2, a, a.sink_inbound(b.ip, sink_program(call)))
    add(s)
    if not s.ok:
        return Verdict(call, tuple(steps))
    # MS-WMI 3.1.1.1.3 and its product-behavior note: B calls with its machine account and,
    # when that is refused, lowers the authentication level down to none on XP/2003; a call
    # without authentication arrives as ANONYMOUS LOGON. The first identity A admits wins.
    first = a.dcom.check_remote_access(token, "sink")
    access = first
    for other in tokens[1:]:
        if access.ok:
            break
        again = a.dcom.check_remote_access(other, "sink")
        if again.ok:
            access = Check(True, f"{first.reason}; B retried without authentication and "
                           f"{again.reason}", again.where)
    # Seed: an anonymous callback "fails with either the 0x80070005 error or the 0x8007000e
    # error". Choice (docs/flow.md): E_ACCESSDENIED when a DCOM security check refuses it.
    add(_check_step(C2_ACCESS, 2, a, access, hr.E_ACCESSDENIED))
    return Verdict(call, tuple(steps))

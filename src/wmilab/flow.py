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

from wmilab import hresult as hr
from wmilab import steps
from wmilab.model import firewall as fw
from wmilab.model.decision import Check
from wmilab.model.hardening import PKT_INTEGRITY
from wmilab.model.world import WINMGMT, HostModel, World

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
    return steps.sink_program(call.sink)


def _step(step_id: str, host: HostModel, c: Check) -> Step:
    """A step evaluated from its question's answer; a refusal gets the table's HRESULT."""
    spec = steps.TABLE[step_id]
    return Step(step_id, spec.connection, host.name, spec.title, c.ok, c.reason,
                None if c.ok else spec.failure(c), c.where)


def _security_c1(world: World, b: HostModel, call: Call) -> tuple[Step, ...]:
    """Logon, activation and the namespace login: the steps that do not depend on A's address.

    They depend only on B, the account and the namespace, so a world remembers them.
    """
    # The activation level A sends (KB 5004442) matters only to a hardened B, and A's address
    # only to the event text of a refusal.
    a = world.host(call.source)
    level, _how = a.activation_level(call.auth_level_value)
    refused = b.hardening.enforced and level < PKT_INTEGRITY
    # The level of the ORPC calls on WMI matters only to a standalone WMI host (winmgmt
    # /standalonehost level), and only when the program sets it (CoSetProxyBlanket: not
    # negotiated); otherwise COM's negotiation takes the higher of the client's level and the
    # server's (Learn "Security Blanket Negotiation"), which the server's level never refuses.
    call_level = call.auth_level_value
    # The level of the requests in the namespace matters only when it requires encryption.
    encrypted = b.wmi.requires_encryption(call.namespace)
    request_level = b.wmi_call_level(a, call.auth_level_value)[0] if encrypted else None
    key = ("c1", b.name, call.user.upper(), call.password, call.namespace.lower(),
           level if b.hardening.enforced else None, call.source if refused else None,
           call_level if b.wmi_host.standalone else None, request_level)
    found = world.memo.get(key)
    if found is None:
        found = _security_c1_eval(world, b, call, level, call_level, request_level)
        world.memo[key] = found
    return found  # type: ignore[return-value]


def _security_c1_eval(world: World, b: HostModel, call: Call, level: int,
                      call_level: int | None, request_level: int | None) -> tuple[Step, ...]:
    password = call.password
    if password is None:
        password = world.password_of(call.user)
    logon = steps.logon(world, b.name, call.user,
                        lambda p: password is not None and p == password)
    out = [_step(steps.C1_LOGON, b, Check(logon.ok, logon.reason, logon.kind))]
    if not logon.ok or logon.token is None:
        return tuple(out)
    token = logon.token
    # ``level``: what A's activation reaches B with (KB 5004442: A's client default or the
    # call's auth_level, raised by an updated Windows A).
    out.append(_step(steps.C1_ACTIVATION, b, steps.activation(b, token, level,
                                                        str(world.host(call.source).ip))))
    if not out[-1].ok:
        return tuple(out)
    out.append(_step(steps.C1_ACCESS, b, steps.access(b, token, "wmi", call_level)))
    if not out[-1].ok:
        return tuple(out)
    # ``request_level``: what the requests in the namespace reach B with (the program's
    # auth_level, else COM's negotiation; KB 5004442 raises activations only), known when the
    # namespace requires encryption.
    check = steps.namespace_login(b, token, call.namespace, request_level)
    if not check.ok and check.where == "encryption" and request_level is not None:
        how = b.wmi_call_level(world.host(call.source), call.auth_level_value)[1]
        check = Check(False, f"{check.reason} ({how})", check.where)
    out.append(_step(steps.C1_NAMESPACE, b, check))
    return tuple(out)


def _callback(world: World, a: HostModel, b: HostModel,
              namespace: str, program: str) -> tuple[Step, Check | None]:
    """c2.identity and c2.access: they depend on B and on A (whom it trusts, its Guest
    account) and on whether the namespace requires encryption, so a world remembers them.
    The access check is None when B does not call back at all."""
    encrypted = b.wmi.requires_encryption(namespace)
    key = ("cb", b.name, a.name, encrypted, program)
    found = world.memo.get(key)
    if found is None:
        rungs = steps.callback_ladder(world, b.name, a.name, namespace)
        refusal = steps.callback_identity(world, b.name, a.name, namespace, rungs)
        if not refusal.ok:
            found = (_step(steps.C2_IDENTITY, b, refusal), None)
            world.memo[key] = found
            return found
        token = rungs[0].token
        if token.guest:
            # An unknown machine account maps to an enabled Guest on A (KB 103390).
            who = (f"its machine account, which {a.name} does not know and logs on as "
                   f"{token.name} (the Guest account is enabled)")
        elif not token.anonymous:
            who = "its machine account " + token.name
        elif world.directory.domain_of(b.name) is None:
            who = f"ANONYMOUS LOGON, because {b.name} is in a workgroup"
        else:
            who = (f"ANONYMOUS LOGON, because {a.name} neither trusts {b.name}'s domain nor "
                   "has an enabled Guest account")
        identity = _step(steps.C2_IDENTITY, b, Check(
            True, f"{b.name} calls back as {who}",
            "anonymous" if token.anonymous else "guest" if token.guest else "machine"))
        found = (identity, steps.callback_access(a, rungs, program, b.name))
        world.memo[key] = found
    return found  # type: ignore[return-value]


def evaluate(world: World, call: Call) -> Verdict:
    """Walk the call's connections in order and stop at the first step that fails."""
    a = world.host(call.source)
    b = world.host(call.target)
    out: list[Step] = []
    add = out.append
    if not a.outgoing.ok:
        add(_step(steps.C1_CLIENT_DCOM, a, steps.client_dcom(a)))
        return Verdict(call, tuple(out))
    # Connection 1, part 1: TCP 135 on B, to RPCSS in svchost.exe. A's own firewall first:
    # WFAS filters outbound connections too.
    out_a = steps.caller_outbound(a, b, "rpcss")
    s = (_step(steps.C1_RPCSS, a, out_a) if not out_a.ok
         else _step(steps.C1_RPCSS, b, steps.rpcss_port(b, a.ip)))
    add(s)
    if not s.ok:
        return Verdict(call, tuple(out))
    security = _security_c1(world, b, call)
    # Order on the wire: logon at bind, activation on port 135, then the dynamic port,
    # then remote access and NTLMLogin on the WMI object (MS-DCOM 3.1.2.5.2.3; MS-WMI 3.2.3).
    for s in security[:2]:
        add(s)
        if not s.ok:
            return Verdict(call, tuple(out))
    out_a = steps.caller_outbound(a, b, "wmi")
    s = (_step(steps.C1_WMI_PORT, a, out_a) if not out_a.ok
         else _step(steps.C1_WMI_PORT, b, steps.wmi_port(b, a.ip)))
    add(s)
    if not s.ok:
        return Verdict(call, tuple(out))
    for s in security[2:]:
        add(s)
        if not s.ok:
            return Verdict(call, tuple(out))
    if call.mode != "async":
        return Verdict(call, tuple(out))

    # Connection 2: B calls back the sink on A.
    identity, access = _callback(world, a, b, call.namespace, sink_program(call))
    add(identity)
    if access is None:
        return Verdict(call, tuple(out))
    # B's WMI service (svchost.exe, service winmgmt) connects out to A: the WMI-Out rule.
    out_b = steps.outbound(b, a.ip, steps.EPM_PORTS, fw.SVCHOST, WINMGMT)
    s = (_step(steps.C2_RESOLVER_PORT, b, out_b) if not out_b.ok
         else _step(steps.C2_RESOLVER_PORT, a, steps.rpcss_port(a, b.ip)))
    add(s)
    if not s.ok:
        return Verdict(call, tuple(out))
    out_b = steps.outbound(b, a.ip, a.rpc_ports, fw.SVCHOST, WINMGMT)
    s = (_step(steps.C2_SINK_PORT, b, out_b) if not out_b.ok
         else _step(steps.C2_SINK_PORT, a, steps.sink_port(a, b.ip, sink_program(call))))
    add(s)
    if not s.ok:
        return Verdict(call, tuple(out))
    add(_step(steps.C2_ACCESS, a, access))
    return Verdict(call, tuple(out))

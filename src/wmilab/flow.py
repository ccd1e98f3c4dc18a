"""The seed's two connections as an ordered list of steps, evaluated on the model.

Connection 1 (A to B) is made by every call; Connection 2 (B back to the sink on
A) only by asynchronous calls (seed: "Synchronous and semisynchronous calls only
make Connection 1. Connection 2 occurs only with asynchronous calls.").

Each step asks the model one question and, when the answer is no, names the
HRESULT Windows gives at that point. The emulated hosts ask the same model
functions, so what this module predicts is what a client gets on the wire.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Literal, NamedTuple

from wmilab import hresult as hr
from wmilab import steps
from wmilab.model import firewall as fw
from wmilab.model.addresses import SourceTable
from wmilab.model.decision import Check
from wmilab.model.hardening import PKT_INTEGRITY
from wmilab.model.identity import Token
from wmilab.model.ports import PortRange
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
    """A call's evaluated steps. The walk stops at the first step that fails, so a failing
    step, when there is one, is the last."""

    call: Call
    steps: tuple[Step, ...]

    @property
    def ok(self) -> bool:
        return self.steps[-1].ok

    @property
    def failed(self) -> Step | None:
        last = self.steps[-1]
        return None if last.ok else last

    @property
    def hresult(self) -> hr.HResult:
        last = self.steps[-1]
        return hr.S_OK if last.ok or last.hresult is None else last.hresult

    @property
    def result(self) -> str:
        last = self.steps[-1]
        if last.ok:
            return "ok"
        return (last.hresult or hr.S_OK).hex

    def matches(self) -> bool | None:
        if self.call.expect is None:
            return None
        return self.result in self.call.expect


def sink_program(call: Call) -> str:
    """The program that hosts the callback sink on A."""
    return steps.sink_program(call.sink)


@lru_cache(maxsize=256)
def _sink_program(sink: str) -> str:
    return steps.sink_program(sink)


def _step(step_id: str, host: HostModel, c: Check) -> Step:
    """A step evaluated from its question's answer; a refusal gets the table's HRESULT."""
    spec = steps.TABLE[step_id]
    return Step(step_id, spec.connection, host.name, spec.title, c.ok, c.reason,
                None if c.ok else spec.failure(c), c.where)


# ---- the compiled call plan of a host -------------------------------------------------------

_ASK: SourceTable[Step] = SourceTable((), None)  # no compiled answer: ask the step's question
# Asked once, by the question: a host's table is compiled when it is asked a second time, so
# a model that answers one call (a candidate of the fix search, a host of a one-call-per-host
# file) costs no more than the question.
_ONCE: SourceTable[Step] = SourceTable((), None)


def _rpcss_sources(model: HostModel, _key: str) -> SourceTable[Check] | None:
    return steps.rpcss_sources(model)


def _wmi_sources(model: HostModel, _key: str) -> SourceTable[Check] | None:
    return steps.wmi_sources(model)


def _sink_sources(model: HostModel, sink: str) -> SourceTable[Check] | None:
    return steps.sink_sources(model, steps.sink_program(sink))


class HostPlan:
    """What evaluating a call needs of one host, compiled once from the steps' own answers.

    Each firewall step of the host becomes a table of finished :class:`Step` objects per
    source address (``steps.rpcss_sources``, ``wmi_sources``, ``sink_sources``: the same
    firewall answer the step's question decides from), so a call looks up its caller's
    address and allocates nothing; where the answer names the source (a refusal "SRC is
    outside it") the table has no entry and the flow asks the step's question. Beside them,
    the host's facts the security steps' memo key needs: the DCOM hardening, a standalone
    WMI, which namespaces require encryption, and, as a caller, its activation level per
    ``auth_level``. The plan depends on the host's model alone, so it is kept with the model
    (``HostModel.plan``) and shared by every world that shares the model
    (tests/test_flow_plan.py holds each table to the step's own answer).
    """

    __slots__ = ("_encrypted", "_levels", "_ports", "_sinks", "enforced",
                 "ip", "ipn", "outbound_open", "outgoing", "source_text", "standalone")

    # The plan holds no reference to its model (the model holds the plan, and a cycle would
    # leave every dropped candidate's model to the cyclic collector): each method that may
    # compile takes the model.
    def __init__(self, model: HostModel) -> None:
        self.ip = model.ip
        self.ipn = int(model.ip)
        self.source_text = str(model.ip)
        self.outgoing: Step | None = (None if model.outgoing.ok else
                                      _step(steps.C1_CLIENT_DCOM, model, steps.client_dcom(model)))
        self.enforced: bool = model.hardening.enforced
        # As a sender: may every outbound connection pass its own firewall (then the flow
        # need not ask ``steps.outbound``)?
        self.outbound_open: bool = steps.outbound_open(model)
        self.standalone: bool = model.wmi_host.standalone
        self._encrypted: dict[str, bool] = {}
        self._levels: dict[str | None, int] = {}
        # The firewall steps' tables: rpcss, wmi and resolver; and per ``sink`` field.
        self._ports: dict[str, SourceTable[Step]] = {}
        self._sinks: dict[str, SourceTable[Step]] = {}

    @staticmethod
    def _table(tables: dict[str, SourceTable[Step]], key: str, step_id: str,
               sources: Callable[[HostModel, str], SourceTable[Check] | None],
               model: HostModel) -> SourceTable[Step]:
        """``tables[key]``: :data:`_ONCE` on its first use, then ``step_id``'s table compiled
        from ``sources(model, key)`` (:data:`_ASK` when only the step's question can say)."""
        found = tables.get(key)
        if found is None:
            found = tables[key] = _ONCE
        elif found is _ONCE:
            table = sources(model, key)
            found = tables[key] = _ASK if table is None else table.map(
                lambda c: _step(step_id, model, c))
        return found

    def rpcss(self, model: HostModel) -> SourceTable[Step]:
        """c1.rpcss-port, this host as B."""
        return self._table(self._ports, "rpcss", steps.C1_RPCSS, _rpcss_sources, model)

    def wmi(self, model: HostModel) -> SourceTable[Step]:
        """c1.wmi-port, this host as B."""
        return self._table(self._ports, "wmi", steps.C1_WMI_PORT, _wmi_sources, model)

    def resolver(self, model: HostModel) -> SourceTable[Step]:
        """c2.resolver-port, this host as A."""
        return self._table(self._ports, "resolver", steps.C2_RESOLVER_PORT, _rpcss_sources,
                           model)

    def sink(self, model: HostModel, sink: str) -> SourceTable[Step]:
        """c2.sink-port, this host as A, for a call's ``sink`` field."""
        return self._table(self._sinks, sink, steps.C2_SINK_PORT, _sink_sources, model)

    def encrypted(self, model: HostModel, namespace: str) -> bool:
        found = self._encrypted.get(namespace)
        if found is None:
            found = self._encrypted[namespace] = model.wmi.requires_encryption(namespace)
        return found

    def level(self, model: HostModel, call: Call) -> int:
        """As the caller: the level the activation of ``call`` reaches B with (KB 5004442)."""
        found = self._levels.get(call.auth_level)
        if found is None:
            found = self._levels[call.auth_level] = model.activation_level(
                call.auth_level_value)[0]
        return found


def plan(model: HostModel) -> HostPlan:
    """The compiled call plan of ``model`` (made on first use, kept with the model)."""
    found: HostPlan | None = model.plan
    if found is None:
        found = model.plan = HostPlan(model)
    return found


class _Security(NamedTuple):
    """Logon, activation, remote access and the namespace login of one (B, account,
    namespace, levels): ``head`` the steps before the WMI port (logon, activation), ``tail``
    those after it. ``token`` is set when B's DCOM hardening refuses the activation: the
    refusal names A's address, so the flow asks that step per call."""

    head: tuple[Step, ...]
    tail: tuple[Step, ...]
    token: Token | None = None


def _security_c1(world: World, a: HostModel, b: HostModel, pa: HostPlan, pb: HostPlan,
                 call: Call) -> tuple[_Security, int | None]:
    """Logon, activation and the namespace login: the steps that do not depend on A's address.

    They depend only on B, the account and the namespace (and A's levels where B's settings
    make them count), so a world remembers them. Returns them with the activation level.
    """
    # The activation level A sends (KB 5004442) matters only to a hardened B, and A's address
    # only to the event text of a refusal.
    level = pa.level(a, call) if pb.enforced else None
    refused = level is not None and level < PKT_INTEGRITY
    # The level of the ORPC calls on WMI matters only to a standalone WMI host (winmgmt
    # /standalonehost level), and only when the program sets it (CoSetProxyBlanket: not
    # negotiated); otherwise COM's negotiation takes the higher of the client's level and the
    # server's (Learn "Security Blanket Negotiation"), which the server's level never refuses.
    call_level = call.auth_level_value if pb.standalone else None
    # The level of the requests in the namespace matters only when it requires encryption.
    request_level = (b.wmi_call_level(a, call.auth_level_value)[0]
                     if pb.encrypted(b, call.namespace) else None)
    key = ("c1", b.name, call.user, call.password, call.namespace, refused, call_level,
           request_level)
    found = world.memo.get(key)
    if found is None:
        found = _security_c1_eval(world, a, b, call, level, refused, call_level, request_level)
        world.memo[key] = found
    return found, level  # type: ignore[return-value]


def _security_c1_eval(world: World, a: HostModel, b: HostModel, call: Call, level: int | None,
                      refused: bool, call_level: int | None,
                      request_level: int | None) -> _Security:
    password = call.password
    if password is None:
        password = world.password_of(call.user)
    logon = steps.logon(world, b.name, call.user,
                        lambda p: password is not None and p == password)
    first = _step(steps.C1_LOGON, b, Check(logon.ok, logon.reason, logon.kind))
    if not logon.ok or logon.token is None:
        return _Security((first,), ())
    token = logon.token
    if refused:
        return _Security((first,), (), token)
    # ``level``: what A's activation reaches B with (KB 5004442: A's client default or the
    # call's auth_level, raised by an updated Windows A); here one B does not refuse.
    activation = _step(steps.C1_ACTIVATION, b, steps.activation(b, token, level))
    if not activation.ok:
        return _Security((first, activation), ())
    head = (first, activation)
    access = _step(steps.C1_ACCESS, b, steps.access(b, token, "wmi", call_level))
    if not access.ok:
        return _Security(head, (access,))
    # ``request_level``: what the requests in the namespace reach B with (the program's
    # auth_level, else COM's negotiation; KB 5004442 raises activations only), known when the
    # namespace requires encryption.
    check = steps.namespace_login(b, token, call.namespace, request_level)
    if not check.ok and check.where == "encryption" and request_level is not None:
        how = b.wmi_call_level(a, call.auth_level_value)[1]
        check = Check(False, f"{check.reason} ({how})", check.where)
    return _Security(head, (access, _step(steps.C1_NAMESPACE, b, check)))


def _callback(world: World, a: HostModel, b: HostModel, pb: HostPlan,
              namespace: str, program: str) -> tuple[Step, Step | None]:
    """c2.identity and c2.access: they depend on B and on A (whom it trusts, its Guest
    account), on whether the namespace requires encryption and on the sink's program, so a
    world remembers them. The access step is None when B does not call back at all."""
    encrypted = pb.encrypted(b, namespace)
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
        found = (identity, _step(steps.C2_ACCESS, a,
                                 steps.callback_access(a, rungs, program, b.name)))
        world.memo[key] = found
    return found  # type: ignore[return-value]


def _outbound(step_id: str, sender: HostModel, dest: IPv4Address, ports: PortRange,
              program: str | None = None, service: str = "") -> Step | None:
    """The sender's own firewall on a port step (``steps.outbound``): its refusal, or None."""
    check = steps.outbound(sender, dest, ports, program, service)
    return None if check.ok else _step(step_id, sender, check)


def _caller_outbound(step_id: str, a: HostModel, b: HostModel,
                     purpose: Literal["rpcss", "wmi"]) -> Step | None:
    """A's own firewall on a port step of Connection 1 (``steps.caller_outbound``, the
    question the labs ask too): its refusal, or None."""
    check = steps.caller_outbound(a, b, purpose)
    return None if check.ok else _step(step_id, a, check)


def evaluate(world: World, call: Call) -> Verdict:
    """Walk the call's connections in order and stop at the first step that fails.

    Every step is its question's answer in ``steps``: the firewall steps through the hosts'
    compiled plans (:class:`HostPlan`, the same answer per source address, or the question
    itself where the answer names the source), the security steps remembered per world.
    """
    a = world.host(call.source)
    b = world.host(call.target)
    pa: HostPlan | None = a.plan
    if pa is None:
        pa = plan(a)
    if pa.outgoing is not None:
        return Verdict(call, (pa.outgoing,))
    pb: HostPlan | None = b.plan
    if pb is None:
        pb = plan(b)
    # Connection 1, part 1: TCP 135 on B, to RPCSS in svchost.exe. A's own firewall first:
    # WFAS filters outbound connections too.
    s = None if pa.outbound_open else _caller_outbound(steps.C1_RPCSS, a, b, "rpcss")
    if s is None:
        table = pb.rpcss(b)
        s = table.const or table.get(pa.ipn) or _step(steps.C1_RPCSS, b,
                                                      steps.rpcss_port(b, pa.ip))
    if not s.ok:
        return Verdict(call, (s,))
    # Order on the wire: logon at bind, activation on port 135, then the dynamic port,
    # then remote access and NTLMLogin on the WMI object (MS-DCOM 3.1.2.5.2.3; MS-WMI 3.2.3).
    security, level = _security_c1(world, a, b, pa, pb, call)
    head = security.head
    if security.token is not None:
        # B's hardening refuses the activation, and its event 10036 names A's address.
        refused = _step(steps.C1_ACTIVATION, b,
                        steps.activation(b, security.token, level, pa.source_text))
        return Verdict(call, (s, *head, refused))
    if not head[-1].ok:
        return Verdict(call, (s, *head))
    port = None if pa.outbound_open else _caller_outbound(steps.C1_WMI_PORT, a, b, "wmi")
    if port is None:
        table = pb.wmi(b)
        port = table.const or table.get(pa.ipn) or _step(steps.C1_WMI_PORT, b,
                                                         steps.wmi_port(b, pa.ip))
    if not port.ok:
        return Verdict(call, (s, *head, port))
    c1 = (s, *head, port, *security.tail)
    if not c1[-1].ok or call.mode != "async":
        return Verdict(call, c1)

    # Connection 2: B calls back the sink on A.
    program = _sink_program(call.sink)
    identity, access = _callback(world, a, b, pb, call.namespace, program)
    if access is None:
        return Verdict(call, (*c1, identity))
    # B's WMI service (svchost.exe, service winmgmt) connects out to A: the WMI-Out rule.
    s = None if pb.outbound_open else _outbound(steps.C2_RESOLVER_PORT, b, pa.ip,
                                                steps.EPM_PORTS, fw.SVCHOST, WINMGMT)
    if s is None:
        table = pa.resolver(a)
        s = table.const or table.get(pb.ipn) or _step(steps.C2_RESOLVER_PORT, a,
                                                      steps.rpcss_port(a, pb.ip))
    if not s.ok:
        return Verdict(call, (*c1, identity, s))
    sink = None if pb.outbound_open else _outbound(steps.C2_SINK_PORT, b, pa.ip, a.rpc_ports,
                                                   fw.SVCHOST, WINMGMT)
    if sink is None:
        table = pa.sink(a, call.sink)
        sink = table.const or table.get(pb.ipn) or _step(
            steps.C2_SINK_PORT, a, steps.sink_port(a, pb.ip, program))
    if not sink.ok:
        return Verdict(call, (*c1, identity, s, sink))
    return Verdict(call, (*c1, identity, s, sink, access))

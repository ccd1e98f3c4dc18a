"""Connection 2 on B: deliver an asynchronous call's results to the client's sink on A.

MS-WMI 3.1.1.1.3: the server answers an asynchronous call at once with WBEM_S_NO_ERROR, then
calls the client's IWbemObjectSink: ``Indicate`` with the result objects, ``SetStatus`` with
the final HRESULT. To reach the sink, B asks the OXID resolver on A (TCP 135) for the sink's
OXID (ResolveOxid2, MS-DCOM 3.1.2.5.1.1), connects to the string binding it returns and
binds IWbemObjectSink (seed: "Connection 2 from Computer B to Computer A delivers the
results"). Who B is on A comes from the model: ``directory.callback_tokens(B, A)``.

What A lets through (firewall on 135 and on the sink's port, the logon, DCOM Remote Access)
is decided by A's own emulated host, with the same model calls ``flow`` makes at steps
c2.resolver-port, c2.sink-port and c2.access; this module only reports what came back.

B calls A through :class:`wmilab.transport.RpcClient`, the asyncio client that wmilab's own
WMI client (client/) uses too; it is re-exported here for existing imports.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wmilab import hresult as hr
from wmilab import steps
from wmilab.errors import WireError
from wmilab.host.service_sockets import service_socket
from wmilab.model import firewall as fw
from wmilab.model.callback import Rung
from wmilab.model.identity import Token
from wmilab.model.world import WINMGMT
from wmilab.transport import RpcCallError, RpcClient
from wmilab.wire import dcom, ids, wmi
from wmilab.wire.dcom import DualStringArray, NdrReader, NdrWriter
from wmilab.wire.rpc import AuthLevel
from wmilab.wire.rpc_conn import ClientCredentials

if TYPE_CHECKING:
    from wmilab.host.server import HostServer

__all__ = [
    "CallbackOutcome", "CallbackRunner", "ResolvedOxid",
    "build_resolve_oxid2_request", "parse_resolve_oxid2_reply",
]

log = logging.getLogger("wmilab.host")

RPC_S_SERVER_UNAVAILABLE = hr.RPC_S_SERVER_UNAVAILABLE.code
E_ACCESSDENIED = hr.E_ACCESSDENIED.code
RPC_S_CALL_FAILED = hr.RPC_S_CALL_FAILED.code
WBEM_STATUS_COMPLETE = 0  # MS-WMI 2.2.3: SetStatus lFlags for the final result
WBEM_E_OUT_OF_MEMORY = hr.WBEM_E_OUT_OF_MEMORY.code  # from the status-code catalogue
INDICATE_BATCH = 64  # Choice: objects per Indicate call



# ---------------------------------------------------------------------------------------------
# ResolveOxid2, client role (MS-DCOM 3.1.2.5.1.1 / 3.2.4.1.1.1)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedOxid:
    bindings: DualStringArray | None
    ipid_rem_unknown: uuid.UUID
    authn_hint: int
    status: int


def build_resolve_oxid2_request(oxid: int,
                                protseqs: Sequence[int] = (dcom.TOWER_NCACN_IP_TCP,)) -> bytes:
    """ResolveOxid2 in-parameters: pOxid, cRequestedProtseqs, arRequestedProtseqs."""
    w = NdrWriter()
    w.u64(oxid)
    w.u16(len(protseqs))
    w.u32(len(protseqs))  # conformant array: max count, then the elements
    for p in protseqs:
        w.u16(p)
    return w.getvalue()


def parse_resolve_oxid2_reply(stub: bytes) -> ResolvedOxid:
    """ppdsaOxidBindings, pipidRemUnknown, pAuthnHint, pComVersion, error_status_t."""
    def go(r: NdrReader) -> ResolvedOxid:
        bindings = dcom.read_dsa_ndr(r) if r.ptr() else None
        ipid = r.guid()
        hint = r.u32()
        r.u16()
        r.u16()  # COMVERSION
        return ResolvedOxid(bindings, ipid, hint, r.u32())
    return dcom.decode_with("ResolveOxid2 reply", stub, go)


def _pick_binding(bindings: DualStringArray, dialled: str) -> tuple[str, int] | None:
    """The binding on the address we dialled, else the first with a port (MS-DCOM 3.2.4.1.1)."""
    endpoints = [(h, p) for h, p in bindings.tcp_endpoints() if p is not None]
    for h, p in endpoints:
        if h == dialled:
            return h, p
    return endpoints[0] if endpoints else None


# ---------------------------------------------------------------------------------------------
# The callback runner of one emulated host (B)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackOutcome:
    """What one callback to a sink came to (one per asynchronous call)."""

    operation: str  # "IWbemServices::EXEC_QUERY_ASYNC"
    client_host: str | None  # the scenario host the sink's resolver address stands for
    resolver: str  # the address B dialled
    identity: str  # who B was on A in the last attempt
    auth_level: int  # RPC_C_AUTHN_LEVEL of the last attempt (1 = none)
    hresult: int  # 0 when the sink took every object and SetStatus
    objects: int  # objects the sink accepted
    status: int  # the HRESULT B passed to SetStatus
    attempts: int
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.hresult == 0


class CallbackRunner:
    """Background callbacks of one host, bounded in number and in time."""

    def __init__(self, server: HostServer, *, max_in_flight: int = 64,
                 connect_timeout: float = 5.0, call_timeout: float = 30.0,
                 history: int = 256) -> None:
        self.server = server
        self.max_in_flight = max_in_flight
        self.connect_timeout = connect_timeout
        self.call_timeout = call_timeout
        self.outcomes: deque[CallbackOutcome] = deque(maxlen=history)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def can_start(self) -> bool:
        return len(self._tasks) < self.max_in_flight

    def start(self, operation: str, sink: wmi.SinkRef, objects: Sequence[bytes],
              status: int | None, namespace: str | None = None) -> None:
        """Run the callback in the background (the caller has replied WBEM_S_NO_ERROR).

        ``status`` None: Indicate only, no SetStatus (an event of a notification query that
        goes on, MS-WMI 3.1.4.3.21). ``namespace``: the call's, which decides whether the
        callback must be encrypted (model/callback.py)."""
        task = asyncio.get_running_loop().create_task(
            self._run(operation, sink, list(objects), status, namespace))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until every running callback has finished (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- one callback ---------------------------------------------------------------------

    def _client_host(self, address: str) -> str | None:
        # The host whose loopback address the sink's resolver binding names; an address of no
        # host stands for the configured client host, as for inbound connections (gate.py).
        return self.server.addresses.host_at(address) or self.server.client_host

    def _attempts(self, client: str | None, namespace: str | None) -> tuple[Rung, ...]:
        # The ladder flow evaluates at c2.identity / c2.access (wmilab.steps, model/callback.py).
        return steps.callback_ladder(self.server.world, self.server.name, client, namespace)

    async def _run(self, operation: str, sink: wmi.SinkRef, objects: list[bytes],
                   status: int | None, namespace: str | None = None) -> None:
        endpoints = sink.resolver_endpoints()
        resolver = endpoints[0][0] if endpoints else ""
        client = self._client_host(resolver) if resolver else None
        attempts = self._attempts(client, namespace)
        final = 0 if status is None else status
        outcome = CallbackOutcome(operation, client, resolver, "", AuthLevel.NONE,
                                  RPC_S_SERVER_UNAVAILABLE, 0, final, 0,
                                  "the sink's OBJREF names no TCP resolver address")
        if resolver and not attempts:
            # c2.identity: B does not call the sink back at all (no anonymous callback, or an
            # encrypted namespace A cannot be reached for); the step table's HRESULT.
            refusal = steps.callback_identity(self.server.world, self.server.name, client,
                                              namespace or "", attempts)
            code = steps.TABLE[steps.C2_IDENTITY].failure(refusal).code
            outcome = CallbackOutcome(operation, client, resolver, "", AuthLevel.NONE, code,
                                      0, final, 0, refusal.reason)
        elif resolver and client is not None:
            # c2.resolver-port and c2.sink-port, B's own side: its firewall may refuse the WMI
            # service's connections out to A (the model's outbound rules, as the flow asks).
            peer = self.server.world.host(client)
            step, out = steps.C2_RESOLVER_PORT, steps.outbound(
                self.server.model, peer.ip, steps.EPM_PORTS, fw.SVCHOST, WINMGMT)
            if out.ok:  # then the sink's port, a port of A's dynamic range (c2.sink-port)
                step, out = steps.C2_SINK_PORT, steps.outbound(
                    self.server.model, peer.ip, peer.rpc_ports, fw.SVCHOST, WINMGMT)
            if not out.ok:
                code = steps.TABLE[step].failure(out).code
                outcome = CallbackOutcome(operation, client, resolver, "", AuthLevel.NONE,
                                          code, 0, final, 0, out.reason)
                attempts = ()
        for n, (token, level) in enumerate(attempts, 1):
            if not resolver:
                break
            code, delivered, reason = await self._attempt(client, resolver, sink, objects,
                                                          status, token, level)
            outcome = CallbackOutcome(operation, client, resolver, token.name, level, code,
                                      delivered, final, n, reason)
            log.debug("%s callback attempt %d to %s as %s at level %d -> 0x%08X (%s)",
                      self.server.name, n, resolver, token.name, level, code, reason)
            # Only an access-denied refusal can change with a lower level (a refused connection
            # does not depend on it); Choice: objects already delivered are not sent twice.
            if code != E_ACCESSDENIED or delivered:
                break
        self.outcomes.append(outcome)
        log.info("%s callback %s to %s (%s) as %s at level %d -> 0x%08X (%d objects, status "
                 "0x%08X, %d attempts)%s", self.server.name, operation, outcome.client_host or "?",
                 resolver or "?", outcome.identity or "-", outcome.auth_level, outcome.hresult,
                 outcome.objects, final, outcome.attempts,
                 f": {outcome.reason}" if outcome.reason else "")

    def _credentials(self, token: Token, level: int) -> ClientCredentials | None:
        if token.anonymous or level <= AuthLevel.NONE:
            return None
        b = self.server.name
        directory = self.server.world.directory
        domain = directory.domain_of(b) or b
        return ClientCredentials(f"{b.upper()}$", directory.machine_password(b), domain,
                                 b.upper())

    async def _attempt(self, client: str | None, resolver: str, sink: wmi.SinkRef,
                       objects: list[bytes], status: int | None, token: Token,
                       level: int) -> tuple[int, int, str]:
        """(HRESULT, objects delivered, reason) of one delivery at one level."""
        delivered = 0
        local = self.server.address
        ct, lt = self.connect_timeout, self.call_timeout
        try:
            # MS-DCOM 3.2.4.1.1.1: resolve the OXID at the resolver of the OBJREF's bindings,
            # on the well-known port 135 (seed, Connection 2 step 1).
            port = self.server.resolver_port(resolver)
            # On a service socket: the labs do not take it for a client's (service_sockets).
            with service_socket(local) as sock:
                async with await RpcClient.connect(resolver, port, connect_timeout=ct,
                                                   call_timeout=lt, sock=sock) as res:
                    await res.bind(ids.IID_IOBJECTEXPORTER)
                    stub = await res.call(ids.ObjectExporterOp.RESOLVE_OXID2,
                                          build_resolve_oxid2_request(sink.oxid))
            found = parse_resolve_oxid2_reply(stub)
            if found.status or found.bindings is None:
                return (hr.from_win32(found.status or dcom.OR_INVALID_OXID), 0,
                        f"ResolveOxid2 status {found.status}")
            target = _pick_binding(found.bindings, resolver)
            if target is None:
                return RPC_S_SERVER_UNAVAILABLE, 0, "no ncacn_ip_tcp binding for the sink"
            # Seed, Connection 2 step 2: the sink program's port on A.
            with service_socket(local) as sock:
                async with await RpcClient.connect(
                        target[0], target[1], credentials=self._credentials(token, level),
                        auth_level=level, connect_timeout=ct, call_timeout=lt,
                        sock=sock) as cli:
                    await cli.bind(ids.IID_IWBEMOBJECTSINK)
                    for i in range(0, len(objects), INDICATE_BATCH):
                        batch = objects[i:i + INDICATE_BATCH]
                        code = wmi.parse_hresult_reply(await cli.call(
                            ids.WbemObjectSinkOp.INDICATE, wmi.build_indicate_request(batch),
                            sink.ipid))
                        if code & 0x80000000:
                            return code, delivered, "Indicate refused"
                        delivered += len(batch)
                    if status is None:
                        return 0, delivered, ""
                    code = wmi.parse_hresult_reply(await cli.call(
                        ids.WbemObjectSinkOp.SET_STATUS,
                        wmi.build_set_status_request(status, WBEM_STATUS_COMPLETE), sink.ipid))
                    if code & 0x80000000:
                        return code, delivered, "SetStatus refused"
            return 0, delivered, ""
        except RpcCallError as e:
            return e.hresult, delivered, e.reason
        except WireError as e:  # a reply our parsers cannot read
            return RPC_S_CALL_FAILED, delivered, f"bad reply: {e}"
        except OSError as e:  # the service socket could not be bound to B's address
            return RPC_S_SERVER_UNAVAILABLE, delivered, f"cannot connect from {local}: {e}"

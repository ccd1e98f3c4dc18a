"""Run a scenario's calls through a real client against its emulated hosts, and compare.

`wmilab lab FILE --verify` and the differential test use this: every host of the scenario
runs on its loopback address (``LoopbackLab``) in a background event loop, and each
synchronous or semisynchronous call is made with impacket, used as a library exactly as its
``wmiquery.py`` does. The HRESULT impacket ends with is compared with what ``flow``
predicts. Asynchronous calls need a sink on A, which impacket cannot export; they are
verified through the emulator's own sink role where available (see docs/host.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any, TypeVar

from wmilab import flow, steps
from wmilab.host import eventloop
from wmilab.host.client_errors import from_exception
from wmilab.host.server import HostServer, Limits
from wmilab.lab.loopback import LoopbackLab
from wmilab.model.world import World
from wmilab.scenario import Call, Scenario

T = TypeVar("T")
PKT_PRIVACY = 6  # RPC_C_AUTHN_LEVEL_PKT_PRIVACY (MS-RPCE 2.2.1.1.8)

__all__ = ["CallCheck", "ThreadedLab", "async_call", "impacket_query", "refused_by_caller",
           "verify_calls"]


class ThreadedLab:
    """A :class:`LoopbackLab` served from a background thread's event loop."""

    def __init__(self, scenario: Scenario, *, client_host: str | None = None,
                 ports: dict[int, int] | None = None, limits: Limits | None = None,
                 network: IPv4Network | None = None,
                 rng: random.Random | None = None, listeners: str = "auto",
                 hosts: list[str] | None = None) -> None:
        self.scenario = scenario
        self.lab = LoopbackLab(scenario.world, client_host=client_host, ports=ports,
                               limits=limits, network=network, rng=rng, listeners=listeners,
                               hosts=hosts)
        self.loop = eventloop.new_event_loop()  # uvloop's when installed (host/eventloop.py)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="wmilab-lab")
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, timeout: float | None = None) -> None:
        """Start every host; on failure (a port that cannot be bound) stop the loop and raise.

        Waits until every host listens or one fails, however long a big lab takes (no fixed
        deadline unless ``timeout`` gives one).
        """
        try:
            self.run(self.lab.start(), timeout)
        except BaseException:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()
            raise

    def address(self, host: str) -> str:
        return str(self.lab.map.loopback(host))

    def act_as(self, target: str, source: str) -> None:
        """Connections to ``target`` from 127.0.0.1 (where real clients connect from)
        count as coming from scenario host ``source``."""
        self.lab.servers[target].client_host = source

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.run(self.lab.stop(), None)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


# WBEM_FLAG_RETURN_IMMEDIATELY | WBEM_FLAG_FORWARD_ONLY: a semisynchronous query
# (MSDocs WmiSdk/making-a-semisynchronous-call; MS-WMI 2.2.6).
SEMISYNC_FLAGS = 0x10 | 0x20


def impacket_query(address: str, user: str, password: str, namespace: str,
                   query: str, mode: str = "semisync",
                   connect_timeout: float | None = None,
                   auth_level: int | None = None) -> tuple[str, int]:
    """Connect, log in and run ``query`` with impacket as wmiquery.py does; ``mode`` is
    "sync" (flags 0) or "semisync" (return immediately, forward only). ``connect_timeout``
    shortens impacket's TCP connect timeouts (30 s to port 135, 300 s to the WMI port),
    so a dropped SYN costs seconds (a timeout is 0x800706BA, as on Windows).

    Returns ("ok", rows) or (the HRESULT of the failure as 0x........, 0).
    """
    from impacket.dcerpc.v5.dcom import wmi
    from impacket.dcerpc.v5.dcomrt import DCOMConnection
    from impacket.dcerpc.v5.dtypes import NULL

    if connect_timeout is not None:
        _cap_connect_timeout(connect_timeout)
    domain, _, name = user.partition("\\")
    dcom = None
    rows = 0
    try:
        # ``auth_level``: RPC_C_AUTHN_LEVEL for every connection (impacket's default is
        # packet privacy); the differential tests pass the level the model says A uses.
        extra = {} if auth_level is None else {"authLevel": auth_level}
        dcom = DCOMConnection(address, name, password, domain, "", "", None,
                              oxidResolver=True, doKerberos=False, **extra)
        iface = dcom.CoCreateInstanceEx(wmi.CLSID_WbemLevel1Login, wmi.IID_IWbemLevel1Login)
        if auth_level is not None and auth_level >= PKT_PRIVACY:
            # impacket binds the WMI port at the activation reply's authnHint (integrity for
            # NTLM below privacy); a program asking for packet privacy gets it there too, set
            # on impacket's own class instance before the first call connects.
            iface.get_cinstance().set_auth_level(auth_level)
        login = wmi.IWbemLevel1Login(iface)
        services = login.NTLMLogin("//./" + namespace.replace("\\", "/"), NULL, NULL)
        login.RemRelease()
        enum = services.ExecQuery(query, SEMISYNC_FLAGS if mode == "semisync" else 0)
        while True:
            try:
                enum.Next(0xFFFFFFFF, 1)
            except Exception as exc:
                # impacket raises WBEM_S_FALSE (1) at the end of an enumeration; wmiquery.py
                # treats it as the end of the result, and so do we.
                if getattr(exc, "error_code", None) == 1:
                    break
                raise
            rows += 1
        return "ok", rows
    except Exception as exc:
        code = from_exception(exc)
        return (f"0x{code:08X}" if code is not None else f"unmapped: {exc!r}"), 0
    finally:
        if dcom is not None:
            # A connection the host has reset cannot be closed cleanly.
            with contextlib.suppress(Exception):
                dcom.disconnect()


def _cap_connect_timeout(seconds: float) -> None:
    """Cap impacket's connect timeout in this process (its TCPTransport sets 30 or 300 s
    and connects with ``get_connect_timeout()``); nothing else of impacket changes."""
    from impacket.dcerpc.v5 import transport

    tcp: Any = transport.TCPTransport
    original = getattr(tcp, "_wmilab_original_timeout", None)
    if original is None:
        original = tcp.get_connect_timeout
        tcp._wmilab_original_timeout = original

    def capped(self: Any) -> Any:
        value = original(self)
        return seconds if value is None else min(value, seconds)

    tcp.get_connect_timeout = capped


@dataclass(frozen=True)
class CallCheck:
    call: Call
    predicted: flow.Verdict
    wire: str | None  # "ok", an HRESULT, or None when not run
    rows: int
    note: str = ""

    @property
    def agrees(self) -> bool | None:
        return None if self.wire is None else self.wire == self.predicted.result


async def async_call(a: HostServer, address: str, rpcss_port: int, call: Call,
                     password: str, callback_outcome: Callable[[], Awaitable[int | None]], *,
                     local_address: str | None, timeout: float = 30.0,
                     on_sink: Callable[[int, str], None] | None = None,
                     activation_level: int | None = None,
                     auth_level: int | None = None) -> tuple[str, int]:
    """Make an asynchronous call with wmilab's own client from host ``a`` (its running
    server exports the sink, the unsecapp role) to the host at ``address``, which runs the
    query and calls the sink back over Connection 2.

    ``callback_outcome`` waits for the target's callback to finish and returns its HRESULT
    (None when no callback ran). Returns ("ok", objects delivered) or the HRESULT the caller
    ends with: the call's own error on Connection 1, else the one the callback ended with
    (what the sink's SetStatus would have carried, or the refusal on Connection 2).
    ``timeout`` bounds each connect and call of the client. ``on_sink(port, program)`` is
    told where the sink listens once it does (the netns lab opens A's firewall for exactly
    that listener).
    """
    from wmilab.client.session import exec_query_async, login
    from wmilab.host.sink import SinkExporter
    from wmilab.transport import RpcCallError

    async with SinkExporter(a, program=flow.sink_program(call)) as sinks:
        if on_sink is not None and sinks.listen_port is not None:
            on_sink(sinks.listen_port, sinks.program)
        sink = sinks.create(call.target)
        try:
            cli, services = await login(address, rpcss_port, local_address=local_address,
                                        user=call.user, password=password,
                                        namespace=call.namespace,
                                        timeout=timeout, activation_level=activation_level,
                                        **({} if auth_level is None
                                           else {"auth_level": auth_level}))
        except RpcCallError as e:
            return f"0x{e.hresult:08X}", 0
        except OSError:
            return "0x800706BA", 0
        async with cli:
            try:
                code = await exec_query_async(cli, services, call.query, sink.objref())
            except RpcCallError as e:
                return f"0x{e.hresult:08X}", 0
        if code:
            return f"0x{code:08X}", 0
        hresult = await callback_outcome()
        if hresult is None:
            return "no callback", 0
        if hresult:
            return f"0x{hresult:08X}", 0
        if sink.result.status:
            return f"0x{sink.result.status:08X}", 0
        return "ok", len(sink.result.objects)


async def async_query(lab: LoopbackLab, call: Call, password: str,
                      timeout: float = 30.0) -> tuple[str, int]:
    """:func:`async_call` between two hosts of a loopback lab."""
    b = lab.servers[call.target]

    async def outcome() -> int | None:
        await b.callbacks.wait_idle(timeout)
        last = b.callbacks.outcomes[-1] if b.callbacks.outcomes else None
        return None if last is None else last.hresult

    return await async_call(lab.servers[call.source], b.address, b.ports["rpcss"], call,
                            password, outcome,
                            local_address=str(lab.map.loopback(call.source)),
                            activation_level=activation_level_for(lab.world, call),
                            auth_level=call_level_for(lab.world, call))


def call_level_for(world: World, call: Call) -> int | None:
    """The level of A's calls into WMI (NTLMLogin and later) where the model's verdict depends
    on it: a namespace that requires encryption on B. Elsewhere None (the client keeps its
    own, packet privacy)."""
    b = world.host(call.target)
    if not b.wmi.requires_encryption(call.namespace):
        return None
    return b.wmi_call_level(world.host(call.source), call.auth_level_value)[0]


def impacket_level_for(world: World, call: Call) -> int | None:
    """The level to give impacket: the activation level on a hardened B; else, on an
    encrypted namespace, packet privacy when the model's call level is privacy, and otherwise
    impacket's own default (it then calls the WMI port at the activation reply's authnHint,
    integrity, below privacy as the model's level is). One level serves both questions:
    KB 5004442 raises an activation to packet integrity at most, so the call level is below
    privacy exactly when the activation level is."""
    level = activation_level_for(world, call)
    if level is not None:
        return level
    call_level = call_level_for(world, call)
    return PKT_PRIVACY if call_level is not None and call_level >= PKT_PRIVACY else None


def activation_level_for(world: World, call: Call) -> int | None:
    """The level A's activation reaches B with (KB 5004442), where the model's verdict
    depends on it: on a hardened B. Elsewhere the level decides nothing in the model, and the
    client keeps its own (packet privacy)."""
    if not world.host(call.target).hardening.enforced:
        return None
    level, _ = world.host(call.source).activation_level(call.auth_level_value)
    return level


CALLER_REFUSES = "refused by A's own DCOM, before any packet"


def refused_by_caller(world: World, call: Call) -> str | None:
    """The HRESULT with which the calling host's own DCOM refuses to call out, or None.

    With EnableDCOM = N on A the DCOM runtime of A fails the call locally (step
    c1.client-dcom): the lab's A, which makes the call, asks the same step question, so no
    client library (impacket knows nothing of A's registry) is asked to send a packet.
    """
    check = steps.client_dcom(world.host(call.source))
    if check.ok:
        return None
    return steps.TABLE[steps.C1_CLIENT_DCOM].failure(check).hex


def verify_calls(lab: ThreadedLab, passwords: dict[str, str | None]) -> list[CallCheck]:
    """Make each call of the lab's scenario on the wire and compare with the flow."""
    s = lab.scenario
    out = []
    for call in s.calls:
        predicted = flow.evaluate(s.world, call)
        password = call.password if call.password is not None else passwords.get(call.user)
        refusal = refused_by_caller(s.world, call)
        if refusal is not None:
            out.append(CallCheck(call, predicted, refusal, 0, CALLER_REFUSES))
            continue
        if call.mode == "async":
            # impacket cannot export a sink: wmilab's own client makes asynchronous calls.
            wire, rows = lab.run(async_query(lab.lab, call, password or ""), timeout=90)
            out.append(CallCheck(call, predicted, wire, rows, "wmilab client + sink"))
            continue
        lab.act_as(call.target, call.source)
        wire, rows = impacket_query(lab.address(call.target), call.user, password or "",
                                    call.namespace, call.query, call.mode,
                                    auth_level=impacket_level_for(s.world, call))
        out.append(CallCheck(call, predicted, wire, rows))
    return out

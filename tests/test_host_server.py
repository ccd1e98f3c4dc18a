"""The host's per-connection timers and ACK handling (host/server.py), on real loopback sockets.

The timer is re-armed on every read without replacing the timer handle each time; these tests
hold it to the deadlines a user sees: a connection without a bind closes ``bind_timeout``
after its last read, not after its first. Free ports, no root needed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from conftest import make, remote_admin_pair
from wmilab.host import server as host_server
from wmilab.host.server import HostServer, Limits
from wmilab.lab.loopback import LoopbackLab
from wmilab.wire import ids, rpc
from wmilab.wire.rpc_conn import BindAcked, ClientConnection


def _scenario() -> dict[str, Any]:
    return remote_admin_pair()


@asynccontextmanager
async def _host(limits: Limits) -> AsyncIterator[tuple[str, int]]:
    lab = LoopbackLab(make(_scenario()).world, client_host="A", ports={135: 0},
                      limits=limits)
    await lab.start()
    try:
        yield str(lab.map.loopback("B")), lab.servers["B"].ports["wmi"]
    finally:
        await lab.stop()


async def _closed_after(reader: asyncio.StreamReader, t0: float, limit: float) -> float:
    """Seconds from t0 until the host closes the connection (EOF or reset)."""
    try:
        while await asyncio.wait_for(reader.read(4096), limit):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - t0


def test_bind_timeout_counts_from_the_last_read() -> None:
    async def main() -> tuple[float, float]:
        async with _host(Limits(bind_timeout=0.6)) as (address, port):
            # A connection that never sends anything goes after the bind timeout...
            t0 = time.monotonic()
            r1, w1 = await asyncio.open_connection(address, port)
            silent = asyncio.create_task(_closed_after(r1, t0, 5.0))
            # ...one that sends part of a PDU at 0.4 s stays until 0.4 + 0.6 s.
            r2, w2 = await asyncio.open_connection(address, port)
            await asyncio.sleep(0.4)
            w2.write(b"\x05\x00\x0b")  # the first octets of a bind header
            await w2.drain()
            talked = await _closed_after(r2, t0, 5.0)
            quiet = await silent
            w1.close()
            w2.close()
            return quiet, talked

    quiet, talked = asyncio.run(main())
    assert 0.5 <= quiet < 0.95
    assert 0.9 <= talked < 1.6


def _protocol() -> host_server._RpcProtocol:
    world = make(_scenario()).world
    return host_server._RpcProtocol(HostServer(world, "B"), "wmi")


def _fired_at(arms: list[tuple[float, float]]) -> float:
    """Arm a protocol's timer with (at, seconds) pairs; when it expires, from the start."""
    async def main() -> float:
        proto = _protocol()
        loop = asyncio.get_running_loop()
        fired = loop.create_future()
        proto._expire = lambda: fired.done() or fired.set_result(loop.time())  # type: ignore
        t0 = loop.time()
        for at, seconds in arms:
            await asyncio.sleep(max(0.0, t0 + at - loop.time()))
            proto._arm(seconds)
        return float(await asyncio.wait_for(fired, 5.0)) - t0

    return asyncio.run(main())


def test_a_later_deadline_postpones_the_timer() -> None:
    assert 0.35 <= _fired_at([(0.0, 0.2), (0.15, 0.2)]) < 0.6


def test_an_earlier_deadline_brings_the_timer_forward() -> None:
    # Bound (idle timeout) first, then a shorter deadline: the shorter one wins.
    assert 0.1 <= _fired_at([(0.0, 30.0), (0.0, 0.1)]) < 0.4


def test_rearming_on_every_read_reuses_the_timer() -> None:
    async def main() -> bool:
        proto = _protocol()
        proto._arm(10.0)
        first = proto._timer
        for _ in range(1000):
            proto._arm(10.0)
        same = proto._timer is first and first is not None and not first.cancelled()
        proto.close()
        return same

    assert asyncio.run(main())


def _bind_pdu() -> bytes:
    client = ClientConnection()
    client.bind(rpc.SyntaxId(ids.IID_IWBEMLEVEL1LOGIN, 0, 0))
    return client.data_to_send()


def test_quickack_only_when_no_reply_carries_the_ack(monkeypatch: pytest.MonkeyPatch) -> None:
    """A partial PDU forces the ACK (impacket waits for it, Nagle); a reply carries it."""
    calls: list[int] = []
    monkeypatch.setattr(host_server._RpcProtocol, "_quickack",
                        lambda self: calls.append(1))

    async def main() -> tuple[int, int, bool]:
        async with _host(Limits()) as (address, port):
            reader, writer = await asyncio.open_connection(address, port)
            bind = _bind_pdu()
            writer.write(bind[:12])  # half a header: no reply can go out yet
            await writer.drain()
            await _until(lambda: len(calls) >= 1)
            after_partial = len(calls)
            writer.write(bind[12:])
            await writer.drain()
            client = ClientConnection()
            client.bind(rpc.SyntaxId(ids.IID_IWBEMLEVEL1LOGIN, 0, 0))
            data = await asyncio.wait_for(reader.read(4096), 5.0)
            acked = any(isinstance(e, BindAcked) for e in client.receive_data(data))
            writer.close()
            return after_partial, len(calls), acked

    after_partial, after_bind, acked = asyncio.run(main())
    assert acked
    assert after_partial == 1
    assert after_bind == 1  # the bind_ack went out with the ACK: no setsockopt


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.01)

"""Commands on the wire: a Server 2022 emulated host after ``winmgmt /standalonehost`` serves
WMI on TCP 24158, and after ``netsh int ipv4 set dynamicport`` on a port of the new range; both
ask the model where to listen, and unmodified impacket and aiowmi find the port through the
OXID resolver as they would on Windows."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from conftest import CORP, fresh_net, make, started_lab
from wmilab import flow
from wmilab.host import client_errors
from wmilab.lab.verify import ThreadedLab, impacket_query

pytestmark = pytest.mark.slow

WMI_ON = ('netsh advfirewall firewall set rule group="Windows Management Instrumentation (WMI)" '
          "new enable=yes")
QUERY = "SELECT * FROM Win32_OperatingSystem"


def server_2022(commands: list[str], **b: Any) -> dict[str, Any]:
    net = fresh_net()
    return {
        "domains": {"CORP": copy.deepcopy(CORP)},
        "hosts": {
            "A": {"os": "11", "domain": "CORP", "address": f"{net}.1/24"},
            "B": {"os": "2022", "domain": "CORP", "address": f"{net}.2/24",
                  "commands": commands, **b},
        },
        "calls": [{"from": "A", "to": "B", "user": "CORP\\admin"}],
    }


def _lab(doc: dict[str, Any]) -> ThreadedLab:
    lab = started_lab(make(doc))
    lab.act_as("B", "A")
    return lab


def test_standalone_wmi_answers_impacket_on_24158() -> None:
    lab = _lab(server_2022([WMI_ON, "winmgmt /standalonehost"]))
    try:
        got, rows = impacket_query(lab.address("B"), "CORP\\admin", "Adm1n!", "root\\cimv2",
                                   QUERY)
        server = lab.lab.servers["B"]
        assert (got, rows) == ("ok", 1)
        assert server.ports["wmi"] == server.model_ports["wmi"] == 24158
    finally:
        lab.close()


async def _aiowmi(address: str) -> list[dict[str, Any]]:
    from aiowmi.connection import Connection
    from aiowmi.query import Query

    conn = Connection(address, "admin", "Adm1n!", domain="CORP", port=135)
    try:
        await conn.connect(timeout=10)
        service = await conn.negotiate_ntlm()
        await conn.login_ntlm(service, "root/cimv2")
        rows: list[dict[str, Any]] = []
        async with Query(QUERY).context(conn, service) as qc:
            async for props in qc.results():
                rows.append({k: v.value for k, v in props.items()})
        return rows
    finally:
        conn.close()


def test_dynamicport_puts_wmi_in_the_new_range_for_aiowmi() -> None:
    lab = _lab(server_2022([WMI_ON, "netsh int ipv4 set dynamicport tcp start=20000 num=500"]))
    try:
        port = lab.lab.servers["B"].ports["wmi"]
        assert 20000 <= port <= 20499
        try:
            rows = asyncio.run(_aiowmi(lab.address("B")))
        except Exception as e:  # pragma: no cover - shown on failure
            pytest.fail(f"aiowmi failed: {client_errors.from_exception(e)} {e!r}")
        assert rows and rows[0]["Version"] == "10.0.20348"
    finally:
        lab.close()


def test_a_rule_for_the_old_range_misses_the_moved_port_on_the_wire() -> None:
    rule = ('netsh advfirewall firewall add rule name="WMI old range" dir=in action=allow '
            r"protocol=TCP localport=49152-65535 program=%SystemRoot%\system32\svchost.exe "
            "service=winmgmt")
    dcom_in = ('netsh advfirewall firewall set rule name="Windows Management Instrumentation '
               '(DCOM-In)" new enable=yes')
    lab = _lab(server_2022([dcom_in, rule,
                            "netsh int ipv4 set dynamicport tcp start=20000 num=500"]))
    try:
        got, _ = impacket_query(lab.address("B"), "CORP\\admin", "Adm1n!", "root\\cimv2", QUERY,
                                connect_timeout=3)
    finally:
        lab.close()
    s = lab.scenario
    assert got == flow.evaluate(s.world, s.calls[0]).result == "0x800706BA"


@pytest.mark.parametrize("level", [5, 6])  # below 5 the hardened 2022 refuses the activation
def test_impacket_follows_the_standalone_level_s_authn_hint(level: int) -> None:
    # winmgmt /standalonehost 6: the activation reply's authnHint is 6, which impacket
    # adopts as COM's negotiation does (the higher level wins), so every call of it arrives at
    # packet privacy and the standalone host accepts it.
    lab = _lab(server_2022([WMI_ON, "winmgmt /standalonehost 6"]))
    seen: list[int | None] = []
    exporter = lab.lab.servers["B"].exporter
    assert exporter is not None
    handle = exporter.handle

    def spy(opnum: int, obj: Any, stub: bytes, ctx: Any) -> Any:
        seen.append(ctx.auth_level)
        return handle(opnum, obj, stub, ctx)

    exporter.handle = spy  # type: ignore[method-assign]
    try:
        got, rows = impacket_query(lab.address("B"), "CORP\\admin", "Adm1n!", "root\\cimv2",
                                   QUERY, auth_level=level)
    finally:
        lab.close()
    assert (got, rows) == ("ok", 1)
    assert seen and set(seen) == {6}

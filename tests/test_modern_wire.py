"""A Server 2022 emulated host on the wire: its identity, its port range, WFAS, remote UAC and
the DCOM hardening, met by unmodified impacket and aiowmi."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from conftest import CORP, fresh_net, make, started_lab
from wmilab import flow
from wmilab.host import client_errors
from wmilab.lab.verify import ThreadedLab, impacket_query
from wmilab.model import oses

pytestmark = pytest.mark.slow

WMI_ON = ('netsh advfirewall firewall set rule group="Windows Management Instrumentation (WMI)" '
          "new enable=yes")


def server_2022(os_a: str = "11", netsh: list[str] | None = None, **b: Any) -> dict[str, Any]:
    net = fresh_net()
    return {
        "domains": {"CORP": copy.deepcopy(CORP)},
        "hosts": {
            "A": {"os": os_a, "domain": "CORP", "address": f"{net}.1/24"},
            "B": {"os": "2022", "domain": "CORP", "address": f"{net}.2/24",
                  "netsh": [WMI_ON] if netsh is None else netsh,
                  "accounts": {"monitor": "M0n!tor"},
                  "groups": {"Administrators": ["B\\monitor", "CORP\\Domain Admins"]}, **b},
        },
        "calls": [{"from": "A", "to": "B", "user": "CORP\\admin"}],
    }


def _lab(doc: dict[str, Any]) -> ThreadedLab:
    lab = started_lab(make(doc))
    lab.act_as("B", "A")  # the clients below connect as A
    return lab


@pytest.mark.parametrize("level", [None, 5, 6])
def test_impacket_reads_server_2022_s_identity(level: int | None) -> None:
    lab = _lab(server_2022())
    try:
        got, rows = impacket_query(lab.address("B"), "CORP\\admin", "Adm1n!", "root\\cimv2",
                                   "SELECT * FROM Win32_OperatingSystem", auth_level=level)
        assert (got, rows) == ("ok", 1)
        repo = lab.lab.servers["B"].runtime
        assert repo is not None
        (os_row,) = repo.repository.exec_query("root\\cimv2",
                                               "SELECT * FROM Win32_OperatingSystem")
        assert os_row.get("BuildNumber") == "20348"
        assert os_row.get("Caption") == "Microsoft Windows Server 2022 Standard"
        # WMI listens on a port of 49152-65535 (KB 929851), never a fixed guessable one.
        assert 49152 <= lab.lab.servers["B"].model_ports["wmi"] <= 65535
    finally:
        lab.close()


def test_closed_wmi_group_is_server_unavailable_on_the_wire() -> None:
    lab = _lab(server_2022(netsh=[]))
    try:
        got, _ = impacket_query(lab.address("B"), "CORP\\admin", "Adm1n!", "root\\cimv2",
                                "SELECT * FROM Win32_OperatingSystem")
    finally:
        lab.close()
    s = lab.scenario
    assert got == flow.evaluate(s.world, s.calls[0]).result == "0x800706BA"


@pytest.mark.parametrize(("level", "expected"), [(2, "0x80070005"), (4, "0x80070005"),
                                                 (5, "ok")])
def test_hardened_server_refuses_activation_below_integrity(level: int, expected: str) -> None:
    lab = _lab(server_2022())
    try:
        got, _ = impacket_query(lab.address("B"), "CORP\\admin", "Adm1n!", "root\\cimv2",
                                "SELECT * FROM Win32_OperatingSystem", auth_level=level)
    finally:
        lab.close()
    assert got == expected
    # The flow says the same for a program asking for that level on an XP client (which
    # does not raise it).
    doc = server_2022(os_a="xp-sp2")
    doc["calls"][0]["auth_level"] = {2: "connect", 4: "pkt", 5: "integrity"}[level]
    s = make(doc)
    assert flow.evaluate(s.world, s.calls[0]).result == expected


def test_remote_uac_filters_a_local_administrator_on_the_wire() -> None:
    for registry, expected in (({}, "0x80070005"), ({"LocalAccountTokenFilterPolicy": 1}, "ok")):
        doc = server_2022(registry=registry)
        doc["calls"][0]["user"] = "B\\monitor"
        lab = _lab(doc)
        try:
            got, _ = impacket_query(lab.address("B"), "B\\monitor", "M0n!tor", "root\\cimv2",
                                    "SELECT * FROM Win32_OperatingSystem")
        finally:
            lab.close()
        s = lab.scenario
        assert got == flow.evaluate(s.world, s.calls[0]).result == expected


async def _aiowmi(address: str, port: int) -> list[dict[str, Any]]:
    from aiowmi.connection import Connection
    from aiowmi.query import Query

    conn = Connection(address, "admin", "Adm1n!", domain="CORP", port=port)
    try:
        await conn.connect(timeout=10)
        service = await conn.negotiate_ntlm()
        await conn.login_ntlm(service, "root/cimv2")
        rows: list[dict[str, Any]] = []
        async with Query("SELECT * FROM Win32_OperatingSystem").context(conn, service) as qc:
            async for props in qc.results():
                rows.append({k: v.value for k, v in props.items()})
        return rows
    finally:
        conn.close()


def test_aiowmi_against_server_2022() -> None:
    lab = _lab(server_2022())
    try:
        rows = asyncio.run(_aiowmi(lab.address("B"), 135))
    except Exception as e:  # pragma: no cover - shown on failure
        pytest.fail(f"aiowmi failed: {client_errors.from_exception(e)} {e!r}")
    finally:
        lab.close()
    assert rows and rows[0]["Caption"] == "Microsoft Windows Server 2022 Standard"
    assert rows[0]["Version"] == "10.0.20348"


def _impacket_identity(address: str) -> dict[str, Any]:
    """Caption, Version and BuildNumber of Win32_OperatingSystem as impacket reads them off
    the wire (wmiquery.py's calls: ExecQuery, Next, getProperties)."""
    from impacket.dcerpc.v5.dcom import wmi
    from impacket.dcerpc.v5.dcomrt import DCOMConnection
    from impacket.dcerpc.v5.dtypes import NULL

    dcom = DCOMConnection(address, "admin", "Adm1n!", "CORP", "", "", None, oxidResolver=True,
                          doKerberos=False)
    try:
        iface = dcom.CoCreateInstanceEx(wmi.CLSID_WbemLevel1Login, wmi.IID_IWbemLevel1Login)
        login = wmi.IWbemLevel1Login(iface)
        services = login.NTLMLogin("//./root/cimv2", NULL, NULL)
        login.RemRelease()
        enum = services.ExecQuery("SELECT Caption, Version, BuildNumber, WindowsDirectory "
                                  "FROM Win32_OperatingSystem")
        props = enum.Next(0xFFFFFFFF, 1)[0].getProperties()
        return {k: props[k]["value"] for k in ("Caption", "Version", "BuildNumber",
                                               "WindowsDirectory")}
    finally:
        dcom.disconnect()


MODERN = [n for n in oses.NAMES if oses.get(n).modern]


@pytest.mark.parametrize("os_b", MODERN)
def test_every_os_tells_its_identity_on_the_wire(os_b: str) -> None:
    """Issue 7, item 9: each emulated OS answers Win32_OperatingSystem with its own Caption,
    Version and BuildNumber (the OS catalogue; Learn sysinfo/operating-system-version), and
    WMI listens on a port of the OS's dynamic range (KB 929851)."""
    doc = server_2022()
    doc["hosts"]["B"]["os"] = os_b
    lab = _lab(doc)
    try:
        got = _impacket_identity(lab.address("B"))
        port = lab.lab.servers["B"].model_ports["wmi"]
    finally:
        lab.close()
    spec = oses.get(os_b)
    assert got == {"Caption": spec.caption, "Version": spec.version, "BuildNumber": spec.build,
                   "WindowsDirectory": "C:\\Windows"}
    assert port in spec.dynamic_ports


@pytest.mark.parametrize(("updates", "registry", "expected"), [
    ("2021-12", {}, "ok"),  # phase 1: installed, off by default (KB 5004442)
    ("2021-12", {"RequireIntegrityActivationAuthenticationLevel": 1}, "0x80070005"),
    ("2022-08", {"RequireIntegrityActivationAuthenticationLevel": 0}, "ok"),  # phase 2, off
])
def test_the_hardening_on_the_wire_follows_updates_and_appcompat(
        updates: str, registry: dict[str, int], expected: str) -> None:
    """impacket at RPC_C_AUTHN_LEVEL_CONNECT against Server 2022 at each stage: the emulated
    RPCSS asks the model's stage, so the wire and check agree."""
    doc = server_2022(updates=updates, registry=registry)
    lab = _lab(doc)
    try:
        got, _ = impacket_query(lab.address("B"), "CORP\\admin", "Adm1n!", "root\\cimv2",
                                "SELECT * FROM Win32_OperatingSystem", auth_level=2)
    finally:
        lab.close()
    assert got == expected
    doc["hosts"]["A"]["os"] = "xp-sp2"  # a client that activates at CONNECT
    s = make(doc)
    assert flow.evaluate(s.world, s.calls[0]).result == expected

"""An example for tool authors: test a WMI monitoring tool against emulated Windows hosts.

``os_caption`` stands for your tool: it asks a computer for its operating system over remote
WMI, here with impacket as wmiquery.py does. The tests run it against the hosts of
``lab.toml`` with the ``wmilab_lab`` fixture, which wmilab's pytest plugin provides as soon
as wmilab is installed (no import, no conftest.py):

    pip install wmilab
    sudo pytest examples/pytest/test_my_tool.py   # the hosts listen on TCP 135: root

Each test starts the scenario's hosts, points the tool at ``lab.address(...)`` with
``lab.credentials(...)``, and checks what the tool reports against what ``wmilab check``
predicts for the same call (``lab.verdict(...)``).
"""

from __future__ import annotations

import contextlib

import pytest

# ---------------------------------------------------------------------------------------------
# The tool under test (yours would live in its own package).


class ToolError(Exception):
    """The tool's own error: the HRESULT a remote WMI call ended with."""

    def __init__(self, hresult: int, text: str) -> None:
        super().__init__(f"0x{hresult:08X}: {text}")
        self.hresult = hresult


def os_caption(address: str, domain: str, user: str, password: str) -> str:
    """The Caption of Win32_OperatingSystem on ``address``, or ToolError."""
    from impacket.dcerpc.v5.dcom import wmi
    from impacket.dcerpc.v5.dcomrt import DCOMConnection
    from impacket.dcerpc.v5.dtypes import NULL

    dcom = None
    try:
        dcom = DCOMConnection(address, user, password, domain, oxidResolver=True)
        iface = dcom.CoCreateInstanceEx(wmi.CLSID_WbemLevel1Login, wmi.IID_IWbemLevel1Login)
        login = wmi.IWbemLevel1Login(iface)
        services = login.NTLMLogin("//./root/cimv2", NULL, NULL)
        rows = services.ExecQuery("SELECT Caption FROM Win32_OperatingSystem")
        return str(rows.Next(0xFFFFFFFF, 1)[0].getProperties()["Caption"]["value"])
    except OSError as e:  # reset, refused or timed out: nothing answers on the way
        raise ToolError(0x800706BA, f"{address} is unreachable ({e})") from None
    except Exception as e:
        if isinstance(e.__context__, OSError):  # impacket wraps socket errors ("Could not connect")
            raise ToolError(0x800706BA, f"{address} is unreachable ({e})") from None
        code = getattr(e, "error_code", None)
        if isinstance(code, int):  # impacket's RPC faults and DCOM/WMI errors
            raise ToolError(code if code > 0xFFFF else 0x80070000 | code, str(e)) from None
        if "rpc_s_access_denied" in str(e):  # refused at the RPC bind: a failed logon
            raise ToolError(0x80070005, str(e)) from None
        raise
    finally:
        if dcom is not None:
            with contextlib.suppress(Exception):  # a reset connection cannot close cleanly
                dcom.disconnect()


# ---------------------------------------------------------------------------------------------
# The tests.


def test_reads_the_operating_system_of_an_open_host(wmilab_lab) -> None:
    lab = wmilab_lab("lab.toml")  # relative to this file
    assert lab.verdict("admin reads SRV1").ok  # `wmilab check` says this call works
    caption = os_caption(lab.address("SRV1"), *lab.credentials("CORP\\admin"))
    assert caption.startswith("Microsoft Windows XP")


def test_reports_a_firewall_that_drops_rpc(wmilab_lab) -> None:
    lab = wmilab_lab("lab.toml")
    with pytest.raises(ToolError) as failure:
        os_caption(lab.address("SRV2"), *lab.credentials("CORP\\admin"))
    # The same HRESULT as `wmilab check` predicts: 0x800706BA, RPC server unavailable.
    assert f"0x{failure.value.hresult:08X}" == lab.verdict("admin reads SRV2").result


def test_reports_access_denied_for_a_non_administrator(wmilab_lab) -> None:
    lab = wmilab_lab("lab.toml")
    with pytest.raises(ToolError) as failure:
        os_caption(lab.address("SRV1"), *lab.credentials("CORP\\monitor"))
    assert f"0x{failure.value.hresult:08X}" == lab.verdict("a non-administrator reads SRV1").result
    assert failure.value.hresult == 0x80070005  # E_ACCESSDENIED: no DCOM remote launch on SRV1

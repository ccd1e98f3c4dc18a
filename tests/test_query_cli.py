"""`wmilab query` against emulated hosts: the same rows as impacket, JSON, CSV, exit codes."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import make, remote_admin_pair, started_lab
from wmilab.cli import app
from wmilab.lab.verify import ThreadedLab

pytestmark = pytest.mark.slow

runner = CliRunner()
QUERIES = [
    "SELECT Name, ProcessId FROM Win32_Process",
    "SELECT * FROM Win32_OperatingSystem",
    "SELECT Name, State, StartMode FROM Win32_Service WHERE StartMode = 'Auto'",
]


@pytest.fixture
def lab135() -> Iterator[ThreadedLab]:
    """B on its loopback address on the real ports 135 and 1025 (impacket dials 135)."""
    doc = remote_admin_pair()
    doc["domains"]["CORP"]["accounts"]["carol"] = "C4rol!"
    lab = started_lab(make(doc))
    yield lab
    lab.close()


def wmilab(lab: ThreadedLab, *args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, ["query", lab.address("B"), *args, "--source",
                               lab.address("A")], env=env)


def impacket_rows(address: str, wql: str) -> list[dict[str, Any]]:
    from impacket.dcerpc.v5.dcom import wmi
    from impacket.dcerpc.v5.dcomrt import DCOMConnection
    from impacket.dcerpc.v5.dtypes import NULL

    dcom = DCOMConnection(address, "admin", "Adm1n!", "CORP", "", "", None,
                          oxidResolver=True, doKerberos=False)
    try:
        iface = dcom.CoCreateInstanceEx(wmi.CLSID_WbemLevel1Login, wmi.IID_IWbemLevel1Login)
        services = wmi.IWbemLevel1Login(iface).NTLMLogin("//./root/cimv2", NULL, NULL)
        enum = services.ExecQuery(wql, 0x30)
        rows = []
        while True:
            try:
                item = enum.Next(0xFFFFFFFF, 1)[0]
            except Exception as exc:
                if getattr(exc, "error_code", None) == 1:  # WBEM_S_FALSE: the end
                    break
                raise
            rows.append({k: v["value"] for k, v in item.getProperties().items()})
        return rows
    finally:
        with contextlib.suppress(Exception):
            dcom.disconnect()


def _same(ours: Any, theirs: Any) -> bool:
    if ours is None or ours == "":
        return theirs in (None, "", [])
    if isinstance(ours, list):
        return [str(x) for x in ours] == [str(x) for x in theirs or []]
    return str(ours) == str(theirs)


@pytest.mark.parametrize("mode", ["sync", "semisync", "async"])
def test_query_returns_the_same_rows_as_impacket(lab135: ThreadedLab, mode: str) -> None:
    if mode == "async":
        # The client plays A: its own resolver takes A's loopback address and port 135.
        lab135.run(lab135.lab.servers["A"].stop())
        lab135.lab.servers["B"].resolver_port = lambda _a: 135
    for wql in QUERIES:
        res = wmilab(lab135, wql, "-u", "CORP\\admin", "-p", "Adm1n!", "--json", "--mode", mode)
        assert res.exit_code == 0, res.output
        ours = json.loads(res.stdout)
        theirs = impacket_rows(lab135.address("B"), wql)
        assert len(ours) == len(theirs) > 0
        for o, t in zip(ours, theirs, strict=True):
            for key, value in o.items():
                assert _same(value, t.get(key)), (wql, key, value, t.get(key))


def test_csv_and_table_print_the_rows(lab135: ThreadedLab, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("Adm1n!\n", encoding="utf-8")
    res = wmilab(lab135, QUERIES[0], "-u", "CORP\\admin", "--password-file", str(pw), "--csv")
    assert res.exit_code == 0, res.output
    table = list(csv.DictReader(io.StringIO(res.stdout)))
    assert {"Name": "lsass.exe"}.items() <= next(
        r for r in table if r["Name"] == "lsass.exe").items()
    assert "Adm1n!" not in res.output
    res = wmilab(lab135, QUERIES[0], "-u", "CORP\\admin", env={"WMILAB_PASSWORD": "Adm1n!"})
    assert res.exit_code == 0 and "lsass.exe" in res.stdout and "Adm1n!" not in res.output


@pytest.mark.parametrize(("user", "password", "words"), [
    ("CORP\\admin", "wrong", ["0x80070005", "E_ACCESSDENIED", "c1.logon"]),
    ("CORP\\carol", "C4rol!", ["0x80070005", "E_ACCESSDENIED", "c1.activation"]),
])
def test_a_failing_call_names_hresult_symbol_and_step(lab135: ThreadedLab, user: str,
                                                      password: str, words: list[str]) -> None:
    res = wmilab(lab135, QUERIES[0], "-u", user, "-p", password)
    assert res.exit_code == 1
    for w in words:
        assert w in res.output
    assert password not in res.output


@pytest.mark.parametrize(("args", "env", "words"), [
    (["bad..name", "SELECT * FROM Win32_Process", "-u", "CORP\\a", "-p", "x"], {},
     ["TARGET", "bad..name"]),
    (["127.0.0.1", "SELECT * FROM Win32_Process", "-u", "CORP\\a"],
     {"WMILAB_PASSWORD": ""}, ["no password"]),
    (["127.0.0.1", "q", "-u", "CORP\\a", "-p", "x", "--mode", "fast"], {}, ["--mode"]),
    (["127.0.0.1", "q", "-u", "CORP\\a", "-p", "x", "--auth-level", "max"], {},
     ["--auth-level"]),
    (["127.0.0.1", "q", "-u", "CORP\\a", "--password-file", "/nonexistent/pw"], {},
     ["--password-file"]),
])
def test_bad_usage_is_one_line_and_exit_2(args: list[str], env: dict[str, str],
                                          words: list[str]) -> None:
    old = os.environ.pop("WMILAB_PASSWORD", None)
    try:
        res = runner.invoke(app, ["query", *args], env=env)
    finally:
        if old is not None:
            os.environ["WMILAB_PASSWORD"] = old
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output
    for w in words:
        assert w in res.output


def test_async_without_port_135_for_the_resolver_is_bad_usage(lab135: ThreadedLab) -> None:
    # Emulated A holds A's port 135, so the client cannot put its resolver there.
    for cmd in (["query", lab135.address("B"), QUERIES[0]], ["doctor", lab135.address("B")]):
        res = runner.invoke(app, [*cmd, "-u", "CORP\\admin", "-p", "Adm1n!", "--mode", "async",
                                  "--source", lab135.address("A")])
        assert res.exit_code == 2, res.output
        assert "135" in res.output and "--mode semisync" in res.output
        assert "Traceback" not in res.output

"""`wmilab doctor` against emulated hosts: for every failure the model knows, on every OS, the
doctor stops at the step and HRESULT ``check`` predicts, and offers the model's fix."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from typer.testing import CliRunner

from conftest import make, needs_root, remote_admin_pair
from test_differential import _PASSWORDS as DIFF_PASSWORDS
from test_differential import _doc as differential_doc
from test_differential import network
from wmilab import flow, steps
from wmilab.cli import app
from wmilab.client.session import ConnectOptions
from wmilab.lab.loopback import LoopbackLab
from wmilab.lab.sink_policy import ModelSinkPolicy
from wmilab.lab.verify import ThreadedLab
from wmilab.model import oses
from wmilab.realhost.doctor import DoctorReport, DoctorRequest, ListenerPool, diagnose
from wmilab.scenario import Scenario

pytestmark = pytest.mark.slow

PORTS = {135: 0, 1025: 0}
UNSECAPP = "%windir%\\system32\\wbem\\unsecapp.exe"
A_OPEN = ["netsh firewall add portopening TCP 135 DCOM ENABLE",
          f"netsh firewall add allowedprogram {UNSECAPP} UNSECAPP ENABLE"]
LAUNCH = ["local launch", "remote launch", "local activation", "remote activation"]


def case_doc(case: str, os_name: str) -> dict[str, Any]:
    """A and B (both ``os_name``) misconfigured in one way the model knows."""
    doc = remote_admin_pair()
    for h in doc["hosts"].values():
        h["os"] = os_name
    doc["domains"]["CORP"]["accounts"].update({"carol": "C4rol!", "dave": "D4ve!"})
    b, a, c = doc["hosts"]["B"], doc["hosts"]["A"], doc["calls"][0]
    if case == "firewall-135":
        del b["netsh"]
    elif case == "wmi-port":
        b["netsh"] = ["netsh firewall add portopening TCP 135 RPC ENABLE"]
    elif case == "logon":
        c["password"] = "wrong"
    elif case == "activation":
        c["user"] = "CORP\\carol"
    elif case == "access":
        c["user"] = "CORP\\dave"
        b["dcom"] = {"launch_limits": {"CORP\\dave": LAUNCH},
                     "access_limits": {"Everyone": ["local access"]}}
    elif case == "namespace-rights":
        c["user"] = "CORP\\dave"
        b["dcom"] = {"launch_limits": {"CORP\\dave": LAUNCH}}
    elif case == "unknown-namespace":
        c["namespace"] = "root\\nothere"
    elif case == "callback-135":
        c["mode"] = "async"
    elif case == "callback-sink":
        c["mode"] = "async"
        a["netsh"] = A_OPEN[:1]
    elif case == "callback-anonymous":
        c["mode"] = "async"
        a["netsh"] = list(A_OPEN)
        doc["domains"]["OTHER"] = {"dns": "other.example", "accounts": {"x": "X!"}}
        a["domain"] = "OTHER"
    elif case == "async-ok":
        c["mode"] = "async"
        a["netsh"] = list(A_OPEN)
    if not oses.get(os_name).firewall_on:
        # Server 2003 SP1 ships with Windows Firewall off: turn it on, as the seed's computers.
        for h in (a, b):
            h["netsh"] = ["netsh firewall set opmode mode=ENABLE", *h.get("netsh", [])]
    assert os_name in oses.NAMES
    return doc


async def _diagnose(s: Scenario, lab: LoopbackLab, wait: float = 1.0) -> DoctorReport:
    c = s.calls[0]
    b = lab.servers[c.target]
    a_addr = str(lab.map.loopback(c.source))
    pw = c.password if c.password is not None else s.world.password_of(c.user)
    policy = ModelSinkPolicy(s.world, c.source, lab.map)
    pool = ListenerPool(resolver_port=0, policy=policy)
    # B finds A's resolver where this test's listener bound it (135 on a real A).
    b.resolver_port = lambda addr: pool.listeners[addr].resolver_port
    opts = ConnectOptions(b.address, c.user, pw or "", c.namespace, timeout=2.0,
                          local_address=a_addr, rpcss_port=b.ports["rpcss"])
    try:
        return await diagnose(DoctorRequest(b.address, opts, c.mode, callback_wait=wait), pool)
    finally:
        await pool.close()


def doctor_in_lab(doc: dict[str, Any]) -> tuple[Scenario, DoctorReport]:
    s = make(doc)

    async def go() -> DoctorReport:
        async with LoopbackLab(s.world, hosts=[s.calls[0].target], ports=PORTS) as lab:
            return await _diagnose(s, lab)
    return s, asyncio.run(go())


# How each failure shows on the wire (docs/doctor.md): the emulated firewall resets.
KINDS = {"firewall-135": "refused", "wmi-port": "refused", "logon": "rpc fault",
         "access": "rpc fault", "namespace-rights": "hresult", "unknown-namespace": "hresult",
         "callback-135": "no callback", "callback-sink": "no callback",
         "callback-anonymous": "rpc fault"}

CASES = ["firewall-135", "wmi-port", "logon", "activation", "access", "namespace-rights",
         "unknown-namespace", "callback-135", "callback-sink", "callback-anonymous"]


@pytest.mark.parametrize("os_name", oses.NAMES)  # every OS the model knows
@pytest.mark.parametrize("case", CASES)
def test_doctor_names_check_s_step_and_hresult(case: str, os_name: str) -> None:
    s, rep = doctor_in_lab(case_doc(case, os_name))
    verdict = flow.evaluate(s.world, s.calls[0])
    if verdict.failed is None:
        # Where the model says the call works on this OS (Server 2003 SP1 lets an anonymous
        # callback into unsecapp), the doctor must find it working too.
        assert rep.ok, rep.as_json()
        return
    assert rep.failed is not None, rep.as_json()
    if verdict.failed.id == steps.C2_IDENTITY:
        # Vista and later: B makes no anonymous callback, so nothing reaches A, which cannot
        # tell that from its firewall dropping B; the doctor names the firewall and says so.
        assert (rep.failed.step, rep.failed.kind) == (steps.C2_RESOLVER_PORT, "no callback")
        assert "AllowAnonymousCallback = 1 on B" in rep.failed.detail, rep.failed
        return
    assert (rep.failed.step, rep.failed.hresult) == (verdict.failed.id, verdict.hresult.code)
    if case in KINDS:
        assert rep.failed.kind == KINDS[case], rep.failed
    # The Windows version: from the NTLM CHALLENGE as soon as B answered a bind on 135.
    # A client and a server of one build share their version (Vista / 2008, ...): the
    # doctor names one OS of that version.
    if case == "firewall-135":
        assert rep.os is None, rep.windows
    else:
        assert rep.os is not None and oses.get(rep.os).version == oses.get(os_name).version, \
            rep.windows
    # The steps before the failing one passed, in flow's order, each timed.
    ids = [x.step for x in rep.steps]
    assert ids == sorted(ids, key=lambda i: steps.ORDER.index(i) if i in steps.ORDER else 7)
    assert all(x.ok for x in rep.steps[:-1]) and not rep.steps[-1].ok
    # The model's fix for what was probed (a wrong password has none: no setting fixes it).
    assert rep.fix is not None
    if case in ("logon", "unknown-namespace"):
        assert not rep.fix.fixes and rep.fix.note
    else:
        assert rep.fix.proven and rep.fix.fixes, rep.fix
        assert all("Everyone" not in " ".join(f["commands"]) for f in rep.fix.fixes)


def test_async_doctor_sees_connection_2_pass_with_b_s_machine_account() -> None:
    s, rep = doctor_in_lab(case_doc("async-ok", "xp-sp2"))
    assert flow.evaluate(s.world, s.calls[0]).ok
    assert rep.ok, rep.as_json()
    by = {x.step: x for x in rep.steps}
    for sid in (steps.C2_IDENTITY, steps.C2_RESOLVER_PORT, steps.C2_SINK_PORT, steps.C2_ACCESS):
        assert by[sid].ok
    assert "CORP\\B$" in by[steps.C2_IDENTITY].detail
    assert rep.windows is not None and "5.1.2600" in rep.windows and rep.os == "xp-sp2"


def test_anonymous_callback_is_reported_as_such() -> None:
    _s, rep = doctor_in_lab(case_doc("callback-anonymous", "xp-sp2"))
    assert rep.failed is not None and rep.failed.step == steps.C2_ACCESS
    assert "ANONYMOUS" in rep.failed.detail
    # The rows never came back, but B's NTLM CHALLENGE said its version (MS-NLMP 2.2.2.10).
    assert rep.os == "xp-sp2" and rep.windows == "NTLM version 5.1.2600"
    _s, rep = doctor_in_lab(case_doc("callback-anonymous", "2003-sp1"))
    assert rep.ok and rep.os == "2003-sp1"
    assert "ANONYMOUS LOGON" in next(x.detail for x in rep.steps if x.step == steps.C2_IDENTITY)


# ------------------------------------------------------------------------------------------
# The command: JSON shape, exit codes, fleets

runner = CliRunner()


def _cli_lab(doc: dict[str, Any]) -> ThreadedLab:
    lab = ThreadedLab(make(doc), client_host="A", ports=PORTS)
    lab.start()
    return lab


def test_doctor_json_as_specified() -> None:
    doc = case_doc("activation", "xp-sp2")
    lab = _cli_lab(doc)
    try:
        b = lab.lab.servers["B"]
        res = runner.invoke(app, ["doctor", lab.address("B"), "-u", "CORP\\carol", "-p",
                                  "C4rol!", "--json", "--source", lab.address("A"),
                                  "--rpc-port", str(b.ports["rpcss"])])
    finally:
        lab.close()
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    assert {"target", "mode", "result", "symbol", "connection", "step", "steps",
            "fixes"} <= set(out)
    assert (out["result"], out["symbol"], out["connection"], out["step"]) == (
        "0x80070005", "E_ACCESSDENIED", 1, "c1.activation")
    assert all(set(x) >= {"step", "ok", "detail", "ms"} for x in out["steps"])
    assert out["fixes"] and all(set(f) == {"host", "kind", "summary", "commands"}
                                for f in out["fixes"])
    assert "C4rol!" not in res.output


def test_doctor_exit_0_and_text_when_every_step_passes() -> None:
    lab = _cli_lab(remote_admin_pair())
    try:
        res = runner.invoke(app, ["doctor", lab.address("B"), "-u", "CORP\\admin", "-p",
                                  "Adm1n!", "--source", lab.address("A"), "--rpc-port",
                                  str(lab.lab.servers["B"].ports["rpcss"])])
    finally:
        lab.close()
    assert res.exit_code == 0, res.output
    assert "every step passed" in res.output and "c1.namespace" in res.output


@pytest.mark.parametrize(("args", "words"), [
    (["-u", "CORP\\a", "-p", "x"], ["TARGET or --targets"]),
    (["127.0.0.1", "-u", "CORP\\a", "-p", "x", "--shard", "0/2"], ["--shard"]),
    (["bad..name", "-u", "CORP\\a", "-p", "x"], ["bad..name"]),
])
def test_doctor_bad_usage(args: list[str], words: list[str]) -> None:
    res = runner.invoke(app, ["doctor", *args])
    assert res.exit_code == 2, res.output
    assert len([x for x in res.output.splitlines() if x.strip()]) == 1
    for w in words:
        assert w in res.output


@pytest.mark.parametrize("targets", [False, True])
def test_doctor_without_a_password_is_bad_usage(tmp_path: Path, targets: bool) -> None:
    f = tmp_path / "targets.txt"
    f.write_text("127.0.0.1\n", encoding="utf-8")
    where = ["--targets", str(f)] if targets else ["127.0.0.1"]
    res = runner.invoke(app, ["doctor", *where, "-u", "CORP\\a"],
                        env={"WMILAB_PASSWORD": ""})
    assert res.exit_code == 2, res.output
    assert [x for x in res.output.splitlines() if x.strip()] == [
        x for x in res.output.splitlines() if "no password" in x]


def test_a_name_that_does_not_resolve_is_bad_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_such_name(*_a: object, **_k: object) -> object:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    # No lookup leaves the machine: the resolver's answer is what is emulated.
    monkeypatch.setattr("wmilab.realhost.options.socket.getaddrinfo", no_such_name)
    res = runner.invoke(app, ["doctor", "srv42.corp.example", "-u", "CORP\\a", "-p", "x"])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "srv42.corp.example" in lines[0] and "resolve" in lines[0]


@pytest.mark.parametrize(("content", "shard", "words"), [
    ("127.0.0.1\nbad..name\n", None, [":2:", "bad..name"]),
    ("127.0.0.1,CORP\\a,extra\n", None, [":1:"]),
    ("127.0.0.1\n", "3/2", ["--shard"]),
    ("127.0.0.1\n", "x", ["--shard"]),
    ("# nothing\n\n", None, ["no targets"]),
])
def test_fleet_bad_input_names_the_line(tmp_path: Path, content: str, shard: str | None,
                                        words: list[str]) -> None:
    f = tmp_path / "targets.txt"
    f.write_text(content, encoding="utf-8")
    args = ["doctor", "--targets", str(f), "-u", "CORP\\a", "-p", "x"]
    if shard is not None:
        args += ["--shard", shard]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    for w in words:
        assert w in res.output


def fleet_doc(n: int) -> dict[str, Any]:
    """A and ``n`` hosts B0.. on one /16: every third has its firewall closed, every third
    lets carol in, the rest let her launch WMI but not log in to root\\cimv2."""
    doc = remote_admin_pair()
    net = doc["hosts"]["A"]["address"].rsplit(".", 2)[0]
    base = copy.deepcopy(doc["hosts"]["B"])
    del doc["hosts"]["B"]
    doc["hosts"]["A"]["address"] = f"{net}.0.1/16"
    for i in range(n):
        h = copy.deepcopy(base)
        h["address"] = f"{net}.{1 + i // 200}.{10 + i % 200}/16"
        if i % 3 == 0:
            del h["netsh"]
        else:
            h["dcom"] = {"launch_limits": {"CORP\\carol": LAUNCH}}
        if i % 3 == 1:
            h["wmi"] = {"root\\cimv2": {"CORP\\carol": ["enable account", "remote enable"]}}
        doc["hosts"][f"B{i}"] = h
    doc["domains"]["CORP"]["accounts"]["carol"] = "C4rol!"
    doc["calls"] = [{"from": "A", "to": f"B{i}", "user": "CORP\\carol"} for i in range(n)]
    return doc


@pytest.fixture(scope="module")
def fleet_lab() -> Any:
    """A and 200 hosts B0.. on port 135 of their own loopback addresses (needs root)."""
    from wmilab.host.server import HostBindError

    s = make(fleet_doc(200))
    lab = ThreadedLab(s, client_host="A")
    try:
        lab.start()
    except HostBindError as e:
        needs_root(f"a fleet on port 135: {e.strerror}")
    yield lab
    lab.close()


def _targets(lab: ThreadedLab, tmp_path: Path) -> tuple[Path, dict[str, flow.Verdict]]:
    s = lab.scenario
    predicted = {lab.address(c.target): flow.evaluate(s.world, c) for c in s.calls}
    f = tmp_path / "fleet.csv"
    f.write_text("target,user\n" + "".join(f"{lab.address(c.target)},CORP\\carol\n"
                                            for c in s.calls), encoding="utf-8")
    return f, predicted


def test_fleet_of_200_hosts_one_json_line_each_with_check_s_verdicts(
        fleet_lab: ThreadedLab, tmp_path: Path) -> None:
    f, predicted = _targets(fleet_lab, tmp_path)
    res = runner.invoke(app, ["doctor", "--targets", str(f), "-u", "CORP\\admin", "-p",
                              "C4rol!", "--json", "--source", fleet_lab.address("A"),
                              "--timeout", "5"])
    assert res.exit_code == 1, res.output[-2000:]
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    assert len(lines) == 200
    seen = set()
    for out in lines:
        want = predicted[out["target"]]
        assert (out["result"], out["step"]) == (
            want.result, None if want.failed is None else want.failed.id), out
        seen.add(out["result"])
    assert seen == {"ok", "0x800706BA", "0x80041003"}


def test_fleet_shard_and_summary_table(fleet_lab: ThreadedLab, tmp_path: Path) -> None:
    f, predicted = _targets(fleet_lab, tmp_path)
    res = runner.invoke(app, ["doctor", "--targets", str(f), "-u", "CORP\\carol", "-p",
                              "C4rol!", "--shard", "1/2", "--source", fleet_lab.address("A"),
                              "--concurrency", "16"])
    assert res.exit_code == 1, res.output[-2000:]
    shard = list(predicted.items())[1::2]
    body = [x.split() for x in res.stdout.splitlines() if x.startswith("127.")]
    assert sorted(x[0] for x in body) == sorted(t for t, _v in shard)
    for words in body:  # one line per host: target, result, symbol, step
        v = predicted[words[0]]
        assert words[1] == v.result and (v.ok or words[3] == v.failed.id)  # type: ignore[union-attr]
    counts: dict[str, int] = {}
    for _t, v in shard:
        key = "ok" if v.ok else v.failed.id  # type: ignore[union-attr]
        counts[key] = counts.get(key, 0) + 1
    for key, n in counts.items():
        assert any(line.split()[:2] == [key, str(n)] or
                   (key in line and f" {n} " in line) for line in res.stdout.splitlines()), \
            (key, n, res.stdout[-1500:])


def test_a_host_that_answers_garbage_gets_a_protocol_verdict() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        # A bind_ack header with a right fragment length and a body of junk.
        writer.write(b"\x05\x00\x0c\x03\x10\x00\x00\x00\xd0\x00\x00\x00\x01\x00\x00\x00"
                     + b"\xee" * 192)
        await writer.drain()
        await reader.read(4096)
        writer.close()

    async def go() -> DoctorReport:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            opts = ConnectOptions("127.0.0.1", "CORP\\admin", "x", rpcss_port=port,
                                  timeout=1.0)
            return await diagnose(DoctorRequest("127.0.0.1", opts))
    rep = asyncio.run(go())
    assert rep.failed is not None and rep.failed.step == steps.C1_RPCSS
    assert rep.failed.kind == "protocol error", rep.failed
    assert rep.as_json()["result"] == f"0x{rep.failed.hresult:08X}"
    assert rep.fix is not None and not rep.fix.fixes  # no firewall fix for a broken peer


# A well-formed, properly sealed response whose stub is junk, from the emulated host's part
# that answers the call; the doctor must stop at the step that reads it.
JUNK_AT = {
    "activation": ("wmilab.host.rpcss.Rpcss._activator", steps.C1_ACTIVATION),
    "ntlm-login": ("wmilab.host.exporter.WmiExporter._login", steps.C1_NAMESPACE),
    "exec-query": ("wmilab.host.exporter.WmiExporter._services", "c1.query"),
    "next": ("wmilab.host.exporter.WmiExporter._enum", "c1.query"),
}


@pytest.mark.parametrize("where", sorted(JUNK_AT))
def test_a_host_that_answers_garbage_later_gets_a_protocol_verdict_at_that_step(
        monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    target, step = JUNK_AT[where]
    monkeypatch.setattr(target, lambda *_a, **_k: b"\x00\x00\x02\x00" + b"\xee" * 37)
    _s, rep = doctor_in_lab(case_doc("ok", "xp-sp2"))
    assert rep.failed is not None, rep.as_json()
    assert (rep.failed.step, rep.failed.kind) == (step, "protocol error"), rep.as_json()
    assert [r.step for r in rep.steps if not r.ok] == [step]  # earlier steps passed
    out = rep.as_json()
    assert out["result"] == f"0x{rep.failed.hresult:08X}" and out["step"] == step
    assert rep.fix is not None and not rep.fix.fixes  # no configuration fixes a broken peer


def test_async_fleet_shares_one_resolver_and_tells_hosts_apart() -> None:
    """Six B's call back the same listener on A; those of a domain A does not trust come
    back anonymous and are refused, the others pass, as check says for each."""
    from wmilab.realhost.fleet import FleetEntry, run_fleet

    doc = case_doc("async-ok", "xp-sp2")
    doc["domains"]["OTHER"] = {"dns": "other.example", "accounts": {"admin": "Adm1n!"},
                               "groups": {"Domain Admins": ["admin"]}}
    base = doc["hosts"].pop("B")
    net = base["address"].rsplit(".", 1)[0]
    doc["calls"] = []
    for i in range(6):
        h = copy.deepcopy(base)
        h["address"] = f"{net}.{10 + i}/24"
        if i % 2:
            h["domain"] = "OTHER"
        doc["hosts"][f"B{i}"] = h
        doc["calls"].append({"from": "A", "to": f"B{i}", "mode": "async",
                             "user": ("OTHER" if i % 2 else "CORP") + "\\admin"})
    s = make(doc)

    async def go() -> list[DoctorReport]:
        names = [c.target for c in s.calls]
        async with LoopbackLab(s.world, hosts=names, ports=PORTS) as lab:
            pool = ListenerPool(0, policy=ModelSinkPolicy(s.world, "A", lab.map))
            for n in names:
                lab.servers[n].resolver_port = lambda addr: pool.listeners[addr].resolver_port
            entries = [FleetEntry(i + 1, lab.servers[c.target].address, c.user)
                       for i, c in enumerate(s.calls)]
            # One remapped RPCSS port per host: a fleet per host, all on one loop and pool.
            runs = [run_fleet([e], DoctorRequest("", ConnectOptions(
                "", "", "Adm1n!", timeout=2.0, local_address=str(lab.map.loopback("A")),
                rpcss_port=lab.servers[c.target].ports["rpcss"]), "async", callback_wait=1.5),
                concurrency=8, pool=pool) for e, c in zip(entries, s.calls, strict=True)]
            try:
                return [r for reps in await asyncio.gather(*runs) for r in reps]
            finally:
                await pool.close()
    reports = asyncio.run(go())
    for c, rep in zip(s.calls, reports, strict=True):
        want = flow.evaluate(s.world, c)
        assert rep.result == want.result, (c.target, rep.as_json())
    assert {r.result for r in reports} == {"ok", "0x80070005"}


# ------------------------------------------------------------------------------------------
# Generated hosts (the differential test's networks): the doctor agrees with check


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(network)
def test_doctor_agrees_with_check_on_generated_hosts(n: dict[str, Any]) -> None:
    s = make(differential_doc(n))
    call = s.calls[0]
    predicted = flow.evaluate(s.world, call)

    async def go() -> DoctorReport:
        async with LoopbackLab(s.world, hosts=["B"], ports=PORTS) as lab:
            b = lab.servers["B"]
            opts = ConnectOptions(b.address, call.user,
                                  call.password or DIFF_PASSWORDS[call.user], call.namespace,
                                  timeout=2.0, local_address=str(lab.map.loopback("A")),
                                  rpcss_port=b.ports["rpcss"])
            return await diagnose(DoctorRequest(b.address, opts, call.mode))
    rep = asyncio.run(go())
    want = predicted.failed
    got = rep.failed
    assert rep.result == predicted.result, (rep.as_json(), want)
    if want is not None and want.id != steps.C1_CLIENT_DCOM:
        assert got is not None and got.step == want.id, (got, want)

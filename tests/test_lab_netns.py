"""The netns lab for real: namespaces, a bridge, nftables and host processes (root only).

Every lab here works on a copy of its scenario in tmp_path, so its namespaces and state
directory are its own (parallel runs and other users of the machine do not collide), and
all traffic stays inside the namespaces it creates.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from typer.testing import CliRunner

from conftest import CORP, loopback_net
from wmilab import examples
from wmilab.lab import netns, runner
from wmilab.lab.state import lab_key, state_root
from wmilab.scenario import load

EX = examples.directory()
VENV_BIN = Path(sys.executable).parent

# Skipped without root, with the reason; under root (CI) a missing ip, nft or dumpcap fails.
root_only = pytest.mark.skipif(
    os.geteuid() != 0, reason=f"needs root: {netns.root_problem()}")


def wmilab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wmilab.cli", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def copy_example(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copy(EX / name, dest)
    return dest


def tshark_problems(capture: Path) -> tuple[int, list[str]]:
    """(number of DCE/RPC packets, malformed or error-level packets) as tshark reads them."""
    # The WMI and sink ports are drawn at random from the RPC range, where a port-based
    # dissector may claim them first; DCE/RPC's own heuristic gets the first look instead.
    done = subprocess.run(["tshark", "-n", "-o", "tcp.try_heuristic_first:TRUE",
                           "-r", str(capture), "-T", "fields",
                           "-e", "frame.number", "-e", "frame.protocols",
                           "-e", "_ws.expert.severity"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    rpc, bad = 0, []
    for line in done.stdout.splitlines():
        _number, protocols, *severity = [*line.split("\t"), ""]
        rpc += "dcerpc" in protocols.split(":")
        # _ws.malformed marks a packet the dissector could not read; 0x00800000 is "error".
        if "_ws.malformed" in protocols or str(0x00800000) in severity[0].split(","):
            bad.append(line)
    return rpc, bad


# ---- the same verdicts as check (and so as the loopback lab) on every example -----------

def _verify_example(tmp_path: Path, name: str, pcap: Path | None,
                    copied: Path | None = None) -> list[tuple[str, str, str]]:
    path = copy_example(tmp_path, name) if copied is None else copied / name
    s = load(path)
    state = runner.up(path, s, use_netns=True, pcap_dir=pcap, quick=True)
    try:
        passwords = {c.user: s.world.password_of(c.user) for c in s.calls}
        checks = runner.verify_netns(state, s, passwords)
        if any(str(c.wire) == "0x800706BA" and c.predicted.result != "0x800706BA"
               for c in checks):
            # A connect that timed out (2 s) on a loaded machine looks like a dropped SYN;
            # ask once more with a patient timeout. A real drop still gives 0x800706BA.
            checks = runner.verify_netns(state, s, passwords, connect_timeout=15.0)
    finally:
        runner.down(state)
    return [(c.call.name, str(c.wire), c.predicted.result) for c in checks]


@root_only
@pytest.mark.slow
def test_netns_lab_gives_check_s_verdict_on_every_example(tmp_path: Path) -> None:
    """Every call of every example, made from its caller's namespace, ends as `check` says;
    tests/test_cli.py asserts the same of the loopback lab, so the two labs agree. The
    examples run three at a time (the time goes to idle connect timeouts and start-up)."""
    names = sorted(p.name for p in EX.glob("*.toml"))
    # Example 05 (three hosts, both connections) also writes captures, which tshark must
    # read without complaint.
    pcap = tmp_path / "05" / "pcap"
    jobs = {}
    with ThreadPoolExecutor(max_workers=3) as pool:
        for name in names:
            (tmp_path / name[:2]).mkdir()
            jobs[name] = pool.submit(_verify_example, tmp_path / name[:2], name,
                                     pcap if name.startswith("05") else None)
    results = {name: job.result() for name, job in jobs.items()}
    differ = {name: [(call, wire, want) for call, wire, want in rows if wire != want]
              for name, rows in results.items()}
    assert not any(differ.values()), differ
    assert sum(len(rows) for rows in results.values()) == sum(
        len(load(EX / n).calls) for n in names)
    for host in load(EX / "05-workgroup-callback.toml").world.configs:
        rpc, bad = tshark_problems(pcap / f"{host}.pcapng")
        assert rpc > 0 and bad == [], (host, bad[:5])


OUTBOUND = Path(__file__).parent / "scenarios" / "modern" / "17-outbound-rules.toml"


@root_only
@pytest.mark.slow
def test_netns_lab_enforces_the_callers_outbound_rules(tmp_path: Path) -> None:
    """Every call of the outbound-rules scenario ends as `check` says, made from its caller's
    namespace: A's refusals come from the output chain of A's namespace (lab/nft.py), B's
    from the emulated B asking before it calls back; B's WMI-Out callback is let out."""
    shutil.copy(OUTBOUND, tmp_path / OUTBOUND.name)
    rows = _verify_example(tmp_path, OUTBOUND.name, None, tmp_path)
    assert len(rows) == len(load(OUTBOUND).calls)
    assert [(c, w) for c, w, want in rows if w != want] == []
    assert sum(w == "0x800706BA" for _c, w, _want in rows) >= 8


# ---- up, exec (wmiquery as computer A), status, down; drops are silent --------------------

def _scenario(tmp_path: Path) -> Path:
    """A (XP, firewall on, nothing open), B (XP, Remote Administration from A's subnet),
    C (2003 SP1: firewall off)."""
    doc: dict[str, Any] = {
        "domains": {"CORP": dict(CORP)},
        "hosts": {
            "A": {"os": "xp-sp2", "domain": "CORP", "address": "192.168.10.1/24"},
            "B": {"os": "xp-sp2", "domain": "CORP", "address": "192.168.10.2/24",
                  "netsh": ["netsh firewall set service RemoteAdmin enable scope=SUBNET"]},
            "C": {"os": "2003-sp1", "domain": "CORP", "address": "10.20.0.3/16"},
        },
        "calls": [{"from": "A", "to": "B", "user": "CORP\\admin"}],
    }
    path = tmp_path / "lab.toml"
    path.write_text(tomlkit.dumps(doc))
    return path


PROBE = """
import json, socket, sys, time
out = []
for addr, port in json.loads(sys.argv[1]):
    s = socket.socket(); s.settimeout(1.5); t = time.monotonic()
    try:
        s.connect((addr, port)); r = "connected"
    except Exception as e:
        r = type(e).__name__
    out.append([addr, port, r, round(time.monotonic() - t, 2)])
    s.close()
print(json.dumps(out))
"""


@root_only
@pytest.mark.slow
def test_up_exec_status_down_wmiquery_as_a_and_silent_drops(tmp_path: Path) -> None:
    """`lab up --netns --pcap`, then as computer A unmodified wmiquery.py gets B's answer
    (and B's capture shows A's logon); a SYN a firewall refuses waits out its timeout
    instead of being reset; `down` stops it all."""
    path = _scenario(tmp_path)
    queries = tmp_path / "q.wql"
    queries.write_text("SELECT Caption FROM Win32_OperatingSystem\nexit\n")
    pcap = tmp_path / "pcap"
    r = wmilab("lab", "up", str(path), "--netns", "--pcap", str(pcap))
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        st = wmilab("lab", "status", str(path))
        q = wmilab("lab", "exec", str(path), "A", "--", str(VENV_BIN / "wmiquery.py"),
                   "-file", str(queries), "CORP/admin:Adm1n!@192.168.10.2")
        # From B: A's firewall (nothing open) and C's (off). From C: B's scope is SUBNET.
        probe_b = wmilab("lab", "exec", str(path), "B", "--", sys.executable, "-c", PROBE,
                         json.dumps([["192.168.10.1", 135], ["10.20.0.3", 135],
                                     ["10.20.0.3", 4444]]))
        probe_c = wmilab("lab", "exec", str(path), "C", "--", sys.executable, "-c", PROBE,
                         json.dumps([["192.168.10.2", 135]]))
    finally:
        down = wmilab("lab", "down", str(path))
    assert down.returncode == 0, down.stderr
    assert st.returncode == 0 and st.stdout.count("listening") == 3, st.stdout
    assert q.returncode == 0 and "Microsoft Windows XP" in q.stdout, q.stdout + q.stderr
    got = {(a, p): (res, secs) for a, p, res, secs in
           json.loads(probe_b.stdout) + json.loads(probe_c.stdout)}
    # A's firewall drops B's SYN: no reset, the connect waits for its whole timeout.
    res, secs = got[("192.168.10.1", 135)]
    assert res == "TimeoutError" and secs >= 1.4, got
    assert got[("192.168.10.2", 135)][0] == "TimeoutError", got  # C is outside B's subnet
    # Firewall off: the listener answers, and a port nobody listens on resets at once.
    assert got[("10.20.0.3", 135)][0] == "connected"
    assert got[("10.20.0.3", 4444)][0] == "ConnectionRefusedError"
    rpc, bad = tshark_problems(pcap / "B.pcapng")
    assert rpc > 0 and bad == []
    auth = subprocess.run(["tshark", "-n", "-o", "tcp.try_heuristic_first:TRUE",
                           "-r", str(pcap / "B.pcapng"), "-Y",
                           "ntlmssp.auth.username == \"admin\" && ip.src == 192.168.10.1"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert auth.stdout.strip(), "B's capture shows A's NTLM logon as CORP\\admin"


# ---- down leaves nothing behind, even after up was killed ---------------------------------

def _snapshot() -> dict[str, Any]:
    def run(*cmd: str) -> str:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    links = sorted(ln.split(":")[1].strip().split("@")[0]
                   for ln in run("ip", "-o", "link", "show").splitlines())
    return {"links": links, "routes": run("ip", "route", "show"),
            "addresses": sorted(run("ip", "-o", "addr", "show").split("\n")),
            "tables": run("nft", "list", "tables")}


def _running_with(*needles: str) -> list[str]:
    """Command lines of live (not zombie) processes that mention one of ``needles``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or (entry / "stat").read_text().split(") ")[1][0] == "Z":
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if any(n in cmd for n in needles) and "pytest" not in cmd:
            found.append(cmd)
    return found


def _pids(directory: Path) -> list[int]:
    try:
        data = json.loads((directory / "state.json").read_text())
    except (OSError, ValueError):
        return []
    return [p["pid"] for p in data["processes"]]


@root_only
@pytest.mark.slow
@pytest.mark.parametrize("kill_when", ["namespaces", "hosts"])
def test_down_removes_everything_even_after_up_is_killed(tmp_path: Path, kill_when: str) -> None:
    path = copy_example(tmp_path, "05-workgroup-callback.toml")
    key = lab_key(path)
    directory = state_root() / key
    before = _snapshot()
    up = subprocess.Popen([sys.executable, "-m", "wmilab.cli", "lab", "up", str(path),
                           "--netns", "--pcap", str(tmp_path / "pcap")],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            data = json.loads((directory / "state.json").read_text())
        except (OSError, ValueError):
            data = {}
        if kill_when == "namespaces" and len(data.get("namespaces", [])) >= 2:
            break
        if kill_when == "hosts" and any(p["role"].startswith("host")
                                        for p in data.get("processes", [])):
            break
        time.sleep(0.005)
    up.send_signal(signal.SIGKILL)  # a crash of `up` half way
    up.wait()
    made = [ns for ns in os.listdir("/var/run/netns") if key in ns]
    pids = _pids(directory)
    assert made, "up was killed before it made anything"
    r = wmilab("lab", "down", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert not [ns for ns in os.listdir("/var/run/netns") if key in ns]
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or (
            Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"), pid
    # Nor any process up started but had no time to record: every host process names the
    # state directory, every capture its file, on its command line.
    assert _running_with(str(directory), str(tmp_path / "pcap")) == []
    assert not directory.exists()
    assert _snapshot() == before  # the machine's own namespace was never touched
    again = wmilab("lab", "down", str(path))
    assert again.returncode == 0 and "no lab" in again.stdout


# ---- without root -----------------------------------------------------------------------

def test_without_root_the_netns_lab_says_why_and_exits_2(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from wmilab.cli import app

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("WMILAB_STATE_DIR", str(tmp_path / "state"))
    path = copy_example(tmp_path, "01-default-blocked.toml")
    for args in (["lab", str(path), "--netns", "--verify"], ["lab", "up", str(path), "--netns"]):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 2, r.output
        assert "needs root" in r.output and "without --netns" in r.output
    assert not list((tmp_path / "state").glob("*/state.json"))


# ---- captures in the loopback lab --------------------------------------------------------

@root_only
@pytest.mark.slow
def test_loopback_lab_writes_a_clean_capture_per_host(tmp_path: Path) -> None:
    from conftest import remote_admin_pair

    path = tmp_path / "pair.toml"
    path.write_text(tomlkit.dumps(remote_admin_pair()))  # a subnet no other test uses
    pcap = tmp_path / "pcap"
    r = wmilab("lab", str(path), "--verify", "--pcap", str(pcap), "--loopback-net",
               loopback_net())
    assert r.returncode == 0 and "agrees" in r.stdout, r.stdout + r.stderr
    rpc, bad = tshark_problems(pcap / "B.pcapng")
    assert rpc > 0 and bad == []
    # A made no connection of its own (impacket connected from 127.0.0.1): an empty capture
    # that tshark still opens.
    assert tshark_problems(pcap / "A.pcapng") == (0, [])
    assert not (state_root() / lab_key(path)).exists()  # the captures were stopped and forgotten


@root_only
@pytest.mark.slow
def test_loopback_lab_up_exec_down_with_unmodified_wmiquery(tmp_path: Path) -> None:
    from conftest import remote_admin_pair

    path = tmp_path / "pair.toml"
    path.write_text(tomlkit.dumps(remote_admin_pair()))
    queries = tmp_path / "q.wql"
    queries.write_text("SELECT Caption FROM Win32_OperatingSystem\nexit\n")
    r = wmilab("lab", "up", str(path), "--loopback-net", loopback_net())
    assert r.returncode == 0, r.stdout + r.stderr
    try:
        state = json.loads((state_root() / lab_key(path) / "state.json").read_text())
        b = state["hosts"]["B"]["address"]
        assert b.startswith("127.")
        q = wmilab("lab", "exec", str(path), "A", "--", str(VENV_BIN / "wmiquery.py"),
                   "-file", str(queries), f"CORP/admin:Adm1n!@{b}")
        st = wmilab("lab", "status", str(path))
    finally:
        down = wmilab("lab", "down", str(path))
    assert q.returncode == 0 and "Microsoft Windows XP" in q.stdout, q.stdout + q.stderr
    assert "connections from 127.0.0.1 to B count as A" in st.stdout
    assert down.returncode == 0 and "stopped 1 process," in down.stdout
    assert not (state_root() / lab_key(path)).exists()


def test_a_caller_with_dcom_disabled_refuses_before_any_packet() -> None:
    """EnableDCOM = N on A: the lab's A fails the call itself, with check's HRESULT."""
    from conftest import make, remote_admin_pair
    from wmilab import flow
    from wmilab.lab.verify import refused_by_caller

    doc = remote_admin_pair()
    s = make(doc)
    assert refused_by_caller(s.world, s.calls[0]) is None
    doc["hosts"]["A"]["dcom"] = {"enable_dcom": False}
    s = make(doc)
    refusal = refused_by_caller(s.world, s.calls[0])
    assert refusal == flow.evaluate(s.world, s.calls[0]).result == "0x80070005"


# ---- the kernel against the model, for generated firewalls --------------------------------

KERNEL_PROBE = """
import asyncio, json, sys
async def one(addr, port):
    try:
        _r, w = await asyncio.wait_for(asyncio.open_connection(addr, port), 1.0)
        w.close(); return "open"
    except ConnectionRefusedError:
        return "admitted"  # the firewall let the SYN in; nobody listens: reset
    except (TimeoutError, asyncio.TimeoutError):
        return "dropped"
async def main():
    targets = json.loads(sys.argv[1])
    got = await asyncio.gather(*(one(a, p) for a, p in targets))
    print(json.dumps([[a, p, g] for (a, p), g in zip(targets, got)]))
asyncio.run(main())
"""


@root_only
@pytest.mark.slow
def test_the_kernel_drops_exactly_what_the_model_refuses(tmp_path: Path) -> None:
    """Eight hosts on two subnets with firewalls drawn from netsh and Group Policy settings
    (scopes, port openings, program exceptions, no-exceptions, GP Remote Administration),
    no emulated host running: from every namespace, a SYN to each listener port of every
    other host is admitted by its nftables rules exactly when HostModel.inbound admits it."""
    import random

    from test_lab_nft import APP, NETSH, POLICIES
    from wmilab.lab import nft
    from wmilab.lab.state import LabState
    from wmilab.model import firewall as fw

    rnd = random.Random(11)
    hosts: dict[str, Any] = {}
    programs: dict[str, str] = {}
    for i in range(8):
        name = f"H{i}"
        net = "192.168.10" if i % 2 else "10.0.1"
        hosts[name] = {"os": rnd.choice(["xp-sp2", "xp-sp2", "2003-sp1"]), "domain": "CORP",
                       "address": f"{net}.{10 + i}/24",
                       "netsh": rnd.sample(NETSH[:-1], k=rnd.randint(1, 3))}
        policy = rnd.choice(POLICIES)
        if policy:
            hosts[name]["policy"] = policy
        if i % 3 == 0:  # a dynamic range that port openings of 1025 and 1026 can cover
            hosts[name]["registry"] = {"Ports": ["1025-1026"], "PortsInternetAvailable": "Y",
                                       "UseInternetPorts": "Y"}
        programs[name] = fw.normalize_program(rnd.choice([APP, fw.UNSECAPP]))
    path = tmp_path / "fw.toml"
    path.write_text(tomlkit.dumps({"domains": {"CORP": dict(CORP)}, "hosts": hosts,
                                   "calls": []}))
    world = load(path).world
    # The listeners each host's RPC runtime would draw: WMI and a sink on dynamic ports.
    listeners: dict[str, list[tuple[int, str]]] = {}
    for name in world.configs:
        model = world.host(name)
        wmi = model.rpc_ports.pick(rnd)
        sink = (next(p for p in model.rpc_ports if p != wmi), programs[name])
        listeners[name] = list(model.listeners(wmi, sink))
    state = LabState(scenario=str(path), key=lab_key(path), mode="netns",
                     directory=str(tmp_path))
    try:
        netns.create_network(state, world)
        for name in world.configs:  # as each host process does once it listens
            (_rpcss, wmi_l, sink_l) = listeners[name]
            nft.apply(nft.ruleset(world.host(name), wmi_l[0], sink_l),
                      state.hosts[name]["namespace"])
        probes = {}
        for src in world.configs:
            targets = [[str(world.configs[dst].address.ip), port]
                       for dst in world.configs if dst != src
                       for port, _prog in listeners[dst]]
            probes[src] = subprocess.Popen(
                ["ip", "netns", "exec", state.hosts[src]["namespace"], sys.executable, "-c",
                 KERNEL_PROBE, json.dumps(targets)], stdout=subprocess.PIPE, text=True)
        results = {src: json.loads(p.communicate(timeout=60)[0]) for src, p in probes.items()}
    finally:
        netns.remove_namespaces(state)
    by_ip = {cfg.address.ip: name for name, cfg in world.configs.items()}
    wrong, seen = [], set()
    for src, rows in results.items():
        source = world.configs[src].address.ip
        for addr, port, got in rows:
            dst = world.host(by_ip[IPv4Address(addr)])
            program = dict(listeners[dst.name])[port]
            verdict = dst.inbound(source, port, program)
            seen.add(verdict.allowed)
            if (got != "dropped") is not verdict.allowed:
                wrong.append((src, dst.name, port, got, verdict.rule))
    assert not wrong, wrong[:5]
    assert seen == {True, False}  # the drawn firewalls both admit and drop

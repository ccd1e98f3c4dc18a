"""A big loopback lab: 2,000 hosts in one process under a descriptor limit too low for two
sockets per host, served through shared listening sockets, built lazily, each answering as
its own firewall says; and a lab spread over worker processes, each host in exactly one."""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import needs_root
from wmilab.host.listeners import PORTS_PER_RANGE
from wmilab.lab.verify import impacket_query

HOSTS = 2000
# Lab hosts every seventh of which keeps XP SP2's closed firewall (no exception).
SCENARIO = textwrap.dedent('''
    import random, sys
    n, second = int(sys.argv[1]), int(sys.argv[2])
    out = ['[domains.CORP.accounts]\\nadmin = "A!"\\n[domains.CORP.groups]\\n'
           '"Domain Admins" = ["admin"]\\n']
    for i in range(n):
        out.append(f'[hosts.H{i:05d}]\\nos = "xp-sp2"\\ndomain = "CORP"\\n'
                   f'address = "10.{second}.{i // 250}.{i % 250 + 1}/16"\\n')
        if i % 7:
            out.append('netsh = ["netsh firewall set service RemoteAdmin enable"]\\n')
    out.append('[hosts.CLIENT]\\nos = "xp-sp2"\\ndomain = "CORP"\\n'
               f'address = "10.{second}.250.1/16"\\n')
    print("".join(out))
''')

SERVE = textwrap.dedent('''
    import asyncio, json, random, resource, sys
    from ipaddress import IPv4Network
    from aiowmi.connection import Connection
    from aiowmi.query import Query
    from wmilab.lab.loopback import LoopbackLab
    from wmilab.scenario import loads

    text, network, limit = sys.stdin.read(), sys.argv[1], int(sys.argv[2])
    world = loads(text, "big.toml").world
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    async def session(address, port):
        conn = Connection(address, "admin", "A!", domain="CORP", port=port)
        await conn.connect(timeout=10)
        try:
            service = await conn.negotiate_ntlm()
            await conn.login_ntlm(service, "root/cimv2")
            rows = []
            async with Query("SELECT CSName FROM Win32_OperatingSystem").context(
                    conn, service) as qc:
                async for props in qc.results():
                    rows.append(props["CSName"].value)
            return rows
        finally:
            conn.close()

    async def probe(address, port):
        # A closed firewall: the connection is reset before any byte (aiowmi would report
        # the reset or, if it came while it waited, its own timeout).
        reader, writer = await asyncio.open_connection(address, port)
        try:
            return (await asyncio.wait_for(reader.read(10), 10)).hex()
        finally:
            writer.close()

    async def main():
        hosts = [h for h in world.configs if h != "CLIENT"]
        lab = LoopbackLab(world, client_host="CLIENT", hosts=hosts, ports={135: 0},
                          network=IPv4Network(network))
        await lab.start()
        try:
            report = {"shared": lab.shared is not None, "sockets": lab.shared.sockets,
                      "built_at_start": sum(s.runtime.repository_built
                                            for s in lab.servers.values()),
                      "answers": {}}
            for host in random.Random(int(sys.argv[3])).sample(hosts, 12):
                srv = lab.servers[host]
                try:
                    if int(host[1:]) % 7:
                        answer = await session(srv.address, srv.ports["rpcss"])
                    else:
                        answer = await probe(srv.address, srv.ports["rpcss"])
                except Exception as e:
                    answer = type(e).__name__
                report["answers"][host] = answer
            report["built_after"] = sorted(h for h, s in lab.servers.items()
                                           if s.runtime.repository_built)
            print(json.dumps(report))
        finally:
            await lab.stop()

    asyncio.run(main())
''')


@pytest.mark.slow
def test_two_thousand_hosts_in_one_process_under_a_low_descriptor_limit() -> None:
    second = random.SystemRandom().randrange(100, 250)
    text = subprocess.run([sys.executable, "-c", SCENARIO, str(HOSTS), str(second)],
                          capture_output=True, text=True, check=True).stdout
    # 3,000 descriptors, soft and hard: two sockets for each of 2,000 hosts would not fit.
    seed = random.SystemRandom().randrange(1 << 30)
    r = subprocess.run([sys.executable, "-c", SERVE, f"127.{second}.0.0/16", "3000",
                        str(seed)], input=text, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["shared"], report  # chosen for the limit
    # One shared socket per distinct WMI port drawn: at most PORTS_PER_RANGE of XP's range.
    assert report["sockets"] <= PORTS_PER_RANGE, report
    # Nothing built for idle hosts; afterwards exactly the hosts that were asked something.
    assert report["built_at_start"] == 0
    answers: dict[str, object] = report["answers"]
    assert len(answers) == 12
    for host, answer in answers.items():
        index = int(host[1:])
        if index % 7:
            # The host the connection was made to answered, with its own name.
            assert answer == [host], (host, answer)
        else:
            # Its own firewall (closed) refused the connection: reset, never served.
            assert answer == "ConnectionResetError", (host, answer)
    assert report["built_after"] == sorted(h for h in answers if int(h[1:]) % 7), report


def _listening_owners(pids: list[int]) -> dict[tuple[str, int], list[int]]:
    """(address, port) of every listening TCP socket of these processes -> owning pids."""
    inodes: dict[str, int] = {}
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[target[8:-1]] = pid
    owners: dict[tuple[str, int], list[int]] = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: TCP_LISTEN
                continue
            hex_ip, hex_port = local.split(":")
            ip = ".".join(str(b) for b in reversed(bytes.fromhex(hex_ip)))
            owners.setdefault((ip, int(hex_port, 16)), []).append(inodes[inode])
    return owners


async def _aiowmi_name(address: str) -> str:
    from aiowmi.connection import Connection
    from aiowmi.query import Query

    conn = Connection(address, "admin", "A!", domain="CORP", port=135)
    await conn.connect(timeout=10)
    try:
        service = await conn.negotiate_ntlm()
        await conn.login_ntlm(service, "root/cimv2")
        names = []
        async with Query("SELECT CSName FROM Win32_OperatingSystem").context(
                conn, service) as qc:
            async for props in qc.results():
                names.append(props["CSName"].value)
        return ",".join(names)
    finally:
        conn.close()


# Two jobs, as on two machines (each its own state directory): shard 0/2 of the hosts in
# two worker processes, shard 1/2 in one.
JOBS = (("0/2", 2), ("1/2", 1))


@pytest.mark.slow
def test_shards_and_workers_serve_every_host_exactly_once(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        needs_root("the workers' hosts listen on port 135")
    second = random.SystemRandom().randrange(100, 250)
    text = subprocess.run([sys.executable, "-c", SCENARIO, "9", str(second)],
                          capture_output=True, text=True, check=True).stdout
    path = tmp_path / "nine.toml"
    path.write_text(text)
    envs = [{**os.environ, "WMILAB_STATE_DIR": str(tmp_path / f"job{j}")}
            for j in range(len(JOBS))]
    wmilab = [sys.executable, "-m", "wmilab", "lab"]
    started: list[dict[str, str]] = []
    try:
        for env, (shard, workers) in zip(envs, JOBS, strict=True):
            up = subprocess.run([*wmilab, "up", str(path), "--shard", shard, "--workers",
                                 str(workers), "--loopback-net", f"127.{second}.0.0/16"],
                                env=env, capture_output=True, text=True, timeout=300)
            assert up.returncode == 0, up.stdout + up.stderr
            started.append(env)
        _check_split(tmp_path, second)
    finally:
        for env in started:
            down = subprocess.run([*wmilab, "down", str(path)], env=env, capture_output=True,
                                  text=True, timeout=120)
            assert down.returncode == 0 and "stopped" in down.stdout, down.stdout


def _check_split(tmp_path: Path, second: int) -> None:
    ready = [json.loads(p.read_text())
             for p in sorted(tmp_path.glob("job*/*/loopback*.ready"))]
    assert len(ready) == 3
    pids = [r["pid"] for r in ready]
    assert len(set(pids)) == 3
    served = [h for r in ready for h in r["hosts"]]
    every = [f"H{i:05d}" for i in range(9)] + ["CLIENT"]
    assert sorted(served) == sorted(every)  # each host in exactly one process
    state: dict[str, dict[str, dict[str, str]]] = {"hosts": {}}
    for job in tmp_path.glob("job*/*/state.json"):
        state["hosts"].update(json.loads(job.read_text())["hosts"])
    assert sorted(state["hosts"]) == sorted(every)
    owner_of = {h: r["pid"] for r in ready for h in r["hosts"]}
    owners = _listening_owners(pids)
    for host in every:
        address = state["hosts"][host]["address"]
        # One listening socket on the host's 135, in the worker that serves it.
        assert owners.get((address, 135)) == [owner_of[host]], (host, owners)
    # Every listening socket of the workers is on one of their own hosts' addresses.
    mine = {state["hosts"][h]["address"]: pid for h, pid in owner_of.items()}
    for (address, _port), pids_there in owners.items():
        assert pids_there == [mine[address]], (address, pids_there)
    # Every host answers as itself (its closed firewall refuses for every seventh).
    for i in range(9):
        host = f"H{i:05d}"
        address = state["hosts"][host]["address"]
        if i % 7:
            assert asyncio.run(_aiowmi_name(address)) == host
        else:
            # Reset: seen by connect or by the first read, depending on timing.
            with pytest.raises(ConnectionResetError), \
                    socket.create_connection((address, 135), timeout=10) as probe:
                probe.recv(10)
    # And to impacket, as wmiquery.py drives it, on one host of each worker.
    for r in ready:
        host = next(h for h in r["hosts"] if h != "CLIENT" and int(h[1:]) % 7)
        assert impacket_query(state["hosts"][host]["address"], "CORP\\admin", "A!",
                              "root\\cimv2", "SELECT * FROM Win32_OperatingSystem") \
            == ("ok", 1)


@pytest.mark.parametrize(("args", "message"), [
    (["--listeners", "wildcard"], "--listeners 'wildcard': give one of auto, per-host, shared"),
    (["--workers", "2", "--verify"], "--workers and --shard serve the hosts for clients"),
    (["--shard", "0/2", "--verify"], "--workers and --shard serve the hosts for clients"),
    (["--shard", "2/2"], "--shard '2/2': expected I/N with 0 <= I < N"),
    (["--netns", "--shard", "0/2"], "--shard is for the loopback lab"),
    (["--workers", "2", "--listeners", "shared"], "--listeners shared needs a single process"),
    (["--netns", "--workers", "2"], "--workers and --listeners are for the loopback lab"),
])
def test_bad_workers_or_listeners_exit_2(args: list[str], message: str,
                                         monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from wmilab import examples
    from wmilab.cli import app

    monkeypatch.setenv("WMILAB_STATE_DIR", str(tmp_path))
    example = str(examples.directory() / "02-remote-admin.toml")
    for command in (["lab", example], ["lab", "up", example]):
        if "--verify" in args and "up" in command:
            continue
        res = CliRunner().invoke(app, [*command, *args])
        assert res.exit_code == 2, (command, args, res.output)
        assert message in " ".join(res.output.split()), res.output
    assert not list(tmp_path.iterdir())  # nothing was started

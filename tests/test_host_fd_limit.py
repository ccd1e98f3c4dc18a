"""Out of file descriptors, a lab says which limit it hit instead of failing obscurely."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import fresh_net

SCRIPT = textwrap.dedent('''
    import asyncio, resource, sys
    from ipaddress import IPv4Network
    from wmilab.host.server import HostBindError
    from wmilab.lab.loopback import LoopbackLab
    from wmilab.scenario import loads

    net, n = sys.argv[1], int(sys.argv[2])
    hosts = "".join(f'[hosts.H{i}]\\nos = "xp-sp2"\\nworkgroup = "W"\\n'
                    f'address = "{net}.{i + 1}/24"\\n' for i in range(n))
    world = loads(hosts, "many.toml").world
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (40, hard))

    async def main() -> None:
        lab = LoopbackLab(world, ports={135: 0}, network=IPv4Network("127.0.0.0/8"))
        try:
            await lab.start()
        except HostBindError as e:
            print("ERROR", e)
        else:
            print("STARTED")
        finally:
            await lab.stop()

    asyncio.run(main())
''')


@pytest.mark.slow
def test_running_out_of_descriptors_names_the_limit() -> None:
    # 40 descriptors cannot hold 2 listening sockets for each of 30 hosts.
    r = subprocess.run([sys.executable, "-c", SCRIPT, fresh_net(),
                        "30"], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    out = r.stdout.strip()
    assert out.startswith("ERROR "), out + r.stderr
    assert "Too many open files" in out and "RLIMIT_NOFILE" in out and "40" in out, out
    assert "IndexError" not in out


@pytest.mark.slow
def test_within_the_limit_the_lab_starts() -> None:
    r = subprocess.run([sys.executable, "-c", SCRIPT, fresh_net(),
                        "5"], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "STARTED", r.stdout + r.stderr

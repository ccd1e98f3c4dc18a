"""Out of file descriptors, a lab says which limit it hit instead of failing obscurely; under
the hard limit it raises its own soft limit first and says so."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import fresh_net

SCRIPT = textwrap.dedent('''
    import asyncio, logging, resource, sys
    from ipaddress import IPv4Network
    from wmilab.host.server import HostBindError
    from wmilab.lab.loopback import LoopbackLab
    from wmilab.scenario import loads

    logging.basicConfig(level=logging.INFO, format="LOG %(message)s", stream=sys.stdout)
    net, n, soft, hard = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    hosts = "".join(f'[hosts.H{i}]\\nos = "xp-sp2"\\nworkgroup = "W"\\n'
                    f'address = "{net}.{i + 1}/24"\\n' for i in range(n))
    world = loads(hosts, "many.toml").world
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    async def main() -> None:
        lab = LoopbackLab(world, ports={135: 0}, network=IPv4Network("127.0.0.0/8"),
                          listeners=sys.argv[5])
        try:
            await lab.start()
        except HostBindError as e:
            print("ERROR", e)
        else:
            print("STARTED", resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        finally:
            await lab.stop()

    asyncio.run(main())
''')


def _lab(hosts: int, soft: int, hard: int, listeners: str = "per-host") -> tuple[str, str]:
    r = subprocess.run([sys.executable, "-c", SCRIPT, fresh_net(), str(hosts), str(soft),
                        str(hard), listeners], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stdout.strip().splitlines()
    logs = "\n".join(ln for ln in lines if ln.startswith("LOG "))
    return "\n".join(ln for ln in lines if not ln.startswith("LOG ")), logs


@pytest.mark.slow
@pytest.mark.parametrize("listeners", ["per-host", "shared"])
def test_running_out_of_descriptors_names_the_limit(listeners: str) -> None:
    # 40 descriptors, hard limit too, cannot hold the listening sockets of 60 hosts (two
    # each, or one per distinct WMI port when shared).
    out, logs = _lab(60, 40, 40, listeners)
    assert out.startswith("ERROR "), out
    assert "Too many open files" in out and "RLIMIT_NOFILE" in out and "40" in out, out
    assert "IndexError" not in out
    # The lab said beforehand that the hard limit is too low for it.
    assert "hard limit (RLIMIT_NOFILE) is 40" in logs, logs


@pytest.mark.slow
def test_within_the_limit_the_lab_starts() -> None:
    out, logs = _lab(5, 1000, 1000)
    assert out == "STARTED 1000", out
    assert "RLIMIT_NOFILE" not in logs  # nothing to raise


@pytest.mark.slow
def test_a_lab_raises_its_soft_limit_to_the_hard_one_and_says_so() -> None:
    # 40 soft descriptors are too few for 30 hosts; the hard limit (400) is enough.
    out, logs = _lab(30, 40, 400)
    assert out == "STARTED 400", out + logs
    assert "raised this process's file descriptor limit (RLIMIT_NOFILE) from 40 to its " \
           "hard limit 400" in logs, logs

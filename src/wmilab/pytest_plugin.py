"""The pytest plugin: emulated Windows hosts of a scenario, started for one test.

Installing wmilab registers this module with pytest (entry point group ``pytest11``, name
``wmilab``), so its fixture is available in any test without an import::

    def test_my_tool(wmilab_lab):
        lab = wmilab_lab("lab.toml")            # every host of the scenario, listening
        domain, user, password = lab.credentials("CORP\\\\admin")
        assert my_tool(lab.address("B"), domain, user, password) == ...

The hosts run on their loopback addresses (``wmilab lab`` without ``--netns``), from a
background thread, so a synchronous client in the test itself can call them; they stop when
the test ends. They listen on TCP 135, as Windows does, because real clients such as
impacket always dial it: that needs root or ``net.ipv4.ip_unprivileged_port_start`` at most
135, and without either the test is skipped with that reason (never silently passed).

Connections from addresses that are no host of the scenario (``127.0.0.1``, where the test
process connects from) count as coming from the ``from`` host of the first call to that host,
or from ``client=``, so the target's firewall scopes apply as in ``wmilab check``.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from wmilab import flow
    from wmilab.lab.verify import ThreadedLab
    from wmilab.scenario import Scenario

__all__ = ["Lab", "LabFactory", "wmilab_lab"]


class Lab:
    """A running scenario: the hosts' addresses, the accounts' passwords, the predictions."""

    def __init__(self, scenario: Scenario, running: ThreadedLab) -> None:
        self.scenario = scenario
        self._running = running
        self._names = {h.upper(): h for h in scenario.world.configs}

    @property
    def hosts(self) -> list[str]:
        """The scenario's host names."""
        return list(self.scenario.world.configs)

    def _host(self, host: str) -> str:
        try:
            return self._names[host.upper()]
        except KeyError:
            raise KeyError(f"{host!r} is not a host of {self.scenario.path} "
                           f"(hosts: {', '.join(self.hosts)})") from None

    def address(self, host: str) -> str:
        """The address a client in the test process connects to for ``host`` (RPCSS on 135)."""
        return self._running.address(self._host(host))

    def credentials(self, user: str) -> tuple[str, str, str]:
        """``(domain, user, password)`` of ``DOMAIN\\user`` (or ``HOST\\user``) from the file."""
        authority, sep, name = user.partition("\\")
        password = self.scenario.world.password_of(user) if sep else None
        if password is None:
            raise KeyError(f"{user!r}: {self.scenario.path} gives no password for this account "
                           "(write it as DOMAIN\\user, with an account under [domains.*.accounts] "
                           "or [hosts.*.accounts])")
        return authority, name, password

    def act_as(self, client: str) -> None:
        """From now on, connections from the test process count as coming from host ``client``."""
        source = self._host(client)
        for target in self.hosts:
            if target != source:
                self._running.act_as(target, source)

    def verdict(self, call: str) -> flow.Verdict:
        """What ``wmilab check`` predicts for the call named ``call``: compare a tool with it."""
        from wmilab import flow

        for c in self.scenario.calls:
            if c.name == call:
                return flow.evaluate(self.scenario.world, c)
        names = ", ".join(repr(c.name) for c in self.scenario.calls)
        raise KeyError(f"no call {call!r} in {self.scenario.path} (calls: {names})")

    def stop(self) -> None:
        """Stop every host (the fixture does it at the end of the test)."""
        self._running.close()


class LabFactory:
    """``wmilab_lab(path, netns=False, client=None, loopback_net=None)``: start a scenario's
    hosts for this test (``loopback_net`` such as ``"127.77.0.0/16"``, or the environment
    variable ``WMILAB_LOOPBACK_NET``, moves them off the default addresses, so that tests or
    jobs running in parallel never share one)."""

    def __init__(self, base: Path) -> None:
        self._base = base
        self._labs: list[Lab] = []

    def __call__(self, scenario: str | os.PathLike[str], *, netns: bool = False,
                 client: str | None = None, loopback_net: str | None = None) -> Lab:
        from wmilab.errors import ConfigError
        from wmilab.host.server import HostBindError
        from wmilab.lab.loopback import loopback_network
        from wmilab.lab.verify import ThreadedLab
        from wmilab.scenario import ScenarioError, load

        if netns:
            # The netns lab's hosts are reachable only from inside its namespaces (lab/netns.py),
            # and the test process is not in one: the fixture cannot hand it an address there.
            pytest.fail("wmilab_lab(netns=True) is not supported yet: the netns lab's hosts are "
                        "reachable only from inside its namespaces, not from the test process; "
                        "use the loopback lab (netns=False), or `wmilab lab up FILE --netns` "
                        "and `wmilab lab exec FILE HOST -- pytest ...`", pytrace=False)
        path = Path(scenario)
        if not path.is_absolute() and (self._base / path).exists():
            path = self._base / path  # beside the test file first, then the current folder
        problem = ""  # failed outside the handlers, so that the report is that one line
        if loopback_net is None:
            loopback_net = os.environ.get("WMILAB_LOOPBACK_NET") or None
        try:
            network = None if loopback_net is None else loopback_network(loopback_net)
        except ConfigError as e:
            problem = f"loopback_net: {e}"
        try:
            loaded = load(path)
        except ScenarioError as e:
            problem = problem or str(e)
        if problem:
            pytest.fail(f"wmilab_lab: {problem}", pytrace=False)
        running = ThreadedLab(loaded, network=network)
        lab = Lab(loaded, running)
        if client is not None:
            lab.act_as(client)
        else:  # as `wmilab lab`: the first call to a host says who calls it
            clients: dict[str, str] = {}
            for c in loaded.calls:
                clients.setdefault(c.target, c.source)
            for target, source in clients.items():
                running.act_as(target, source)
        try:
            running.start()
        except HostBindError as e:
            denied, problem = e.errno == errno.EACCES, f"wmilab_lab: {e.strerror}"
        else:
            denied, problem = False, ""
        if denied:  # the message names the port and what to do (root, or the sysctl)
            pytest.skip(problem)
        if problem:
            pytest.fail(problem, pytrace=False)
        self._labs.append(lab)
        return lab

    def close(self) -> None:
        while self._labs:
            self._labs.pop().stop()


@pytest.fixture
def wmilab_lab(request: pytest.FixtureRequest) -> Iterator[LabFactory]:
    """A factory that starts a scenario's emulated Windows hosts and stops them after the test."""
    factory = LabFactory(Path(request.path).parent)
    try:
        yield factory
    finally:
        factory.close()

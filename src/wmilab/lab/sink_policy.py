"""A's side of Connection 2 decided by the model, for wmilab's client acting as A in a lab.

When wmilab's own client (or the doctor) plays computer A of a scenario on A's loopback
address, the callback listener asks this policy what A would let through: A's firewall for
TCP 135 and the sink's program (flow steps c2.resolver-port and c2.sink-port), A's logon of
B's callback identity, and A's DCOM access permission for the sink (c2.access). Every answer
is the step table's question the emulated host A asks too (host/sink.py, gate.py), so a client
run in the lab meets exactly the A that ``check`` evaluates.
"""

from __future__ import annotations

from wmilab import steps
from wmilab.host.auth import ModelAuthenticator, token_of
from wmilab.lab.loopback import LoopbackMap
from wmilab.model import firewall as fw
from wmilab.model.world import World
from wmilab.wire.ntlm import Authenticator, NtlmServerNames

__all__ = ["ModelSinkPolicy"]


class ModelSinkPolicy:
    """:class:`wmilab.client.callback.SinkPolicy` of scenario host ``host``."""

    def __init__(self, world: World, host: str, addresses: LoopbackMap,
                 program: str = fw.UNSECAPP) -> None:
        self.world = world
        self.host = host
        self.model = world.host(host)
        self.addresses = addresses
        self.program = fw.normalize_program(program)

    def names(self) -> NtlmServerNames:
        from wmilab.host.auth import ntlm_names
        return ntlm_names(self.world, self.host)

    def admit(self, role: str, peer: str, port: int) -> bool:
        source = self.addresses.scenario_address(peer)
        if source is None:
            return False  # Choice: only hosts of the scenario reach A in a lab
        # The questions flow asks at c2.resolver-port and c2.sink-port (wmilab.steps).
        if role == "resolver":
            return steps.rpcss_port(self.model, source).ok
        return steps.sink_port(self.model, source, self.program).ok

    def authenticator(self, peer: str) -> Authenticator:
        return ModelAuthenticator(self.world, self.host, peer)

    def may_call(self, identity: object | None) -> str | None:
        token = token_of(identity) if identity is not None else None
        if token is None:
            # No security context: the call runs as ANONYMOUS LOGON (MS-RPCE 3.3.3.4.3).
            token = self.world.directory.anonymous_token(self.host)
        # The question flow asks at c2.access, once per identity B tries (wmilab.steps).
        check = steps.access(self.model, token, "sink")
        return None if check.ok else check.reason

    def may_deliver(self, identity: object | None, obtained_by: str | None) -> str | None:
        token = token_of(identity) if identity is not None else None
        if token is None:
            token = self.world.directory.anonymous_token(self.host)
        owner = None
        if obtained_by is not None:
            ip = self.addresses.scenario_address(obtained_by)
            owner = next((n for n, c in self.world.configs.items() if c.address.ip == ip), None)
        # unsecapp's own check, asked by flow at c2.access too (wmilab.steps.sink_caller).
        check = steps.sink_caller(self.model, token, self.program, owner)
        return None if check.ok else check.reason

"""MS-RPCE connection-oriented client role: bind with NTLM, requests, responses."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from wmilab.wire import rpc
from wmilab.wire.ntlm import (
    NtlmError,
    NtlmInitiator,
    NtlmSession,
)
from wmilab.wire.rpc import (
    NDR,
    AuthLevel,
    AuthVerifier,
    ContextElement,
    RpcProtocolError,
    SyntaxId,
)
from wmilab.wire.rpc_conn.events import (
    BindAcked,
    BindNakReceived,
    Event,
    FaultReceived,
    ProtocolViolation,
    ResponseReceived,
    ShutdownReceived,
)
from wmilab.wire.rpc_conn.framing import (
    REQ_HDR,
    RESP_HDR,
    SIG_LEN,
    frag_room,
    protect_pdu,
    split_stub,
    trailer_padding,
    unprotect_fragment,
)
from wmilab.wire.rpc_conn.state import Connection, ConnState, RpcStateError


@dataclass(frozen=True)
class ClientCredentials:
    """NTLM credentials; ``user == ""`` (no password, no hash) is an anonymous logon."""

    user: str
    password: str = ""
    domain: str = ""
    workstation: str = ""
    nt_hash: bytes | None = None
    ntlm_version: tuple[int, int, int] | None = None  # sent as NTLM VERSION (MS-NLMP 2.2.2.10)


@dataclass
class _ClientSec:
    auth_context_id: int
    auth_level: int
    initiator: NtlmInitiator
    session: NtlmSession | None = None


@dataclass
class _PendingBind:
    contexts: tuple[tuple[int, SyntaxId], ...]  # (context id, interface) as proposed
    sec: _ClientSec | None
    is_bind: bool


@dataclass
class _ClientCall:
    sec: _ClientSec | None
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


class ClientConnection(Connection):
    """The client end of one ncacn_ip_tcp connection (NTLM at levels 2, 5, 6, or none)."""

    def __init__(
        self,
        *,
        credentials: ClientCredentials | None = None,
        auth_level: int = AuthLevel.NONE,
        max_xmit_frag: int = 4280,
        max_recv_frag: int = 4280,
        first_auth_context_id: int = 79231,
        filetime: int = 0,
        random_bytes: Callable[[int], bytes] = os.urandom,
        max_response_size: int = 64 * 1024 * 1024,
    ) -> None:
        if credentials is None and auth_level > AuthLevel.NONE:
            raise RpcStateError("an authenticated connection needs credentials")
        super().__init__()
        self.credentials = credentials
        self.auth_level = int(auth_level) if credentials is not None else AuthLevel.NONE
        self.max_xmit_frag = max_xmit_frag
        self.max_recv_frag = max_recv_frag
        self._next_auth_id = first_auth_context_id
        self._filetime = filetime
        self._random = random_bytes
        self.max_response_size = max_response_size
        self.assoc_group_id = 0
        self.contexts: dict[int, SyntaxId] = {}
        self.security: dict[int, _ClientSec] = {}
        self.current_auth_context_id: int | None = None
        self._call_id = 1
        self._binds: dict[int, _PendingBind] = {}
        self._calls: dict[int, _ClientCall] = {}

    def _new_call_id(self) -> int:
        cid = self._call_id
        self._call_id = (cid + 1) & 0xFFFFFFFF or 1
        return cid

    def _new_security(self) -> _ClientSec | None:
        if self.credentials is None or self.auth_level <= AuthLevel.NONE:
            return None
        c = self.credentials
        init = NtlmInitiator(c.user, c.password, c.domain, c.workstation,
                             nt_hash_value=c.nt_hash, filetime=self._filetime,
                             random_bytes=self._random, version=c.ntlm_version)
        sec = _ClientSec(self._next_auth_id, self.auth_level, init)
        self._next_auth_id += 1
        self.security[sec.auth_context_id] = sec
        return sec

    def _bind_pdu(self, contexts: tuple[tuple[int, SyntaxId], ...], is_bind: bool,
                  sec: _ClientSec | None) -> int:
        cid = self._new_call_id()
        els = tuple(ContextElement(ctx, iface, (NDR,)) for ctx, iface in contexts)
        cls = rpc.Bind if is_bind else rpc.AlterContext
        body_len = len(cls(call_id=cid, contexts=els).body())
        auth = None
        if sec is not None:
            auth = AuthVerifier(rpc.AUTHN_WINNT, sec.auth_level, sec.auth_context_id,
                                sec.initiator.negotiate(),
                                trailer_padding(rpc.HEADER_SIZE + body_len))
        self._binds[cid] = _PendingBind(contexts, sec, is_bind)
        self._queue(cls(call_id=cid, contexts=els, max_xmit_frag=self.max_xmit_frag,
                        max_recv_frag=self.max_recv_frag, assoc_group_id=self.assoc_group_id,
                        auth=auth).encode())
        return cid

    def bind(self, interface: SyntaxId, context_id: int = 0, *,
             more: tuple[SyntaxId, ...] = ()) -> int:
        """Queue the bind; its call_id. Once per connection (again only after a bind_nak).

        ``more`` proposes further interfaces in the same bind, as presentation contexts
        ``context_id + 1``, ``context_id + 2``, ... (a p_cont_list of several elements,
        C706 12.6.3.1), which saves an alter_context round trip for each.
        """
        if self.state is not ConnState.IDLE:
            raise RpcStateError(f"bind() needs an idle connection, this one is {self.state.value}")
        contexts = ((context_id, interface),
                    *((context_id + 1 + i, iface) for i, iface in enumerate(more)))
        cid = self._bind_pdu(contexts, True, self._new_security())
        self.state = ConnState.BINDING
        return cid

    def alter_context(self, interface: SyntaxId, context_id: int, *,
                      new_security_context: bool = True) -> int:
        """Queue an alter_context adding a presentation context, by default with a fresh NTLM
        handshake (as impacket); its call_id."""
        if self.state is not ConnState.BOUND:
            raise RpcStateError("alter_context() needs a completed bind")
        sec = self._new_security() if new_security_context else None
        return self._bind_pdu(((context_id, interface),), False, sec)

    def request(self, opnum: int, stub: bytes, *, context_id: int = 0,
                object_uuid: uuid.UUID | None = None,
                auth_context_id: int | None = None) -> int:
        """Queue a call's fragments; its call_id."""
        if self.state is not ConnState.BOUND:
            raise RpcStateError("request() needs a completed bind")
        sid = auth_context_id if auth_context_id is not None else self.current_auth_context_id
        sec = self.security.get(sid) if sid is not None else None
        if sid is not None and (sec is None or sec.session is None):
            raise RpcStateError(f"security context {sid} is not established")
        level = sec.auth_level if sec is not None else AuthLevel.NONE
        protect = sec is not None and level >= AuthLevel.CALL
        cid = self._new_call_id()
        header = REQ_HDR + (16 if object_uuid is not None else 0)
        chunks = split_stub(stub, frag_room(self.max_xmit_frag, header,
                                            level if protect else AuthLevel.NONE))
        remaining = len(stub)
        for i, chunk in enumerate(chunks):
            flags = (rpc.PFC_FIRST_FRAG if i == 0 else 0) | (
                rpc.PFC_LAST_FRAG if i == len(chunks) - 1 else 0
            )
            auth = None
            if protect and sec is not None:
                auth = AuthVerifier(rpc.AUTHN_WINNT, level, sec.auth_context_id,
                                    b"\x00" * SIG_LEN, trailer_padding(header + len(chunk)))
            encoded = rpc.Request(
                call_id=cid, opnum=opnum, stub=chunk, context_id=context_id,
                alloc_hint=remaining, object_uuid=object_uuid, flags=flags, auth=auth,
            ).encode()
            if auth is not None and sec is not None and sec.session is not None:
                encoded = protect_pdu(encoded, header, len(chunk) + auth.auth_pad_length, level,
                                      sec.session)
            self._queue(encoded)
            remaining -= len(chunk)
        self._calls[cid] = _ClientCall(sec if protect else None)
        return cid

    def _read_fragment(self, events: list[Event]) -> bool:
        try:
            n = rpc.peek_frag_length(self._buf)
            if n is None or len(self._buf) < n:
                return False
            frag = bytes(self._buf[:n])
            del self._buf[:n]
            self._handle(rpc.parse_pdu(frag), frag, events)
        except (RpcProtocolError, NtlmError) as e:
            self.state = ConnState.CLOSED
            events.append(ProtocolViolation(str(e), close=True))
        return True

    def _handle(self, pdu: rpc.Pdu, frag: bytes, events: list[Event]) -> None:
        if isinstance(pdu, rpc.BindAck):
            self._on_bind_ack(pdu, events)
        elif isinstance(pdu, rpc.BindNak):
            self._end_bind(pdu.call_id)
            events.append(BindNakReceived(pdu.call_id, pdu.reject_reason))
        elif isinstance(pdu, rpc.Response):
            self._on_response(pdu, frag, events)
        elif isinstance(pdu, rpc.Fault):
            self._calls.pop(pdu.call_id, None)
            self._end_bind(pdu.call_id)
            events.append(FaultReceived(pdu.call_id, pdu.status))
        elif isinstance(pdu, rpc.Shutdown):
            events.append(ShutdownReceived())
        else:
            raise RpcProtocolError(f"a server sent a {rpc.PType(pdu.ptype).name} PDU")

    def _end_bind(self, call_id: int) -> None:
        """A bind_nak or fault answered ``call_id``; a refused bind leaves the connection idle."""
        pending = self._binds.pop(call_id, None)
        if pending is not None and pending.is_bind:
            self.state = ConnState.IDLE

    def _on_bind_ack(self, pdu: rpc.BindAck, events: list[Event]) -> None:
        pending = self._binds.pop(pdu.call_id, None)
        if pending is None:
            raise RpcProtocolError(f"bind_ack for unknown call {pdu.call_id}")
        if pending.is_bind:
            # The server's receive size is our transmit size and vice versa (C706 12.6.4.4).
            self.max_xmit_frag = min(self.max_xmit_frag, pdu.max_recv_frag)
            self.max_recv_frag = min(self.max_recv_frag, pdu.max_xmit_frag)
            self.assoc_group_id = pdu.assoc_group_id
            self.state = ConnState.BOUND
        for (ctx, iface), r in zip(pending.contexts, pdu.results, strict=False):
            if r.result == rpc.RESULT_ACCEPTANCE:
                self.contexts[ctx] = iface
        sec = pending.sec
        if sec is not None:
            if pdu.auth is None or pdu.auth.auth_context_id != sec.auth_context_id:
                raise RpcProtocolError("the server did not answer the NTLM negotiate")
            token = sec.initiator.authenticate(pdu.auth.credentials)
            sec.session = sec.initiator.session
            auth3 = rpc.Auth3(
                call_id=pdu.call_id,
                auth=AuthVerifier(rpc.AUTHN_WINNT, sec.auth_level, sec.auth_context_id, token),
            )
            self._queue(auth3.encode())
            self.current_auth_context_id = sec.auth_context_id
        events.append(BindAcked(pdu.call_id, pdu.results, pdu.max_xmit_frag,
                                pdu.max_recv_frag, pdu.assoc_group_id))

    def _on_response(self, pdu: rpc.Response, frag: bytes, events: list[Event]) -> None:
        call = self._calls.get(pdu.call_id)
        if call is None:
            raise RpcProtocolError(f"response for unknown call {pdu.call_id}")
        sec = call.sec
        stub = pdu.stub
        if sec is not None and sec.session is not None:
            if pdu.auth is None or pdu.auth.auth_context_id != sec.auth_context_id:
                raise RpcProtocolError("response without the call's auth verifier")
            plain = unprotect_fragment(frag, RESP_HDR, pdu.auth, sec.auth_level, sec.session)
            if plain is None:
                raise RpcProtocolError("response signature does not verify")
            stub = plain
        call.size += len(stub)
        if call.size > self.max_response_size:
            raise RpcProtocolError("response larger than max_response_size")
        call.chunks.append(stub)
        if pdu.flags & rpc.PFC_LAST_FRAG:
            del self._calls[pdu.call_id]
            events.append(ResponseReceived(pdu.call_id, b"".join(call.chunks)))

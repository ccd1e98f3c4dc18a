"""MS-RPCE connection-oriented server role: bind, NTLM, request reassembly, replies."""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from wmilab.wire import rpc
from wmilab.wire.ntlm import (
    Authenticator,
    NtlmAcceptor,
    NtlmError,
    NtlmServerNames,
    NtlmSession,
)
from wmilab.wire.rpc import (
    NDR,
    NULL_SYNTAX,
    AuthLevel,
    AuthVerifier,
    ContextElement,
    ContextResult,
    RpcProtocolError,
    SyntaxId,
)
from wmilab.wire.rpc_conn.events import (
    Authenticated,
    Bound,
    CallOrphaned,
    CallReceived,
    Event,
    LogonFailed,
    ProtocolViolation,
)
from wmilab.wire.rpc_conn.framing import (
    MAX_REQUEST_SIZE,
    MUST_RECV_FRAG_SIZE,
    REQ_HDR,
    REQUEST_TOO_LARGE_STATUS,
    RESP_HDR,
    SIG_LEN,
    frag_room,
    protect_pdu,
    split_stub,
    trailer_padding,
    unprotect_fragment,
)
from wmilab.wire.rpc_conn.state import _BOUND, AuthState, Connection, ConnState, RpcStateError

# The fixed part of a request (C706 12.6.3.1 common header, then alloc_hint, p_cont_id,
# opnum): version, minor version, type, flags, two data representation octets (two skipped),
# frag_length, auth_length, call_id, alloc_hint, context id, opnum.
_REQ_FIXED = struct.Struct("<BBBBBBxxHHIIHH")
_TRAILER = struct.Struct("<BBBBI")  # sec_trailer (MS-RPCE 2.2.2.11)
_REQUEST = rpc.PType.REQUEST
# A response's common header (data representation little-endian ASCII IEEE, C706 14.1) and
# its alloc_hint, p_cont_id (cancel_count and reserved zero).
_RESP_FIXED = struct.Struct("<BBBBBxxxHHIIHxx")
_RESPONSE = rpc.PType.RESPONSE
_PADS = tuple(b"\x00" * n for n in range(4))
_FIRST_LAST = rpc.PFC_FIRST_FRAG | rpc.PFC_LAST_FRAG
# Read on every PDU: plain values, as an Enum member read from its class is slow on 3.11.
_ESTABLISHED = AuthState.ESTABLISHED
_LEVEL_NONE = int(AuthLevel.NONE)
_LEVEL_CALL = int(AuthLevel.CALL)
_LEVEL_PRIVACY = int(AuthLevel.PKT_PRIVACY)
_PFC_OBJECT_UUID = rpc.PFC_OBJECT_UUID
_SEC_TRAILER_SIZE = rpc.SEC_TRAILER_SIZE
_AUTHN_WINNT = rpc.AUTHN_WINNT
# A signed or sealed response fragment's octets around its stub: header, sec_trailer,
# signature and at most 3 octets of padding (framing.frag_room).
_PROTECTED_OVERHEAD = RESP_HDR + rpc.SEC_TRAILER_SIZE + SIG_LEN + 3


@dataclass
class _PresCtx:
    context_id: int
    interface: SyntaxId
    transfer_syntax: SyntaxId


@dataclass
class _SecCtx:
    auth_context_id: int
    auth_type: int
    auth_level: int
    acceptor: NtlmAcceptor
    state: AuthState = AuthState.CHALLENGED
    session: NtlmSession | None = None
    identity: object | None = None


@dataclass
class _Partial:
    call_id: int
    opnum: int
    context_id: int
    object_uuid: uuid.UUID | None
    sec: _SecCtx | None
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0


class _CallInfo(NamedTuple):
    context_id: int
    sec: _SecCtx | None


_new_tuple = tuple.__new__


class _Violation(Exception):
    def __init__(self, reason: str, *, status: int | None = None, nak: int | None = None,
                 call_id: int = 0, did_not_execute: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.nak = nak
        self.call_id = call_id
        self.did_not_execute = did_not_execute



class ServerConnection(Connection):
    """The server end of one ncacn_ip_tcp connection.

    ``interfaces`` lists the abstract syntaxes served (a Mapping works: its keys are
    used). ``authenticator`` and ``ntlm_names`` enable NTLM; without them any
    authenticated bind is refused. ``filetime`` supplies the CHALLENGE timestamp.
    """

    def __init__(
        self,
        interfaces: Collection[SyntaxId] | Mapping[SyntaxId, object],
        authenticator: Authenticator | None = None,
        *,
        ntlm_names: NtlmServerNames | None = None,
        filetime: Callable[[], int] = lambda: 0,
        random_bytes: Callable[[int], bytes] = os.urandom,
        max_xmit_frag: int = 5840,
        max_recv_frag: int = 5840,
        max_request_size: int = MAX_REQUEST_SIZE,
        max_security_contexts: int = 32,
        max_pending_calls: int = 16,
        secondary_address: str = "",
        assoc_group_id: int = 0x00012345,
    ) -> None:
        super().__init__()
        self.interfaces = tuple(interfaces)
        self.authenticator = authenticator
        self.ntlm_names = ntlm_names
        self._filetime = filetime
        self._random = random_bytes
        self._our_xmit = max(MUST_RECV_FRAG_SIZE, min(max_xmit_frag, rpc.MAX_FRAG))
        self._our_recv = max(MUST_RECV_FRAG_SIZE, min(max_recv_frag, rpc.MAX_FRAG))
        self.max_xmit_frag = self._our_xmit
        self.max_recv_frag = self._our_recv
        self.max_request_size = max_request_size
        self.max_security_contexts = max_security_contexts
        self.max_pending_calls = max_pending_calls
        self.secondary_address = secondary_address.encode("ascii") + b"\x00"
        self.assoc_group_id = assoc_group_id
        self.btfn_features: int | None = None
        self.contexts: dict[int, _PresCtx] = {}
        self.security: dict[int, _SecCtx] = {}
        self._last_auth: int | None = None
        self._partial: dict[int, _Partial] = {}
        self._discard: set[int] = set()
        self._calls: dict[int, _CallInfo] = {}
        # Single-fragment signed or sealed requests take _fast_request, and their replies a
        # one-fragment shortcut in send_response (tests turn both off to compare them with
        # the general path).
        self.fast_path = True

    # -- public API -------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Event]:
        # The usual read: one whole request and nothing buffered before it goes straight to
        # _fast_request; when that declines, the general way below reads the same octets
        # again (and _fast_request changes nothing when it declines).
        if (not self._buf and self.state is _BOUND and self.fast_path
                and len(data) >= _REQ_FIXED.size and len(data) <= self.max_recv_frag
                and data[8] | data[9] << 8 == len(data)):
            events: list[Event] = []
            if self._fast_request(bytes(data), events):
                return events
        return super().receive_data(data)

    def _read_fragment(self, events: list[Event]) -> bool:
        try:
            try:
                n = rpc.peek_frag_length(self._buf)
            except RpcProtocolError as e:
                ptype = self._buf[2] if len(self._buf) > 2 else 0
                raise self._framing_violation(e, ptype) from None
            if n is None:
                return False
            if n > self.max_recv_frag:
                # Refused from its header, before its octets are buffered: a peer sends
                # at most the receiver's max_recv_frag (C706 12.6.4.3-4). Fault
                # nca_s_proto_error without did-not-execute, then disconnect, as Samba's
                # Windows-validated dcesrv_core.c does; MS-RPCE itself is silent.
                raise self._oversized_fragment(n)
            if len(self._buf) < n:
                return False
            if len(self._buf) == n:  # the usual case: one whole PDU per read
                frag = bytes(self._buf)
                self._buf.clear()
            else:
                frag = bytes(self._buf[:n])
                del self._buf[:n]
            if not (self.fast_path and self._fast_request(frag, events)):
                self._handle(frag, events)
        except _Violation as v:
            self._violate(v, events)
        return True

    def _oversized_fragment(self, frag_length: int) -> _Violation:
        buf = self._buf
        ptype = buf[2]
        call_id = int.from_bytes(buf[12:16], "little") if len(buf) >= 16 else 0
        reason = f"frag_length {frag_length} is over max_recv_frag {self.max_recv_frag}"
        if ptype == rpc.PType.BIND and not self.bound:
            return _Violation(reason, nak=rpc.REJECT_REASON_NOT_SPECIFIED, call_id=call_id)
        return _Violation(reason, status=rpc.NCA_S_PROTO_ERROR, call_id=call_id,
                          did_not_execute=False)

    def pending_calls(self) -> tuple[int, ...]:
        """call_ids received and not yet answered."""
        return tuple(self._calls)

    def send_response(self, call_id: int, stub: bytes) -> None:
        """Queue the response fragments for ``call_id``, signed/sealed at the call's level."""
        info = self._calls.pop(call_id, None)
        if info is None:
            raise RpcStateError(f"no call {call_id} is waiting for a reply")
        context_id, sec = info
        level = sec.auth_level if sec is not None else _LEVEL_NONE
        session = sec.session if sec is not None else None
        protect = session is not None and level >= _LEVEL_CALL
        if (protect and self.fast_path
                and len(stub) <= max(8, (self.max_xmit_frag - _PROTECTED_OVERHEAD) // 8 * 8)):
            assert sec is not None and session is not None
            # One signed or sealed fragment (the common reply): its octets in one go, as
            # the loop below makes them (tests/test_wire_fastpaths.py compares the two).
            pad = -(RESP_HDR + len(stub)) % 4  # sec_trailer 4-aligned (MS-RPCE 2.2.2.11)
            head = _RESP_FIXED.pack(5, 0, _RESPONSE, _FIRST_LAST, 0x10, RESP_HDR + len(stub) + pad
                                    + _SEC_TRAILER_SIZE + SIG_LEN, SIG_LEN, call_id,
                                    len(stub), context_id)
            trailer = _TRAILER.pack(_AUTHN_WINNT, level, pad, 0, sec.auth_context_id)
            if level == _LEVEL_PRIVACY:
                self._out.append(session.seal_pdu(head, stub + _PADS[pad], trailer))
            else:
                self._out.append(session.sign_pdu((head, stub, _PADS[pad], trailer)))
            return
        room = frag_room(self.max_xmit_frag, RESP_HDR, level if protect else AuthLevel.NONE)
        chunks = [stub] if len(stub) <= room else split_stub(stub, room)
        remaining = len(stub)
        last = len(chunks) - 1
        for i, chunk in enumerate(chunks):
            flags = (rpc.PFC_FIRST_FRAG if i == 0 else 0) | (rpc.PFC_LAST_FRAG if i == last
                                                              else 0)
            if protect and sec is not None and session is not None:
                pad = -(RESP_HDR + len(chunk)) % 4  # sec_trailer 4-aligned (MS-RPCE 2.2.2.11)
                encoded = rpc.encode_response_fragment(
                    call_id, chunk, context_id, remaining, flags, level,
                    sec.auth_context_id, pad)
                encoded = protect_pdu(encoded, RESP_HDR, len(chunk) + pad, level, session)
            else:
                encoded = rpc.encode_response_fragment(call_id, chunk, context_id,
                                                       remaining, flags)
            self._queue(encoded)
            remaining -= len(chunk)

    def send_fault(self, call_id: int, status: int, *, did_not_execute: bool = False) -> None:
        """Queue a fault PDU for ``call_id``. Faults are not signed (Choice, as Samba does)."""
        info = self._calls.pop(call_id, None)
        flags = rpc.PFC_FIRST_FRAG | rpc.PFC_LAST_FRAG
        if did_not_execute:
            flags |= rpc.PFC_DID_NOT_EXECUTE
        ctx = info.context_id if info is not None else 0
        self._queue(rpc.Fault(call_id=call_id, status=status, context_id=ctx, flags=flags).encode())

    # -- dispatch ---------------------------------------------------------------------

    def _framing_violation(self, e: RpcProtocolError, ptype: int) -> _Violation:
        call_id = e.call_id or 0
        if ptype == rpc.PType.BIND and not self.bound:
            return _Violation(e.message, nak=e.reject_reason, call_id=call_id)
        return _Violation(e.message, status=e.status, call_id=call_id)

    def _violate(self, v: _Violation, events: list[Event]) -> None:
        if v.nak is not None:
            self._queue(rpc.BindNak(call_id=v.call_id, reject_reason=v.nak).encode())
        elif v.status is not None:
            flags = rpc.PFC_FIRST_FRAG | rpc.PFC_LAST_FRAG
            if v.did_not_execute:
                flags |= rpc.PFC_DID_NOT_EXECUTE
            self._queue(rpc.Fault(call_id=v.call_id, status=v.status, flags=flags).encode())
        events.append(ProtocolViolation(v.reason, close=True))
        self.state = ConnState.CLOSED
        self._buf.clear()
        self._partial.clear()

    def _handle(self, frag: bytes, events: list[Event]) -> None:
        try:
            pdu = rpc.parse_pdu(frag)
        except RpcProtocolError as e:
            raise self._framing_violation(e, frag[2]) from None
        if isinstance(pdu, rpc.AlterContext):
            self._on_alter(pdu, events)
        elif isinstance(pdu, rpc.Bind):
            self._on_bind(pdu, events)
        elif isinstance(pdu, rpc.Auth3):
            self._on_auth3(pdu, events)
        elif isinstance(pdu, rpc.Request):
            self._on_request(pdu, frag, events)
        elif isinstance(pdu, rpc.Orphaned):
            self._partial.pop(pdu.call_id, None)
            self._calls.pop(pdu.call_id, None)
            events.append(CallOrphaned(pdu.call_id))
        elif isinstance(pdu, rpc.CoCancel):
            pass  # Choice: cancels are ignored; the call completes normally (C706 12.6.4.6)
        else:
            # C706 12.6.4: clients never send these PDU types.
            raise _Violation(
                f"a client sent a {rpc.PType(pdu.ptype).name} PDU",
                status=rpc.NCA_S_PROTO_ERROR, call_id=pdu.call_id,
            )

    # -- presentation contexts ----------------------------------------------------------

    def _match_interface(self, abstract: SyntaxId) -> SyntaxId | None:
        for iface in self.interfaces:
            # C706 interface versions: same UUID and major version, server minor >= client.
            if (iface.uuid == abstract.uuid and iface.major == abstract.major
                    and iface.minor >= abstract.minor):
                return iface
        return None

    def _negotiate_contexts(
        self, elements: tuple[ContextElement, ...], events: list[Event]
    ) -> tuple[ContextResult, ...]:
        results: list[ContextResult] = []
        for el in elements:
            features = rpc.btfn_features(el.transfer_syntaxes[0])
            if features is not None:
                # MS-RPCE 3.3.1.5.3: answer negotiate_ack with the features supported.
                ack = features & (rpc.BTFN_SECURITY_CONTEXT_MULTIPLEXING
                                  | rpc.BTFN_KEEP_CONNECTION_ON_ORPHAN)
                self.btfn_features = ack
                results.append(ContextResult(rpc.RESULT_NEGOTIATE_ACK, ack, NULL_SYNTAX))
                continue
            iface = self._match_interface(el.abstract_syntax)
            if iface is None:
                # C706 12.6.3.1: provider_rejection, abstract_syntax_not_supported.
                results.append(ContextResult(rpc.RESULT_PROVIDER_REJECTION,
                                             rpc.REASON_ABSTRACT_SYNTAX_NOT_SUPPORTED))
                continue
            if NDR not in el.transfer_syntaxes:
                # Choice: only NDR 2.0 is served, NDR64 is declined (MS-RPCE 3.3.1.5.6).
                results.append(ContextResult(
                    rpc.RESULT_PROVIDER_REJECTION,
                    rpc.REASON_PROPOSED_TRANSFER_SYNTAXES_NOT_SUPPORTED))
                continue
            existing = self.contexts.get(el.context_id)
            if existing is not None and existing.interface != el.abstract_syntax:
                # Choice: a context id cannot be redefined to another interface.
                results.append(ContextResult(rpc.RESULT_PROVIDER_REJECTION,
                                             rpc.REASON_NOT_SPECIFIED))
                continue
            self.contexts[el.context_id] = _PresCtx(el.context_id, el.abstract_syntax, NDR)
            results.append(ContextResult(rpc.RESULT_ACCEPTANCE, 0, NDR))
            events.append(Bound(el.context_id, el.abstract_syntax, NDR))
        return tuple(results)

    # -- security contexts ------------------------------------------------------------

    def _start_auth(self, verifier: AuthVerifier, body_len: int) -> AuthVerifier | int:
        """A new NTLM context: the reply verifier, or a bind_nak reject reason."""
        if verifier.auth_type != rpc.AUTHN_WINNT or self.authenticator is None \
                or self.ntlm_names is None:
            # MS-RPCE 2.2.2.5: authentication_type_not_recognized.
            return rpc.REJECT_AUTHENTICATION_TYPE_NOT_RECOGNIZED
        if not AuthLevel.CONNECT <= verifier.auth_level <= AuthLevel.PKT_PRIVACY:
            return rpc.REJECT_REASON_NOT_SPECIFIED  # Choice: levels 0/1 with a verifier
        if len(self.security) >= self.max_security_contexts:
            return rpc.REJECT_LOCAL_LIMIT_EXCEEDED
        acceptor = NtlmAcceptor(self.ntlm_names, filetime=self._filetime(),
                                random_bytes=self._random)
        try:
            challenge = acceptor.process_negotiate(verifier.credentials)
        except NtlmError:
            # MS-RPCE 2.2.2.5: invalid_checksum = unrecoverable security package error.
            return rpc.REJECT_INVALID_CHECKSUM
        self.security[verifier.auth_context_id] = _SecCtx(
            verifier.auth_context_id, verifier.auth_type, verifier.auth_level, acceptor
        )
        # Echo the client's auth type, level and context id (MS-RPCE 3.3.1.5.2).
        return AuthVerifier(
            rpc.AUTHN_WINNT, verifier.auth_level, verifier.auth_context_id, challenge,
            trailer_padding(rpc.HEADER_SIZE + body_len),
        )

    def _finish_auth(self, sec: _SecCtx, token: bytes, events: list[Event]) -> None:
        self._last_auth = sec.auth_context_id
        assert self.authenticator is not None
        try:
            result = sec.acceptor.process_authenticate(token, self.authenticator)
        except NtlmError as e:
            sec.state = AuthState.FAILED
            events.append(LogonFailed(sec.auth_context_id, "", "", "", str(e)))
            return
        reason = result.reason
        if result.ok and sec.auth_level >= AuthLevel.CALL and (
            result.session is None or not result.session.extended
        ):
            reason = "signing needs NTLM extended session security"
        if not result.ok or reason:
            sec.state = AuthState.FAILED
            events.append(LogonFailed(sec.auth_context_id, result.user, result.domain,
                                      result.workstation, reason or "logon refused"))
            return
        sec.state = AuthState.ESTABLISHED
        sec.session = result.session
        sec.identity = result.identity
        events.append(Authenticated(sec.auth_context_id, sec.auth_level, result.identity,
                                    result.user, result.domain, result.anonymous))

    # -- bind / alter_context / auth3 ---------------------------------------------------

    def _ack_body_len(self, results: tuple[ContextResult, ...], port: bytes) -> int:
        return len(rpc.BindAck(call_id=0, results=results, secondary_address=port).body())

    def _on_bind(self, pdu: rpc.Bind, events: list[Event]) -> None:
        if self.bound:
            # Choice: one bind per connection (C706 12.6.4.3); a second is refused.
            raise _Violation("second bind on a connection",
                             nak=rpc.REJECT_REASON_NOT_SPECIFIED, call_id=pdu.call_id)
        if not pdu.contexts:
            # A bind without presentation contexts is useless: bind_nak reason_not_specified
            # and close (Samba raw_protocol test_no_auth_no_ctx, validated against Windows).
            raise _Violation("bind without presentation contexts",
                             nak=rpc.REJECT_REASON_NOT_SPECIFIED, call_id=pdu.call_id)
        # C706 12.6.4.3-4: each side sends at most what the other can receive.
        self.max_recv_frag = max(MUST_RECV_FRAG_SIZE, min(pdu.max_xmit_frag, self._our_recv))
        self.max_xmit_frag = max(MUST_RECV_FRAG_SIZE, min(pdu.max_recv_frag, self._our_xmit))
        new_events: list[Event] = []
        results = self._negotiate_contexts(pdu.contexts, new_events)
        reply_auth = None
        if pdu.auth is not None:
            got = self._start_auth(pdu.auth, self._ack_body_len(results,
                                                                self.secondary_address))
            if isinstance(got, int):
                raise _Violation("bind with an unusable auth verifier", nak=got,
                                 call_id=pdu.call_id)
            reply_auth = got
        if pdu.assoc_group_id:
            self.assoc_group_id = pdu.assoc_group_id  # Choice: association groups not checked
        ack = rpc.BindAck(
            call_id=pdu.call_id, results=results, max_xmit_frag=self.max_xmit_frag,
            max_recv_frag=self.max_recv_frag, assoc_group_id=self.assoc_group_id,
            secondary_address=self.secondary_address,
            flags=rpc.PFC_FIRST_FRAG | rpc.PFC_LAST_FRAG
            | (pdu.flags & rpc.PFC_SUPPORT_HEADER_SIGN),
            auth=reply_auth,
        )
        self._queue(ack.encode())
        self.state = ConnState.BOUND
        events.extend(new_events)

    def _on_alter(self, pdu: rpc.Bind, events: list[Event]) -> None:
        if not self.bound:
            raise _Violation("alter_context before bind", status=rpc.NCA_S_PROTO_ERROR,
                             call_id=pdu.call_id)
        new_events: list[Event] = []
        results = self._negotiate_contexts(pdu.contexts, new_events)
        reply_auth: AuthVerifier | None = None
        if pdu.auth is not None:
            sec = self.security.get(pdu.auth.auth_context_id)
            if sec is None:
                got = self._start_auth(pdu.auth, self._ack_body_len(results, b""))
                if isinstance(got, int):
                    # alter_context failures are faults, not bind_naks (C706 12.6.4.1);
                    # status as Samba's Windows-validated server (docs/wire-rpc.md).
                    raise _Violation("alter_context with an unusable auth verifier",
                                     status=rpc.STATUS_SEC_PKG_ERROR, call_id=pdu.call_id)
                reply_auth = got
            elif sec.auth_type != pdu.auth.auth_type:
                raise _Violation("alter_context changes the auth type",
                                 status=rpc.STATUS_SEC_PKG_ERROR, call_id=pdu.call_id)
            elif sec.auth_level != pdu.auth.auth_level:
                raise _Violation("alter_context changes the auth level",
                                 status=rpc.STATUS_ACCESS_DENIED, call_id=pdu.call_id)
            elif sec.state is AuthState.CHALLENGED:
                # Third leg carried by alter_context instead of auth3 (MS-RPCE 3.3.1.5.2).
                self._finish_auth(sec, pdu.auth.credentials, new_events)
            # Choice: an established context named again only adds presentation contexts.
        resp = rpc.AlterContextResp(
            call_id=pdu.call_id, results=results, max_xmit_frag=self.max_xmit_frag,
            max_recv_frag=self.max_recv_frag, assoc_group_id=self.assoc_group_id,
            auth=reply_auth,
        )
        self._queue(resp.encode())
        events.extend(new_events)

    def _on_auth3(self, pdu: rpc.Auth3, events: list[Event]) -> None:
        sec = self.security.get(pdu.auth.auth_context_id)
        if sec is None or sec.state is not AuthState.CHALLENGED:
            # MS-NLMP 3.2.5.1.2: one AUTHENTICATE per challenge; a replay is refused.
            raise _Violation("auth3 for a security context that is not waiting for one",
                             status=rpc.NCA_S_PROTO_ERROR, call_id=pdu.call_id)
        if sec.auth_type != pdu.auth.auth_type:
            raise _Violation("auth3 changes the auth type", status=rpc.STATUS_SEC_PKG_ERROR,
                             call_id=pdu.call_id)
        if sec.auth_level != pdu.auth.auth_level:
            raise _Violation("auth3 changes the auth level", status=rpc.STATUS_ACCESS_DENIED,
                             call_id=pdu.call_id)
        self._finish_auth(sec, pdu.auth.credentials, events)

    # -- requests ---------------------------------------------------------------------

    def _security_for(self, pdu: rpc.Request) -> _SecCtx | None:
        deny = rpc.STATUS_ACCESS_DENIED  # rpc_s_access_denied (MS-RPCE 3.2.3.5.1)
        if pdu.auth is None:
            if self._last_auth is None:
                return None  # an unauthenticated call; the host decides what it may do
            last = self.security[self._last_auth]
            if last.state is not AuthState.ESTABLISHED:
                raise _Violation("call on a connection whose logon failed", status=deny,
                                 call_id=pdu.call_id)
            if last.auth_level >= AuthLevel.CALL:
                # Unsigned calls are refused once a signing context exists: PKT "authenticates
                # that all data received is from the expected client" (Learn rpc/
                # authentication-level-constants); Samba faults a PACKET-level PDU without
                # auth_length. impacket at level 4 sends none (docs/wire-rpc.md).
                raise _Violation("unsigned call on a signed connection", status=deny,
                                 call_id=pdu.call_id)
            return last
        sec = self.security.get(pdu.auth.auth_context_id)
        if sec is None or sec.state is not AuthState.ESTABLISHED:
            raise _Violation("call on a security context that is not established",
                             status=deny, call_id=pdu.call_id)
        if sec.auth_type != pdu.auth.auth_type:
            raise _Violation("call with another auth type", status=rpc.STATUS_SEC_PKG_ERROR,
                             call_id=pdu.call_id)
        if sec.auth_level != pdu.auth.auth_level:
            # Choice (docs/wire-rpc.md): a context keeps the level it was bound at, higher or
            # lower, as Samba's dcerpc_ncacn_pull_pkt_auth; clients that change level
            # (impacket's set_auth_level) open a new context with alter_context instead.
            raise _Violation("call at another auth level than bound", status=deny,
                             call_id=pdu.call_id)
        return sec

    def _on_request(self, pdu: rpc.Request, frag: bytes, events: list[Event]) -> None:
        cid = pdu.call_id
        if not self.bound:
            raise _Violation("request before bind", status=rpc.NCA_S_PROTO_ERROR, call_id=cid)
        first = bool(pdu.flags & rpc.PFC_FIRST_FRAG)
        last = bool(pdu.flags & rpc.PFC_LAST_FRAG)
        if first:
            if cid in self._partial or cid in self._calls:
                raise _Violation(f"call_id {cid} is already in use",
                                 status=rpc.NCA_S_PROTO_ERROR, call_id=cid)
            self._discard.discard(cid)
            if pdu.context_id not in self.contexts:
                # C706 appendix E nca_s_unk_if, did not execute (as Samba/Windows).
                self._queue(rpc.Fault(
                    call_id=cid, status=rpc.NCA_S_UNK_IF, context_id=pdu.context_id,
                    flags=rpc.PFC_FIRST_FRAG | rpc.PFC_LAST_FRAG | rpc.PFC_DID_NOT_EXECUTE,
                ).encode())
                if not last:
                    self._discard.add(cid)
                return
            if pdu.alloc_hint > self.max_request_size:
                # A first fragment announcing more than the request limit is refused at once,
                # not reassembled (MS-RPCE, learn.microsoft.com ms-rpce/f5a0d94f: a request's
                # stub SHOULD not exceed 4 MB; Samba raw_protocol test_fragmented_requests04).
                raise _Violation(f"alloc_hint {pdu.alloc_hint} is over the request limit",
                                 status=REQUEST_TOO_LARGE_STATUS, call_id=cid)
            if len(self._partial) >= self.max_pending_calls:
                raise _Violation("too many calls in progress",
                                 status=rpc.NCA_S_FAULT_REMOTE_NO_MEMORY, call_id=cid)
            part = _Partial(cid, pdu.opnum, pdu.context_id, pdu.object_uuid,
                            self._security_for(pdu))
        else:
            if cid in self._discard:
                if last:
                    self._discard.discard(cid)
                return
            got = self._partial.get(cid)
            if got is None:
                raise _Violation(f"fragment for unknown call {cid}",
                                 status=rpc.NCA_S_PROTO_ERROR, call_id=cid)
            if got.context_id != pdu.context_id or got.opnum != pdu.opnum:
                raise _Violation("fragment changes context or opnum",
                                 status=rpc.NCA_S_PROTO_ERROR, call_id=cid)
            part = got
        stub = self._unprotect_request(pdu, frag, part.sec)
        part.size += len(stub)
        if part.size > self.max_request_size:
            # MS-RPCE: fault status 5 for a request over the limit (MAX_REQUEST_SIZE above);
            # the connection is closed after it (a choice, as Samba does).
            raise _Violation(f"request larger than {self.max_request_size} bytes",
                             status=REQUEST_TOO_LARGE_STATUS, call_id=cid)
        part.chunks.append(stub)
        if not last:
            self._partial[cid] = part
            return
        self._partial.pop(cid, None)
        self._calls[cid] = _CallInfo(part.context_id, part.sec)
        sec = part.sec
        events.append(CallReceived(
            call_id=cid, context_id=part.context_id, opnum=part.opnum,
            object_uuid=part.object_uuid, stub=b"".join(part.chunks),
            interface=self.contexts[part.context_id].interface,
            auth_level=sec.auth_level if sec is not None else AuthLevel.NONE,
            auth_context_id=sec.auth_context_id if sec is not None else None,
            identity=sec.identity if sec is not None else None,
        ))

    def _fast_request(self, frag: bytes, events: list[Event]) -> bool:
        """The common request, handled without the PDU and verifier objects; False to leave
        it to the general path (``_handle``), which then does exactly what it always does.

        Taken only for a whole (first and last) fragment of a bound connection, with an NTLM
        verifier naming an established signing or sealing context at its level, a known
        presentation context and a fresh call id, and only when the signature verifies:
        every other case, including every error, goes the general way, so the events, the
        octets queued and the state after each PDU are the same either way
        (tests/test_wire_fastpaths.py feeds both the same PDUs).
        """
        if len(frag) < _REQ_FIXED.size or self.state is not _BOUND:
            return False
        (vers, minor, ptype, flags, drep0, drep1, frag_len, auth_len, cid, alloc_hint, ctx_id,
         opnum) = _REQ_FIXED.unpack_from(frag)
        if (ptype != _REQUEST or flags & _FIRST_LAST != _FIRST_LAST or vers != 5
                or minor > 1 or drep0 != 0x10 or drep1 != 0 or frag_len != len(frag)
                or auth_len != SIG_LEN):
            return False
        start = REQ_HDR + 16 if flags & _PFC_OBJECT_UUID else REQ_HDR
        trailer_at = frag_len - SIG_LEN - _SEC_TRAILER_SIZE
        if trailer_at < start:
            return False
        a_type, a_level, pad, _reserved, a_ctx = _TRAILER.unpack_from(frag, trailer_at)
        sec = self.security.get(a_ctx)
        if (sec is None or sec.state is not _ESTABLISHED or sec.session is None
                or a_type != sec.auth_type or a_level != sec.auth_level
                or a_level < _LEVEL_CALL or trailer_at - pad < start
                or cid in self._partial or cid in self._calls
                or ctx_id not in self.contexts or alloc_hint > self.max_request_size
                or len(self._partial) >= self.max_pending_calls):
            return False
        try:
            if a_level == _LEVEL_PRIVACY:
                stub = sec.session.unseal_pdu(frag, start, trailer_at,
                                              frag[trailer_at + _SEC_TRAILER_SIZE:], pad)
                if stub is not None:
                    stub = stub[:len(stub) - pad]
            elif sec.session.verify_pdu(frag, trailer_at + _SEC_TRAILER_SIZE):
                stub = frag[start:trailer_at - pad]
            else:
                stub = None
        except NtlmError:
            return False
        if stub is None or len(stub) > self.max_request_size:
            return False  # the general path verifies again and refuses (state unchanged)
        if self._discard:
            self._discard.discard(cid)
        self._calls[cid] = _new_tuple(_CallInfo, (ctx_id, sec))
        # CallReceived(...) without the Python-level __new__ of a NamedTuple.
        events.append(_new_tuple(CallReceived, (
            cid, ctx_id, opnum,
            rpc.guid_from_bytes_le(frag[REQ_HDR:REQ_HDR + 16]) if start != REQ_HDR else None,
            stub, self.contexts[ctx_id].interface, a_level, a_ctx, sec.identity)))
        return True

    def _unprotect_request(self, pdu: rpc.Request, frag: bytes, sec: _SecCtx | None) -> bytes:
        level = sec.auth_level if sec is not None else AuthLevel.NONE
        if level < AuthLevel.CALL:
            if pdu.auth is not None and (sec is None
                                         or pdu.auth.auth_context_id != sec.auth_context_id):
                raise _Violation("fragment names another security context",
                                 status=rpc.STATUS_ACCESS_DENIED, call_id=pdu.call_id)
            return pdu.stub
        assert sec is not None and sec.session is not None
        if pdu.auth is None or pdu.auth.auth_context_id != sec.auth_context_id:
            raise _Violation("fragment without the call's auth verifier",
                             status=rpc.STATUS_ACCESS_DENIED, call_id=pdu.call_id)
        stub_start = REQ_HDR + (16 if pdu.object_uuid is not None else 0)
        try:
            plain = unprotect_fragment(frag, stub_start, pdu.auth, level, sec.session)
        except NtlmError:
            plain = None
        if plain is None:
            # Choice: a bad signature gets rpc_s_access_denied and a close (as Samba).
            raise _Violation("request signature does not verify",
                             status=rpc.STATUS_ACCESS_DENIED, call_id=pdu.call_id)
        return plain

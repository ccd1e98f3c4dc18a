"""NTLM (MS-NLMP): messages, NTLMv2 verification, session security."""

from __future__ import annotations

import hmac
import itertools
import struct
from collections.abc import Callable

import pytest
from Cryptodome.Cipher import ARC4
from impacket import ntlm as imp
from impacket.smbserver import computeNTLMv2

from wmilab.wire import ntlm
from wmilab.wire.ntlm import (
    AuthenticateMessage,
    LogonAttempt,
    NtlmAcceptor,
    NtlmError,
    NtlmInitiator,
    NtlmServerNames,
    NtlmSession,
    parse_authenticate,
    parse_av_pairs,
    parse_challenge,
    parse_negotiate,
)

NAMES = NtlmServerNames("HOSTB", "CORP", "hostb.corp.example", "corp.example",
                        dns_tree="corp.example", domain_joined=True)
FILETIME = 133_444_555_666_777_888


def _counter() -> Callable[[int], bytes]:
    c = itertools.count(1)
    return lambda n: bytes(next(c) % 256 for _ in range(n))


class Accounts:
    def __init__(self) -> None:
        self.attempts: list[LogonAttempt] = []

    def logon(self, attempt: LogonAttempt) -> object | None:
        self.attempts.append(attempt)
        if attempt.user.lower() == "alice" and attempt.check_password("Pa55word"):
            return ("CORP", "alice")
        return None


def _acceptor() -> NtlmAcceptor:
    return NtlmAcceptor(NAMES, filetime=FILETIME, random_bytes=_counter())


def _handshake(password: str = "Pa55word", user: str = "alice"
               ) -> tuple[NtlmInitiator, NtlmAcceptor, ntlm.AcceptResult, Accounts]:
    init = NtlmInitiator(user, password, "CORP", "HOSTA")
    acc = _acceptor()
    accounts = Accounts()
    result = acc.process_authenticate(init.authenticate(acc.process_negotiate(
        init.negotiate())), accounts)
    return init, acc, result, accounts


def test_challenge_carries_names_timestamp_and_flags() -> None:
    acc = _acceptor()
    neg = imp.getNTLMSSPType1("", "", signingRequired=True, use_ntlmv2=True)
    chal = parse_challenge(acc.process_negotiate(neg.getData()))
    av = dict(parse_av_pairs(chal.target_info))
    assert av[1] == "HOSTB".encode("utf-16-le")  # MsvAvNbComputerName
    assert av[2] == "CORP".encode("utf-16-le")  # MsvAvNbDomainName
    assert av[3] == "hostb.corp.example".encode("utf-16-le")
    assert av[4] == "corp.example".encode("utf-16-le")
    assert struct.unpack("<Q", av[7])[0] == FILETIME
    assert max(av) <= 10
    for flag in (ntlm.NEGOTIATE_KEY_EXCH, ntlm.NEGOTIATE_EXTENDED_SESSIONSECURITY,
                 ntlm.NEGOTIATE_128, ntlm.NEGOTIATE_56, ntlm.NEGOTIATE_SIGN,
                 ntlm.NEGOTIATE_SEAL, ntlm.NEGOTIATE_TARGET_INFO, ntlm.NEGOTIATE_UNICODE,
                 ntlm.TARGET_TYPE_DOMAIN):
        assert chal.flags & flag, hex(flag)
    assert chal.target_name == "CORP".encode("utf-16-le")
    assert chal.server_challenge == bytes(range(1, 9))
    # impacket reads the same message.
    theirs = imp.NTLMAuthChallenge(acc._challenge)
    assert theirs["challenge"] == chal.server_challenge
    assert imp.AV_PAIRS(theirs["TargetInfoFields"])[3][1] == av[3]


def test_version_is_sent_only_when_asked() -> None:
    acc = _acceptor()
    neg = ntlm.NegotiateMessage(ntlm.NEGOTIATE_UNICODE | ntlm.NEGOTIATE_VERSION,
                                version=b"\x0a\x00\x63\x45\x00\x00\x00\x0f")
    chal = parse_challenge(acc.process_negotiate(neg.encode()))
    assert chal.flags & ntlm.NEGOTIATE_VERSION
    assert chal.version == bytes([10, 0]) + struct.pack("<H", 17763) + b"\0\0\0\x0f"
    workgroup = NtlmAcceptor(NtlmServerNames("WS1", "WS1", "ws1", "ws1"), filetime=0)
    chal2 = parse_challenge(workgroup.process_negotiate(
        ntlm.NegotiateMessage(ntlm.NEGOTIATE_UNICODE | ntlm.REQUEST_TARGET).encode()))
    assert not chal2.flags & ntlm.NEGOTIATE_VERSION
    assert chal2.flags & ntlm.TARGET_TYPE_SERVER and chal2.target_name == "WS1".encode(
        "utf-16-le")


def test_initiator_and_acceptor_agree_and_protect_both_ways() -> None:
    init, _acc, result, accounts = _handshake()
    assert result.ok and result.identity == ("CORP", "alice")
    assert (result.user, result.domain, result.workstation) == ("alice", "CORP", "HOSTA")
    assert accounts.attempts[0].ntlm_v2 and not accounts.attempts[0].anonymous
    client, server = init.session, result.session
    assert client is not None and server is not None
    assert client.session_key == server.session_key
    for i in range(3):
        msg = f"message {i}".encode()
        assert server.verify(msg, client.sign(msg))
        sealed, sig = server.seal(msg, lambda p: b"hdr" + p)
        assert sealed != msg
        assert client.unseal(sealed, sig, lambda p: b"hdr" + p) == msg
    assert not server.verify(b"tampered", client.sign(b"original"))


def test_wrong_password_is_refused_but_the_host_sees_who_tried() -> None:
    _, acc, result, accounts = _handshake(password="guess")
    assert not result.ok and result.session is None
    assert (accounts.attempts[0].user, accounts.attempts[0].domain) == ("alice", "CORP")
    assert acc.state == "failed"


def test_second_authenticate_is_a_replay() -> None:
    init = NtlmInitiator("alice", "Pa55word", "CORP")
    acc = _acceptor()
    token = init.authenticate(acc.process_negotiate(init.negotiate()))
    assert acc.process_authenticate(token, Accounts()).ok
    with pytest.raises(NtlmError, match="state done"):
        acc.process_authenticate(token, Accounts())
    # The same AUTHENTICATE against a fresh challenge does not verify.
    other = NtlmAcceptor(NAMES, filetime=FILETIME)
    other.process_negotiate(NtlmInitiator("alice", "x").negotiate())
    assert not other.process_authenticate(token, Accounts()).ok


def test_anonymous_authenticate() -> None:
    init = NtlmInitiator("")
    acc = _acceptor()
    token = init.authenticate(acc.process_negotiate(init.negotiate()))
    msg = parse_authenticate(token)
    assert msg.nt_response == b"" and msg.user == b""

    seen: list[LogonAttempt] = []

    class AllowAnonymous:
        def logon(self, attempt: LogonAttempt) -> object | None:
            seen.append(attempt)
            return "ANONYMOUS LOGON" if attempt.anonymous else None

    result = acc.process_authenticate(token, AllowAnonymous())
    assert result.ok and result.anonymous and seen[0].anonymous
    assert not seen[0].check_password("")
    assert init.session is not None and result.session is not None
    assert result.session.verify(b"m", init.session.sign(b"m"))


def test_impacket_client_messages_verify_here() -> None:
    acc = _acceptor()
    type1 = imp.getNTLMSSPType1("", "", signingRequired=True, use_ntlmv2=True)
    challenge = acc.process_negotiate(type1.getData())
    type3, exported = imp.getNTLMSSPType3(type1, challenge, "alice", "Pa55word", "CORP",
                                          use_ntlmv2=True)
    result = acc.process_authenticate(type3.getData(), Accounts())
    assert result.ok and result.session is not None
    assert result.session.session_key == exported


def test_our_authenticate_verifies_in_impacket_server_code() -> None:
    init = NtlmInitiator("alice", "Pa55word", "CORP", "HOSTA")
    acc = _acceptor()
    neg = init.negotiate()
    chal = acc.process_negotiate(neg)
    token = init.authenticate(chal)
    theirs = imp.NTLMAuthChallengeResponse()
    theirs.fromString(token)
    assert theirs["user_name"] == "alice".encode("utf-16-le")
    status, key = computeNTLMv2(
        "alice", b"", imp.compute_nthash("Pa55word"), parse_challenge(chal).server_challenge,
        theirs, imp.NTLMAuthChallenge(chal),
        {"flags": parse_negotiate(neg).flags},
    )
    assert status == 0
    assert init.session is not None and key == init.session.session_key


def test_signatures_match_impacket_mac_and_seal() -> None:
    key = bytes(range(16))
    flags = (ntlm.NEGOTIATE_EXTENDED_SESSIONSECURITY | ntlm.NEGOTIATE_KEY_EXCH
             | ntlm.NEGOTIATE_128 | ntlm.NEGOTIATE_SIGN | ntlm.NEGOTIATE_SEAL)
    ours = NtlmSession(key, flags, initiator=True)
    sign_key = imp.SIGNKEY(flags, key, "Client")
    handle = ARC4.new(imp.SEALKEY(flags, key, "Client")).encrypt
    for seq, msg in enumerate([b"first", b"second" * 50, b""]):
        assert ours.sign(msg) == imp.SIGN(flags, sign_key, msg, seq, handle).getData()
    sealed, sig = ours.seal(b"secret stub", lambda p: b"head" + p)
    theirs_sealed, theirs_sig = imp.SEAL(flags, sign_key, None, b"head" + b"secret stub",
                                         b"secret stub", 3, handle)
    assert (sealed, sig) == (theirs_sealed, theirs_sig.getData())


def test_mic_is_checked_when_the_client_says_it_is_present() -> None:
    acc = _acceptor()
    neg = NtlmInitiator("alice", "Pa55word").negotiate()
    chal_bytes = acc.process_negotiate(neg)
    chal = parse_challenge(chal_bytes)
    key = ntlm.response_key_nt(ntlm.nt_hash("Pa55word"), "alice", "CORP")
    av = [p for p in parse_av_pairs(chal.target_info)] + [
        (ntlm.AV_FLAGS, struct.pack("<I", ntlm.AV_FLAG_MIC_PRESENT))]
    temp = (b"\x01\x01" + b"\0" * 6 + struct.pack("<Q", FILETIME) + b"C" * 8 + b"\0" * 4
            + ntlm.encode_av_pairs(av) + b"\0" * 4)
    proof = hmac.new(key, chal.server_challenge + temp, "md5").digest()
    exported = hmac.new(key, proof, "md5").digest()  # no key exchange
    flags = chal.flags & ~ntlm.NEGOTIATE_KEY_EXCH

    def message(mic: bytes) -> bytes:
        return AuthenticateMessage(
            flags=flags, lm_response=b"\0" * 24, nt_response=proof + temp,
            domain="CORP".encode("utf-16-le"), user="alice".encode("utf-16-le"),
            version=b"\0" * 8, mic=mic,
        ).encode()

    good_mic = hmac.new(exported, neg + chal_bytes + message(b"\0" * 16), "md5").digest()
    bad = acc.process_authenticate(message(b"\x01" * 16), Accounts())
    assert not bad.ok and bad.reason == "MIC does not match"
    acc2 = NtlmAcceptor(NAMES, filetime=FILETIME, random_bytes=_counter())
    acc2.process_negotiate(neg)
    assert acc2.process_authenticate(message(good_mic), Accounts()).ok


@pytest.mark.parametrize(
    "token",
    [
        b"",
        b"NTLMSSP\x00",
        b"NTLMSSP\x00\x01\x00\x00\x00" + b"\0" * 52,  # a NEGOTIATE, not AUTHENTICATE
        b"XXXXXXXX\x03\x00\x00\x00" + b"\0" * 52,
        b"NTLMSSP\x00\x03\x00\x00\x00" + struct.pack("<HHI", 200, 200, 64) + b"\0" * 44,
    ],
)
def test_malformed_authenticate_raises_ntlm_error(token: bytes) -> None:
    acc = _acceptor()
    acc.process_negotiate(NtlmInitiator("alice", "x").negotiate())
    with pytest.raises(NtlmError):
        acc.process_authenticate(token, Accounts())


def _sessions(flags: int) -> tuple[NtlmSession, NtlmSession]:
    key = bytes(range(16))
    return (NtlmSession(key, flags, initiator=True), NtlmSession(key, flags, initiator=False))


@pytest.mark.parametrize("key_exch", [True, False])
def test_unseal_follows_a_peer_that_changes_how_it_seals_padding(key_exch: bool) -> None:
    # aiowmi leaves the RPC auth padding clear, Windows and impacket seal it; the acceptor
    # remembers which reading verified last and must still accept the other at any time.
    flags = (ntlm.NEGOTIATE_EXTENDED_SESSIONSECURITY | ntlm.NEGOTIATE_128
             | ntlm.NEGOTIATE_SIGN | ntlm.NEGOTIATE_SEAL
             | (ntlm.NEGOTIATE_KEY_EXCH if key_exch else 0))
    client, server = _sessions(flags)
    for i, seal_pad in enumerate([False, False, True, False, True, True, False]):
        stub, pad = f"stub {i}".encode(), b"\x00" * (3 - i % 3)
        if seal_pad:
            sealed, sig = client.seal(stub + pad, lambda p: b"hdr" + p)
        else:
            body, sig = client.seal(stub, lambda p, pad=pad: b"hdr" + p + pad)
            sealed = body + pad
        plain = server.unseal(sealed, sig, lambda p: b"hdr" + p, clear_tail=len(pad))
        assert plain == stub + pad, (i, seal_pad)
    # A forged signature is still refused, and the stream stays usable afterwards.
    sealed, sig = client.seal(b"last", lambda p: p)
    assert server.unseal(sealed, bytes(16), lambda p: p) is None
    assert server.unseal(sealed, sig, lambda p: p) == b"last"


@pytest.mark.parametrize("key", [b"", b"k", bytes(range(16)), bytes(64), bytes(range(100))])
def test_session_mac_is_hmac_md5(key: bytes) -> None:
    # The signing MAC (precomputed pads) equals HMAC_MD5 (RFC 2104) for any key length.
    mac = ntlm._HmacMd5(key)
    for msg in (b"", b"x", bytes(range(256)) * 5):
        assert mac.digest(msg) == hmac.new(key, msg, "md5").digest()


def test_rc4_keystream_is_rc4_whatever_the_backend() -> None:
    # OpenSSL's RC4 (cryptography) and pycryptodomex's give the same stream, in any slicing.
    key = bytes(range(5, 21))
    data = bytes(range(256)) * 20
    ks = ntlm._Keystream(key)
    got = ks.apply(data[:7]) + ks.peek(3)[:0] + ks.apply(data[7:4000])
    ks.consume(0)
    got += ks.apply(data[4000:])
    assert got == ARC4.new(key).encrypt(data)
    assert ntlm._rc4(b"\x01" * 5, b"abc") == ARC4.new(b"\x01" * 5).encrypt(b"abc")

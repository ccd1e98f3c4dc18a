"""The doctor's pure parts: the model reconstruction behind its fixes, targets files, shards,
options. No network."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wmilab import steps
from wmilab.realhost import model_fix
from wmilab.realhost import options as opt
from wmilab.realhost.fleet import parse_shard, read_targets
from wmilab.realhost.model_fix import ASSUMPTIONS, os_of_version, reconstruct_fix

HRESULTS = {steps.C1_RPCSS: 0x800706BA, steps.C1_LOGON: 0x80070005,
            steps.C1_ACTIVATION: 0x80070005, steps.C1_WMI_PORT: 0x800706BA,
            steps.C1_ACCESS: 0x80070005, steps.C1_NAMESPACE: 0x80041003,
            steps.C2_RESOLVER_PORT: 0x800706BA, steps.C2_SINK_PORT: 0x800706BA,
            steps.C2_ACCESS: 0x80070005}


@pytest.mark.parametrize("os_name", ["xp-sp2", "2003-sp1", None])
@pytest.mark.parametrize("step", sorted(ASSUMPTIONS))
def test_every_reconstruction_reproduces_its_step_and_is_fixed_least_privilege(
        step: str, os_name: str | None) -> None:
    mode = "async" if step.startswith("c2.") else "semisync"
    fix = reconstruct_fix(step, HRESULTS[step], user="CORP\\bob", namespace="root\\cimv2",
                          mode=mode, os_b=os_name, a_ip="10.1.2.3", b_ip="10.1.2.40")
    if step == steps.C1_LOGON:
        assert not fix.fixes and "password" in fix.note  # no setting fixes a wrong password
        return
    assert fix.proven and fix.fixes, fix
    text = " ".join(" ".join(f["commands"]) for f in fix.fixes)
    assert "Everyone" not in text and "opmode mode=DISABLE" not in text
    if step in (steps.C1_RPCSS, steps.C1_WMI_PORT):
        assert "10.1.2.3" in text  # scoped to A's address
    if step.startswith("c2."):
        assert fix.fixes[0]["kind"] == "call"  # semisynchronous first, as the seed prefers


# Addresses around A's 10.1.2.3: the same address, its /24, other /24s, not IPv4 at all.
_B_ADDRESSES = st.one_of(
    st.sampled_from(["10.1.2.3", "10.1.2.4", "10.1.2.255", "10.1.3.3", "srv42", ""]),
    st.builds(lambda o: f"10.1.2.{o}", st.integers(0, 255)),
    st.builds(lambda a, b: f"10.{a}.{b}.7", st.integers(0, 255), st.integers(0, 255)),
    st.ip_addresses(v=4).map(str))


@settings(max_examples=60, deadline=None)
@given(step=st.sampled_from(sorted(ASSUMPTIONS)), os_name=st.sampled_from(["xp-sp2", "2003-sp1"]),
       b_ip=_B_ADDRESSES)
def test_a_fix_shared_by_a_fleet_is_the_one_the_target_would_get_alone(
        step: str, os_name: str, b_ip: str) -> None:
    # The fleet shares one reconstruction between targets that differ only in B's address
    # (model_fix._SHARED); warm it with another target, then compare with a fresh one.
    mode = "async" if step.startswith("c2.") else "semisync"
    kw = {"user": "CORP\\bob", "namespace": "root\\cimv2", "mode": mode, "os_b": os_name,
          "a_ip": "10.1.2.3"}
    for warm in ("10.1.2.40", "10.9.9.9", "10.1.2.3"):
        reconstruct_fix(step, HRESULTS[step], b_ip=warm, **kw)
    shared = reconstruct_fix(step, HRESULTS[step], b_ip=b_ip, **kw)
    alone = model_fix._reconstruct(step, HRESULTS[step], b_ip=b_ip, **kw)
    assert shared == alone


def test_a_probe_the_model_cannot_reproduce_gets_no_fix() -> None:
    fix = reconstruct_fix(steps.C1_ACTIVATION, 0x800706BA, user="CORP\\bob",
                          namespace="root\\cimv2", mode="semisync", os_b=None,
                          a_ip="10.1.2.3", b_ip="10.1.2.40")
    assert not fix.fixes and "does not reproduce" in fix.note


def test_unknown_namespace_has_no_configuration_fix() -> None:
    fix = reconstruct_fix(steps.C1_NAMESPACE, 0x8004100E, user="CORP\\bob",
                          namespace="root\\nothere", mode="semisync", os_b=None,
                          a_ip="10.1.2.3", b_ip="10.1.2.40")
    assert not fix.fixes and "nothere" in fix.note


def test_versions_map_to_the_os_catalogue() -> None:
    assert os_of_version("5.1.2600") == "xp-sp2"
    assert os_of_version("5.2.3790") == "2003-sp1"
    assert os_of_version("10.0.17763") == "2019"
    assert os_of_version("10.0.99999") is None and os_of_version(None) is None


def test_targets_file_lines_csv_header_comments(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("target,user\n# a comment\n\n10.0.0.1\nsrv42,CORP\\carol\n"
                 "srv43.corp.example, CORP/dave \n", encoding="utf-8")
    got = [(e.line, e.target, e.user) for e in read_targets(f)]
    assert got == [(4, "10.0.0.1", None), (5, "srv42", "CORP\\carol"),
                   (6, "srv43.corp.example", "CORP\\dave")]


@pytest.mark.parametrize(("content", "where"), [
    ("10.0.0.1\n-bad-\n", ":2:"), ("a,b,c\n", ":1:"), ("10.0.0.1,\\x\\y\n", ":1:"),
    (",CORP\\a\n", ":1:"),
])
def test_bad_targets_lines_are_named(tmp_path: Path, content: str, where: str) -> None:
    f = tmp_path / "t.txt"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(opt.UsageError, match=where):
        read_targets(f)


@given(st.integers(1, 50).flatmap(lambda n: st.tuples(st.integers(0, n - 1), st.just(n))),
       st.integers(0, 300))
def test_shards_partition_the_fleet(shard: tuple[int, int], size: int) -> None:
    i, n = parse_shard(f"{shard[0]}/{shard[1]}")
    items = list(range(size))
    parts = [items[k::n] for k in range(n)]
    assert sorted(x for p in parts for x in p) == items
    assert parts[i] == items[i::n]


@pytest.mark.parametrize("text", ["", "1", "2/2", "-1/3", "a/b", "1/0", "0/"])
def test_bad_shards(text: str) -> None:
    with pytest.raises(opt.UsageError, match="--shard"):
        parse_shard(text)


def test_password_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WMILAB_PASSWORD", raising=False)
    with pytest.raises(opt.UsageError, match="no password"):
        opt.password(None, None)
    monkeypatch.setenv("WMILAB_PASSWORD", "from-env")
    assert opt.password(None, None) == "from-env"
    f = tmp_path / "pw"
    f.write_text("from-file\nsecond line\n", encoding="utf-8")
    assert opt.password(None, f) == "from-file"
    assert opt.password("given", None) == "given"
    with pytest.raises(opt.UsageError) as info:
        opt.password("s3cret", f)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("name", ["bad..name", "-x", "a_b", "x" * 64, "white space", ""])
def test_invalid_names_are_refused_before_any_lookup(name: str) -> None:
    with pytest.raises(opt.UsageError, match="not an IPv4 address or a host name"):
        opt.resolve_target(name)


@pytest.mark.parametrize("asked", [True, False])
def test_the_challenge_says_the_server_s_version_only_when_negotiated(asked: bool) -> None:
    import struct

    from wmilab.wire.ntlm import NtlmAcceptor, NtlmInitiator, NtlmServerNames, parse_challenge

    init = NtlmInitiator("bob", "pw", "CORP", version=(0, 0, 0) if asked else None)
    names = NtlmServerNames("SRV", "CORP", "srv.corp.example", "corp.example",
                            domain_joined=True, version=(5, 2, 3790))
    chal = parse_challenge(NtlmAcceptor(names, filetime=0).process_negotiate(init.negotiate()))
    if asked:
        assert chal.version is not None
        assert struct.unpack_from("<BBH", chal.version) == (5, 2, 3790)
        assert chal.version[7] == 15  # NTLMRevisionCurrent (MS-NLMP 2.2.2.10)
    else:
        assert not chal.version or not any(chal.version)  # "MUST be set to all zero"
    init.authenticate(chal.encode())  # the AUTHENTICATE still builds either way

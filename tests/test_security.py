"""SDDL parsing/formatting, SIDs, and DACL evaluation order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wmilab.errors import ConfigError
from wmilab.model import sids
from wmilab.model.security import Ace, SecurityDescriptor, parse_rights, parse_sddl

XP_LAUNCH = "O:BAG:BAD:(A;;CCDCSW;;;WD)(A;;CCDCLCSWRP;;;BA)"


def test_parse_known_dcom_limits() -> None:
    sd = parse_sddl(XP_LAUNCH)
    assert sd.owner == sids.BUILTIN_ADMINISTRATORS
    assert sd.group == sids.BUILTIN_ADMINISTRATORS
    assert sd.dacl == (
        Ace(True, sids.EVERYONE, 0x1 | 0x2 | 0x8),
        Ace(True, sids.BUILTIN_ADMINISTRATORS, 0x1F),
    )
    assert sd.to_sddl() == XP_LAUNCH


def test_parse_hex_rights_flags_and_raw_sids() -> None:
    sd = parse_sddl("D:P(A;CI;0x20023;;;S-1-5-21-1-2-3-1000)(D;;CC;;;AN)S:(AU;FA;KA;;;WD)")
    assert sd.owner is None and sd.dacl_flags == "P"
    assert sd.dacl[0] == Ace(True, "S-1-5-21-1-2-3-1000", 0x20023, "CI")
    assert sd.dacl[1] == Ace(False, sids.ANONYMOUS, 1)
    assert parse_sddl(sd.to_sddl()) == sd


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty"),
        ("O:BA", "no DACL"),
        ("D:(A;;CCDC;;;XX)", "XX"),
        ("D:(A;;ZZ;;;WD)", "ZZ"),
        ("D:(A;;CC;;WD)", "six fields"),
        ("D:(X;;CC;;;WD)", "'X'"),
        ("D:(A;;CC;;;WD", "unbalanced"),
        ("D:(A;;CC;;;DA)", "DA"),
        ("D:(A;QQ;CC;;;WD)", "QQ"),
        ("D:(A;;CC;;;S-1-5-x)", "S-1-5-x"),
        ("D:(A;;CC;;;WD)D:(A;;CC;;;WD)", "twice"),
        ("D:NO_ACCESS_CONTROL", "NULL"),
    ],
)
def test_bad_sddl_names_the_bad_part(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_sddl(text)
    assert needle in str(info.value)


def test_custom_alias_resolver_is_used_for_domain_aliases() -> None:
    sd = parse_sddl("D:(A;;CCDCLCSWRP;;;DA)", lambda a: "S-1-5-21-9-9-9-512")
    assert sd.dacl[0].sid == "S-1-5-21-9-9-9-512"


_sid = st.one_of(
    st.sampled_from(sorted(sids.SDDL_ALIASES.values())),
    st.tuples(*(st.integers(0, 2**32 - 1) for _ in range(4))).map(
        lambda t: "S-1-5-21-{}-{}-{}-{}".format(*t)),
)
_ace = st.builds(Ace, st.booleans(), _sid, st.integers(1, 2**32 - 1),
                 st.sampled_from(["", "CI", "CIIO", "OICI"]))
_sd = st.builds(SecurityDescriptor, st.none() | _sid, st.none() | _sid,
                st.lists(_ace, max_size=6).map(tuple), st.sampled_from(["", "P", "PAI", "AI"]))


@given(_sd)
def test_sddl_round_trip(sd: SecurityDescriptor) -> None:
    assert parse_sddl(sd.to_sddl()) == sd


@given(st.integers(0, 2**32 - 1))
def test_rights_round_trip(mask: int) -> None:
    from wmilab.model.security import format_rights
    assert parse_rights(format_rights(mask)) == mask


BOB = "S-1-5-21-1-2-3-1000"
TOKEN = frozenset({BOB, sids.EVERYONE, sids.AUTHENTICATED_USERS})


def test_deny_before_allow_denies() -> None:
    sd = parse_sddl(f"D:(D;;LC;;;{BOB})(A;;CCDCLC;;;WD)")
    assert not sd.granted(TOKEN, 0x4)
    assert sd.granted(TOKEN, 0x3)  # the deny names only bit 0x4


def test_allow_before_deny_grants_already_granted_bits() -> None:
    # AccessCheck stops once every requested bit is granted: a later deny does not matter.
    sd = parse_sddl(f"D:(A;;CCDCLC;;;WD)(D;;LC;;;{BOB})")
    assert sd.granted(TOKEN, 0x4)


def test_all_requested_bits_needed_and_may_come_from_several_aces() -> None:
    sd = parse_sddl(f"D:(A;;LC;;;WD)(A;;RP;;;{BOB})")
    assert sd.granted(TOKEN, 0x4 | 0x10)
    assert not sd.granted(TOKEN, 0x4 | 0x10 | 0x8)
    assert not sd.granted(frozenset({sids.EVERYONE}), 0x4 | 0x10)


def test_empty_dacl_denies_everything() -> None:
    assert not parse_sddl("D:").granted(TOKEN, 1)


def test_with_entry_replaces_removes_and_appends() -> None:
    sd = parse_sddl(f"D:(D;;CC;;;{BOB})(A;;CC;;;{BOB})(A;;CC;;;WD)")
    sd2 = sd.with_entry(BOB, 0x1F)
    assert sd2.rights_of(BOB) == 0x1F
    assert sd2.dacl[0].allow is False  # deny entry kept
    assert sd2.with_entry(BOB, 0).rights_of(BOB) == 0
    assert sd2.with_entry(sids.ANONYMOUS, 3).dacl[-1] == Ace(True, sids.ANONYMOUS, 3)


def test_sid_derivation_is_deterministic_and_distinct() -> None:
    assert sids.domain_sid("CORP") == sids.domain_sid("corp")
    assert sids.domain_sid("CORP") != sids.machine_sid("CORP")
    assert sids.domain_sid("CORP").startswith("S-1-5-21-")
    assert sids.assign_rids(["bob", "Administrator", "alice", "Guest"]) == {
        "administrator": 500, "guest": 501, "alice": 1000, "bob": 1001}


@pytest.mark.parametrize("bad", ["S-1", "S-1-5-x", "X-1-5-32", "S-1-5-4294967296"])
def test_bad_sid_strings(bad: str) -> None:
    with pytest.raises(ConfigError):
        sids.parse_sid(bad)

"""Address lists and scopes: parsing, rendering and matching."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wmilab.errors import ConfigError
from wmilab.model.addresses import LOCAL_SUBNET, AddressToken, Scope, parse_address_list

SUBNET = IPv4Network("192.168.10.0/24")

ipv4 = st.integers(0, 2**32 - 1).map(IPv4Address)
prefix = st.integers(0, 32)
networks = st.builds(lambda a, p: IPv4Network(f"{a}/{p}", strict=False), ipv4, prefix)
tokens = st.one_of(st.just(LOCAL_SUBNET), networks.map(AddressToken))
token_lists = st.lists(tokens, min_size=1, max_size=6, unique=True)


def test_all_accepted_forms() -> None:
    toks = parse_address_list("10.0.0.1, 172.16.0.0/16,10.0.0.0/255.0.0.0,localsubnet")
    assert [str(t) for t in toks] == ["10.0.0.1", "172.16.0.0/16", "10.0.0.0/8", "LocalSubnet"]


@pytest.mark.parametrize(("text", "fragment"), [
    ("10.0.0.256", "10.0.0.256"),
    ("10.0.0.0/33", "10.0.0.0/33"),
    ("10.0.0.0/255.0.255.0", "not contiguous"),
    ("10.0.0.1,*", "stand alone"),
    ("10.0.0.1,,10.0.0.2", "empty entry"),
    ("10.0.0.1-10.0.0.9", "10.0.0.1-10.0.0.9"),
    ("fe80::1", "IPv4"),
    ("", "empty"),
])
def test_bad_tokens_are_named(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment.replace("*", r"\*")):
        parse_address_list(text)


def test_star_alone_means_any() -> None:
    assert Scope.from_policy("*") == Scope.all()
    assert Scope.parse("CUSTOM", "*") == Scope.all()


@settings(deadline=None)  # timing is no part of this property (shared CI machines)
@given(token_lists)
def test_list_round_trips(toks: list[AddressToken]) -> None:
    text = ",".join(str(t) for t in toks)
    assert list(parse_address_list(text)) == toks


@given(token_lists)
def test_scope_round_trips_through_netsh_and_policy(toks: list[AddressToken]) -> None:
    scope = Scope("CUSTOM", tuple(toks))
    args = dict(kv.split("=", 1) for kv in scope.netsh_args().split())
    assert Scope.parse(args["scope"], args.get("addresses")) == scope
    back = Scope.from_policy(scope.policy_text())
    # A lone LocalSubnet is written "localsubnet", which GP reads as the SUBNET scope.
    if toks == [LOCAL_SUBNET]:
        assert back == Scope.subnet()
    else:
        assert back == scope


@given(token_lists, ipv4)
def test_custom_matches_iff_some_token_matches(toks: list[AddressToken], src: IPv4Address) -> None:
    scope = Scope("CUSTOM", tuple(toks))
    expected = any(
        (src in SUBNET) if t.network is None else (src in t.network) for t in toks)
    assert scope.matches(src, SUBNET) is expected


@given(ipv4)
def test_all_and_subnet(src: IPv4Address) -> None:
    assert Scope.all().matches(src, SUBNET)
    assert Scope.subnet().matches(src, SUBNET) is (src in SUBNET)


@given(st.one_of(st.just(Scope.all()), st.just(Scope.subnet()),
                 token_lists.map(lambda t: Scope("CUSTOM", tuple(t)))), ipv4, ipv4)
def test_with_address_widens_minimally(scope: Scope, add: IPv4Address,
                                       other: IPv4Address) -> None:
    wider = scope.with_address(add)
    assert wider.matches(add, SUBNET)
    # Everything admitted before is still admitted...
    if scope.matches(other, SUBNET):
        assert wider.matches(other, SUBNET)
    # ...and nothing else but the new address is added.
    if not scope.matches(other, SUBNET) and other != add:
        assert not wider.matches(other, SUBNET)


def test_with_address_shapes() -> None:
    a = IPv4Address("10.1.1.1")
    assert Scope.all().with_address(a) == Scope.all()
    assert Scope.subnet().with_address(a).netsh_args() == (
        "scope=CUSTOM addresses=LocalSubnet,10.1.1.1")
    assert Scope.custom("10.0.0.1").with_address(a).policy_text() == "10.0.0.1,10.1.1.1"


def test_netsh_rules() -> None:
    assert Scope.parse(None, None) == Scope.all()
    assert Scope.parse("subnet", None) == Scope.subnet()
    with pytest.raises(ConfigError, match="CUSTOM"):
        Scope.parse("ALL", "10.0.0.1")
    with pytest.raises(ConfigError, match="addresses"):
        Scope.parse("CUSTOM", None)
    with pytest.raises(ConfigError, match="scope must be"):
        Scope.parse("SOME", None)


def test_policy_forms_and_describe() -> None:
    assert Scope.from_policy("LocalSubnet") == Scope.subnet()
    assert Scope.subnet().policy_text() == "localsubnet"
    assert Scope.all().policy_text() == "*"
    assert "any computer" in Scope.all().describe()
    assert "10.0.0.0/8" in Scope.custom("10.0.0.0/8").describe()

"""WMI namespace security: defaults, inheritance, overrides and the login check."""

from __future__ import annotations

import pytest

from wmilab.errors import ConfigError
from wmilab.model import sids
from wmilab.model.identity import Directory, DomainSpec, HostSpec, Token
from wmilab.model.wmi import RIGHTS, NamespaceSecurity, normalize_namespace


def setup(os: str = "xp-sp2") -> tuple[Directory, NamespaceSecurity]:
    d = Directory(
        {"CORP": DomainSpec("CORP", "corp.example", (), {"admin": "a", "bob": "b"},
                            {"Domain Admins": ("admin",)})},
        {"B": HostSpec("B", os, domain="CORP"), "W": HostSpec("W", "xp-sp2", workgroup="WG")},
    )
    return d, NamespaceSecurity.defaults(os, d, "B")


def tok(d: Directory, user: str, password: str) -> Token:
    logon = d.network_logon("B", user, lambda p: p == password)
    assert logon.token is not None
    return logon.token


def test_rights_values() -> None:
    assert RIGHTS == {
        "enable account": 0x1, "execute methods": 0x2, "full write": 0x4,
        "partial write": 0x8, "provider write": 0x10, "remote enable": 0x20,
        "read security": 0x20000, "edit security": 0x40000,
    }


@pytest.mark.parametrize("os", ["xp-sp2", "2003-sp1"])
def test_remote_enable_defaults_to_administrators_only(os: str) -> None:
    d, ns = setup(os)
    admin, bob = tok(d, "CORP\\admin", "a"), tok(d, "CORP\\bob", "b")
    assert ns.check_login(admin, "root\\cimv2").ok
    check = ns.check_login(bob, "ROOT/CIMV2")
    assert not check.ok and check.where == "remote_enable"
    assert "enable account" in check.reason  # bob has the local rights
    assert ns.check_method(bob, "root\\cimv2").ok
    assert ns.descriptor("root\\cimv2").rights_of(sids.EVERYONE) == 0x13


def test_grant_on_cimv2_does_not_reach_other_namespaces() -> None:
    d, ns = setup()
    bob = tok(d, "CORP\\bob", "b")
    ns2 = ns.with_overrides({"root\\cimv2": {"CORP\\bob": ["enable account", "remote enable"]}},
                            d, "B")
    assert ns2.check_login(bob, "root\\cimv2").ok
    assert not ns2.check_login(bob, "root\\default").ok


def test_grant_on_root_is_inherited_by_unlisted_children() -> None:
    d, ns = setup()
    bob = tok(d, "CORP\\bob", "b")
    ns2 = ns.with_overrides({
        "root\\cimv2": {"Everyone": ["enable account"]},
        "root": {"CORP\\bob": ["enable account", "remote enable"]},
    }, d, "B")
    assert ns2.check_login(bob, "root\\subscription").ok
    assert ns2.check_login(bob, "root\\cimv2").ok  # parent applied first, then the child edit


def test_enable_account_is_also_needed() -> None:
    d, ns = setup()
    bob = tok(d, "CORP\\bob", "b")
    ns2 = ns.with_overrides({"root\\cimv2": {"CORP\\bob": ["remote enable"],
                                             "Everyone": []}}, d, "B")
    assert ns2.check_login(bob, "root\\cimv2").where == "enable_account"


def test_unknown_namespace() -> None:
    d, ns = setup()
    check = ns.check_login(tok(d, "CORP\\admin", "a"), "root\\nothere")
    assert not check.ok and check.where == "namespace"
    with pytest.raises(ConfigError) as info:
        ns.with_overrides({"root\\nothere": {"Everyone": []}}, d, "B")
    assert info.value.path == ("root\\nothere",)


def test_bad_right_name_has_path() -> None:
    d, ns = setup()
    with pytest.raises(ConfigError) as info:
        ns.with_overrides({"root\\cimv2": {"CORP\\bob": ["remote enable", "remote launch"]}},
                          d, "B")
    assert info.value.path == ("root\\cimv2", "CORP\\bob", 1)


def test_anonymous_and_guest_have_no_access() -> None:
    d, ns = setup()
    anon = d.anonymous_token("B")
    assert ns.check_login(anon, "root\\cimv2").where == "enable_account"


def test_normalize_namespace() -> None:
    assert normalize_namespace("\\\\.\\ROOT\\CIMv2") == "root\\cimv2"
    assert normalize_namespace("root/default/") == "root\\default"

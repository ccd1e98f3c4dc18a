"""Name resolution, local groups, network logon and the callback identity."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from wmilab.errors import ConfigError
from wmilab.model import sids
from wmilab.model.identity import Directory, DomainSpec, HostSpec


def make(
    hosts: Mapping[str, HostSpec] | None = None,
    domains: Mapping[str, DomainSpec] | None = None,
) -> Directory:
    doms = domains if domains is not None else {
        "CORP": DomainSpec("CORP", "corp.example", ("PARTNER",),
                           {"admin": "Adm1n!", "bob": "B0b!"}, {"Domain Admins": ("admin",)}),
        "PARTNER": DomainSpec("PARTNER", "partner.example", (), {"pat": "P4t!"}),
        "OTHER": DomainSpec("OTHER", "other.example", (), {"bob": "0ther!", "olga": "O!"}),
    }
    hs = hosts if hosts is not None else {
        "A": HostSpec("A", "xp-sp2", domain="CORP", accounts={"bob": "L0cal!"}),
        "B": HostSpec("B", "2003-sp1", domain="CORP", accounts={"Administrator": "Lb!",
                                                                "carol": "C4rol!"}),
        "P": HostSpec("P", "xp-sp2", domain="PARTNER"),
        "W": HostSpec("W", "xp-sp2", workgroup="WORKGROUP", accounts={"carol": "C4rol!"}),
        "S": HostSpec("S", "2003-sp1", workgroup="WORKGROUP", accounts={"carol": "C4rol!"}),
    }
    return Directory(doms, hs)


def pw(expected: str) -> object:
    return lambda p: p == expected


def test_resolve_names_case_insensitively() -> None:
    d = make()
    assert d.resolve("corp\\BOB", "B") == d.resolve("CORP\\bob", "A")
    assert d.resolve("Everyone", "B") == sids.EVERYONE
    assert d.resolve("anonymous logon", "B") == sids.ANONYMOUS
    assert d.resolve("NT AUTHORITY\\Authenticated Users", "B") == sids.AUTHENTICATED_USERS
    assert d.resolve("BUILTIN\\Administrators", "B") == sids.BUILTIN_ADMINISTRATORS
    assert d.resolve("Distributed COM Users", "B") == sids.DISTRIBUTED_COM_USERS
    assert d.resolve("Domain Admins", "B") == d.resolve("CORP\\Domain Admins", "A")
    assert d.resolve("Domain Admins", "B").endswith("-512")
    assert d.resolve("B$", "A") == d.resolve("CORP\\B$", "A") == d.machine_account("B")
    assert d.resolve("B\\carol", "A") == d.resolve("carol", "B")
    assert d.resolve("B\\Administrator", "A").endswith("-500")


def test_name_of_round_trips() -> None:
    d = make()
    for name in ("CORP\\bob", "B\\carol", "CORP\\Domain Admins", "CORP\\B$"):
        assert d.name_of(d.resolve(name, "A")).lower() == name.lower()
    assert d.name_of(sids.BUILTIN_ADMINISTRATORS) == "BUILTIN\\Administrators"


@pytest.mark.parametrize(
    ("name", "host", "needle"),
    [
        ("CORP\\nobody", "A", "nobody"),
        ("NOWHERE\\bob", "A", "NOWHERE"),
        ("Distributed COM Users", "A", "2003 SP1"),
        ("BUILTIN\\Distributed COM Users", "A", "2003 SP1"),
        ("Domain Admins", "W", "not in a domain"),
        ("W$", "A", "workgroup"),
        ("zed", "A", "unknown principal"),
    ],
)
def test_resolve_errors(name: str, host: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        make().resolve(name, host)
    assert needle in str(info.value)


def test_directory_errors_carry_paths() -> None:
    with pytest.raises(ConfigError) as info:
        Directory({"CORP": DomainSpec("CORP", trusts=("GHOST",))}, {})
    assert info.value.path == ("domains", "CORP", "trusts", 0)
    with pytest.raises(ConfigError) as info:
        Directory({"CORP": DomainSpec("CORP", groups={"Domain Admins": ("admin", "ghost")},
                                      accounts={"admin": "x"})}, {})
    assert info.value.path == ("domains", "CORP", "groups", "Domain Admins", 1)
    with pytest.raises(ConfigError) as info:
        Directory({}, {"A": HostSpec("A", "xp-sp2", domain="CORP")})
    assert info.value.path == ("hosts", "A", "domain")
    with pytest.raises(ConfigError) as info:
        Directory({}, {"A": HostSpec("A", "xp-sp2", workgroup="W",
                                     groups={"Distributed COM Users": ()})})
    assert info.value.path == ("hosts", "A", "groups", "Distributed COM Users")
    with pytest.raises(ConfigError) as info:
        Directory({}, {"A": HostSpec("A", "xp-sp2", workgroup="W",
                                     groups={"Administrators": ("Everyone", "ghost")})})
    assert info.value.path == ("hosts", "A", "groups", "Administrators", 1)
    with pytest.raises(ConfigError) as info:
        Directory({}, {"A": HostSpec("A", "vista", workgroup="W")})
    assert info.value.path == ("hosts", "A", "os")


def test_trusts_are_two_way_and_not_transitive() -> None:
    d = make({}, {
        "X": DomainSpec("X", trusts=("Y",)),
        "Y": DomainSpec("Y", trusts=("Z",)),
        "Z": DomainSpec("Z"),
    })
    assert d.trusts("X", "X")
    assert d.trusts("X", "Y") and d.trusts("Y", "X")
    assert not d.trusts("X", "Z")


def test_own_domain_account_with_domain_admin_membership() -> None:
    d = make()
    logon = d.network_logon("B", "CORP\\admin", pw("Adm1n!"))
    assert logon.ok and logon.kind == "ok" and logon.token is not None
    t = logon.token
    assert t.name == "CORP\\admin"
    for sid in (sids.EVERYONE, sids.AUTHENTICATED_USERS, sids.NETWORK,
                sids.BUILTIN_ADMINISTRATORS, sids.BUILTIN_USERS):
        assert t.has(sid)
    bob = d.network_logon("B", "CORP\\bob", pw("B0b!")).token
    assert bob is not None and not bob.has(sids.BUILTIN_ADMINISTRATORS)
    assert bob.has(d.resolve("CORP\\Domain Users", "B"))


@pytest.mark.parametrize("domain", ["CORP", "corp", "corp.example", "CORP.Example",
                                    "corp.example."])
def test_dns_and_netbios_domain_names_log_on_alike(domain: str) -> None:
    # The logon domain as NetBIOS or DNS name (docs/choices.md; MS-NLMP 2.2.1.3).
    d = make()
    logon = d.network_logon("B", f"{domain}\\admin", pw("Adm1n!"))
    assert logon.ok and logon.token is not None and logon.token.name == "CORP\\admin"
    assert logon.token.has(sids.BUILTIN_ADMINISTRATORS)
    assert d.find_domain(domain) == "CORP"
    assert d.resolve(f"{domain}\\bob", "B") == d.resolve("CORP\\bob", "B")
    # A trusted domain by its DNS name, and a wrong password, too.
    assert d.network_logon("B", "partner.example\\pat", pw("P4t!")).ok
    assert not d.network_logon("B", f"{domain}\\admin", pw("nope")).ok


def test_an_unknown_dns_name_is_not_a_domain() -> None:
    d = make()
    assert d.find_domain("corp.exampl") is None and d.find_domain("") is None
    # Not a domain: NTLM falls back to a local account of that name (KB 103390).
    mirrored = d.network_logon("B", "corp.invalid\\carol", pw("C4rol!"))
    assert mirrored.ok and mirrored.token is not None and mirrored.token.name == "B\\carol"


def test_trusted_domain_account_is_validated_there() -> None:
    d = make()
    assert d.network_logon("B", "PARTNER\\pat", pw("P4t!")).ok
    assert d.network_logon("P", "CORP\\bob", pw("B0b!")).ok
    assert d.password_for("B", "PARTNER", "pat") == "P4t!"


def test_untrusted_domain_falls_back_to_a_local_account() -> None:
    d = make()
    # OTHER is not trusted by CORP; A has a local "bob" with another password.
    assert d.password_for("A", "OTHER", "bob") == "L0cal!"
    wrong = d.network_logon("A", "OTHER\\bob", pw("0ther!"))
    assert not wrong.ok and wrong.kind == "wrong-password"
    ok = d.network_logon("A", "OTHER\\bob", pw("L0cal!"))
    assert ok.ok and ok.token is not None and ok.token.name == "A\\bob"
    none = d.network_logon("A", "OTHER\\olga", pw("O!"))
    assert not none.ok and none.kind == "untrusted-domain"


def test_local_and_mirrored_local_accounts() -> None:
    d = make()
    local = d.network_logon("B", "B\\carol", pw("C4rol!"))
    assert local.ok and local.token is not None and local.token.name == "B\\carol"
    # S\carol sent to B: NTLM falls back to B's own carol, so the passwords must match.
    mirrored = d.network_logon("B", "S\\carol", pw("C4rol!"))
    assert mirrored.ok and mirrored.token is not None and mirrored.token.name == "B\\carol"
    assert d.network_logon("S", "B\\carol", pw("other")).kind == "wrong-password"
    assert d.network_logon("B", "S\\nobody", pw("x")).kind == "unknown-account"


def test_wrong_password_and_unusable_administrator() -> None:
    d = make()
    assert d.network_logon("B", "CORP\\bob", pw("nope")).kind == "wrong-password"
    assert d.network_logon("B", "CORP\\ghost", pw("x")).kind == "unknown-account"
    assert d.network_logon("A", "A\\Administrator", pw("")).kind == "no-password"


def test_candidates_are_offered_in_windows_order() -> None:
    d = make()
    seen: list[str] = []
    d.network_logon("B", "carol", lambda p: seen.append(p) or False)  # no domain: local first
    assert seen == ["C4rol!"]


def test_force_guest_on_xp_workgroup_maps_to_disabled_guest() -> None:
    d = make()
    assert d.force_guest("W") and not d.force_guest("S") and not d.force_guest("A")
    logon = d.network_logon("W", "W\\carol", pw("C4rol!"))
    assert not logon.ok and logon.kind == "guest" and "Guest" in logon.reason
    # Server 2003 in a workgroup uses the Classic model.
    assert d.network_logon("S", "S\\carol", pw("C4rol!")).ok


def test_force_guest_with_enabled_guest_yields_guest_token() -> None:
    d = make({"W": HostSpec("W", "xp-sp2", workgroup="WG", accounts={"carol": "C", "Guest": ""})},
             {})
    logon = d.network_logon("W", "W\\carol", pw("C"))
    assert logon.ok and logon.kind == "guest" and logon.token is not None
    t = logon.token
    assert t.guest and t.has(sids.EVERYONE) and t.has(sids.BUILTIN_GUESTS)
    assert not t.has(sids.AUTHENTICATED_USERS) and not t.has(sids.BUILTIN_ADMINISTRATORS)


def test_sharing_model_override() -> None:
    d = make({"W": HostSpec("W", "xp-sp2", workgroup="WG", accounts={"carol": "C"},
                            force_guest=False),
              "S": HostSpec("S", "2003-sp1", workgroup="WG", accounts={"carol": "C"},
                            force_guest=True)}, {})
    assert d.network_logon("W", "W\\carol", pw("C")).ok
    assert d.network_logon("S", "S\\carol", pw("C")).kind == "guest"


def test_group_overrides_replace_members() -> None:
    d = make({"B": HostSpec("B", "2003-sp1", domain="CORP",
                            groups={"Administrators": ("CORP\\bob",),
                                    "Distributed COM Users": ("CORP\\bob",)})})
    bob = d.network_logon("B", "CORP\\bob", pw("B0b!")).token
    admin = d.network_logon("B", "CORP\\admin", pw("Adm1n!")).token
    assert bob is not None and admin is not None
    assert bob.has(sids.BUILTIN_ADMINISTRATORS) and bob.has(sids.DISTRIBUTED_COM_USERS)
    assert not admin.has(sids.BUILTIN_ADMINISTRATORS)  # Domain Admins no longer listed


def test_callback_identity() -> None:
    d = make()
    same = d.callback_token("B", "A")
    assert not same.anonymous and same.name == "CORP\\B$"
    assert same.has(d.resolve("CORP\\Domain Computers", "A"))
    assert same.has(sids.AUTHENTICATED_USERS)
    trusted = d.callback_token("P", "A")
    assert trusted.name == "PARTNER\\P$"
    for server in ("W", "S"):
        anon = d.callback_token(server, "A")
        assert anon.anonymous and anon.user == sids.ANONYMOUS
        # XP/2003: Everyone does not include ANONYMOUS LOGON (KB 278259).
        assert not anon.has(sids.EVERYONE) and not anon.has(sids.AUTHENTICATED_USERS)
    # A workgroup client cannot trust anybody: B calls back anonymously.
    assert d.callback_token("B", "W").anonymous


def test_untrusted_domain_callback_is_anonymous() -> None:
    d = make({"A": HostSpec("A", "xp-sp2", domain="CORP"),
              "O": HostSpec("O", "2003-sp1", domain="OTHER")})
    assert d.callback_token("O", "A").anonymous


def test_everyone_includes_anonymous_option() -> None:
    d = make({"A": HostSpec("A", "xp-sp2", domain="CORP", everyone_includes_anonymous=True),
              "W": HostSpec("W", "xp-sp2", workgroup="WG")})
    assert d.callback_token("W", "A").has(sids.EVERYONE)


def test_null_session() -> None:
    logon = make().network_logon("B", "", pw(""))
    assert logon.ok and logon.token is not None and logon.token.anonymous

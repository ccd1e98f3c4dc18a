"""Parsing Group Policy settings from a scenario's policy table."""

from __future__ import annotations

import pytest

from wmilab.errors import ConfigError
from wmilab.model import policy as gp
from wmilab.model.addresses import Scope
from wmilab.model.firewall import Profile, Service

DOM, STD = Profile.DOMAIN, Profile.STANDARD
RA_KEY = ("Network/Network Connections/Windows Firewall/Domain Profile/"
          "Windows Firewall: Allow remote administration exception")


def parse(setting: str, value: object, profile: Profile = DOM) -> gp.ProfilePolicy:
    return gp.parse_policies({gp.policy_key(profile, setting): value}).firewall.profile(profile)


def test_policy_key_is_the_documented_path() -> None:
    assert gp.policy_key(DOM, gp.REMOTE_ADMIN) == RA_KEY
    assert gp.policy_key(STD, gp.DEFINE_PORTS).startswith(
        "Network/Network Connections/Windows Firewall/Standard Profile/")


def test_keys_match_case_insensitively_with_backslashes() -> None:
    key = RA_KEY.replace("/", "\\").upper()
    p = gp.parse_policies({key: {"state": "enabled", "addresses": "10.0.0.1"}})
    sp = p.firewall.domain.service(Service.REMOTEADMIN)
    assert sp.state is True and sp.scope == Scope.custom("10.0.0.1")
    assert p.firewall.standard.service(Service.REMOTEADMIN).state is None


def test_unknown_key_names_the_closest_known_key() -> None:
    bad = RA_KEY.replace("remote administration", "remote admin")
    with pytest.raises(ConfigError, match="Allow remote administration exception") as e:
        gp.parse_policies({bad: {"state": "Enabled"}})
    assert e.value.path == (bad,)


def test_duplicate_key_in_two_spellings_is_rejected() -> None:
    with pytest.raises(ConfigError, match="also given"):
        gp.parse_policies({RA_KEY: {"state": "Enabled"},
                           RA_KEY.upper(): {"state": "Disabled"}})


@pytest.mark.parametrize("setting", gp.FIREWALL_SETTINGS)
@pytest.mark.parametrize(("state", "expected"), [
    ("Enabled", True), ("Disabled", False), ("Not Configured", None)])
def test_every_setting_has_three_states(setting: str, state: str, expected: bool | None) -> None:
    pp = parse(setting, {"state": state})
    value = {
        gp.PROTECT_ALL: pp.protect_all, gp.NO_EXCEPTIONS: pp.no_exceptions,
        gp.DEFINE_PROGRAMS: pp.define_programs, gp.LOCAL_PROGRAMS: pp.allow_local_programs,
        gp.ICMP: pp.icmp, gp.PROHIBIT_NOTIFICATIONS: pp.prohibit_notifications,
        gp.LOGGING: pp.logging, gp.PROHIBIT_UNICAST: pp.prohibit_unicast,
        gp.DEFINE_PORTS: pp.define_ports, gp.LOCAL_PORTS: pp.allow_local_ports,
    }.get(setting)
    if setting in gp.SERVICE_SETTINGS:
        value = pp.service(gp.SERVICE_SETTINGS[setting]).state
    assert value is expected
    # The other profile is untouched.
    other = gp.parse_policies({gp.policy_key(DOM, setting): {"state": state}}).firewall.standard
    assert not other.configured


def test_bad_state_and_shape() -> None:
    with pytest.raises(ConfigError, match="Enabled, Disabled or Not Configured") as e:
        parse(gp.PROTECT_ALL, {"state": "On"})
    assert e.value.path[-1] == "state"
    with pytest.raises(ConfigError, match="missing 'state'"):
        parse(gp.PROTECT_ALL, {})
    with pytest.raises(ConfigError, match="table"):
        parse(gp.PROTECT_ALL, "Enabled")


def test_unknown_option_is_named() -> None:
    with pytest.raises(ConfigError, match="did you mean 'addresses'") as e:
        parse(gp.REMOTE_ADMIN, {"state": "Enabled", "adresses": "*"})
    assert e.value.path[-1] == "adresses"
    with pytest.raises(ConfigError, match="no options"):
        parse(gp.NO_EXCEPTIONS, {"state": "Enabled", "addresses": "*"})


def test_service_addresses() -> None:
    sp = parse(gp.FILE_AND_PRINT, {"state": "Enabled", "addresses": "*"}).service(
        Service.FILEANDPRINT)
    assert sp.scope == Scope.all()
    # Choice: no addresses means localsubnet.
    sp = parse(gp.UPNP, {"state": "Enabled"}).service(Service.UPNP)
    assert sp.scope == Scope.subnet()
    with pytest.raises(ConfigError, match="300") as e:
        parse(gp.REMOTE_DESKTOP, {"state": "Enabled", "addresses": "10.0.0.300"})
    assert e.value.path[-1] == "addresses"


def test_program_entries() -> None:
    pp = parse(gp.DEFINE_PROGRAMS, {"state": "Enabled", "programs": [
        r"%windir%\system32\wbem\unsecapp.exe:*:Enabled:UNSECAPP",
        r"C:\Apps\sink.exe:LocalSubnet,10.0.0.1:Disabled:My Sink"]})
    a, b = pp.programs
    assert a.program == r"c:\windows\system32\wbem\unsecapp.exe" and a.enabled
    assert a.scope == Scope.all() and a.name == "UNSECAPP"
    assert b.path == r"C:\Apps\sink.exe" and not b.enabled and b.name == "My Sink"
    assert b.scope.policy_text() == "LocalSubnet,10.0.0.1"
    assert gp.parse_program_entry(b.text()) == b


@pytest.mark.parametrize(("entry", "fragment"), [
    ("sink.exe:*:Enabled", "path:scope"),
    (r"C:\a.exe:*:Maybe:x", "Enabled or Disabled"),
    (r"C:\a.exe:10.0.0.0/99:Enabled:x", "prefix"),
])
def test_bad_program_entries(entry: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as e:
        parse(gp.DEFINE_PROGRAMS, {"state": "Enabled", "programs": ["x.exe:*:Enabled:x", entry]})
    assert e.value.path[-2:] == ("programs", 1)


def test_port_entries() -> None:
    pp = parse(gp.DEFINE_PORTS, {"state": "Enabled", "ports": [
        "135:TCP:*:Enabled:DCOM", "8080:udp:localsubnet:Disabled:x"]})
    a, b = pp.ports
    assert (a.port, a.protocol, a.scope, a.enabled) == (135, "TCP", Scope.all(), True)
    assert (b.protocol, b.scope, b.enabled) == ("UDP", Scope.subnet(), False)
    assert gp.parse_port_entry(a.text()) == a


@pytest.mark.parametrize(("entry", "fragment"), [
    ("0:TCP:*:Enabled:x", "1-65535"),
    ("70000:TCP:*:Enabled:x", "1-65535"),
    ("135:ICMP:*:Enabled:x", "TCP or UDP"),
    ("135:TCP:*:Enabled", "port:TCP"),
])
def test_bad_port_entries(entry: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse(gp.DEFINE_PORTS, {"state": "Enabled", "ports": [entry]})


def test_disabled_list_setting_drops_its_entries() -> None:
    pp = parse(gp.DEFINE_PORTS, {"state": "Disabled", "ports": ["135:TCP:*:Enabled:x"]})
    assert pp.define_ports is False and pp.ports == ()


def test_icmp_options() -> None:
    pp = parse(gp.ICMP, {"state": "Enabled", "inbound_echo_request": True,
                         "redirect": False})
    assert pp.icmp_types == frozenset({8})
    with pytest.raises(ConfigError, match="true or false"):
        parse(gp.ICMP, {"state": "Enabled", "inbound_echo_request": "yes"})


def test_logging_options() -> None:
    pp = parse(gp.LOGGING, {"state": "Enabled", "log_successful_connections": True,
                            "max_size_kb": 1024})
    assert pp.logging_options.connections and pp.logging_options.max_kb == 1024
    with pytest.raises(ConfigError, match="1-32767"):
        parse(gp.LOGGING, {"state": "Enabled", "max_size_kb": 40000})


def test_security_options() -> None:
    p = gp.parse_policies({
        gp.DCOM_ACCESS: {"state": "Enabled", "sddl": "O:BAG:BAD:(A;;CCDCLC;;;WD)"},
        gp.DCOM_LAUNCH.lower(): {"state": "Not Configured"},
        gp.SHARING_MODEL: {"state": "Enabled",
                           "model": "Guest only - local users authenticate as Guest"},
    })
    assert p.dcom_access_sddl == "O:BAG:BAD:(A;;CCDCLC;;;WD)"
    assert p.dcom_launch_sddl is None
    assert p.sharing_model == "guest"
    p2 = gp.parse_policies({gp.SHARING_MODEL: {"state": "Enabled", "model": "Classic"}})
    assert p2.sharing_model == "classic"
    assert gp.parse_policies({}).sharing_model is None


@pytest.mark.parametrize(("key", "value", "fragment"), [
    (gp.DCOM_ACCESS, {"state": "Enabled"}, "sddl"),
    (gp.DCOM_LAUNCH, {"state": "Disabled", "sddl": "O:BA"}, "Not Configured"),
    (gp.SHARING_MODEL, {"state": "Enabled", "model": "Simple"}, "Guest only"),
    (gp.SHARING_MODEL, {"state": "Enabled"}, "missing model"),
])
def test_bad_security_options(key: str, value: object, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        gp.parse_policies({key: value})


def test_empty_policy() -> None:
    e = gp.FirewallPolicy.empty()
    assert not e.domain.configured and not e.standard.configured
    assert e.profile(STD).service(Service.REMOTEADMIN).state is None

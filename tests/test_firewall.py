"""The firewall decision: defaults, services, programs, ports, profiles and GP precedence."""

from __future__ import annotations

from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network

import pytest

from wmilab.errors import ConfigError
from wmilab.model import firewall as fw
from wmilab.model import policy as gp
from wmilab.model.netsh import NetshEnv, run

SUBNET = IPv4Network("192.168.10.0/24")
NEAR = IPv4Address("192.168.10.1")
FAR = IPv4Address("10.9.9.9")
DOM = fw.Profile.DOMAIN
STD = fw.Profile.STANDARD
APP = fw.normalize_program(r"C:\Apps\sink.exe")


def host(os: str = "xp-sp2", *commands: str, profile: fw.Profile = DOM) -> fw.LocalFirewall:
    f = fw.LocalFirewall.defaults(os, profile)
    for c in commands:
        run(f, c, NetshEnv(os, "B"))
    return f


def pol(profile: fw.Profile = DOM, **settings: Mapping[str, object]) -> gp.FirewallPolicy:
    names = {k: getattr(gp, k) for k in settings}
    return gp.parse_policies(
        {gp.policy_key(profile, names[k]): v for k, v in settings.items()}).firewall


def decide(f: fw.LocalFirewall, port: int, program: str = fw.SVCHOST,
           policy: gp.FirewallPolicy | None = None, source: IPv4Address = NEAR,
           profile: fw.Profile | None = None, protocol: str = "TCP") -> fw.FirewallDecision:
    eff = fw.effective(f, policy or gp.FirewallPolicy.empty(), profile or f.current)
    return eff.decide(fw.Inbound(source, port, program, protocol), SUBNET)


# ---- normalize_program -------------------------------------------------------------------

@pytest.mark.parametrize("typed", [
    r"%windir%\system32\svchost.exe", r"%SystemRoot%\System32\SVCHOST.EXE",
    r"C:/WINDOWS/system32/svchost.exe", r'"C:\WINDOWS\\system32\svchost.exe"',
    r"%SYSTEMDRIVE%\windows\system32\svchost.exe",
])
def test_normalize_program(typed: str) -> None:
    assert fw.normalize_program(typed) == r"c:\windows\system32\svchost.exe" == fw.SVCHOST


def test_normalize_programfiles_and_windir() -> None:
    assert fw.normalize_program(r"%ProgramFiles%\a.exe", r"D:\WINNT") == r"d:\program files\a.exe"
    assert fw.normalize_program(r"%windir%\x.exe", r"D:\WINNT") == r"d:\winnt\x.exe"
    assert fw.UNSECAPP == r"c:\windows\system32\wbem\unsecapp.exe"
    assert fw.LSASS == r"c:\windows\system32\lsass.exe"


# ---- defaults ----------------------------------------------------------------------------

def test_xp_sp2_defaults_drop_tcp_135() -> None:
    v = decide(host("xp-sp2"), 135)
    assert not v.allowed and v.origin == "none"
    assert "no exception of the domain profile allows TCP 135" in v.rule


def test_2003_sp1_defaults_allow_tcp_135_because_firewall_is_off() -> None:
    v = decide(host("2003-sp1"), 135)
    assert v.allowed and v.origin == "off"


def test_unknown_os_is_an_error() -> None:
    with pytest.raises(ConfigError, match="xp-sp2"):
        fw.LocalFirewall.defaults("vista", DOM)


def test_defaults_have_no_service_enabled_and_no_icmp() -> None:
    for os in fw.SUPPORTED_OS:
        f = fw.LocalFirewall.defaults(os, DOM)
        for ps in f.profiles.values():
            assert not any(s.enabled for s in ps.services.values())
            assert not any(ps.icmp.values())
    assert not decide(host("xp-sp2"), 8, protocol="ICMP").allowed


def test_copy_is_deep() -> None:
    f = host()
    g = f.copy()
    run(g, "firewall add portopening TCP 135 X", NetshEnv("xp-sp2", "B"))
    assert (("TCP", 135)) not in f.profiles[DOM].ports
    assert not decide(f, 135).allowed and decide(g, 135).allowed


# ---- services -----------------------------------------------------------------------------

def test_remoteadmin_opens_135_445_and_svchost_lsass_dynamic_ports() -> None:
    f = host("xp-sp2", "netsh firewall set service RemoteAdmin enable")
    assert decide(f, 135).allowed
    assert decide(f, 445, program="system").allowed
    assert decide(f, 1025, program=fw.SVCHOST).allowed
    assert decide(f, 1031, program=fw.LSASS).allowed
    v = decide(f, 1032, program=fw.UNSECAPP)
    assert not v.allowed and "unsecapp.exe" in v.rule


def test_port_opening_135_does_not_open_svchost_dynamic_port() -> None:
    f = host("xp-sp2", "netsh firewall add portopening protocol=tcp port=135 name=DCOM_TCP135")
    assert decide(f, 135).allowed
    assert not decide(f, 1025, program=fw.SVCHOST).allowed


@pytest.mark.parametrize(("service", "opened", "closed"), [
    ("FILEANDPRINT", [("TCP", 139), ("TCP", 445), ("UDP", 137), ("UDP", 138)], [("TCP", 135)]),
    ("REMOTEDESKTOP", [("TCP", 3389)], [("TCP", 445)]),
    ("UPNP", [("TCP", 2869), ("UDP", 1900)], [("TCP", 3389)]),
])
def test_service_ports(service: str, opened: list[tuple[str, int]],
                       closed: list[tuple[str, int]]) -> None:
    f = host("xp-sp2", f"firewall set service {service} enable scope=ALL")
    for proto, port in opened:
        assert decide(f, port, program="x", protocol=proto, source=FAR).allowed
    for proto, port in closed:
        assert not decide(f, port, program="x", protocol=proto).allowed
    assert not decide(f, 1025, program=fw.SVCHOST).allowed


def test_fileandprint_default_scope_is_subnet() -> None:
    f = host("xp-sp2", "firewall set service FILEANDPRINT enable")
    assert decide(f, 445, program="system").allowed
    v = decide(f, 445, program="system", source=FAR)
    assert not v.allowed and "10.9.9.9 is outside" in v.rule


def test_program_exception_opens_only_that_programs_ports() -> None:
    f = host("xp-sp2", r'firewall add allowedprogram "C:\Apps\sink.exe" Sink')
    assert decide(f, 5000, program=APP).allowed
    assert not decide(f, 5000, program=fw.SVCHOST).allowed


def test_disabled_entries_explain_themselves() -> None:
    f = host("xp-sp2", "firewall add portopening TCP 135 DCOM DISABLE")
    v = decide(f, 135)
    assert not v.allowed and v.origin == "local" and "disabled" in v.rule


def test_profile_specific_exceptions_do_not_apply_in_the_other_profile() -> None:
    f = host("xp-sp2", "firewall set service REMOTEADMIN ENABLE profile=STANDARD")
    assert decide(f, 135, profile=STD).allowed
    assert not decide(f, 135, profile=DOM).allowed
    g = host("xp-sp2", "firewall add portopening TCP 135 X profile=DOMAIN", profile=STD)
    assert not decide(g, 135).allowed
    assert decide(g, 135, profile=DOM).allowed


def test_no_exceptions_mode_blocks_everything() -> None:
    f = host("xp-sp2", "firewall set service remoteadmin enable",
             "firewall set opmode mode=ENABLE exceptions=DISABLE")
    v = decide(f, 135)
    assert not v.allowed and v.origin == "local" and "Don't allow exceptions" in v.rule


def test_reset_turns_firewall_on_with_defaults() -> None:
    f = host("2003-sp1", "firewall set service remoteadmin enable")
    assert decide(f, 9999, program="x").allowed  # off
    run(f, "netsh firewall reset", NetshEnv("2003-sp1", "B"))
    assert not decide(f, 135).allowed
    assert not decide(f, 9999, program="x").allowed
    assert all(ps.opmode_enabled for ps in f.profiles.values())


def test_icmp_echo_follows_setting_and_port_445() -> None:
    f = host("xp-sp2", "firewall set icmpsetting 8")
    assert decide(f, 8, protocol="ICMP", program="").allowed
    g = host("xp-sp2", "firewall set service fileandprint enable")
    assert decide(g, 8, protocol="ICMP", program="").allowed
    assert not decide(g, 8, protocol="ICMP", program="", source=FAR).allowed
    assert not decide(g, 13, protocol="ICMP", program="").allowed


# ---- Group Policy precedence -----------------------------------------------------------

def test_gp_protect_all_network_connections() -> None:
    on = pol(PROTECT_ALL={"state": "Enabled"})
    off = pol(PROTECT_ALL={"state": "Disabled"})
    nc = pol(PROTECT_ALL={"state": "Not Configured"})
    assert not decide(host("2003-sp1"), 135, policy=on).allowed
    v = decide(host("xp-sp2"), 135, policy=off)
    assert v.allowed and v.origin == "off" and "Group Policy" in v.rule
    assert decide(host("2003-sp1"), 135, policy=nc).allowed
    assert not decide(host("xp-sp2"), 135, policy=nc).allowed


def test_gp_do_not_allow_exceptions_overrides_local_and_policy_exceptions() -> None:
    f = host("xp-sp2", "firewall set service remoteadmin enable",
             "firewall add portopening TCP 135 DCOM")
    p = pol(NO_EXCEPTIONS={"state": "Enabled"},
            REMOTE_ADMIN={"state": "Enabled", "addresses": "*"})
    v = decide(f, 135, policy=p)
    assert not v.allowed and v.origin == "policy"
    # Disabled clears a local "Don't allow exceptions".
    g = host("xp-sp2", "firewall add portopening TCP 135 DCOM",
             "firewall set opmode enable disable")
    assert not decide(g, 135).allowed
    assert decide(g, 135, policy=pol(NO_EXCEPTIONS={"state": "Disabled"})).allowed
    assert not decide(g, 135, policy=pol(NO_EXCEPTIONS={"state": "Not Configured"})).allowed


def test_gp_remoteadmin_disabled_beats_netsh_enable() -> None:
    f = host("xp-sp2", "netsh firewall set service RemoteAdmin enable")
    p = pol(REMOTE_ADMIN={"state": "Disabled"})
    v = decide(f, 135, policy=p)
    assert not v.allowed
    assert not decide(f, 1025, policy=p).allowed
    eff = fw.effective(f, p, DOM)
    assert eff.service_forced(fw.Service.REMOTEADMIN)
    assert not eff.services[fw.Service.REMOTEADMIN].enabled


def test_gp_remoteadmin_disabled_voids_local_svchost_program_exception() -> None:
    f = host("xp-sp2", r"firewall add allowedprogram %windir%\system32\svchost.exe svchost")
    assert decide(f, 1025).allowed
    v = decide(f, 1025, policy=pol(REMOTE_ADMIN={"state": "Disabled"}))
    assert not v.allowed and v.origin == "policy"


def test_gp_remoteadmin_enabled_forces_open_to_its_addresses() -> None:
    f = host("xp-sp2")
    p = pol(REMOTE_ADMIN={"state": "Enabled", "addresses": "10.0.0.0/8"})
    v = decide(f, 135, policy=p, source=FAR)
    assert v.allowed and v.origin == "policy"
    assert not decide(f, 135, policy=p, source=NEAR).allowed
    assert decide(f, 1030, program=fw.LSASS, policy=p, source=FAR).allowed
    # Not Configured leaves it to netsh.
    assert not decide(f, 135, policy=pol(REMOTE_ADMIN={"state": "Not Configured"})).allowed


def test_gp_remoteadmin_disabled_does_not_block_445_of_file_sharing() -> None:
    f = host("xp-sp2", "firewall set service fileandprint enable")
    assert decide(f, 445, program="system", policy=pol(REMOTE_ADMIN={"state": "Disabled"})).allowed


def test_gp_service_disabled_blocks_local_port_openings_of_its_ports() -> None:
    f = host("xp-sp2", "firewall add portopening TCP 3389 RDP")
    assert decide(f, 3389, program="x").allowed
    v = decide(f, 3389, program="x", policy=pol(REMOTE_DESKTOP={"state": "Disabled"}))
    assert not v.allowed and "Remote Desktop" in v.rule
    g = host("xp-sp2", "firewall add portopening TCP 445 SMB")
    assert not decide(g, 445, program="x",
                      policy=pol(FILE_AND_PRINT={"state": "Disabled"})).allowed
    h = host("xp-sp2", "firewall add portopening UDP 1900 SSDP")
    assert not decide(h, 1900, program="x", protocol="UDP",
                      policy=pol(UPNP={"state": "Disabled"})).allowed


def test_gp_program_list_hides_local_list_unless_local_exceptions_allowed() -> None:
    f = host("xp-sp2", r"firewall add allowedprogram %windir%\system32\wbem\unsecapp.exe UNSECAPP")
    entries = [r"C:\Apps\sink.exe:*:Enabled:Sink"]
    defined = {"state": "Enabled", "programs": entries}
    p = pol(DEFINE_PROGRAMS=defined)
    v = decide(f, 1030, program=fw.UNSECAPP, policy=p)
    assert not v.allowed and v.origin == "policy" and "ignored" in v.rule
    assert decide(f, 1030, program=APP, policy=p).allowed
    both = pol(DEFINE_PROGRAMS=defined, LOCAL_PROGRAMS={"state": "Enabled"})
    assert decide(f, 1030, program=fw.UNSECAPP, policy=both).allowed
    # Define Disabled deletes the GP list and still hides the local list...
    off = pol(DEFINE_PROGRAMS={"state": "Disabled", "programs": entries})
    assert not decide(f, 1030, program=fw.UNSECAPP, policy=off).allowed
    assert not decide(f, 1030, program=APP, policy=off).allowed
    # ...and "Allow local program exceptions" Disabled hides it on its own.
    assert not decide(f, 1030, program=fw.UNSECAPP,
                      policy=pol(LOCAL_PROGRAMS={"state": "Disabled"})).allowed
    assert decide(f, 1030, program=fw.UNSECAPP,
                  policy=pol(LOCAL_PROGRAMS={"state": "Not Configured"})).allowed


def test_gp_disabled_program_entry_overrides_enabled_ones_and_local() -> None:
    f = host("xp-sp2", r'firewall add allowedprogram "C:\Apps\sink.exe" Sink')
    p = pol(DEFINE_PROGRAMS={"state": "Enabled", "programs": [
        r"C:\Apps\sink.exe:*:Enabled:Sink", r"C:\Apps\sink.exe:*:Disabled:Sink"]},
        LOCAL_PROGRAMS={"state": "Enabled"})
    v = decide(f, 5000, program=APP, policy=p)
    assert not v.allowed and "Disabled" in v.rule


def test_gp_entries_for_one_program_combine_scopes() -> None:
    p = pol(DEFINE_PROGRAMS={"state": "Enabled", "programs": [
        r"C:\Apps\sink.exe:10.0.0.0/8:Enabled:Sink", r"C:\Apps\sink.exe:localsubnet:Enabled:S"]})
    f = host("xp-sp2")
    assert decide(f, 5000, program=APP, policy=p, source=FAR).allowed
    assert decide(f, 5000, program=APP, policy=p, source=NEAR).allowed
    assert not decide(f, 5000, program=APP, policy=p, source=IPv4Address("8.8.8.8")).allowed


def test_gp_port_list_pair() -> None:
    f = host("xp-sp2", "firewall add portopening TCP 135 DCOM")
    p = pol(DEFINE_PORTS={"state": "Enabled", "ports": ["24158:TCP:*:Enabled:WMIFixedPort"]})
    assert decide(f, 24158, program="x", policy=p).allowed
    v = decide(f, 135, policy=p)
    assert not v.allowed and "local port opening DCOM is ignored" in v.rule
    both = pol(DEFINE_PORTS={"state": "Enabled", "ports": ["24158:TCP:*:Enabled:W"]},
               LOCAL_PORTS={"state": "Enabled"})
    assert decide(f, 135, policy=both).allowed
    assert decide(f, 135, policy=pol(DEFINE_PORTS={"state": "Not Configured"})).allowed
    assert not decide(f, 135, policy=pol(DEFINE_PORTS={"state": "Disabled"})).allowed
    assert not decide(f, 135, policy=pol(LOCAL_PORTS={"state": "Disabled"})).allowed
    dis = pol(DEFINE_PORTS={"state": "Enabled", "ports": ["135:TCP:*:Disabled:no"]},
              LOCAL_PORTS={"state": "Enabled"})
    assert not decide(f, 135, policy=dis).allowed


def test_gp_port_445_allows_echo_even_if_icmp_blocked() -> None:
    p = pol(ICMP={"state": "Disabled"},
            DEFINE_PORTS={"state": "Enabled", "ports": ["445:TCP:*:Enabled:SMB"]})
    assert decide(host(), 8, protocol="ICMP", program="", policy=p).allowed
    q = pol(ICMP={"state": "Enabled", "inbound_echo_request": True})
    assert decide(host(), 8, protocol="ICMP", program="", policy=q).allowed
    r = pol(ICMP={"state": "Disabled"})
    assert not decide(host("xp-sp2", "firewall set icmpsetting 8"), 8, protocol="ICMP",
                      program="", policy=r).allowed


def test_gp_applies_only_to_its_profile() -> None:
    f = host("xp-sp2", "firewall set service remoteadmin enable profile=ALL")
    p = pol(STD, REMOTE_ADMIN={"state": "Disabled"})
    assert decide(f, 135, policy=p, profile=DOM).allowed
    assert not decide(f, 135, policy=p, profile=STD).allowed


def test_effective_reports_origins_for_remedies() -> None:
    f = host("xp-sp2", "firewall add portopening TCP 135 DCOM")
    eff = fw.effective(f, pol(NO_EXCEPTIONS={"state": "Enabled"}), DOM)
    assert not eff.exceptions_allowed and eff.exceptions_origin == "policy"
    assert eff.enabled_origin == "local"
    assert [(p.port, p.origin) for p in eff.ports] == [(135, "local")]
    assert eff.local_programs_honoured and eff.local_ports_honoured


def test_gp_notifications_multicast_logging() -> None:
    p = pol(PROHIBIT_NOTIFICATIONS={"state": "Enabled"}, PROHIBIT_UNICAST={"state": "Enabled"},
            LOGGING={"state": "Enabled", "log_dropped_packets": True})
    eff = fw.effective(host(), p, DOM)
    assert not eff.notifications and not eff.multicast_response
    assert eff.logging.dropped and not eff.logging.connections
    eff2 = fw.effective(host("xp-sp2", "firewall set logging droppedpackets=enable"),
                        pol(LOGGING={"state": "Disabled"}), DOM)
    assert not eff2.logging.dropped and eff2.logging_origin == "policy"

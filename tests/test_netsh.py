"""The netsh firewall context: every command, its defaults, its errors and show output."""

from __future__ import annotations

import pytest

from wmilab.model import firewall as fw
from wmilab.model import policy as gp
from wmilab.model.addresses import Scope
from wmilab.model.netsh import NetshEnv, NetshError, run, tokenize

ENV = NetshEnv("xp-sp2", "B")
DOM, STD = fw.Profile.DOMAIN, fw.Profile.STANDARD
UNSECAPP_CMD = (r"netsh firewall add allowedprogram "
                r"program=%windir%\system32\wbem\unsecapp.exe name=UNSECAPP")


def new(os: str = "xp-sp2", current: fw.Profile = DOM) -> fw.LocalFirewall:
    return fw.LocalFirewall.defaults(os, current)


def ok(f: fw.LocalFirewall, command: str) -> None:
    assert run(f, command, ENV) == "Ok."


def test_tokenize_quotes_and_backslashes() -> None:
    assert tokenize(r'add allowedprogram "C:\Program Files\a b\x.exe" name="My App"') == [
        "add", "allowedprogram", r"C:\Program Files\a b\x.exe", "name=My App"]
    with pytest.raises(NetshError, match="quote"):
        tokenize('add "x')


# ---- allowedprogram ----------------------------------------------------------------------

def test_add_allowedprogram_seed_command_and_defaults() -> None:
    f = new()
    ok(f, UNSECAPP_CMD)
    ap = f.profiles[DOM].programs[fw.UNSECAPP]
    assert (ap.name, ap.enabled, ap.scope) == ("UNSECAPP", True, Scope.all())
    assert ap.path == r"%windir%\system32\wbem\unsecapp.exe"
    assert fw.UNSECAPP not in f.profiles[STD].programs  # profile CURRENT by default


def test_add_allowedprogram_positional_with_custom_scope_and_profile() -> None:
    f = new()
    ok(f, r"FIREWALL ADD ALLOWEDPROGRAM C:\a.exe A DISABLE CUSTOM 10.0.0.1,LocalSubnet ALL")
    for p in fw.Profile:
        ap = f.profiles[p].programs[r"c:\a.exe"]
        assert not ap.enabled and ap.scope.policy_text() == "10.0.0.1,LocalSubnet"


def test_set_and_delete_allowedprogram() -> None:
    f = new()
    ok(f, UNSECAPP_CMD)
    ok(f, r"firewall set allowedprogram %WINDIR%\System32\Wbem\UNSECAPP.EXE mode=DISABLE")
    ap = f.profiles[DOM].programs[fw.UNSECAPP]
    assert not ap.enabled and ap.name == "UNSECAPP"
    ok(f, r"firewall set allowedprogram program=%windir%\system32\wbem\unsecapp.exe scope=SUBNET")
    assert f.profiles[DOM].programs[fw.UNSECAPP].scope == Scope.subnet()
    ok(f, r"firewall delete allowedprogram c:\windows\system32\wbem\unsecapp.exe")
    assert fw.UNSECAPP not in f.profiles[DOM].programs


@pytest.mark.parametrize(("command", "fragment"), [
    (r"firewall add allowedprogram C:\a.exe", "essential parameters.*name"),
    ("firewall add allowedprogram", "essential parameters.*program"),
    (r"firewall add allowedprogram C:\a.exe A mode=MAYBE", "'MAYBE' is not an acceptable value "
     "for mode"),
    (r"firewall add allowedprogram C:\a.exe A addresses=10.0.0.1", "scope.*CUSTOM"),
    (r"firewall add allowedprogram C:\a.exe A scope=ALL addresses=10.0.0.1", "CUSTOM"),
    (r"firewall add allowedprogram C:\a.exe A scope=CUSTOM", "addresses"),
    (r"firewall add allowedprogram C:\a.exe A scope=CUSTOM addresses=10.0.0.999",
     "acceptable value for addresses"),
    (r"firewall add allowedprogram C:\a.exe A scope=EVERY", "acceptable value for scope"),
    (r"firewall add allowedprogram C:\a.exe A profile=PUBLIC", "acceptable value for profile"),
    (r"firewall add allowedprogram C:\a.exe A color=red", "'color=red' is not a valid argument"),
    (r"firewall add allowedprogram C:\a.exe A ENABLE CUSTOM 10.0.0.1 ALL extra",
     "not a valid argument"),
    (r"firewall add allowedprogram C:\a.exe name=A name=B", "twice"),
    (r"firewall delete allowedprogram C:\nothere.exe", "cannot find"),
    (r"firewall set allowedprogram C:\nothere.exe mode=ENABLE", "cannot find"),
])
def test_allowedprogram_errors(command: str, fragment: str) -> None:
    f = new()
    before = f.copy()
    with pytest.raises(NetshError, match=fragment):
        run(f, command, ENV)
    assert f == before


# ---- portopening -------------------------------------------------------------------------

def test_add_portopening_seed_and_fixed_port_examples() -> None:
    f = new()
    ok(f, "netsh firewall add portopening protocol=tcp port=135 name=DCOM_TCP135")
    ok(f, "netsh firewall add portopening TCP 24158 WMIFixedPort")
    assert f.profiles[DOM].ports[("TCP", 135)].name == "DCOM_TCP135"
    assert f.profiles[DOM].ports[("TCP", 24158)].scope == Scope.all()


def test_portopening_protocol_all_and_set_delete() -> None:
    f = new()
    ok(f, "firewall add portopening ALL 5000 Both profile=STANDARD")
    assert set(f.profiles[STD].ports) == {("TCP", 5000), ("UDP", 5000)}
    ok(f, "firewall set portopening UDP 5000 mode=DISABLE profile=STANDARD")
    assert not f.profiles[STD].ports[("UDP", 5000)].enabled
    assert f.profiles[STD].ports[("TCP", 5000)].enabled
    ok(f, "firewall delete portopening protocol=ALL port=5000 profile=STANDARD")
    assert f.profiles[STD].ports == {}


@pytest.mark.parametrize(("command", "fragment"), [
    ("firewall add portopening TCP 0 X", "'0' is not an acceptable value for port"),
    ("firewall add portopening TCP 70000 X", "'70000' is not an acceptable value for port"),
    ("firewall add portopening TCP http X", "acceptable value for port"),
    ("firewall add portopening ICMP 8 X", "acceptable value for protocol"),
    ("firewall add portopening TCP 135", "essential parameters.*name"),
    ("firewall add portopening TCP 135 X addresses=10.0.0.1", "CUSTOM"),
    ("firewall add portopening TCP 135 X interface=LAN", "interface"),
    ("firewall delete portopening TCP 135", "cannot find"),
    ("firewall set portopening TCP 135 mode=ENABLE", "cannot find"),
])
def test_portopening_errors(command: str, fragment: str) -> None:
    f = new()
    with pytest.raises(NetshError, match=fragment):
        run(f, command, ENV)
    assert f.profiles[DOM].ports == {}


# ---- opmode, service, icmp, flags, logging, reset ----------------------------------------

def test_set_opmode() -> None:
    f = new()
    ok(f, "firewall set opmode DISABLE profile=ALL")
    assert not f.profiles[DOM].opmode_enabled and not f.profiles[STD].opmode_enabled
    ok(f, "firewall set opmode mode=ENABLE exceptions=DISABLE")
    assert f.profiles[DOM].opmode_enabled and not f.profiles[DOM].exceptions_allowed
    ok(f, "firewall set opmode ENABLE")  # exceptions default ENABLE
    assert f.profiles[DOM].exceptions_allowed
    with pytest.raises(NetshError, match=r"essential.*mode"):
        run(f, "firewall set opmode exceptions=ENABLE", ENV)
    with pytest.raises(NetshError, match="acceptable value for mode"):
        run(f, "firewall set opmode ON", ENV)


def test_set_service_seed_and_scope() -> None:
    f = new()
    ok(f, "netsh firewall set service RemoteAdmin enable")
    ra = f.profiles[DOM].services[fw.Service.REMOTEADMIN]
    assert ra.enabled and ra.scope == Scope.all()
    ok(f, "firewall set service type=REMOTEADMIN mode=ENABLE scope=CUSTOM addresses=10.0.0.0/8")
    assert f.profiles[DOM].services[fw.Service.REMOTEADMIN].scope == Scope.custom("10.0.0.0/8")
    ok(f, "firewall set service ALL DISABLE profile=ALL")
    assert not any(s.enabled for p in fw.Profile for s in f.profiles[p].services.values())
    ok(f, "firewall set service FILEANDPRINT")  # mode defaults to ENABLE
    assert f.profiles[DOM].services[fw.Service.FILEANDPRINT].enabled
    with pytest.raises(NetshError, match="acceptable value for type"):
        run(f, "firewall set service WMI enable", ENV)


def test_set_icmpsetting() -> None:
    f = new()
    ok(f, "firewall set icmpsetting 8")
    assert f.profiles[DOM].icmp[8] and not f.profiles[DOM].icmp[13]
    ok(f, "firewall set icmpsetting type=ALL mode=ENABLE profile=STANDARD")
    assert all(f.profiles[STD].icmp.values())
    ok(f, "firewall set icmpsetting ALL DISABLE ALL")
    assert not any(f.profiles[STD].icmp.values())
    with pytest.raises(NetshError, match="acceptable value for type"):
        run(f, "firewall set icmpsetting 6", ENV)


def test_set_notifications_and_multicast() -> None:
    f = new()
    ok(f, "firewall set notifications DISABLE")
    ok(f, "firewall set multicastbroadcastresponse mode=DISABLE profile=STANDARD")
    assert not f.profiles[DOM].notifications and f.profiles[STD].notifications
    assert not f.profiles[STD].multicast_response and f.profiles[DOM].multicast_response
    with pytest.raises(NetshError, match=r"essential.*mode"):
        run(f, "firewall set notifications", ENV)


def test_set_logging() -> None:
    f = new()
    ok(f, r"firewall set logging C:\fw.log 1024 ENABLE DISABLE")
    assert (f.logging.file, f.logging.max_kb, f.logging.dropped) == (r"C:\fw.log", 1024, True)
    ok(f, "firewall set logging connections=ENABLE")
    assert f.logging.connections and f.logging.max_kb == 1024
    with pytest.raises(NetshError, match="maxfilesize"):
        run(f, "firewall set logging maxfilesize=40000", ENV)
    with pytest.raises(NetshError, match="essential"):
        run(f, "firewall set logging", ENV)


def test_reset_restores_defaults_and_turns_firewall_on() -> None:
    f = new("2003-sp1")
    ok(f, "firewall add portopening TCP 135 X")
    ok(f, "firewall set icmpsetting 8")
    ok(f, "netsh firewall reset")
    assert f.profiles[DOM].opmode_enabled and f.profiles[STD].opmode_enabled
    assert f.profiles[DOM].ports == {} and not f.profiles[DOM].icmp[8]
    with pytest.raises(NetshError, match="not a valid argument"):
        run(f, "firewall reset now", ENV)


@pytest.mark.parametrize(("command", "fragment"), [
    ("firewall frobnicate", "not found: firewall frobnicate"),
    ("firewall add rule name=x", "not found: firewall add rule"),
    ("firewall set", "not found"),
    ("firewall", "not found"),
    ("netsh advfirewall set allprofiles state off", "only the netsh firewall context"),
    ("firewall show everything", "not found: firewall show everything"),
])
def test_unknown_commands(command: str, fragment: str) -> None:
    with pytest.raises(NetshError, match=fragment):
        run(new(), command, ENV)


def test_netsh_error_is_a_config_error() -> None:
    from wmilab.errors import ConfigError
    assert issubclass(NetshError, ConfigError)


# ---- show --------------------------------------------------------------------------------

def test_show_config_layout() -> None:
    f = new(current=STD)
    ok(f, "netsh firewall set service RemoteAdmin enable")
    ok(f, "netsh firewall add portopening protocol=tcp port=135 name=DCOM_TCP135")
    ok(f, UNSECAPP_CMD)
    out = run(f, "netsh firewall show config", ENV)
    lines = out.splitlines()
    assert "Domain profile configuration:" in lines
    assert "Standard profile configuration (current):" in lines
    assert "Operational mode                  = Enable" in lines
    assert "Mode     Customized  Name" in lines
    # icftypes.h NET_FW_SERVICE_TYPE: remote administration is no service row
    assert not any(line.endswith("Remote Administration") for line in lines)
    assert "Disable  No          File and Printer Sharing" in lines
    assert "Local Area Connection firewall configuration:" in lines
    assert lines.index("Local Area Connection firewall configuration:") < lines.index(
        "Log configuration:")
    assert "Port   Protocol  Mode     Name" in lines
    assert "135    TCP       Enable   DCOM_TCP135" in lines
    assert r"Enable   UNSECAPP / C:\WINDOWS\system32\wbem\unsecapp.exe" in lines
    assert r"File location   = C:\WINDOWS\pfirewall.log" in lines
    # the standard (current) profile got the changes, not the domain one
    dom = out.split("Standard profile configuration")[0]
    assert "DCOM_TCP135" not in dom


def test_show_reflects_group_policy() -> None:
    f = new()
    ok(f, "firewall set service remoteadmin enable")
    p = gp.parse_policies({
        gp.policy_key(DOM, gp.REMOTE_ADMIN): {"state": "Disabled"},
        gp.policy_key(DOM, gp.PROTECT_ALL): {"state": "Enabled"},
        gp.policy_key(DOM, gp.DEFINE_PORTS): {"state": "Enabled",
                                              "ports": ["24158:TCP:*:Enabled:WMIFixedPort"]},
    }).firewall
    out = run(f, "firewall show config", ENV, p)
    assert "24158  TCP       Enable   WMIFixedPort" in out
    state = run(f, "firewall show state", ENV, p)
    assert "Remote admin mode                 = Disable" in state
    assert "Group policy version              = Windows Firewall" in state
    assert "24158  TCP       IPv4     (null)" in state


def test_show_state_and_portopening_with_file_sharing() -> None:
    f = new()
    out = run(f, "firewall show state", ENV)
    assert "Profile                           = Domain" in out
    # no Group Policy applies, so no "Group policy version" line (docs/netsh.md)
    assert "Group policy version" not in out
    assert "No ports are currently open on all network interfaces." in out
    ok(f, "firewall set service fileandprint enable")
    ports = run(f, "firewall show portopening profile=DOMAIN", ENV)
    assert "139    TCP       Enable   NetBIOS Session Service" in ports
    assert "137    UDP       Enable   NetBIOS Name Service" in ports
    assert "Standard profile" not in ports


def test_show_other_reports() -> None:
    f = new()
    ok(f, "firewall set icmpsetting 8")
    assert "Enable   8     Allow inbound echo request" in run(f, "firewall show icmpsetting", ENV)
    op = run(f, "firewall show opmode", ENV)
    assert op.count("Exception mode") == 2 and "Notification mode" not in op
    # XP capture: the per-connection block follows the two profiles
    assert op.rstrip().endswith("Local Area Connection firewall configuration:\n" + "-" * 67
                                + "\nOperational mode                  = Enable")
    assert "Domain profile is current profile." in run(f, "firewall show currentprofile", ENV)
    assert "Notification mode                 = Enable" in run(
        f, "firewall show notifications", ENV)
    assert "Multicast/broadcast response mode = Enable" in run(
        f, "firewall show multicastbroadcastresponse profile=STANDARD", ENV)
    assert "Max file size   = 4096 KB" in run(f, "firewall show logging", ENV)
    assert "File and Printer Sharing" in run(f, "firewall show service", ENV)
    assert "Remote Assistance" in run(f, "firewall show allowedprogram", ENV)
    verbose = run(f, "firewall show allowedprogram verbose=ENABLE", ENV)
    assert "Scope: any computer" in verbose
    with pytest.raises(NetshError, match="not a valid argument"):
        run(f, "firewall show config profile=DOMAIN", ENV)


def test_show_does_not_change_state() -> None:
    f = new()
    before = f.copy()
    run(f, "firewall show config", ENV)
    assert f == before

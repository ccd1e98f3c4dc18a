"""DCOM limits, defaults, overrides and the activation/access checks."""

from __future__ import annotations

import pytest

from wmilab.errors import ConfigError
from wmilab.model import sids
from wmilab.model.dcom import DcomSecurity
from wmilab.model.identity import Directory, DomainSpec, HostSpec, Token


def directory() -> Directory:
    return Directory(
        {"CORP": DomainSpec("CORP", "corp.example", (), {"admin": "a", "bob": "b"},
                            {"Domain Admins": ("admin",)})},
        {
            "A": HostSpec("A", "xp-sp2", domain="CORP"),
            "X": HostSpec("X", "xp-sp2", domain="CORP"),
            "S": HostSpec("S", "2003-sp1", domain="CORP",
                          groups={"Distributed COM Users": ("CORP\\bob",)}),
            "T": HostSpec("T", "2003-sp1", domain="CORP"),
            "W": HostSpec("W", "xp-sp2", workgroup="WG"),
        },
    )


def token(d: Directory, host: str, user: str, password: str) -> Token:
    logon = d.network_logon(host, user, lambda p: p == password)
    assert logon.ok and logon.token is not None
    return logon.token


@pytest.mark.parametrize("host", ["X", "T"])
def test_admin_passes_on_both_oses(host: str) -> None:
    d = directory()
    dc = DcomSecurity.defaults(d.os_of(host), d, host)
    admin = token(d, host, "CORP\\admin", "a")
    assert dc.check_remote_activation(admin).ok
    assert dc.check_remote_access(admin, "wmi").ok


def test_plain_user_needs_remote_activation_and_remote_launch_only_to_start_winmgmt() -> None:
    d = directory()
    dc = DcomSecurity.defaults("xp-sp2", d, "X")
    bob = token(d, "X", "CORP\\bob", "b")
    check = dc.check_remote_activation(bob)
    assert not check.ok and check.where == "launch_limits"
    assert "CORP\\bob" in check.reason and "local launch" in check.reason
    # winmgmt running: Remote Activation alone suffices (Learn com/launchpermission: the launch
    # ACL is checked only to launch a server) ...
    half = dc.with_overrides({"launch_limits": {"CORP\\bob": ["remote activation"]}}, d, "X")
    assert half.check_remote_activation(bob, "running").ok
    # ... but a stopped winmgmt must be launched, which also needs Remote Launch.
    stopped = half.check_remote_activation(bob, "stopped")
    assert not stopped.ok and stopped.where == "launch_limits"
    assert "Remote Launch and Remote Activation" in stopped.reason and "stopped" in stopped.reason
    fixed = dc.with_overrides(
        {"launch_limits": {"CORP\\bob": ["remote launch", "remote activation"]}}, d, "X")
    assert fixed.check_remote_activation(bob, "stopped").ok
    # Remote Launch without Remote Activation is refused, running or not.
    launch_only = dc.with_overrides({"launch_limits": {"CORP\\bob": ["remote launch"]}}, d, "X")
    for state in ("running", "stopped"):
        refused = launch_only.check_remote_activation(bob, state)
        assert not refused.ok and refused.where == "launch_limits"
    # The same rule in the WMI service's own AppID launch permissions.
    app = fixed.with_overrides({"wmi_launch": {"Authenticated Users": [],
                                               "CORP\\bob": ["remote launch"]}}, d, "X")
    refused = app.check_remote_activation(bob)
    assert not refused.ok and refused.where == "app_launch"
    # Remote access to WMI is already allowed by Everyone's default access limits.
    assert fixed.check_remote_access(bob, "wmi").ok


def test_distributed_com_users_membership_grants_activation_on_2003() -> None:
    d = directory()
    member = token(d, "S", "CORP\\bob", "b")
    outsider = token(d, "T", "CORP\\bob", "b")
    assert DcomSecurity.defaults("2003-sp1", d, "S").check_remote_activation(member).ok
    assert not DcomSecurity.defaults("2003-sp1", d, "T").check_remote_activation(outsider).ok


def test_anonymous_callback_denied_on_xp_until_granted() -> None:
    d = directory()
    anon = d.callback_token("W", "A")
    dc = DcomSecurity.defaults("xp-sp2", d, "A")
    check = dc.check_remote_access(anon, "sink")
    assert not check.ok and check.where == "access_limits"
    granted = dc.with_overrides(
        {"access_limits": {"ANONYMOUS LOGON": ["local access", "remote access"]}}, d, "A")
    assert granted.check_remote_access(anon, "sink").ok
    # The machine-account callback passes with the defaults (Everyone has remote access).
    assert dc.check_remote_access(d.callback_token("X", "A"), "sink").ok


def test_anonymous_callback_allowed_by_2003_defaults() -> None:
    d = directory()
    anon = d.callback_token("W", "T")
    assert DcomSecurity.defaults("2003-sp1", d, "T").check_remote_access(anon, "sink").ok


def test_enable_dcom_off_blocks_everything() -> None:
    d = directory()
    dc = DcomSecurity.defaults("xp-sp2", d, "X").with_overrides({"enable_dcom": False}, d, "X")
    admin = token(d, "X", "CORP\\admin", "a")
    assert dc.check_remote_activation(admin).where == "enable_dcom"
    assert not dc.check_remote_access(admin, "wmi").ok
    assert not dc.check_outgoing().ok


def test_empty_list_removes_an_entry() -> None:
    d = directory()
    dc = DcomSecurity.defaults("xp-sp2", d, "X").with_overrides(
        {"launch_limits": {"Administrators": []}}, d, "X")
    assert dc.launch_limits.rights_of(sids.BUILTIN_ADMINISTRATORS) == 0
    assert not dc.check_remote_activation(token(d, "X", "CORP\\admin", "a")).ok


def test_sddl_table_and_group_policy_override() -> None:
    d = directory()
    bob = token(d, "X", "CORP\\bob", "b")
    bob_sid = d.resolve("CORP\\bob", "X")
    dc = DcomSecurity.defaults("xp-sp2", d, "X").with_overrides(
        {"launch_limits": f"O:BAG:BAD:(A;;CCDCLCSWRP;;;{bob_sid})"}, d, "X")
    assert dc.check_remote_activation(bob).ok
    # GP wins over the table: the policy SDDL replaces the limits.
    gp = DcomSecurity.defaults("xp-sp2", d, "X").with_overrides(
        {"launch_limits": {"CORP\\bob": ["remote launch", "remote activation"]}}, d, "X",
        launch_sddl="O:BAG:BAD:(A;;CCDCLCSWRP;;;BA)")
    assert not gp.check_remote_activation(bob).ok
    # Domain-relative aliases resolve in the host's domain.
    da = DcomSecurity.defaults("xp-sp2", d, "X").with_overrides({}, d, "X",
                                                                access_sddl="D:(A;;CCDCLC;;;DU)")
    assert da.check_remote_access(bob, "wmi").ok


def test_old_format_execute_only_ace_means_all_rights() -> None:
    d = directory()
    bob = token(d, "X", "CORP\\bob", "b")
    dc = DcomSecurity.defaults("xp-sp2", d, "X").with_overrides(
        {"launch_limits": "O:BAG:BAD:(A;;CC;;;AU)"}, d, "X")
    assert dc.check_remote_activation(bob).ok


@pytest.mark.parametrize(
    ("table", "path"),
    [
        ({"launch_limit": {}}, ("launch_limit",)),
        ({"enable_dcom": "yes"}, ("enable_dcom",)),
        ({"launch_limits": {"CORP\\bob": ["remote access"]}}, ("launch_limits", "CORP\\bob", 0)),
        ({"access_limits": {"CORP\\ghost": ["remote access"]}}, ("access_limits", "CORP\\ghost")),
        ({"access_limits": {"Everyone": "remote access"}}, ("access_limits", "Everyone")),
        ({"access_limits": "D:(A;;ZZ;;;WD)"}, ("access_limits",)),
        ({"access_limits": "D:(A;;GA;;;WD)"}, ("access_limits",)),
    ],
)
def test_override_errors_have_paths(table: dict[str, object], path: tuple[object, ...]) -> None:
    d = directory()
    with pytest.raises(ConfigError) as info:
        DcomSecurity.defaults("xp-sp2", d, "X").with_overrides(table, d, "X")
    assert info.value.path == path


def test_distributed_com_users_rejected_on_xp() -> None:
    d = directory()
    with pytest.raises(ConfigError) as info:
        DcomSecurity.defaults("xp-sp2", d, "X").with_overrides(
            {"launch_limits": {"Distributed COM Users": ["remote launch"]}}, d, "X")
    assert "2003 SP1" in str(info.value)


def test_policy_sddl_error_names_the_setting() -> None:
    d = directory()
    with pytest.raises(ConfigError) as info:
        DcomSecurity.defaults("xp-sp2", d, "X").with_overrides({}, d, "X", access_sddl="D:(")
    assert "Machine Access Restrictions" in str(info.value)


def test_default_limits_match_the_documented_tables() -> None:
    d = directory()
    xp = DcomSecurity.defaults("xp-sp2", d, "X")
    assert xp.launch_limits.to_sddl() == "O:BAG:BAD:(A;;CCDCSW;;;WD)(A;;CCDCLCSWRP;;;BA)"
    assert xp.access_limits.to_sddl() == "O:BAG:BAD:(A;;CCDCLC;;;WD)(A;;CCDC;;;AN)"
    srv = DcomSecurity.defaults("2003-sp1", d, "T")
    assert srv.launch_limits.rights_of(sids.DISTRIBUTED_COM_USERS) == 0x1F
    assert srv.access_limits.rights_of(sids.ANONYMOUS) == 0x7

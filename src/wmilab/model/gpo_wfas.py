"""Group Policy for Windows Firewall with Advanced Security (Vista and later).

In the Group Policy Management Editor the firewall of Vista and later lives under Computer
Configuration > Policies > Windows Settings > Security Settings > Windows Defender Firewall
with Advanced Security ("Windows Firewall with Advanced Security" before Windows 10). A
scenario names its parts by path, like the other policy keys (docs/scenario.md):

- ``.../Domain Profile``, ``.../Private Profile``, ``.../Public Profile``: the profile tabs of
  the node's Properties dialog, with ``firewall_state`` (``On``, ``Off``, ``Not configured``)
  and ``apply_local_firewall_rules`` (Settings > Customize: ``Yes``, ``No``, ``Not
  configured``);
- ``.../Inbound Rules`` and ``.../Outbound Rules``: ``rules``, the commands an administrator
  types to fill the GPO, ``New-NetFirewallRule ... -PolicyStore corp.example\\GPO`` or ``netsh
  advfirewall firewall add rule ...`` run in a ``set store gpo=`` session. They run in order
  on the GPO's own, initially empty, rule store (model/netsecurity.py, model/advfirewall.py:
  the same parsers as the host's commands, no second rule syntax).

Source: Learn "Windows Firewall with Advanced Security" deployment guide ("Configure the
Windows Firewall ... by using Group Policy": rule merging, "Apply local firewall rules").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from wmilab.errors import ConfigError
from wmilab.model import advfirewall, netsecurity, netshwords
from wmilab.model import wfas as wf
from wmilab.model.netsh import NetshEnv, tokenize

__all__ = ["NODE", "NODES", "PROFILE_TABS", "RULE_NODES", "parse"]

NODE = "Windows Settings/Security Settings/Windows Defender Firewall with Advanced Security"
# The node's name before Windows 10 version 1709 (Learn: the Windows Defender rename).
_OLD_NODE = "Windows Settings/Security Settings/Windows Firewall with Advanced Security"
NODES = (NODE, _OLD_NODE)
PROFILE_TABS: dict[str, wf.WfProfile] = {
    "Domain Profile": wf.WfProfile.DOMAIN,
    "Private Profile": wf.WfProfile.PRIVATE,
    "Public Profile": wf.WfProfile.PUBLIC,
}
RULE_NODES: dict[str, str] = {"Inbound Rules": "in", "Outbound Rules": "out"}
_STATE = {"on": True, "on (recommended)": True, "off": False, "not configured": None}
_LOCAL = {"yes": True, "yes (default)": True, "no": False, "not configured": None}


def split_key(canon_key: str) -> str | None:
    """The part below the WFAS node of a lower-case policy key, or None if it is not one."""
    for node in NODES:
        prefix = node.lower() + "/"
        if canon_key.startswith(prefix):
            return canon_key[len(prefix):]
    return None


def parse(settings: Mapping[str, tuple[str, Mapping[str, object]]]) -> wf.WfasPolicy:
    """``settings``: part below the node (as typed) -> (the scenario key, its table)."""
    per_profile: list[tuple[wf.WfProfile, bool | None, bool | None]] = []
    rules: list[wf.Rule] = []
    for part, (key, table) in settings.items():
        tab = {k.lower(): v for k, v in PROFILE_TABS.items()}.get(part.lower())
        if tab is not None:
            per_profile.append((tab, *_profile_tab(key, table)))
            continue
        direction = {k.lower(): v for k, v in RULE_NODES.items()}.get(part.lower())
        if direction is None:
            raise ConfigError(
                f"unknown part {part!r} of {NODE}; expected one of: "
                f"{', '.join([*PROFILE_TABS, *RULE_NODES])}", (key,))
        rules += _rules(key, table, direction)
    return wf.WfasPolicy(tuple(rules), per_profile=tuple(per_profile))


def _choice(table: Mapping[str, object], option: str, key: str,
            values: Mapping[str, bool | None], shown: str) -> bool | None:
    if option not in table:
        return None
    v = table[option]
    if not isinstance(v, str) or v.strip().lower() not in values:
        raise ConfigError(f"{v!r} is not one of: {shown}", (key, option))
    return values[v.strip().lower()]


def _profile_tab(key: str, table: Mapping[str, object]) -> tuple[bool | None, bool | None]:
    unknown = set(table) - {"firewall_state", "apply_local_firewall_rules"}
    if unknown:
        raise ConfigError(f"unknown option {sorted(unknown)[0]!r}; expected firewall_state "
                          "or apply_local_firewall_rules", (key, sorted(unknown)[0]))
    return (_choice(table, "firewall_state", key, _STATE, "\"On\", \"Off\", \"Not configured\""),
            _choice(table, "apply_local_firewall_rules", key, _LOCAL,
                    "\"Yes\", \"No\", \"Not configured\""))


def _rules(key: str, table: Mapping[str, object], direction: str) -> list[wf.Rule]:
    unknown = set(table) - {"rules"}
    if unknown:
        raise ConfigError(f"unknown option {sorted(unknown)[0]!r}; expected rules = [...]",
                          (key, sorted(unknown)[0]))
    commands = table.get("rules", [])
    if not isinstance(commands, list):
        raise ConfigError("must be a list of commands", (key, "rules"))
    # The GPO's rule store: empty until the commands fill it (a new GPO has no rules).
    store = wf.LocalWfas("10", {p: wf.ProfileState() for p in wf.WfProfile}, [])
    for i, command in enumerate(commands):
        where = (key, "rules", i)
        if not isinstance(command, str):
            raise ConfigError("must be a string (a command)", where)
        try:
            _run(store, command)
        except ConfigError as e:
            raise ConfigError(f"{command!r}: {e.message}", where) from None
        wrong = [r for r in store.rules if r.direction != direction]
        if wrong:
            other = "Outbound Rules" if direction == "in" else "Inbound Rules"
            raise ConfigError(f"{command!r}: the rule \"{wrong[0].name}\" is "
                              f"{'outbound' if direction == 'in' else 'inbound'}; give it "
                              f"under {other}", where)
    return [replace(r, origin="policy") for r in store.rules]


def _run(store: wf.LocalWfas, command: str) -> None:
    head = command.split(None, 1)[0] if command.strip() else ""
    if netsecurity.is_cmdlet(head):
        netsecurity.run(store, command, gpo=True)
        return
    words = tokenize(netshwords.expand(command))
    if words and words[0].lower() in ("netsh", "netsh.exe"):
        words = words[1:]
    low = [w.lower() for w in words]
    if len(low) >= 4 and low[:2] == ["advfirewall", "firewall"] and low[3] == "rule" \
            and low[2] in ("add", "set", "delete"):
        advfirewall.run(store, command, NetshEnv("10", "GPO"), wf.WfProfile.DOMAIN)
        return
    raise ConfigError("a Group Policy rule is made with New-NetFirewallRule (or Set-, "
                      "Enable-, Disable-, Remove-NetFirewallRule) or netsh advfirewall "
                      "firewall add|set|delete rule")

"""`wmilab fix`: write the scenario with the minimal fixes applied and commented."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import tomlkit
from tomlkit.items import AoT, Array, InlineTable, Table

from wmilab import flow
from wmilab.model.commands import REGISTRY_KEYS
from wmilab.model.world import World
from wmilab.remedy import (
    CallAuthLevel,
    CallMode,
    Change,
    DcomEnable,
    DcomRights,
    GpoRuleAdd,
    NetshAdd,
    PolicySet,
    RegistrySet,
    ServiceState,
    WmiRights,
    apply,
    remedy,
)
from wmilab.scenario import Call, Scenario, loads


@dataclass
class FixOutcome:
    text: str
    applied: list[tuple[Call, list[Change]]] = field(default_factory=list)
    unfixable: list[tuple[Call, str]] = field(default_factory=list)
    already_ok: list[Call] = field(default_factory=list)
    still_failing: list[tuple[str, str]] = field(default_factory=list)  # after re-check


def _sub(container: Any, key: str) -> Any:
    """container[key] as a table, created when missing (case-insensitive key match)."""
    for k in container:
        if isinstance(k, str) and k.lower() == key.lower():
            return container[k]
    t = tomlkit.table()
    container[key] = t
    return container[key]


def _set_commented(container: Any, key: str, value: Any, comment: str) -> None:
    for k in list(container):
        if isinstance(k, str) and k.lower() == key.lower():
            del container[k]
    item = tomlkit.item(value)
    if not isinstance(item, Table | AoT):
        item.comment(comment)
    container[key] = item


def _edit_doc(doc: Any, world: World, call: Call, ch: Change, reason: str) -> None:
    e = ch.edit
    if isinstance(e, CallMode):
        calls = doc["calls"]
        _set_commented(calls[call.index], "mode", e.mode, f"wmilab fix: {reason}")
        return
    if isinstance(e, CallAuthLevel):
        _set_commented(doc["calls"][call.index], "auth_level", e.level, f"wmilab fix: {reason}")
        return
    assert ch.host is not None
    host = doc["hosts"][ch.host]
    comment = f"wmilab fix: {reason}"
    commands = host.get("commands")
    if isinstance(commands, Array) and isinstance(e, NetshAdd | RegistrySet):
        # The host's ``commands`` run after its ``netsh`` list and ``registry`` table
        # (scenario-format.md "Commands"): a fix goes last, where nothing typed undoes it.
        lines = list(e.commands) if isinstance(e, NetshAdd) else [_reg_add(e)]
        commands.multiline(True)
        for line in lines:
            commands.add_line(line, comment=comment)
        commands.add_line(indent="")
        return
    if isinstance(e, NetshAdd):
        arr = host.get("netsh")
        if not isinstance(arr, Array):
            arr = tomlkit.array()
            arr.multiline(True)
            host["netsh"] = arr
            arr = host["netsh"]
        for command in e.commands:
            arr.add_line(command, comment=comment)
        arr.add_line(indent="")
        return
    if isinstance(e, PolicySet):
        pol = _sub(host, "policy")
        value = tomlkit.inline_table()
        value.update(dict(e.value))
        if isinstance(pol, InlineTable):
            for k in list(pol):
                if str(k).replace("\\", "/").lower() == e.key.lower():
                    del pol[k]
            pol[e.key] = value
        else:
            _set_commented(pol, e.key, value, comment)
        return
    if isinstance(e, GpoRuleAdd):
        pol = _sub(host, "policy")
        key = next((str(k) for k in pol if str(k).replace("\\", "/").lower()
                    == e.key.replace("\\", "/").lower()), e.key)
        node = _sub(pol, key)
        arr = node.get("rules")
        if not isinstance(arr, Array):
            node["rules"] = tomlkit.array()
            arr = node["rules"]
            arr.multiline(True)
        arr.add_line(e.command, comment=comment)
        return
    if isinstance(e, DcomEnable):
        _set_commented(_sub(host, "dcom"), "enable_dcom", True, comment)
        return
    if isinstance(e, DcomRights):
        dcom = _sub(host, "dcom")
        existing = None
        for k in dcom:
            if str(k).lower() == e.table:
                existing = dcom[k]
        if isinstance(existing, str):
            # The limit is written as SDDL: write the new SDDL the model computed.
            _set_commented(dcom, e.table, str(world.configs[ch.host].dcom[e.table]), comment)
            return
        table = _sub(dcom, e.table)
        _set_commented(table, e.principal, list(e.rights), comment)
        return
    if isinstance(e, WmiRights):
        table = _sub(_sub(host, "wmi"), e.namespace)
        _set_commented(table, e.principal, list(e.rights), comment)
        return
    if isinstance(e, RegistrySet):
        _set_commented(_sub(host, "registry"), e.name, e.value, comment)
        return
    if isinstance(e, ServiceState):
        _set_commented(_sub(host, "services"), e.name, e.state, comment)
        return
    raise TypeError(e)


def _reg_add(e: RegistrySet) -> str:
    """The ``reg add`` that sets ``e`` (its key and type: model/commands.py)."""
    where, kind = REGISTRY_KEYS[e.name]
    return f'reg add "{where}" /v {e.name} /t {kind} /d {e.value} /f'


def fix(scenario: Scenario, prefer_semisync: bool = False) -> FixOutcome:
    doc = tomlkit.parse(scenario.text)
    world = scenario.world
    out = FixOutcome(text="")
    for call in scenario.calls:
        v = flow.evaluate(world, call)
        if v.ok:
            out.already_ok.append(call)
            continue
        r = remedy(world, call)
        chosen: list[Change] | None
        if r.semisync is not None and (prefer_semisync or r.unfixable is not None):
            chosen = r.semisync
        elif r.unfixable is None:
            chosen = r.changes
        else:
            chosen = None
        if chosen is None:
            out.unfixable.append((call, r.unfixable or "no fix found"))
            _comment_call(doc, call, f"wmilab fix: cannot be fixed: {r.unfixable}")
            continue
        world, new_call = apply(world, call, chosen)
        for ch in chosen:
            _edit_doc(doc, world, call, ch, f"call {call.name!r}: {ch.summary}")
        if call.expect is not None and "ok" not in call.expect:
            was = " or ".join(call.expect)
            _set_commented(doc["calls"][call.index], "expect", "ok",
                           f"wmilab fix: was {was} before the fix")
        del new_call
        out.applied.append((call, chosen))
    out.text = tomlkit.dumps(doc)
    # Prove it: load what we wrote and evaluate every call again.
    fixed = loads(out.text, scenario.path)
    unfixable = {c.index for c, _ in out.unfixable}
    for call in fixed.calls:
        v = flow.evaluate(fixed.world, call)
        if not v.ok and call.index not in unfixable:
            out.still_failing.append((call.name, v.result))
    return out


def _comment_call(doc: Any, call: Call, text: str) -> None:
    table = doc["calls"][call.index]
    table.add(tomlkit.comment(text))

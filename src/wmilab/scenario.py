"""Load a scenario file (docs/scenario-format.md) into model objects.

Every problem is reported as a :class:`ScenarioError` naming the file, the
line and the field, and saying what is wrong.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Interface
from pathlib import Path
from typing import Any

from wmilab import hresult
from wmilab.errors import ConfigError, PathPart, dotted
from wmilab.model import commands as host_commands
from wmilab.model import features, hardening, oses
from wmilab.model.identity import DomainSpec
from wmilab.model.namespaces import try_normalize
from wmilab.model.ports import PORTS, PORTS_INTERNET_AVAILABLE, USE_INTERNET_PORTS
from wmilab.model.world import OSES, REGISTRY_VALUES, SERVICES, HostConfig, World
from wmilab.tomlpos import line_of

try:
    import rtoml
except ImportError:  # pragma: no cover - rtoml is a dependency; tomllib reads the same files
    rtoml = None  # type: ignore[assignment]

MODES = ("sync", "semisync", "async")
TOP_FIELDS = ("title", "domains", "hosts", "calls")
DOMAIN_FIELDS = ("dns", "trusts", "accounts", "groups")
HOST_FIELDS = ("os", "domain", "workgroup", "address", "profile", "accounts", "groups",
               "netsh", "policy", "dcom", "wmi", "registry", "services", "updates",
               "commands", "features")
CALL_FIELDS = ("name", "from", "to", "user", "password", "mode", "namespace", "query",
               "sink", "expect", "auth_level")
DEFAULT_NAMESPACE = "root\\cimv2"
DEFAULT_QUERY = "SELECT * FROM Win32_OperatingSystem"
# Win32_OperatingSystem lives in root\cimv2 only (MSDocs CIMWin32Prov/win32-operatingsystem);
# elsewhere the default query lists the child namespaces, a system class every namespace has
# (MSDocs WmiSdk/--namespace). Choice (docs/scenario.md).
OTHER_NAMESPACE_QUERY = "SELECT * FROM __NAMESPACE"


def default_query(namespace: str) -> str:
    return DEFAULT_QUERY if try_normalize(namespace) == "root\\cimv2" else OTHER_NAMESPACE_QUERY


class ScenarioError(Exception):
    """A scenario file that cannot be used: file, line, field and what is wrong."""

    def __init__(self, file: str, line: int | None, field: str, message: str) -> None:
        self.file, self.line, self.field, self.message = file, line, field, message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


Expect = tuple[str, ...]  # "ok" or HRESULT hex strings such as "0x800706BA"


@dataclass(frozen=True)
class Call:
    index: int
    name: str
    source: str
    target: str
    user: str
    password: str | None
    mode: str
    namespace: str
    query: str
    sink: str
    expect: Expect | None
    auth_level: str | None = None  # what the calling program asks for (model/hardening.py)

    @property
    def auth_level_value(self) -> int | None:
        return None if self.auth_level is None else hardening.LEVELS[self.auth_level]

    def with_mode(self, mode: str) -> Call:
        return replace(self, mode=mode)


@dataclass
class Scenario:
    path: str
    text: str
    title: str
    world: World
    calls: list[Call]
    raw: dict[str, Any] = field(repr=False)

    def warnings(self) -> list[str]:
        out: list[str] = []
        for name in self.world.configs:
            out.extend(self.world.host(name).warnings())
        return out


def _fail(path: tuple[PathPart, ...], message: str) -> ConfigError:
    return ConfigError(message, path)


def _table(value: object, path: tuple[PathPart, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, f"must be a table, not {type(value).__name__}")
    return value


def _str(value: object, path: tuple[PathPart, ...]) -> str:
    if not isinstance(value, str):
        raise _fail(path, f"must be a string, not {type(value).__name__}")
    return value


def _str_list(value: object, path: tuple[PathPart, ...]) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _fail(path, "must be a list of strings")
    return tuple(_str(v, (*path, i)) for i, v in enumerate(value))


def _known(table: Mapping[str, Any], allowed: Sequence[str], path: tuple[PathPart, ...]) -> None:
    for key in table:
        if key not in allowed:
            raise _fail((*path, key), f"unknown field {key!r}; expected one of: {', '.join(allowed)}")


def _passwords(value: object, path: tuple[PathPart, ...]) -> dict[str, str]:
    table = _table(value, path)
    return {k: _str(v, (*path, k)) for k, v in table.items()}


def _groups(value: object, path: tuple[PathPart, ...]) -> dict[str, tuple[str, ...]]:
    table = _table(value, path)
    return {k: _str_list(v, (*path, k)) for k, v in table.items()}


def _domain(name: str, value: object) -> DomainSpec:
    path: tuple[PathPart, ...] = ("domains", name)
    t = _table(value, path)
    _known(t, DOMAIN_FIELDS, path)
    return DomainSpec(
        name=name,
        dns=_str(t.get("dns", name.lower()), (*path, "dns")),
        trusts=_str_list(t.get("trusts", []), (*path, "trusts")),
        accounts=_passwords(t.get("accounts", {}), (*path, "accounts")),
        groups=_groups(t.get("groups", {}), (*path, "groups")),
    )


def _host(name: str, value: object, domains: Mapping[str, DomainSpec]) -> HostConfig:
    path: tuple[PathPart, ...] = ("hosts", name)
    t = _table(value, path)
    _known(t, HOST_FIELDS, path)
    if "os" not in t:
        raise _fail(path, f"missing field 'os' (one of: {', '.join(OSES)})")
    os_name = _str(t["os"], (*path, "os")).lower()
    if os_name not in OSES:
        raise _fail((*path, "os"), f"unknown OS {t['os']!r}; expected one of: {', '.join(OSES)}")
    if ("domain" in t) == ("workgroup" in t):
        raise _fail(path, "give exactly one of 'domain' or 'workgroup'")
    domain = workgroup = None
    if "domain" in t:
        domain = _str(t["domain"], (*path, "domain"))
        match = {d.upper(): d for d in domains}.get(domain.upper())
        if match is None:
            known = ", ".join(domains) or "none are defined"
            raise _fail((*path, "domain"), f"unknown domain {domain!r} (domains: {known})")
        domain = match
    else:
        workgroup = _str(t["workgroup"], (*path, "workgroup"))
    if "address" not in t:
        raise _fail(path, "missing field 'address' (an IPv4 address with prefix, e.g. 192.168.10.2/24)")
    addr_text = _str(t["address"], (*path, "address"))
    try:
        if "/" not in addr_text:
            raise ValueError("the prefix length is missing")
        address = _interface(addr_text)
    except ValueError as e:
        raise _fail((*path, "address"),
                    f"{addr_text!r} is not an IPv4 address with prefix length "
                    f"such as 192.168.10.2/24 ({e})") from None
    spec = oses.get(os_name)
    profile: str | None = None
    if "profile" in t:
        p = _str(t["profile"], (*path, "profile")).lower()
        if spec.modern and p == "standard":
            # scenario-format.md "Windows Vista and later": standard means private.
            p = "private"
        if p not in spec.profiles:
            raise _fail((*path, "profile"), f"{t['profile']!r} is not a profile of "
                        f"{spec.title}: {' or '.join(repr(x) for x in spec.profiles)}")
        if p == "domain" and domain is None:
            raise _fail((*path, "profile"), "a workgroup computer has no domain profile in use")
        profile = p
    updates: str | None = None
    if "updates" in t:
        try:
            updates = oses.check_updates(spec, _str(t["updates"], (*path, "updates")))
        except ConfigError as e:
            raise _fail((*path, "updates"), e.message) from None
    installed: tuple[str, ...] = ()
    if "features" in t:
        raw = t["features"]
        if not isinstance(raw, list):
            raise _fail((*path, "features"), "must be a list of feature names such as "
                        f"[\"{features.FAILOVER_CLUSTERING}\"]")
        try:
            installed = features.check(os_name, raw)
        except ConfigError as e:
            raise e.within(*path, "features") from None
    registry = _registry(t.get("registry", {}), (*path, "registry"))
    services = _services(t.get("services", {}), (*path, "services"))
    netsh_list = _str_list(t.get("netsh", []), (*path, "netsh"))
    netsh_origins: tuple[tuple[str, int], ...] = ()
    done: host_commands.Applied | None = None
    if "commands" in t:
        # scenario-format.md "Commands": run after the netsh list; the registry values and
        # service states they set count as applied.
        typed = _str_list(t["commands"], (*path, "commands"))
        try:
            done = host_commands.apply(typed, registry, services, tuple(REGISTRY_VALUES),
                                       os_name)
        except ConfigError as e:
            raise e.within(*path, "commands") from None
        netsh_origins = (*(("netsh", i) for i in range(len(netsh_list))),
                         *(("commands", j) for j in done.netsh_index))
        netsh_list = (*netsh_list, *done.netsh)
        registry, services = done.registry, done.services
    return HostConfig(
        name=name, os=os_name, address=address, domain=domain, workgroup=workgroup,
        profile=profile,
        accounts=_passwords(t.get("accounts", {}), (*path, "accounts")),
        groups=_groups(t["groups"], (*path, "groups")) if "groups" in t else None,
        netsh=netsh_list,
        netsh_origins=netsh_origins,
        policy=_table(t.get("policy", {}), (*path, "policy")),
        dcom=_table(t.get("dcom", {}), (*path, "dcom")),
        wmi=_table(t.get("wmi", {}), (*path, "wmi")),
        registry=registry,
        services=services,
        updates=updates,
        features=installed,
        dynamic_ports={} if done is None else done.dynamic_ports,
        wmi_host=None if done is None else done.wmi_host,
        group_edits=() if done is None else tuple(done.group_edits),
    )


_DOTTED = re.compile(r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\."
                     r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
                     r"/(3[0-2]|[12]?\d)")


def _interface(text: str) -> IPv4Interface:
    """``IPv4Interface(text)``, without its string parsing for the plain ``a.b.c.d/n`` form."""
    m = _DOTTED.fullmatch(text)
    if m is None:
        return IPv4Interface(text)  # other spellings, and the error message
    a, b, c, d, n = map(int, m.groups())
    return IPv4Interface(((a << 24) | (b << 16) | (c << 8) | d, n))


def _registry(value: object, path: tuple[PathPart, ...]) -> dict[str, int | str | tuple[str, ...]]:
    out: dict[str, int | str | tuple[str, ...]] = {}
    for key, v in _table(value, path).items():
        canon = {k.lower(): k for k in REGISTRY_VALUES}.get(key.lower())
        where = (*path, key)
        if canon is None:
            raise _fail(where, f"unknown registry value {key!r}; expected one of: "
                        f"{', '.join(REGISTRY_VALUES)}")
        if canon == PORTS:
            # REG_MULTI_SZ: port ranges such as "5000-5100" (KB 154596).
            out[canon] = _str_list(v, where)
        elif canon in (PORTS_INTERNET_AVAILABLE, USE_INTERNET_PORTS):
            # REG_SZ "Y" or "N", case-insensitive (Learn: Configuring the Registry for Port
            # Allocations and Selective Binding).
            text = _str(v, where).strip().upper()
            if text not in ("Y", "N"):
                raise _fail(where, f"{v!r} is not \"Y\" or \"N\"")
            out[canon] = text
        else:
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise _fail(where, "must be a non-negative whole number (a DWORD)")
            out[canon] = v
    return out


def _services(value: object, path: tuple[PathPart, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, v in _table(value, path).items():
        canon = {k.lower(): k for k in SERVICES}.get(key.lower())
        if canon is None:
            raise _fail((*path, key), f"unknown service {key!r}; wmilab models: "
                        f"{', '.join(SERVICES)}")
        state = _str(v, (*path, key)).strip().lower()
        if state not in SERVICES[canon]:
            raise _fail((*path, key), f"{v!r} is not one of: {', '.join(SERVICES[canon])}")
        out[canon] = state
    return out


def _expect(value: object, path: tuple[PathPart, ...]) -> Expect:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise _fail(path, "an empty list matches nothing; give 'ok' or an HRESULT")
    out = []
    for i, item in enumerate(items):
        p = (*path, i) if isinstance(value, list) else path
        text = _str(item, p)
        if text.strip().lower() == "ok":
            out.append("ok")
            continue
        try:
            out.append(hresult.parse(text).hex)
        except ValueError as e:
            raise _fail(p, str(e)) from None
    return tuple(out)


def _call(i: int, value: object, world: World, host_names: Mapping[str, str]) -> Call:
    path: tuple[PathPart, ...] = ("calls", i)
    t = _table(value, path)
    _known(t, CALL_FIELDS, path)
    for req in ("from", "to", "user"):
        if req not in t:
            raise _fail(path, f"missing field {req!r}")
    ends = {}
    for end in ("from", "to"):
        name = _str(t[end], (*path, end))
        match = host_names.get(name.upper())
        if match is None:
            raise _fail((*path, end), f"unknown host {name!r} (hosts: {', '.join(world.configs)})")
        ends[end] = match
    user = _str(t["user"], (*path, "user"))
    if "\\" not in user:
        raise _fail((*path, "user"), f"{user!r} must be written DOMAIN\\name or HOST\\name")
    mode = _str(t.get("mode", "semisync"), (*path, "mode")).lower()
    if mode not in MODES:
        raise _fail((*path, "mode"), f"{t['mode']!r} is not one of: {', '.join(MODES)}")
    if "sink" in t and mode != "async":
        raise _fail((*path, "sink"), "a sink is used only by mode = \"async\"")
    sink = _str(t.get("sink", "unsecapp"), (*path, "sink"))
    if sink.lower() != "unsecapp" and not (sink.lower().endswith(".exe") and "\\" in sink):
        raise _fail((*path, "sink"),
                    f"{sink!r} must be \"unsecapp\" or the full path of the client's sink program "
                    "(e.g. C:\\Program Files\\Monitor\\monitor.exe)")
    password = _str(t["password"], (*path, "password")) if "password" in t else None
    if password is None and world.password_of(user) is None:
        raise _fail((*path, "user"),
                        f"unknown account {user!r}: define it under [domains.X.accounts] or "
                        "[hosts.X.accounts], or give 'password'")
    namespace = _str(t.get("namespace", DEFAULT_NAMESPACE), (*path, "namespace"))
    return Call(
        index=i,
        name=_str(t.get("name", f"{ends['from']}→{ends['to']} {mode}"), (*path, "name")),
        source=ends["from"], target=ends["to"], user=user, password=password, mode=mode,
        namespace=namespace,
        query=_str(t.get("query", default_query(namespace)), (*path, "query")),
        sink=sink,
        expect=_expect(t["expect"], (*path, "expect")) if "expect" in t else None,
        auth_level=_auth_level(t["auth_level"], (*path, "auth_level")) if "auth_level" in t
        else None,
    )


def _auth_level(value: object, path: tuple[PathPart, ...]) -> str:
    text = _str(value, path).strip().lower()
    try:
        hardening.parse_level(text)
    except ConfigError as e:
        raise _fail(path, e.message) from None
    return text


def build(raw: Mapping[str, Any]) -> tuple[str, World, list[Call]]:
    """Validate a parsed scenario document; ConfigError carries the key path."""
    _known(raw, TOP_FIELDS, ())
    title = _str(raw.get("title", ""), ("title",))
    domains_t = _table(raw.get("domains", {}), ("domains",))
    domains = {name: _domain(name, v) for name, v in domains_t.items()}
    hosts_t = _table(raw.get("hosts", {}), ("hosts",))
    if not hosts_t:
        raise _fail(("hosts",), "no hosts are defined; add a [hosts.NAME] table")
    hosts = {name: _host(name, v, domains) for name, v in hosts_t.items()}
    world = World(domains, hosts)
    world.validate()
    calls_v = raw.get("calls", [])
    if not isinstance(calls_v, list):
        raise _fail(("calls",), "must be an array of tables: write each call as [[calls]]")
    host_names = {h.upper(): h for h in world.configs}
    calls = [_call(i, v, world, host_names) for i, v in enumerate(calls_v)]
    return title, world, calls


def parse_toml(text: str) -> dict[str, Any]:
    """The TOML document in ``text``; ``tomllib.TOMLDecodeError`` for a bad one.

    rtoml (Rust) reads a 10,000-host file in a fifth of a second where ``tomllib`` takes a
    second (docs/benchmarks.md). A document rtoml refuses is read again by ``tomllib``,
    whose error names the line, so what a user sees about a bad file does not depend on it.
    """
    if rtoml is not None:
        try:
            return rtoml.loads(text)
        except ValueError:  # rtoml.TomlParsingError, and numbers it will not read (1e999)
            pass
    return tomllib.loads(text)


def loads(text: str, path: str = "<scenario>") -> Scenario:
    try:
        raw = parse_toml(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column \d+\)", str(e))
        msg = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e))
        line = int(m.group(1)) if m else None
        raise ScenarioError(path, line, "", f"not valid TOML: {msg}") from None
    try:
        title, world, calls = build(raw)
    except ConfigError as e:
        raise ScenarioError(path, line_of(text, e.path), dotted(e.path), e.message) from None
    return Scenario(path=path, text=text, title=title, world=world, calls=calls, raw=raw)


def load(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(str(p), None, "", "no such file") from None
    except IsADirectoryError:
        raise ScenarioError(str(p), None, "", "is a directory, not a scenario file") from None
    except UnicodeDecodeError as e:
        raise ScenarioError(str(p), None, "", f"not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise ScenarioError(str(p), None, "", e.strerror or str(e)) from None
    return loads(text, str(p))

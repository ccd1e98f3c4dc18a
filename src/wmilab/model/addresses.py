"""Windows Firewall scopes and remote-address lists (XP SP2 / Server 2003 SP1).

A scope says which remote computers may use an exception: ALL (any computer), SUBNET
(the host's own subnet) or CUSTOM (a list of addresses, subnets and the keyword
LocalSubnet). The value types here are immutable, like CPython's ``ipaddress``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError
from typing import Generic, Literal, TypeVar

from wmilab.errors import ConfigError

ScopeKind = Literal["ALL", "SUBNET", "CUSTOM"]
_V = TypeVar("_V")
_W = TypeVar("_W")

_LOCAL_SUBNET = "LocalSubnet"


@dataclass(frozen=True, slots=True)
class AddressToken:
    """One entry of an address list: an IPv4 subnet (a host is a /32), or LocalSubnet.

    ``network`` is None for the keyword LocalSubnet.
    """

    network: IPv4Network | None

    @property
    def is_local_subnet(self) -> bool:
        return self.network is None

    def __str__(self) -> str:
        if self.network is None:
            return _LOCAL_SUBNET
        if self.network.prefixlen == 32:
            return str(self.network.network_address)
        return str(self.network)

    def matches(self, source: IPv4Address, local_subnet: IPv4Network) -> bool:
        if self.network is None:
            return source in local_subnet
        return source in self.network


LOCAL_SUBNET = AddressToken(None)


def _mask_to_prefix(mask_text: str, token: str) -> int:
    """A dotted mask must be contiguous ones then zeros (INetFwRemoteAdminSettings docs)."""
    try:
        mask = int(IPv4Address(mask_text))
    except AddressValueError:
        raise ConfigError(f"bad address {token!r}: {mask_text!r} is not a subnet mask") from None
    inverted = (~mask) & 0xFFFFFFFF
    # Contiguous mask: the inverted mask is 2**k - 1.
    if inverted & (inverted + 1):
        raise ConfigError(f"bad address {token!r}: the mask {mask_text} is not contiguous")
    return 32 - inverted.bit_length()


def parse_token(token: str) -> AddressToken:
    """Parse one list entry: ``a.b.c.d``, ``a.b.c.d/nn``, ``a.b.c.d/m.m.m.m`` or LocalSubnet."""
    text = token.strip()
    # LocalSubnet is case-insensitive (bb490617; INetFwRemoteAdminSettings RemoteAddresses).
    if text.lower() == "localsubnet":
        return LOCAL_SUBNET
    if not text:
        raise ConfigError("empty entry in address list (two commas in a row?)")
    if text == "*":
        raise ConfigError("'*' means any computer and must stand alone, not inside a list")
    if ":" in text:
        raise ConfigError(f"bad address {token!r}: wmilab models IPv4 only")
    if "-" in text:
        # Choice: ranges (a-b) appear only in Vista's help; the XP SP2 forms are listed above.
        raise ConfigError(
            f"bad address {token!r}: ranges are not supported; use a.b.c.d/nn or a.b.c.d/m.m.m.m")
    addr_text, slash, suffix = text.partition("/")
    try:
        IPv4Address(addr_text)
    except AddressValueError:
        raise ConfigError(f"bad address {token!r}: {addr_text!r} is not an IPv4 address") from None
    if not slash:
        return AddressToken(IPv4Network(f"{addr_text}/32"))
    if "." in suffix:
        prefix = _mask_to_prefix(suffix, token)
    else:
        if not suffix.isdigit() or not 0 <= int(suffix) <= 32:
            raise ConfigError(f"bad address {token!r}: prefix length must be 0-32")
        prefix = int(suffix)
    try:
        # Choice: host bits set (10.0.0.5/24) are accepted and mean the whole subnet.
        return AddressToken(IPv4Network(f"{addr_text}/{prefix}", strict=False))
    except (AddressValueError, NetmaskValueError):  # pragma: no cover - validated above
        raise ConfigError(f"bad address {token!r}") from None


def parse_address_list(text: str) -> tuple[AddressToken, ...]:
    """Parse a comma-separated address list (bb490617 "addresses"; GP scope strings).

    ``*`` (any computer) must stand alone and yields an empty tuple; callers that
    accept ``*`` (``Scope.from_policy``) check for it first.
    """
    stripped = text.strip()
    if not stripped:
        raise ConfigError("empty address list")
    if stripped == "*":
        return ()
    out: list[AddressToken] = []
    for part in stripped.split(","):
        tok = parse_token(part)
        if tok not in out:
            out.append(tok)
    return tuple(out)


@dataclass(frozen=True)
class Scope:
    """Which remote computers an exception admits (netsh ``scope=``/``addresses=``)."""

    kind: ScopeKind
    addresses: tuple[AddressToken, ...] = ()
    _nets: tuple[IPv4Network, ...] = field(default=(), init=False, repr=False, compare=False)
    _local: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind == "CUSTOM" and not self.addresses:
            raise ConfigError("scope CUSTOM needs at least one address")
        if self.kind != "CUSTOM" and self.addresses:
            raise ConfigError("'scope' must be 'CUSTOM' to specify 'addresses'")
        nets = tuple(a.network for a in self.addresses if a.network is not None)
        object.__setattr__(self, "_nets", nets)
        object.__setattr__(self, "_local", any(a.is_local_subnet for a in self.addresses))

    # -- construction -------------------------------------------------------------
    @classmethod
    def all(cls) -> Scope:
        return _ALL

    @classmethod
    def subnet(cls) -> Scope:
        return _SUBNET

    @classmethod
    def custom(cls, addresses: str) -> Scope:
        tokens = parse_address_list(addresses)
        if not tokens:  # "*"
            return _ALL
        return cls("CUSTOM", tokens)

    @classmethod
    def parse(cls, scope: str | None, addresses: str | None) -> Scope:
        """netsh semantics: scope defaults to ALL; addresses only with CUSTOM (bb490617)."""
        kind = (scope or "ALL").strip().upper()
        if kind not in ("ALL", "SUBNET", "CUSTOM"):
            raise ConfigError(f"scope must be ALL, SUBNET or CUSTOM, not {scope!r}")
        if addresses is not None and kind != "CUSTOM":
            # Help text remark: 'scope' must be 'CUSTOM' to specify 'addresses' (bb490617).
            raise ConfigError("'scope' must be 'CUSTOM' to specify 'addresses'")
        if kind == "CUSTOM":
            if addresses is None or not addresses.strip():
                raise ConfigError("scope=CUSTOM needs addresses=<list>")
            return cls.custom(addresses)
        return _ALL if kind == "ALL" else _SUBNET

    @classmethod
    def from_policy(cls, text: str) -> Scope:
        """A GP scope string: ``*`` (any), ``localsubnet``, or an address list.

        Source: GP explain texts ("Define port exceptions": "*" or "localsubnet" or a list).
        """
        t = text.strip()
        if t == "*":
            return _ALL
        if t.lower() == "localsubnet":
            return _SUBNET
        return cls.custom(t)

    # -- queries -------------------------------------------------------------------
    def matches(self, source: IPv4Address, local_subnet: IPv4Network) -> bool:
        if self.kind == "ALL":
            return True
        if self.kind == "SUBNET":
            return source in local_subnet
        if self._local and source in local_subnet:
            return True
        return any(source in net for net in self._nets)

    def networks(self, local_subnet: IPv4Network) -> tuple[IPv4Network, ...]:
        """The source networks this scope admits, for a host on ``local_subnet``
        (``matches`` holds exactly for the addresses inside them)."""
        if self.kind == "ALL":
            return _ANY_NETWORKS
        if self.kind == "SUBNET":
            return (local_subnet,)
        return (*((local_subnet,) if self._local else ()), *self._nets)

    def with_address(self, addr: IPv4Address) -> Scope:
        """The narrowest widening of this scope that also admits ``addr``."""
        host = AddressToken(IPv4Network(f"{addr}/32"))
        if self.kind == "ALL":
            return self
        if self.kind == "SUBNET":
            return Scope("CUSTOM", (LOCAL_SUBNET, host))
        if any(addr in net for net in self._nets):
            return self
        return Scope("CUSTOM", (*self.addresses, host))

    def union(self, other: Scope) -> Scope:
        """Scopes of several GP entries for one port/program are combined (GP explain text)."""
        if self.kind == "ALL" or other.kind == "ALL":
            return _ALL
        mine = (LOCAL_SUBNET,) if self.kind == "SUBNET" else self.addresses
        theirs = (LOCAL_SUBNET,) if other.kind == "SUBNET" else other.addresses
        merged = list(mine)
        for tok in theirs:
            if tok not in merged:
                merged.append(tok)
        if merged == [LOCAL_SUBNET]:
            return _SUBNET
        return Scope("CUSTOM", tuple(merged))

    def address_text(self) -> str:
        return ",".join(str(a) for a in self.addresses)

    def netsh_args(self) -> str:
        if self.kind == "CUSTOM":
            return f"scope=CUSTOM addresses={self.address_text()}"
        return f"scope={self.kind}"

    def policy_text(self) -> str:
        if self.kind == "ALL":
            return "*"
        if self.kind == "SUBNET":
            return "localsubnet"
        return self.address_text()

    def describe(self) -> str:
        # Labels follow the Control Panel "Change Scope" dialog (cc737332).
        if self.kind == "ALL":
            return "any computer"
        if self.kind == "SUBNET":
            return "my network (subnet) only"
        return f"custom list {self.address_text()}"

    def __str__(self) -> str:
        return self.netsh_args()


_ALL = Scope("ALL")
_SUBNET = Scope("SUBNET")
_ANY_NETWORKS = (IPv4Network("0.0.0.0/0"),)


class SourceTable(Generic[_V]):
    """An answer per source address, compiled once from an ordered list of scopes.

    ``spans`` are (first, last, value) over addresses as integers, in the order the scopes are
    tried: the first span that holds an address gives its value; an address in none gets
    ``default``, or None when that answer depends on the address itself (the caller then
    asks the question it was compiled from). ``const`` is the value every address gets,
    when there is one, so that a caller need not look at the address at all.
    """

    __slots__ = ("const", "default", "spans")

    def __init__(self, spans: tuple[tuple[int, int, _V], ...], default: _V | None) -> None:
        kept: list[tuple[int, int, _V]] = []
        for lo, hi, value in spans:
            kept.append((lo, hi, value))
            if lo == 0 and hi == _ALL_ADDRESSES:
                break  # every later span is shadowed
        self.spans = tuple(kept)
        self.default = default
        self.const: _V | None = default if not kept else (
            kept[0][2] if kept[0][0] == 0 and kept[0][1] == _ALL_ADDRESSES else None)

    @classmethod
    def of(cls, scopes: tuple[tuple[Scope, _V], ...], local_subnet: IPv4Network,
           default: _V | None) -> SourceTable[_V]:
        """The table of ``(scope, value)`` tried in order on a host on ``local_subnet``:
        :meth:`Scope.networks` holds exactly the addresses :meth:`Scope.matches` admits."""
        return cls(tuple((lo, lo | (_ALL_ADDRESSES >> net.prefixlen), value)
                         for scope, value in scopes for net in scope.networks(local_subnet)
                         for lo in (int(net.network_address),)), default)

    def get(self, source: int) -> _V | None:
        for lo, hi, value in self.spans:
            if lo <= source <= hi:
                return value
        return self.default

    def map(self, fn: Callable[[_V], _W]) -> SourceTable[_W]:
        """The same table with ``fn`` of each value (asked once per distinct value)."""
        done: dict[int, _W] = {}

        def once(value: _V) -> _W:
            found = done.get(id(value))
            if found is None:
                found = done[id(value)] = fn(value)
            return found

        return SourceTable(tuple((lo, hi, once(v)) for lo, hi, v in self.spans),
                           None if self.default is None else once(self.default))


_ALL_ADDRESSES = 0xFFFFFFFF

"""The CIM model of the repository: classes, instances, object paths and WMI errors."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property, lru_cache

from ..hresult import (
    WBEM_E_INVALID_NAMESPACE,
    WBEM_E_INVALID_PARAMETER,
    HResult,
)
from ..model import namespaces
from ..wire import wmio
from ..wire.wmio import ARRAY_FLAG, CimType, Value
from .mof import MofClass, MofMethod, MofQualifier


class WmiError(Exception):
    """A WMI call failed with ``hresult``, as IWbemServices would return it."""

    def __init__(self, hresult: HResult, detail: str = "") -> None:
        super().__init__(f"{hresult}: {detail}" if detail else str(hresult))
        self.hresult = hresult
        self.detail = detail


def dmtf_datetime(moment: datetime) -> str:
    """A DMTF datetime ``yyyymmddHHMMSS.mmmmmmsUUU`` (MSDocs WmiSdk/cim-datetime).

    The offset is in minutes from UTC; a naive datetime is taken as UTC.
    """
    # Aware datetimes compare equal across offsets, so the offset is part of the key.
    return _dmtf(moment, moment.utcoffset())


@lru_cache(maxsize=256)
def _dmtf(moment: datetime, utcoffset: timedelta | None) -> str:
    offset = utcoffset or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{moment:%Y%m%d%H%M%S}.{moment.microsecond:06d}{sign}{abs(minutes):03d}"


@dataclass
class CimClass:
    """A class of a namespace, resolved against its superclasses."""

    name: str
    superclass: CimClass | None
    qualifiers: tuple[MofQualifier, ...]
    own_properties: tuple[wmio.Property, ...]
    own_methods: tuple[MofMethod, ...]
    _wire: wmio.ClassDef | None = field(default=None, repr=False)
    _projections: dict[frozenset[str], wmio.ClassDef] = field(
        default_factory=dict, init=False, repr=False, compare=False)
    _encoded: dict[tuple[str, str, bool], bytes] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_mof(cls, mof: MofClass, superclass: CimClass | None) -> CimClass:
        props = tuple(
            wmio.Property(name=p.name, cim_type=p.cim_type, class_ref=p.class_ref,
                          qualifiers=tuple(q.to_wire() for q in p.qualifiers),
                          default=p.default)
            for p in mof.properties)
        return cls(mof.name, superclass, mof.qualifiers, props, mof.methods)

    # Everything below is derived from the class definition, which never changes once the
    # namespace is loaded (superclass and own features are fixed at construction), so each
    # value is computed once per class (functools.cached_property) and shared by every
    # instance and every query.

    # -- hierarchy ---------------------------------------------------------------------
    @cached_property
    def ancestors(self) -> tuple[CimClass, ...]:
        """Superclasses, nearest first."""
        out: list[CimClass] = []
        c = self.superclass
        while c is not None:
            out.append(c)
            c = c.superclass
        return tuple(out)

    @cached_property
    def derivation(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.ancestors)

    @cached_property
    def _lineage(self) -> frozenset[str]:
        """Lower-case names of the class and its ancestors."""
        return frozenset(c.name.lower() for c in (self, *self.ancestors))

    def is_a(self, name: str) -> bool:
        return name.lower() in self._lineage

    def has_qualifier(self, name: str) -> bool:
        low = name.lower()
        return any(q.name.lower() == low and q.value is not False for q in self.qualifiers)

    @cached_property
    def is_association(self) -> bool:
        # An association is a class with the Association qualifier (DSP0004 5.1.2.x;
        # MSDocs WmiSdk/declaring-an-association-class).
        return self.has_qualifier("Association") or any(
            a.has_qualifier("Association") for a in self.ancestors)

    @cached_property
    def is_abstract(self) -> bool:
        return self.has_qualifier("abstract")

    @cached_property
    def is_singleton(self) -> bool:
        # MSDocs WmiSdk/standard-qualifiers "Singleton": one instance, path Class=@.
        return self.has_qualifier("Singleton") or any(
            a.has_qualifier("Singleton") for a in self.ancestors)

    # -- features ----------------------------------------------------------------------
    @cached_property
    def properties(self) -> tuple[tuple[wmio.Property, int], ...]:
        """Every property with the number of classes up it was declared (0 = here)."""
        chain = [self, *self.ancestors]
        out: list[tuple[wmio.Property, int]] = []
        index: dict[str, int] = {}
        for depth in range(len(chain) - 1, -1, -1):
            for p in chain[depth].own_properties:
                at = index.get(p.name.lower())
                if at is None:
                    index[p.name.lower()] = len(out)
                    out.append((p, depth))
                    continue
                # An override keeps the original position and class of origin; qualifiers
                # propagate to the subclass unless it overrides them (DSP0004 "qualifier
                # flavors": ToSubclass is the default).
                base, origin = out[at]
                names = {q.name.lower() for q in p.qualifiers}
                quals = tuple(q for q in base.qualifiers if q.name.lower() not in names)
                merged = wmio.Property(base.name, base.cim_type, quals + p.qualifiers,
                                       p.default if p.default is not None else base.default,
                                       class_ref=p.class_ref or base.class_ref)
                out[at] = (merged, origin)
        return tuple(out)

    @cached_property
    def _property_index(self) -> dict[str, wmio.Property]:
        """Properties by lower-case name (the first one wins, as a linear search would)."""
        index: dict[str, wmio.Property] = {}
        for p, _ in self.properties:
            index.setdefault(p.name.lower(), p)
        return index

    def get_property(self, name: str) -> wmio.Property | None:
        return self._property_index.get(name.lower())

    @cached_property
    def keys(self) -> tuple[str, ...]:
        """Names of the key properties (qualifier ``key``, MSDocs WmiSdk/standard-qualifiers)."""
        return tuple(p.name for p, _ in self.properties if p.qualifier("key") is not None)

    @cached_property
    def _lower_keys(self) -> frozenset[str]:
        return frozenset(k.lower() for k in self.keys)

    @cached_property
    def methods(self) -> tuple[tuple[MofMethod, int], ...]:
        chain = [self, *self.ancestors]
        out: dict[str, tuple[MofMethod, int]] = {}
        for depth in range(len(chain) - 1, -1, -1):
            for m in chain[depth].own_methods:
                out.setdefault(m.name.lower(), (m, depth))
        return tuple(out.values())

    @cached_property
    def _method_index(self) -> dict[str, MofMethod]:
        index: dict[str, MofMethod] = {}
        for m, _ in self.methods:
            index.setdefault(m.name.lower(), m)
        return index

    def get_method(self, name: str) -> MofMethod | None:
        return self._method_index.get(name.lower())

    # -- wire --------------------------------------------------------------------------
    def to_wire(self) -> wmio.ClassDef:
        """The MS-WMIO class: all properties (inherited first) and method signatures."""
        if self._wire is None:
            props = tuple(
                wmio.Property(p.name, p.cim_type, p.qualifiers, p.default, origin=depth,
                              inherited=depth > 0, class_ref=p.class_ref)
                for p, depth in self.properties)
            methods = tuple(
                wmio.Method(m.name, _signature(m, "in"), _signature(m, "out"),
                            tuple(q.to_wire() for q in m.qualifiers), origin=depth,
                            inherited=depth > 0)
                for m, depth in self.methods)
            parent = self.superclass.to_wire() if self.superclass else None
            self._wire = wmio.ClassDef(self.name, self.derivation,
                                       tuple(q.to_wire() for q in self.qualifiers), props,
                                       methods, parent)
        return self._wire

    def projected_wire(self, names: frozenset[str]) -> wmio.ClassDef:
        """The class reduced to ``names`` (lower-case), as a query with a property list gets."""
        # The same ClassDef object for the same projection lets wmio reuse its encoded class
        # part. Choice: at most _MAX_PROJECTIONS projections are kept per class (a client
        # could send endless distinct property lists); the oldest goes first.
        cached = self._projections.get(names)
        if cached is not None:
            return cached
        full = self.to_wire()
        props = tuple(p for p in full.properties if p.name.lower() in names)
        projected = wmio.ClassDef(full.name, full.derivation, full.qualifiers, props, (),
                                  full.parent)
        if len(self._projections) >= _MAX_PROJECTIONS:
            del self._projections[next(iter(self._projections))]
        self._projections[names] = projected
        return projected

    def encode(self, server: str, namespace: str, decorate: bool = True) -> bytes:
        """The MS-WMIO EncodingUnit of the class, decorated with ``server`` and ``namespace``.

        Kept per (server, namespace, decorate): a class never changes after load.
        """
        key = (server, namespace, decorate)
        blob = self._encoded.get(key)
        if blob is None:
            blob = wmio.encode_encoding_unit(self.to_wire(), server, namespace, decorate)
            if len(self._encoded) >= _MAX_PROJECTIONS:
                del self._encoded[next(iter(self._encoded))]
            self._encoded[key] = blob
        return blob


# Choice: bound on the per-class caches keyed by client input (projections, decorations).
_MAX_PROJECTIONS = 64


def _signature(method: MofMethod, direction: str) -> wmio.ClassDef | None:
    """The ``__PARAMETERS`` class of a method's in or out parameters.

    Parameters carry the ID qualifier (their position) and in/out (MSDocs
    WmiSdk/writing-a-method-declaration-in-mof, "__PARAMETERS"); the method's return value is
    the out-parameter ``ReturnValue`` (MSDocs WmiSdk/--parameters).
    """
    props: list[wmio.Property] = []
    for index, p in enumerate(method.params):
        if not p.has(direction):
            continue
        quals = (wmio.Qualifier("ID", index, CimType.SINT32, wmio.FLAVOR_NOT_OVERRIDABLE),
                 wmio.Qualifier(direction, True, CimType.BOOLEAN))
        props.append(wmio.Property(p.name, p.cim_type, quals, class_ref=p.class_ref))
    if direction == "out" and method.return_type is not None:
        props.append(wmio.Property("ReturnValue", method.return_type,
                                   (wmio.Qualifier("out", True, CimType.BOOLEAN),)))
    if not props:
        return None
    return wmio.ClassDef("__PARAMETERS", properties=tuple(props))


class CimInstance:
    """An instance: a class and a value per property (missing = NULL)."""

    def __init__(self, cls: CimClass, values: dict[str, Value] | None = None,
                 projection: frozenset[str] | None = None) -> None:
        self.cls = cls
        self.values: dict[str, Value] = {}
        self.projection = projection
        for name, value in (values or {}).items():
            self.set(name, value)

    def set(self, name: str, value: Value) -> None:
        prop = self.cls.get_property(name)
        if prop is None:
            raise WmiError(WBEM_E_INVALID_PARAMETER, f"{self.cls.name} has no property {name}")
        self.values[prop.name] = value

    def get(self, name: str) -> Value:
        prop = self.cls.get_property(name)
        return None if prop is None else self.values.get(prop.name)

    def key_values(self) -> dict[str, Value]:
        return {k: self.values.get(k) for k in self.cls.keys}

    @property
    def relpath(self) -> str:
        return format_path(self.cls.name, self.key_values(), self.cls.is_singleton)

    def path(self, server: str, namespace: str) -> str:
        return f"\\\\{server}\\{namespace}:{self.relpath}"

    def project(self, names: frozenset[str]) -> CimInstance:
        """A copy with only ``names`` (lower-case) plus the key properties."""
        keep = names | self.cls._lower_keys
        values = {k: v for k, v in self.values.items() if k.lower() in keep}
        return CimInstance(self.cls, values, frozenset(keep))

    def to_wire(self) -> wmio.Instance:
        if self.projection is None:
            return wmio.Instance(self.cls.to_wire(), dict(self.values))
        return wmio.Instance(self.cls.projected_wire(self.projection), dict(self.values))


CimObject = CimClass | CimInstance


# ---------------------------------------------------------------------------------------
# Object paths (MSDocs WmiSdk/describing-a-class-object-path,
# WmiSdk/describing-an-instance-object-path, WmiSdk/object-path-requirements)
# ---------------------------------------------------------------------------------------


def _quote(value: Value) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return str(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def format_path(class_name: str, keys: dict[str, Value], singleton: bool = False) -> str:
    """A relative path: ``Class.Key="v"``, keys in alphabetical order; ``Class=@`` for a
    singleton (MSDocs WmiSdk/describing-an-instance-object-path)."""
    if singleton:
        return f"{class_name}=@"
    if not keys:
        return class_name
    if len(keys) == 1:
        ((name, value),) = keys.items()
        return f"{class_name}.{name}={_quote(value)}"
    # Choice: several keys are written in alphabetical order, as WMI's __RELPATH shows them.
    parts = [f"{k}={_quote(keys[k])}" for k in sorted(keys, key=str.lower)]
    return f"{class_name}." + ",".join(parts)


@dataclass(frozen=True)
class ObjectPath:
    """A parsed object path. ``keys`` is None for a class path."""

    server: str | None
    namespace: str | None
    class_name: str
    keys: tuple[tuple[str | None, Value], ...] | None
    singleton: bool = False

    @property
    def is_class(self) -> bool:
        return self.keys is None and not self.singleton


_PATH_PREFIX = re.compile(r"^(?:\\\\|//)([^\\/]+)[\\/]([^:]*):(.*)$", re.S)
_NS_PREFIX = re.compile(r"^([A-Za-z0-9_\\/]+):(.*)$", re.S)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class PathError(ValueError):
    """An object path that cannot be parsed."""


def parse_path(text: str) -> ObjectPath:
    """Parse ``[\\\\server\\namespace:]Class[.Key=value[,...] | =value | =@]``."""
    text = text.strip()
    server = namespace = None
    m = _PATH_PREFIX.match(text)
    if m:
        server, namespace, text = m.group(1), m.group(2).replace("/", "\\"), m.group(3)
    else:
        m = _NS_PREFIX.match(text)
        if m and "." not in m.group(1) and "=" not in m.group(1):
            namespace, text = m.group(1).replace("/", "\\"), m.group(2)
    name = _NAME.match(text)
    if not name:
        raise PathError(f"no class name in object path {text!r}")
    class_name = name.group(0)
    rest = text[name.end():]
    if not rest:
        return ObjectPath(server, namespace, class_name, None)
    if rest == "=@":
        return ObjectPath(server, namespace, class_name, (), singleton=True)
    keys: list[tuple[str | None, Value]] = []
    if rest.startswith("="):
        value, end = _parse_value(rest, 1)
        if end != len(rest):
            raise PathError(f"unexpected text after key value in {text!r}")
        return ObjectPath(server, namespace, class_name, ((None, value),))
    if not rest.startswith("."):
        raise PathError(f"expected '.' after class name in {text!r}")
    pos = 1
    while True:
        km = _NAME.match(rest, pos)
        if not km or km.end() >= len(rest) or rest[km.end()] != "=":
            raise PathError(f"expected Key=value in {text!r}")
        value, pos = _parse_value(rest, km.end() + 1)
        keys.append((km.group(0), value))
        if pos == len(rest):
            break
        if rest[pos] != ",":
            raise PathError(f"expected ',' between keys in {text!r}")
        pos += 1
    return ObjectPath(server, namespace, class_name, tuple(keys))


def _parse_value(text: str, pos: int) -> tuple[Value, int]:
    if pos < len(text) and text[pos] in "\"'":
        quote = text[pos]
        out = []
        i = pos + 1
        while i < len(text):
            c = text[i]
            if c == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 2
                continue
            if c == quote:
                return "".join(out), i + 1
            out.append(c)
            i += 1
        raise PathError(f"unterminated string in object path {text!r}")
    end = pos
    while end < len(text) and text[end] != ",":
        end += 1
    raw = text[pos:end].strip()
    if raw.upper() in ("TRUE", "FALSE"):
        return raw.upper() == "TRUE", end
    try:
        return int(raw, 0), end
    except ValueError:
        pass
    try:
        return float(raw), end
    except ValueError:
        raise PathError(f"bad key value {raw!r} in object path") from None


def normalize_namespace(text: str) -> str:
    """``//./root/cimv2``, ``\\\\.\\root\\cimv2`` or ``ROOT\\CIMV2`` -> ``root\\cimv2``: the model's
    one rule (model/namespaces.py); a bad name is WBEM_E_INVALID_NAMESPACE."""
    try:
        return namespaces.normalize(text)
    except namespaces.NamespaceNameError:
        raise WmiError(WBEM_E_INVALID_NAMESPACE, f"bad namespace name {text!r}") from None


def value_matches_key(actual: Value, wanted: Value) -> bool:
    """Key comparison for paths: strings case-insensitively, numbers by value."""
    if isinstance(actual, str) and isinstance(wanted, str):
        return _norm_ref(actual) == _norm_ref(wanted)
    if isinstance(actual, bool) or isinstance(wanted, bool):
        return actual == wanted
    if isinstance(actual, int | float) and isinstance(wanted, str):
        try:
            return actual == int(wanted, 0)
        except ValueError:
            return False
    return actual == wanted


def _norm_ref(text: str) -> str:
    """Compare references without their server/namespace prefix, case-insensitively."""
    try:
        p = parse_path(text)
    except PathError:
        return text.lower()
    if p.keys is None:
        return text.lower()
    keys = ",".join(f"{(k or '').lower()}={_quote(v).lower()}" for k, v in sorted(
        p.keys, key=lambda kv: (kv[0] or "").lower()))
    return f"{p.class_name.lower()}.{keys}"


__all__ = [
    "ARRAY_FLAG", "CimClass", "CimInstance", "CimObject", "ObjectPath", "PathError", "WmiError",
    "dmtf_datetime", "format_path", "normalize_namespace", "parse_path", "value_matches_key",
]

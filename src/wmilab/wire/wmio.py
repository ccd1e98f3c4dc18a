"""MS-WMIO encoded WMI objects: a sans-IO encoder and decoder.

An object travels as an EncodingUnit (MS-WMIO 2.2.1): a signature, a length and an
ObjectBlock (2.2.5). A class ObjectBlock carries ClassType = ParentClass + CurrentClass
(2.2.11-2.2.13), each a ClassAndMethodsPart (2.2.14); an instance carries InstanceType
(2.2.53) = the current class's ClassPart + the instance's values. Every object we emit
carries its full current-class part (no class cache), as required by the clients we serve.

The plain values used here:

* ``ClassDef`` - a class as sent on the wire: its name, derivation (parent first), qualifiers,
  every property (inherited ones first, flagged inherited), methods with ``__PARAMETERS``
  signature classes.
* ``Instance`` - a ``ClassDef`` plus a value per property (``None`` = NULL).
* values: ``bool``, ``int``, ``float``, ``str`` (strings, DMTF datetimes, references and
  char16), ``Instance``/``ClassDef`` (embedded objects) and ``list`` of those for arrays.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Union

from wmilab.errors import WireError


class WmioError(WireError):
    """Bytes that are not a well-formed MS-WMIO object, or a value that cannot be encoded."""


class CimType(IntEnum):
    """CimType values (MS-WMIO 2.2.82 CimType)."""

    SINT8 = 16
    UINT8 = 17
    SINT16 = 2
    UINT16 = 18
    SINT32 = 3
    UINT32 = 19
    SINT64 = 20
    UINT64 = 21
    REAL32 = 4
    REAL64 = 5
    BOOLEAN = 11
    STRING = 8
    DATETIME = 101
    REFERENCE = 102
    CHAR16 = 103
    OBJECT = 13


# MS-WMIO 2.2.82: arrays are the base type ORed with CIM-ARRAY-FLAG 0x2000.
ARRAY_FLAG = 0x2000
# MS-WMIO 2.2.32 Inherited: PropertyType ORed with 0x4000 for properties inherited from a parent.
INHERITED_FLAG = 0x4000
# MS-WMIO 2.2.77 Signature.
SIGNATURE = 0x12345678
# MS-WMIO 2.2.6 ObjectFlags.
OBJ_CLASS = 0x01
OBJ_INSTANCE = 0x02
OBJ_DECORATION = 0x04
# MS-WMIO 2.2.62 QualifierFlavor bits.
FLAVOR_PROPAGATE_TO_INSTANCE = 0x01
FLAVOR_PROPAGATE_TO_DERIVED_CLASS = 0x02
FLAVOR_NOT_OVERRIDABLE = 0x10
FLAVOR_ORIGIN_PROPAGATED = 0x20
FLAVOR_ORIGIN_SYSTEM = 0x40
FLAVOR_AMENDED = 0x80
# MS-WMIO 2.2.43 MethodFlags: 0x20 marks a method inherited (propagated) from a parent class.
METHOD_FLAG_PROPAGATED = 0x20
# MS-WMIO 2.2.66 Heap: HeapLength has its most significant bit always set.
HEAP_LENGTH_MSB = 0x80000000
# MS-WMIO 2.2.69 HeapRef: 0xFFFFFFFF is used for "no reference".
NO_REF = 0xFFFFFFFF
# MS-WMIO 2.2.65 InstancePropQualifierSet: flag 1 = no per-property instance qualifiers.
INST_PROP_QUAL_SET_NONE = 0x01
INST_PROP_QUAL_SET_PRESENT = 0x02

# MS-WMIO 2.2.80 DictionaryReference: well-known strings referenced as 0x80000000 | index.
DICTIONARY: tuple[str, ...] = (
    '"', "key", "NADA", "read", "write", "volatile", "provider", "dynamic", "cimwin32",
    "DWORD", "CIMTYPE",
)
_DICT_INDEX = {name.lower(): i for i, name in enumerate(DICTIONARY)}
DICT_REF_FLAG = 0x80000000

# MS-WMIO 2.2.82 + 2.2.71: inline sizes in the ValueTable and in qualifiers.
_FIXED_FORMAT: dict[CimType, str] = {
    CimType.SINT8: "<b", CimType.UINT8: "<B", CimType.SINT16: "<h", CimType.UINT16: "<H",
    CimType.SINT32: "<l", CimType.UINT32: "<L", CimType.SINT64: "<q", CimType.UINT64: "<Q",
    CimType.REAL32: "<f", CimType.REAL64: "<d", CimType.BOOLEAN: "<H", CimType.CHAR16: "<H",
}
_STRINGLIKE = frozenset({CimType.STRING, CimType.DATETIME, CimType.REFERENCE})
_INT_RANGES: dict[CimType, tuple[int, int]] = {
    CimType.SINT8: (-(2**7), 2**7 - 1), CimType.UINT8: (0, 2**8 - 1),
    CimType.SINT16: (-(2**15), 2**15 - 1), CimType.UINT16: (0, 2**16 - 1),
    CimType.SINT32: (-(2**31), 2**31 - 1), CimType.UINT32: (0, 2**32 - 1),
    CimType.SINT64: (-(2**63), 2**63 - 1), CimType.UINT64: (0, 2**64 - 1),
}
# MS-WMIO 2.2.71: boolean TRUE is encoded as 0xFFFF, FALSE as 0x0000.
_TRUE16 = 0xFFFF

TYPE_NAMES: dict[CimType, str] = {
    CimType.SINT8: "sint8", CimType.UINT8: "uint8", CimType.SINT16: "sint16",
    CimType.UINT16: "uint16", CimType.SINT32: "sint32", CimType.UINT32: "uint32",
    CimType.SINT64: "sint64", CimType.UINT64: "uint64", CimType.REAL32: "real32",
    CimType.REAL64: "real64", CimType.BOOLEAN: "boolean", CimType.STRING: "string",
    CimType.DATETIME: "datetime", CimType.REFERENCE: "ref", CimType.CHAR16: "char16",
    CimType.OBJECT: "object",
}
TYPES_BY_NAME: dict[str, CimType] = {v: k for k, v in TYPE_NAMES.items()}

Value = Union[None, bool, int, float, str, "Instance", "ClassDef", list["Value"]]


_CIMTYPES: dict[int, CimType] = {t.value: t for t in CimType}


def base_type(cim_type: int) -> CimType:
    """The scalar CimType of ``cim_type`` without the array and inherited flags."""
    found = _CIMTYPES.get(cim_type & ~(ARRAY_FLAG | INHERITED_FLAG))
    if found is None:
        raise WmioError(f"unknown CimType 0x{cim_type:04X}")
    return found


def is_array(cim_type: int) -> bool:
    return bool(cim_type & ARRAY_FLAG)


def cimtype_text(cim_type: int, class_ref: str = "") -> str:
    """The CIMTYPE qualifier text WMI attaches to a property: ``uint32``, ``ref:Win32_Process``.

    The CIMTYPE qualifier names the property type as text (MSDocs WmiSdk/standard-qualifiers,
    "CIMTYPE"); references and embedded objects carry their class after a colon.
    """
    base = base_type(cim_type)
    name = TYPE_NAMES[base]
    if base in (CimType.REFERENCE, CimType.OBJECT) and class_ref:
        name = f"{name}:{class_ref}"
    return name


@dataclass(frozen=True)
class Qualifier:
    name: str
    value: Value
    cim_type: int
    flavor: int = 0


@dataclass(frozen=True)
class Property:
    name: str
    cim_type: int
    qualifiers: tuple[Qualifier, ...] = ()
    default: Value = None
    # MS-WMIO 2.2.35 ClassOfOrigin; we write how many classes up the property was declared.
    origin: int = 0
    inherited: bool = False
    # Class named by the CIMTYPE qualifier of reference and object properties.
    class_ref: str = ""

    def qualifier(self, name: str) -> Qualifier | None:
        low = name.lower()
        return next((q for q in self.qualifiers if q.name.lower() == low), None)


@dataclass(frozen=True)
class Method:
    name: str
    inputs: ClassDef | None = None
    outputs: ClassDef | None = None
    qualifiers: tuple[Qualifier, ...] = ()
    origin: int = 0
    inherited: bool = False


class _ClassMemo:
    """Encodings derived from a ClassDef, kept with it (a ClassDef is frozen)."""

    __slots__ = ("class_and_methods", "class_part", "layout")

    def __init__(self) -> None:
        self.class_part: bytes | None = None
        self.class_and_methods: bytes | None = None
        self.layout: _Layout | None = None


@dataclass(frozen=True)
class ClassDef:
    name: str
    derivation: tuple[str, ...] = ()
    qualifiers: tuple[Qualifier, ...] = ()
    properties: tuple[Property, ...] = ()
    methods: tuple[Method, ...] = ()
    parent: ClassDef | None = None
    # Not a value of the class: its encodings, filled on first use (see _encode_class_part).
    _memo: _ClassMemo = field(default_factory=_ClassMemo, init=False, repr=False,
                              compare=False)

    def property(self, name: str) -> Property | None:
        low = name.lower()
        return next((p for p in self.properties if p.name.lower() == low), None)

    def method(self, name: str) -> Method | None:
        low = name.lower()
        return next((m for m in self.methods if m.name.lower() == low), None)


@dataclass
class Instance:
    cls: ClassDef
    values: dict[str, Value] = field(default_factory=dict)
    qualifiers: tuple[Qualifier, ...] = ()

    def get(self, name: str) -> Value:
        low = name.lower()
        for key, value in self.values.items():
            if key.lower() == low:
                return value
        return None


@dataclass
class Decoded:
    """A decoded ObjectBlock with its Decoration (MS-WMIO 2.2.7), if any."""

    obj: ClassDef | Instance
    server: str | None = None
    namespace: str | None = None


# ---------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------


def encode_string(text: str) -> bytes:
    """An Encoded-String (MS-WMIO 2.2.78).

    Flag 0x00 = compressed (one octet per character, characters U+0000-U+00FF) with a
    one-octet terminator; flag 0x01 = UTF-16LE with a two-octet terminator. We compress
    whenever possible: aiowmi's UTF-16 reader searches the terminator from the start of
    the heap, so compressed strings are the ones it reads reliably.
    """
    if "\x00" in text:
        raise WmioError(f"a CIM string cannot contain NUL: {text!r}")
    try:
        return b"\x00" + text.encode("latin-1") + b"\x00"
    except UnicodeEncodeError:
        return b"\x01" + text.encode("utf-16-le") + b"\x00\x00"


class _Heap:
    """A heap being built (MS-WMIO 2.2.66); ``add`` returns the HeapRef of the data."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def add(self, data: bytes) -> int:
        offset = len(self.buf)
        self.buf += data
        return offset

    def add_string(self, text: str) -> int:
        return self.add(encode_string(text))

    def encode(self) -> bytes:
        if len(self.buf) >= HEAP_LENGTH_MSB:
            raise WmioError("heap too large")
        return struct.pack("<L", len(self.buf) | HEAP_LENGTH_MSB) + bytes(self.buf)


def _check_int(base: CimType, value: Value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise WmioError(f"{TYPE_NAMES[base]} value must be an int, not {value!r}")
    lo, hi = _INT_RANGES[base]
    if not lo <= value <= hi:
        raise WmioError(f"{value} is out of range for {TYPE_NAMES[base]}")
    return value


def _scalar_inline(base: CimType, value: Value) -> bytes:
    """Inline encoding of a fixed-size scalar (MS-WMIO 2.2.71 EncodedValue)."""
    fmt = _FIXED_FORMAT[base]
    if base == CimType.BOOLEAN:
        if not isinstance(value, bool):
            raise WmioError(f"boolean value must be a bool, not {value!r}")
        return struct.pack(fmt, _TRUE16 if value else 0)
    if base == CimType.CHAR16:
        if not isinstance(value, str) or len(value) != 1 or ord(value) > 0xFFFF:
            raise WmioError(f"char16 value must be one BMP character, not {value!r}")
        return struct.pack(fmt, ord(value))
    if base in (CimType.REAL32, CimType.REAL64):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise WmioError(f"{TYPE_NAMES[base]} value must be a number, not {value!r}")
        return struct.pack(fmt, float(value))
    return struct.pack(fmt, _check_int(base, value))


def _embedded(value: Value) -> bytes:
    """ObjectEncodingLength + ObjectBlock of an embedded object (MS-WMIO 2.2.71)."""
    if not isinstance(value, Instance | ClassDef):
        raise WmioError(f"object value must be an Instance or ClassDef, not {value!r}")
    block = encode_object_block(value)
    return struct.pack("<L", len(block)) + block


def _heap_value(base: CimType, array: bool, value: Value, heap: _Heap) -> int:
    """Put a value that lives in the heap there and return its HeapRef."""
    if not array:
        if base in _STRINGLIKE:
            if not isinstance(value, str):
                raise WmioError(f"{TYPE_NAMES[base]} value must be a str, not {value!r}")
            return heap.add_string(value)
        return heap.add(_embedded(value))  # CimType.OBJECT
    if not isinstance(value, list | tuple):
        raise WmioError(f"array value must be a list, not {value!r}")
    items = list(value)
    count = struct.pack("<L", len(items))
    if base in _FIXED_FORMAT:
        return heap.add(count + b"".join(_scalar_inline(base, v) for v in items))
    # Arrays of strings/references/datetimes/objects: ArrayCount, one HeapRef per item, then
    # the items themselves, in order (MS-WMIO 2.2.71). Both clients read the items in order
    # right after the reference array, so we lay them out that way.
    encoded: list[bytes] = []
    for v in items:
        if base in _STRINGLIKE:
            if not isinstance(v, str):
                raise WmioError(f"{TYPE_NAMES[base]} array item must be a str, not {v!r}")
            encoded.append(encode_string(v))
        else:
            encoded.append(_embedded(v))
    start = len(heap.buf)
    first_item = start + 4 + 4 * len(items)
    refs = bytearray()
    at = first_item
    for blob in encoded:
        refs += struct.pack("<L", at)
        at += len(blob)
    return heap.add(count + bytes(refs) + b"".join(encoded))


def _value_slot(cim_type: int, value: Value, heap: _Heap) -> bytes:
    """The ValueTable slot for ``value`` (MS-WMIO 2.2.29 ValueTable, 2.2.71 EncodedValue)."""
    base = base_type(cim_type)
    array = is_array(cim_type)
    if not array and base in _FIXED_FORMAT:
        return _scalar_inline(base, value)
    return struct.pack("<L", _heap_value(base, array, value, heap))


def slot_size(cim_type: int) -> int:
    """Size of a property's ValueTable slot: inline scalars by type, 4 for HeapRefs."""
    base = base_type(cim_type)
    if is_array(cim_type) or base not in _FIXED_FORMAT:
        return 4
    return struct.calcsize(_FIXED_FORMAT[base])


def _name_ref(name: str, heap: _Heap) -> int:
    index = _DICT_INDEX.get(name.lower())
    if index is not None:
        return DICT_REF_FLAG | index
    return heap.add_string(name)


def _encode_qualifier_set(qualifiers: tuple[Qualifier, ...] | list[Qualifier],
                          heap: _Heap) -> bytes:
    """QualifierSet (MS-WMIO 2.2.59): EncodingLength then Qualifier records (2.2.60)."""
    body = bytearray()
    for q in qualifiers:
        name = _name_ref(q.name, heap)
        base = base_type(q.cim_type)
        if is_array(q.cim_type) or base not in _FIXED_FORMAT:
            value = struct.pack("<L", _heap_value(base, is_array(q.cim_type), q.value, heap))
        else:
            value = _scalar_inline(base, q.value)
        body += struct.pack("<LBL", name, q.flavor, q.cim_type) + value
    return struct.pack("<L", 4 + len(body)) + bytes(body)


def _nd_table(flags: list[int]) -> bytes:
    """NdTable (MS-WMIO 2.2.26): 2 bits per property, 4 properties per octet, LSB first."""
    out = bytearray((len(flags) + 3) // 4)
    for i, f in enumerate(flags):
        out[i // 4] |= (f & 0b11) << (2 * (i % 4))
    return bytes(out)


# MS-WMIO 2.2.27 NullAndDefaultFlag bits.
ND_NULL = 0b01
ND_DEFAULT = 0b10


def _property_qualifiers(prop: Property) -> list[Qualifier]:
    quals = [q for q in prop.qualifiers if q.name.lower() != "cimtype"]
    # Choice: every property carries a CIMTYPE qualifier, as WMI shows in its class MOF.
    quals.append(Qualifier("CIMTYPE", cimtype_text(prop.cim_type, prop.class_ref),
                           CimType.STRING, 0))
    return quals


def _encode_class_part(cls: ClassDef) -> bytes:
    """ClassPart (MS-WMIO 2.2.15), encoded once per ClassDef: a ClassDef is frozen, and its
    encoding depends on nothing else (no server, namespace or instance value)."""
    memo = cls._memo
    if memo.class_part is None:
        memo.class_part = _build_class_part(cls)
    return memo.class_part


def _build_class_part(cls: ClassDef) -> bytes:
    """ClassPart (MS-WMIO 2.2.15): header, derivation, qualifiers, properties, values, heap."""
    heap = _Heap()
    # The class name goes first, at heap offset 0, so no value ever sits at offset 0
    # (aiowmi reads a zero HeapRef as "no value").
    name_ref = heap.add_string(cls.name) if cls.name else NO_REF
    # DerivationList (2.2.17): EncodingLength + ClassNameEncoding per ancestor, parent first;
    # each ClassNameEncoding (2.2.18) is an Encoded-String followed by its EncodingLength.
    deriv = bytearray()
    for ancestor in cls.derivation:
        s = encode_string(ancestor)
        deriv += s + struct.pack("<L", len(s) + 4)
    derivation = struct.pack("<L", 4 + len(deriv)) + bytes(deriv)
    qualifier_set = _encode_qualifier_set(cls.qualifiers, heap)

    nd: list[int] = []
    values = bytearray()
    entries: list[tuple[str, int, int]] = []
    for order, prop in enumerate(cls.properties):
        prop_name = heap.add_string(prop.name)
        offset = len(values)
        if prop.default is None:
            nd.append(ND_NULL | (ND_DEFAULT if prop.inherited else 0))
            values += b"\x00" * slot_size(prop.cim_type)
        else:
            nd.append(ND_DEFAULT if prop.inherited else 0)
            values += _value_slot(prop.cim_type, prop.default, heap)
        qset = _encode_qualifier_set(_property_qualifiers(prop), heap)
        ptype = (prop.cim_type & ~INHERITED_FLAG) | (INHERITED_FLAG if prop.inherited else 0)
        # PropertyInfo (2.2.30): type, DeclarationOrder, ValueTableOffset, ClassOfOrigin, quals.
        info = struct.pack("<LHLL", ptype, order, offset, prop.origin) + qset
        entries.append((prop.name, prop_name, heap.add(info)))
    # Choice: PropertyLookup entries sorted by name, case-insensitively (2.2.21 asks for
    # name order; both clients re-sort by DeclarationOrder).
    entries.sort(key=lambda e: e[0].lower())
    lookup = struct.pack("<L", len(entries)) + b"".join(
        struct.pack("<LL", n, i) for _, n, i in entries)
    nd_values = _nd_table(nd) + bytes(values)
    tail = derivation + qualifier_set + lookup + nd_values + heap.encode()
    # ClassHeader (2.2.16): EncodingLength of the whole ClassPart, reserved octet, name ref,
    # NdTableValueTableLength.
    header_len = 4 + 1 + 4 + 4
    header = struct.pack("<LBLL", header_len + len(tail), 0, name_ref, len(nd_values))
    return header + tail


def _encode_signature(params: ClassDef | None) -> bytes:
    """MethodSignatureBlock (MS-WMIO 2.2.70): EncodingLength + the __PARAMETERS class."""
    if params is None:
        return struct.pack("<L", 0)
    block = encode_object_block(params, decorate=False)
    return struct.pack("<L", len(block)) + block


def _encode_methods_part(methods: tuple[Method, ...]) -> bytes:
    """MethodsPart (MS-WMIO 2.2.38) with its MethodDescriptions (2.2.41) and MethodHeap."""
    heap = _Heap()
    descriptions = bytearray()
    for m in methods:
        name = heap.add_string(m.name)
        quals = heap.add(_encode_qualifier_set(m.qualifiers, heap))
        inputs = heap.add(_encode_signature(m.inputs))
        outputs = heap.add(_encode_signature(m.outputs))
        flags = METHOD_FLAG_PROPAGATED if m.inherited else 0
        descriptions += struct.pack("<LB3sLLLL", name, flags, b"\x00\x00\x00", m.origin,
                                    quals, inputs, outputs)
    body = struct.pack("<HH", len(methods), 0) + bytes(descriptions) + heap.encode()
    return struct.pack("<L", 4 + len(body)) + body


_EMPTY_CLASS = ClassDef(name="")


def _class_and_methods(cls: ClassDef) -> bytes:
    memo = cls._memo
    if memo.class_and_methods is None:
        memo.class_and_methods = _encode_class_part(cls) + _encode_methods_part(cls.methods)
    return memo.class_and_methods


# How _encode_instance_type writes a property's value (see _Layout).
_SLOT_INLINE = 0  # a fixed-size scalar, in the ValueTable
_SLOT_STRING = 1  # a string, datetime or reference, in the heap
_SLOT_OTHER = 2  # arrays and embedded objects: the general _value_slot


@dataclass(frozen=True)
class _Layout:
    """What encoding an instance of a class needs per property, in declaration order."""

    names: frozenset[str]  # lower-case property names
    # (lower-case name, CimType, base type, how the value is written, the slot when NULL)
    slots: tuple[tuple[str, int, CimType, int, bytes], ...]


def _layout(cls: ClassDef) -> _Layout:
    memo = cls._memo
    if memo.layout is None:
        slots: list[tuple[str, int, CimType, int, bytes]] = []
        for p in cls.properties:
            base = base_type(p.cim_type)
            if is_array(p.cim_type):
                kind = _SLOT_OTHER
            elif base in _FIXED_FORMAT:
                kind = _SLOT_INLINE
            elif base in _STRINGLIKE:
                kind = _SLOT_STRING
            else:
                kind = _SLOT_OTHER
            slots.append((p.name.lower(), p.cim_type, base, kind,
                          b"\x00" * slot_size(p.cim_type)))
        memo.layout = _Layout(frozenset(s[0] for s in slots), tuple(slots))
    return memo.layout


def _encode_instance_type(inst: Instance) -> bytes:
    """InstanceType (MS-WMIO 2.2.53): CurrentClass ClassPart + the instance's own data."""
    cls = inst.cls
    class_part = _encode_class_part(cls)
    heap = _Heap()
    class_name = heap.add_string(cls.name)  # InstanceClassName (2.2.55), at offset 0
    given = {k.lower(): v for k, v in inst.values.items()}
    layout = _layout(cls)
    unknown = sorted(set(given) - layout.names)
    if unknown:
        raise WmioError(f"{cls.name} has no property {unknown[0]!r}")
    nd: list[int] = []
    values = bytearray()
    for low, cim_type, base, kind, null_slot in layout.slots:
        value = given.get(low)
        if value is None:
            nd.append(ND_NULL)
            values += null_slot
            continue
        nd.append(0)
        # The same octets as _value_slot, without finding the type's kind again each time.
        if kind == _SLOT_INLINE:
            values += _scalar_inline(base, value)
        elif kind == _SLOT_STRING and isinstance(value, str):
            values += struct.pack("<L", heap.add_string(value))
        else:
            values += _value_slot(cim_type, value, heap)
    qualifier_set = _encode_qualifier_set(inst.qualifiers, heap)
    body = (struct.pack("<BL", 0, class_name) + _nd_table(nd) + bytes(values) + qualifier_set
            + bytes([INST_PROP_QUAL_SET_NONE]) + heap.encode())
    # EncodingLength (2.2.73) counts from itself to the end of the InstanceHeap.
    return class_part + struct.pack("<L", 4 + len(body)) + body


def encode_object_block(obj: ClassDef | Instance, server: str = "", namespace: str = "",
                        decorate: bool = False) -> bytes:
    """An ObjectBlock (MS-WMIO 2.2.5) for a class or an instance.

    With ``decorate`` the object gets a Decoration (2.2.7) naming the server and namespace
    (flag 0x04), as objects returned by IWbemServices calls carry.
    """
    flags = OBJ_CLASS if isinstance(obj, ClassDef) else OBJ_INSTANCE
    out = bytearray()
    if decorate:
        flags |= OBJ_DECORATION
    out.append(flags)
    if decorate:
        out += encode_string(server) + encode_string(namespace)
    if isinstance(obj, ClassDef):
        out += _class_and_methods(obj.parent or _EMPTY_CLASS) + _class_and_methods(obj)
    else:
        out += _encode_instance_type(obj)
    return bytes(out)


def encode_encoding_unit(obj: ClassDef | Instance, server: str = "", namespace: str = "",
                         decorate: bool = True) -> bytes:
    """An EncodingUnit (MS-WMIO 2.2.1): Signature, ObjectEncodingLength, ObjectBlock.

    This is what goes in the pObjectData of an OBJREF_CUSTOM for CLSID_WbemClassObject.
    """
    block = encode_object_block(obj, server, namespace, decorate)
    return struct.pack("<LL", SIGNATURE, len(block)) + block


# ---------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.pos = offset

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise WmioError(f"truncated object: need {n} octets at offset {self.pos}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        return struct.unpack(fmt, self.take(size))

    def u8(self) -> int:
        return self.unpack("<B")[0]

    def u32(self) -> int:
        return self.unpack("<L")[0]


def decode_string(data: bytes, offset: int) -> tuple[str, int]:
    """Read an Encoded-String (MS-WMIO 2.2.78) at ``offset``; return it and the end offset."""
    if offset >= len(data):
        raise WmioError(f"string reference {offset} is outside its heap")
    flag = data[offset]
    if flag == 0:
        end = data.find(b"\x00", offset + 1)
        if end < 0:
            raise WmioError("unterminated compressed string")
        return data[offset + 1:end].decode("latin-1"), end + 1
    if flag == 1:
        pos = offset + 1
        while pos + 1 < len(data):
            if data[pos] == 0 and data[pos + 1] == 0:
                try:
                    return data[offset + 1:pos].decode("utf-16-le"), pos + 2
                except UnicodeDecodeError as exc:
                    raise WmioError(f"bad UTF-16 string: {exc}") from None
            pos += 2
        raise WmioError("unterminated UTF-16 string")
    raise WmioError(f"bad Encoded-String flag 0x{flag:02X}")


def _heap_string(heap: bytes, ref: int) -> str:
    return decode_string(heap, ref)[0]


def _ref_name(ref: int, heap: bytes) -> str:
    if ref & DICT_REF_FLAG and ref != NO_REF:
        index = ref & ~DICT_REF_FLAG
        if index >= len(DICTIONARY):
            raise WmioError(f"unknown DictionaryReference {index}")
        return DICTIONARY[index]
    return _heap_string(heap, ref)


def _decode_embedded(heap: bytes, ref: int) -> ClassDef | Instance:
    r = _Reader(heap, ref)
    length = r.u32()
    return decode_object_block(r.take(length)).obj


def _decode_heap_value(cim_type: int, ref: int, heap: bytes) -> Value:
    base = base_type(cim_type)
    if not is_array(cim_type):
        if base in _STRINGLIKE:
            return _heap_string(heap, ref)
        return _decode_embedded(heap, ref)
    r = _Reader(heap, ref)
    count = r.u32()
    if base in _FIXED_FORMAT:
        return [_decode_inline(base, r.take(slot_size(base))) for _ in range(count)]
    refs = [r.u32() for _ in range(count)]
    if base in _STRINGLIKE:
        return [_heap_string(heap, x) for x in refs]
    return [_decode_embedded(heap, x) for x in refs]


def _decode_inline(base: CimType, raw: bytes) -> Value:
    (number,) = struct.unpack(_FIXED_FORMAT[base], raw)
    if base == CimType.BOOLEAN:
        return bool(number)
    if base == CimType.CHAR16:
        return chr(number)
    return number  # type: ignore[no-any-return]


def _decode_slot(cim_type: int, raw: bytes, heap: bytes) -> Value:
    base = base_type(cim_type)
    if not is_array(cim_type) and base in _FIXED_FORMAT:
        return _decode_inline(base, raw)
    (ref,) = struct.unpack("<L", raw)
    if ref == NO_REF:
        return None
    return _decode_heap_value(cim_type, ref, heap)


def _decode_qualifier_set(r: _Reader) -> list[tuple[int, int, int, bytes]]:
    length = r.u32()
    if length < 4:
        raise WmioError(f"bad QualifierSet length {length}")
    body = _Reader(r.take(length - 4))
    raw: list[tuple[int, int, int, bytes]] = []
    while body.pos < len(body.data):
        name, flavor, ctype = body.unpack("<LBL")
        base = base_type(ctype)
        size = 4 if is_array(ctype) or base not in _FIXED_FORMAT else slot_size(ctype)
        raw.append((name, flavor, ctype, body.take(size)))
    return raw


def _resolve_qualifiers(raw: list[tuple[int, int, int, bytes]], heap: bytes) -> list[Qualifier]:
    out = []
    for name, flavor, ctype, value in raw:
        out.append(Qualifier(_ref_name(name, heap), _decode_slot(ctype, value, heap), ctype,
                             flavor))
    return out


def _read_nd(nd: bytes, index: int) -> int:
    if index // 4 >= len(nd):
        raise WmioError(f"NdTable too short for property {index}")
    return (nd[index // 4] >> (2 * (index % 4))) & 0b11


@dataclass
class _ClassPart:
    cls: ClassDef
    nd_values: bytes
    heap: bytes


# Decoded ClassParts by their octets: every instance of a result carries the same ClassPart
# (MS-WMIO 2.2.13), so a client decodes it once per class. Bounded, oldest out first.
_CLASS_PARTS: dict[bytes, tuple[_ClassPart, int]] = {}
_CLASS_PARTS_MAX = 128


def _decode_class_part(r: _Reader, methods: tuple[Method, ...] = ()) -> _ClassPart:
    start = r.pos
    if not methods and start + 4 <= len(r.data):
        (length,) = struct.unpack_from("<L", r.data, start)
        key = bytes(r.data[start:start + length]) if length >= 17 else b""
        found = _CLASS_PARTS.get(key) if key else None
        if found is not None:
            r.pos = start + found[1]
            return found[0]
        part = _decode_class_part_uncached(r)
        if key and r.pos - start == length == len(key):
            if len(_CLASS_PARTS) >= _CLASS_PARTS_MAX:
                del _CLASS_PARTS[next(iter(_CLASS_PARTS))]
            _CLASS_PARTS[key] = (part, length)
        return part
    return _decode_class_part_uncached(r, methods)


def _decode_class_part_uncached(r: _Reader, methods: tuple[Method, ...] = ()) -> _ClassPart:
    start = r.pos
    length, _reserved, name_ref, nd_len = r.unpack("<LBLL")
    deriv_len = r.u32()
    deriv = _Reader(r.take(deriv_len - 4) if deriv_len >= 4 else b"")
    names: list[str] = []
    while deriv.pos < len(deriv.data):
        text, end = decode_string(deriv.data, deriv.pos)
        deriv.pos = end
        deriv.u32()  # ClassNameEncoding EncodingLength (2.2.18)
        names.append(text)
    raw_quals = _decode_qualifier_set(r)
    count = r.u32()
    lookup = [r.unpack("<LL") for _ in range(count)]
    nd_values = r.take(nd_len)
    heap_len = r.u32() & ~HEAP_LENGTH_MSB
    heap = r.take(heap_len)
    if length > r.pos - start:
        r.take(length - (r.pos - start))  # garbage allowed by 2.2.15
    name = "" if name_ref == NO_REF else _heap_string(heap, name_ref)
    nd_size = (count + 3) // 4
    nd, values = nd_values[:nd_size], nd_values[nd_size:]
    props: list[tuple[int, Property]] = []
    for name_r, info_r in lookup:
        pname = _ref_name(name_r, heap)
        info = _Reader(heap, info_r)
        ptype, order, vt_offset, origin = info.unpack("<LHLL")
        quals = _resolve_qualifiers(_decode_qualifier_set(info), heap)
        cimtype = next((q for q in quals if q.name.lower() == "cimtype"), None)
        class_ref = ""
        if cimtype is not None and isinstance(cimtype.value, str) and ":" in cimtype.value:
            class_ref = cimtype.value.split(":", 1)[1]
        quals = [q for q in quals if q.name.lower() != "cimtype"]
        flags = _read_nd(nd, order)
        size = slot_size(ptype)
        default: Value = None
        if not flags & ND_NULL:
            if vt_offset + size > len(values):
                raise WmioError(f"ValueTable too short for {pname}")
            default = _decode_slot(ptype, values[vt_offset:vt_offset + size], heap)
        props.append((order, Property(
            name=pname, cim_type=ptype & ~INHERITED_FLAG, qualifiers=tuple(quals),
            default=default, origin=origin, inherited=bool(ptype & INHERITED_FLAG),
            class_ref=class_ref)))
    props.sort(key=lambda p: p[0])
    cls = ClassDef(name=name, derivation=tuple(names),
                   qualifiers=tuple(_resolve_qualifiers(raw_quals, heap)),
                   properties=tuple(p for _, p in props), methods=methods)
    return _ClassPart(cls, nd_values, heap)


def _decode_methods_part(r: _Reader) -> tuple[Method, ...]:
    start = r.pos
    length = r.u32()
    count, _pad = r.unpack("<HH")
    descs = [r.unpack("<LB3sLLLL") for _ in range(count)]
    heap = r.take(r.u32() & ~HEAP_LENGTH_MSB)
    if length > r.pos - start:
        r.take(length - (r.pos - start))
    methods = []
    for name_ref, flags, _p, origin, quals_ref, in_ref, out_ref in descs:
        quals: list[Qualifier] = []
        if quals_ref != NO_REF:
            quals = _resolve_qualifiers(_decode_qualifier_set(_Reader(heap, quals_ref)),
                                        heap)
        methods.append(Method(
            name=_heap_string(heap, name_ref), inputs=_decode_signature(heap, in_ref),
            outputs=_decode_signature(heap, out_ref), qualifiers=tuple(quals), origin=origin,
            inherited=bool(flags & METHOD_FLAG_PROPAGATED)))
    return tuple(methods)


def _decode_signature(heap: bytes, ref: int) -> ClassDef | None:
    if ref == NO_REF:
        return None
    r = _Reader(heap, ref)
    length = r.u32()
    if length == 0:
        return None
    obj = decode_object_block(r.take(length)).obj
    if not isinstance(obj, ClassDef):
        raise WmioError("a method signature must be a class")
    return obj


def _decode_class_and_methods(r: _Reader) -> ClassDef:
    part = _decode_class_part(r)
    methods = _decode_methods_part(r)
    c = part.cls
    return ClassDef(c.name, c.derivation, c.qualifiers, c.properties, methods)


def _decode_instance_type(r: _Reader) -> Instance:
    part = _decode_class_part(r)
    cls = part.cls
    start = r.pos
    length = r.u32()
    _flags, _name_ref = r.unpack("<BL")
    nd_values = r.take(len(part.nd_values))
    raw_quals = _decode_qualifier_set(r)
    prop_flag = r.u8()
    if prop_flag == INST_PROP_QUAL_SET_PRESENT:
        # InstancePropQualifierSet (2.2.65): one QualifierSet per property follows.
        for _ in cls.properties:
            _decode_qualifier_set(r)
    elif prop_flag != INST_PROP_QUAL_SET_NONE:
        raise WmioError(f"bad InstPropQualSetFlag 0x{prop_flag:02X}")
    heap = r.take(r.u32() & ~HEAP_LENGTH_MSB)
    if length > r.pos - start:
        r.take(length - (r.pos - start))
    nd_size = (len(cls.properties) + 3) // 4
    nd, values = nd_values[:nd_size], nd_values[nd_size:]
    result: dict[str, Value] = {}
    offset = 0
    for index, prop in enumerate(cls.properties):
        size = slot_size(prop.cim_type)
        flags = _read_nd(nd, index)
        raw = values[offset:offset + size]
        offset += size
        if flags & ND_NULL:
            result[prop.name] = None
        elif flags & ND_DEFAULT:
            result[prop.name] = prop.default
        else:
            if len(raw) != size:
                raise WmioError(f"ValueTable too short for {prop.name}")
            result[prop.name] = _decode_slot(prop.cim_type, raw, heap)
    return Instance(cls, result, tuple(_resolve_qualifiers(raw_quals, heap)))


def decode_object_block(data: bytes) -> Decoded:
    """Decode an ObjectBlock (MS-WMIO 2.2.5) into a ClassDef or an Instance."""
    try:
        r = _Reader(data)
        flags = r.u8()
        server = namespace = None
        if flags & OBJ_DECORATION:
            server, r.pos = decode_string(data, r.pos)
            namespace, r.pos = decode_string(data, r.pos)
        if flags & OBJ_CLASS and not flags & OBJ_INSTANCE:
            parent = _decode_class_and_methods(r)
            current = _decode_class_and_methods(r)
            cls = ClassDef(current.name, current.derivation, current.qualifiers,
                           current.properties, current.methods,
                           parent if parent.name else None)
            return Decoded(cls, server, namespace)
        if flags & OBJ_INSTANCE and not flags & OBJ_CLASS:
            return Decoded(_decode_instance_type(r), server, namespace)
        raise WmioError(f"ObjectFlags 0x{flags:02X} is neither a class nor an instance")
    except struct.error as exc:
        raise WmioError(f"truncated object: {exc}") from None


def decode_encoding_unit(data: bytes) -> Decoded:
    """Decode an EncodingUnit (MS-WMIO 2.2.1), as found in OBJREF_CUSTOM pObjectData."""
    if len(data) < 8:
        raise WmioError("an EncodingUnit needs at least 8 octets")
    signature, length = struct.unpack_from("<LL", data)
    if signature != SIGNATURE:
        raise WmioError(f"bad EncodingUnit signature 0x{signature:08X}")
    if 8 + length > len(data):
        raise WmioError(f"EncodingUnit says {length} octets but {len(data) - 8} follow")
    return decode_object_block(data[8:8 + length])

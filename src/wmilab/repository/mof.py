"""A small MOF parser (lark) for the subset of DMTF MOF that wmilab ships.

Supported (DMTF DSP0004 MOF grammar; MSDocs WmiSdk/managed-object-format--mof-):
class declarations with an optional superclass, class/property/method/parameter qualifiers
(``[key]``, ``[Association]``, ``[provider("CIMWin32")]``, ``[Values{"a","b"}]``), properties
of every CIM data type with optional arrays (``string X[];``) and default values, references
(``Win32_Process ref PartComponent;``), embedded objects typed by class name
(``Win32_ProcessStartup Info;``) and methods with ``[in]``/``[out]`` parameters.
Comments are ``//`` and ``/* */``. ``#pragma`` lines are accepted and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

from lark import Lark, Token, Transformer, UnexpectedInput, v_args

from ..errors import ConfigError
from ..wire.wmio import ARRAY_FLAG, TYPES_BY_NAME, CimType, Qualifier, Value

_GRAMMAR = r"""
start: (class_decl | pragma)*

pragma: "#pragma"i NAME "(" literal ")"

class_decl: qualifiers? "class"i NAME superclass? "{" feature* "}" ";"
superclass: ":" NAME

?feature: property | reference | method
property: qualifiers? NAME NAME array? default? ";"
reference: qualifiers? NAME "ref"i NAME default? ";"
method: qualifiers? NAME NAME "(" [param ("," param)*] ")" ";"
param: qualifiers? NAME REF? NAME array?
REF.2: /ref\b/i
array: "[" INT? "]"
default: "=" value

qualifiers: "[" qualifier ("," qualifier)* "]"
qualifier: NAME qvalue? flavor?
?qvalue: "(" value ")" | value_array
flavor: ":" NAME+

?value: literal | value_array
value_array: "{" [literal ("," literal)*] "}"
?literal: string | number | TRUE | FALSE | NULL
string: STRING+
number: SIGNED_NUMBER | HEX
TRUE.2: /true\b/i
FALSE.2: /false\b/i
NULL.2: /null\b/i
HEX.2: /0x[0-9a-fA-F]+/

NAME: /[A-Za-z_][A-Za-z0-9_]*/
STRING: /"(\\.|[^"\\])*"/
COMMENT: /\/\/[^\n]*/ | /\/\*(.|\n)*?\*\//
%import common.INT
%import common.SIGNED_NUMBER
%import common.WS
%ignore WS
%ignore COMMENT
"""

_PARSER = Lark(_GRAMMAR, parser="earley", propagate_positions=True)


@dataclass(frozen=True)
class MofQualifier:
    name: str
    value: Value = True

    def to_wire(self) -> Qualifier:
        """The MS-WMIO qualifier (2.2.60) with a CimType chosen from the Python value."""
        v = self.value
        if isinstance(v, bool) or v is None:
            return Qualifier(self.name, True if v is None else v, CimType.BOOLEAN)
        if isinstance(v, int):
            return Qualifier(self.name, v, CimType.SINT32)
        if isinstance(v, float):
            return Qualifier(self.name, v, CimType.REAL64)
        if isinstance(v, list):
            return Qualifier(self.name, [str(x) for x in v], CimType.STRING | ARRAY_FLAG)
        return Qualifier(self.name, str(v), CimType.STRING)


@dataclass(frozen=True)
class MofProperty:
    name: str
    cim_type: int
    class_ref: str = ""
    qualifiers: tuple[MofQualifier, ...] = ()
    default: Value = None


@dataclass(frozen=True)
class MofParam:
    name: str
    cim_type: int
    class_ref: str = ""
    qualifiers: tuple[MofQualifier, ...] = ()

    def has(self, qualifier: str) -> bool:
        return any(q.name.lower() == qualifier.lower() for q in self.qualifiers)


@dataclass(frozen=True)
class MofMethod:
    name: str
    return_type: int | None
    params: tuple[MofParam, ...] = ()
    qualifiers: tuple[MofQualifier, ...] = ()


@dataclass(frozen=True)
class MofClass:
    name: str
    superclass: str | None
    qualifiers: tuple[MofQualifier, ...] = ()
    properties: tuple[MofProperty, ...] = ()
    methods: tuple[MofMethod, ...] = field(default_factory=tuple)
    source: str = ""
    line: int = 0


def _type(type_name: str, is_array: bool) -> tuple[int, str]:
    """The CimType of a MOF type name; an unknown name is an embedded object of that class."""
    low = type_name.lower()
    if low == "ref":
        raise ValueError("ref is not a data type")
    base = TYPES_BY_NAME.get(low)
    class_ref = ""
    if base is None:
        if low == "object":
            base = CimType.OBJECT
        else:
            base, class_ref = CimType.OBJECT, type_name
    return (base | (ARRAY_FLAG if is_array else 0)), class_ref


def _unescape(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append({"n": "\n", "t": "\t", "r": "\r"}.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


@v_args(inline=True)
class _Build(Transformer[Token, list[MofClass]]):
    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def start(self, *items: object) -> list[MofClass]:
        return [i for i in items if isinstance(i, MofClass)]

    def pragma(self, *_: object) -> None:
        return None

    def string(self, *parts: Token) -> str:
        return "".join(_unescape(p[1:-1]) for p in parts)

    def number(self, tok: Token) -> int | float:
        text = str(tok)
        if text.lower().startswith("0x"):
            return int(text, 16)
        return float(text) if any(c in text for c in ".eE") else int(text)

    def TRUE(self, _: Token) -> bool:
        return True

    def FALSE(self, _: Token) -> bool:
        return False

    def NULL(self, _: Token) -> None:
        return None

    def value_array(self, *items: Value) -> list[Value]:
        return [i for i in items if i is not None] if items != (None,) else []

    def default(self, value: Value) -> tuple[str, Value]:
        return ("default", value)

    def array(self, *_: object) -> str:
        return "array"

    def flavor(self, *_: object) -> str:
        return "flavor"

    def qualifier(self, name: Token, *rest: Value) -> MofQualifier:
        values = [r for r in rest if r != "flavor"]
        return MofQualifier(str(name), values[0] if values else True)

    def qualifiers(self, *qs: MofQualifier) -> tuple[MofQualifier, ...]:
        return tuple(qs)

    def superclass(self, name: Token) -> str:
        return str(name)

    @staticmethod
    def _split(items: tuple[object, ...]) -> tuple[tuple[MofQualifier, ...], list[object]]:
        if items and isinstance(items[0], tuple) and all(
                isinstance(q, MofQualifier) for q in items[0]):
            return items[0], list(items[1:])
        return (), list(items)

    def property(self, *items: object) -> MofProperty:
        quals, rest = self._split(items)
        type_name, name = str(rest[0]), str(rest[1])
        is_array = "array" in rest[2:]
        default = next((r[1] for r in rest[2:] if isinstance(r, tuple)), None)
        cim_type, class_ref = _type(type_name, is_array)
        return MofProperty(name, cim_type, class_ref, quals, default)

    def reference(self, *items: object) -> MofProperty:
        quals, rest = self._split(items)
        return MofProperty(str(rest[1]), CimType.REFERENCE, str(rest[0]), quals)

    def param(self, *items: object) -> MofParam:
        quals, rest = self._split(items)
        is_array = "array" in rest
        names = [r for r in rest if isinstance(r, Token)]
        if len(names) == 3:  # Class ref Name
            return MofParam(str(names[2]), CimType.REFERENCE | (ARRAY_FLAG if is_array else 0),
                            str(names[0]), quals)
        cim_type, class_ref = _type(str(names[0]), is_array)
        return MofParam(str(names[1]), cim_type, class_ref, quals)

    def method(self, *items: object) -> MofMethod:
        quals, rest = self._split(items)
        ret_name, name = str(rest[0]), str(rest[1])
        params = tuple(p for p in rest[2:] if isinstance(p, MofParam))
        ret = None if ret_name.lower() == "void" else _type(ret_name, False)[0]
        return MofMethod(name, ret, params, quals)

    def class_decl(self, *items: object) -> MofClass:
        quals, rest = self._split(items)
        name = str(rest[0])
        superclass = next((r for r in rest[1:] if isinstance(r, str)
                           and not isinstance(r, Token)), None)
        props = tuple(r for r in rest if isinstance(r, MofProperty))
        methods = tuple(r for r in rest if isinstance(r, MofMethod))
        line = rest[0].line if isinstance(rest[0], Token) and rest[0].line else 0
        return MofClass(name, superclass, quals, props, methods, self.source, line)


def parse_mof(text: str, source: str = "<mof>") -> list[MofClass]:
    """Parse MOF text into class declarations; bad MOF raises ConfigError naming the line."""
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as exc:
        raise ConfigError(f"{source}:{exc.line}:{exc.column}: MOF syntax error", (source,)) \
            from None
    try:
        return _Build(source).transform(tree)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}", (source,)) from None


def load_package_mof(name: str) -> list[MofClass]:
    """Parse one of the MOF files shipped under ``wmilab/data/mof``."""
    text = resources.files("wmilab").joinpath("data", "mof", name).read_text("utf-8")
    return parse_mof(text, name)

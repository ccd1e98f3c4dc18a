"""WQL: a lark grammar for data queries and an evaluator for their WHERE clauses.

Sources: MSDocs WmiSdk/wql-sql-for-wmi (keywords), WmiSdk/wql-operators (operators),
WmiSdk/like-operator (LIKE wildcards), WmiSdk/select-statement-for-data-queries,
WmiSdk/associators-of-statement, WmiSdk/references-of-statement,
WmiSdk/isa-operator-for-data-queries, WmiSdk/querying-with-wql (strings and escapes).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from lark import Lark, Token, Transformer, UnexpectedInput, v_args

from ..hresult import WBEM_E_INVALID_QUERY
from ..wire.wmio import Value
from .cim import WmiError

_GRAMMAR = r"""
?start: select | associators | references

select: SELECT proplist FROM NAME [WHERE expr]
proplist: STAR -> star
        | NAME ("," NAME)* -> names

associators: ASSOCIATORS OF PATH [WHERE assoc_clause+]
references: REFERENCES OF PATH [WHERE assoc_clause+]
assoc_clause: NAME "=" NAME -> assoc_kv
            | NAME -> assoc_flag

?expr: or_expr
?or_expr: and_expr (OR and_expr)*
?and_expr: not_expr (AND not_expr)*
?not_expr: NOT not_expr -> not_
         | atom
?atom: "(" expr ")"
     | comparison
comparison: NAME OP literal -> cmp_prop_lit
          | literal OP NAME -> cmp_lit_prop
          | NAME LIKE literal -> like
          | NAME IS NULL -> is_null
          | NAME IS NOT NULL -> is_not_null
          | NAME ISA literal -> isa
?literal: STRING -> string
        | NUMBER -> number
        | TRUE -> true
        | FALSE -> false
        | NULL -> null

OP: "<>" | "!=" | "<=" | ">=" | "=" | "<" | ">"
SELECT.2: /select\b/i
FROM.2: /from\b/i
WHERE.2: /where\b/i
AND.2: /and\b/i
OR.2: /or\b/i
NOT.2: /not\b/i
LIKE.2: /like\b/i
IS.2: /is\b/i
ISA.2: /isa\b/i
NULL.2: /null\b/i
TRUE.2: /true\b/i
FALSE.2: /false\b/i
ASSOCIATORS.2: /associators\b/i
REFERENCES.2: /references\b/i
OF.2: /of\b/i
STAR: "*"
PATH: /\{[^}]*\}/
NAME: /[A-Za-z_][A-Za-z0-9_]*/
STRING: /"(\\.|[^"\\])*"/ | /'(\\.|[^'\\])*'/
NUMBER: /[+-]?(0x[0-9a-fA-F]+|\d+(\.\d*)?([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)/
%import common.WS
%ignore WS
"""

_PARSER = Lark(_GRAMMAR, parser="lalr")


# -- AST ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Null:
    """The NULL literal."""


NULL = Null()
Literal = str | int | float | bool | Null


@dataclass(frozen=True)
class Compare:
    prop: str
    op: str  # one of = <> < > <= >= (with the property on the left)
    value: Literal


@dataclass(frozen=True)
class Like:
    prop: str
    pattern: str


@dataclass(frozen=True)
class IsNull:
    prop: str
    negated: bool


@dataclass(frozen=True)
class Isa:
    prop: str
    class_name: str


@dataclass(frozen=True)
class Not:
    expr: Expr


@dataclass(frozen=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Or:
    left: Expr
    right: Expr


Expr = Compare | Like | IsNull | Isa | Not | And | Or


@dataclass(frozen=True)
class SelectQuery:
    properties: tuple[str, ...] | None  # None = *
    class_name: str
    where: Expr | None


@dataclass(frozen=True)
class AssocQuery:
    """ASSOCIATORS OF / REFERENCES OF with its WHERE keywords."""

    kind: str  # "associators" | "references"
    path: str
    result_class: str | None = None
    assoc_class: str | None = None
    role: str | None = None
    result_role: str | None = None
    required_qualifier: str | None = None
    required_assoc_qualifier: str | None = None
    class_defs_only: bool = False
    keys_only: bool = False
    schema_only: bool = False


Query = SelectQuery | AssocQuery

_FLIP = {"=": "=", "<>": "<>", "<": ">", ">": "<", "<=": ">=", ">=": "<="}

# Keywords allowed in the WHERE clause of each statement (MSDocs WmiSdk/associators-of-statement
# and WmiSdk/references-of-statement).
_ASSOC_KEYS = {"assocclass": "assoc_class", "resultclass": "result_class", "role": "role",
               "resultrole": "result_role", "requiredqualifier": "required_qualifier",
               "requiredassocqualifier": "required_assoc_qualifier"}
_REF_KEYS = {"resultclass": "result_class", "role": "role",
             "requiredqualifier": "required_qualifier"}
_FLAGS = {"classdefsonly": "class_defs_only", "keysonly": "keys_only",
          "schemaonly": "schema_only"}


def _unquote(token: str) -> str:
    """A WQL string literal: single or double quotes; backslash escapes the next character
    (MSDocs WmiSdk/wql-sql-for-wmi: "\\" must be escaped in string literals)."""
    body = token[1:-1]
    return re.sub(r"\\(.)", r"\1", body, flags=re.S)


@v_args(inline=True)
class _Build(Transformer[Token, Query]):
    def string(self, tok: Token) -> str:
        return _unquote(str(tok))

    def number(self, tok: Token) -> int | float:
        text = str(tok)
        if "x" in text.lower():
            sign = -1 if text.startswith("-") else 1
            return sign * int(text.lstrip("+-"), 16)
        if any(c in text for c in ".eE"):
            return float(text)
        return int(text)

    def true(self, _: Token) -> bool:
        return True

    def false(self, _: Token) -> bool:
        return False

    def null(self, _: Token) -> Null:
        return NULL

    def cmp_prop_lit(self, name: Token, op: Token, value: Literal) -> Compare:
        o = "<>" if str(op) == "!=" else str(op)
        return Compare(str(name), o, value)

    def cmp_lit_prop(self, value: Literal, op: Token, name: Token) -> Compare:
        o = "<>" if str(op) == "!=" else str(op)
        return Compare(str(name), _FLIP[o], value)

    def like(self, name: Token, _kw: Token, pattern: Literal) -> Like:
        if not isinstance(pattern, str):
            raise WmiError(WBEM_E_INVALID_QUERY, "LIKE needs a string pattern")
        compile_like(pattern)
        return Like(str(name), pattern)

    def is_null(self, name: Token, *_: Token) -> IsNull:
        return IsNull(str(name), False)

    def is_not_null(self, name: Token, *_: Token) -> IsNull:
        return IsNull(str(name), True)

    def isa(self, name: Token, _kw: Token, value: Literal) -> Isa:
        if not isinstance(value, str):
            raise WmiError(WBEM_E_INVALID_QUERY, "ISA needs a class name string")
        return Isa(str(name), value)

    def not_(self, _kw: Token, expr: Expr) -> Not:
        return Not(expr)

    def and_expr(self, *items: Expr | Token) -> Expr:
        exprs = [i for i in items if not isinstance(i, Token)]
        out = exprs[0]
        for e in exprs[1:]:
            out = And(out, e)
        return out

    def or_expr(self, *items: Expr | Token) -> Expr:
        exprs = [i for i in items if not isinstance(i, Token)]
        out = exprs[0]
        for e in exprs[1:]:
            out = Or(out, e)
        return out

    def star(self, _: Token) -> None:
        return None

    def names(self, *names: Token) -> tuple[str, ...]:
        return tuple(str(n) for n in names)

    def select(self, _s: Token, props: tuple[str, ...] | None, _f: Token, name: Token,
               _w: Token | None, where: Expr | None) -> SelectQuery:
        return SelectQuery(props, str(name), where)

    def assoc_kv(self, key: Token, value: Token) -> tuple[str, str]:
        return (str(key).lower(), str(value))

    def assoc_flag(self, key: Token) -> tuple[str, None]:
        return (str(key).lower(), None)

    def _assoc(self, kind: str, path: Token, clauses: tuple[object, ...]) -> AssocQuery:
        allowed = _ASSOC_KEYS if kind == "associators" else _REF_KEYS
        fields: dict[str, object] = {}
        for clause in clauses:
            if not isinstance(clause, tuple):
                continue
            key, value = clause
            if value is None and key in _FLAGS:
                fields[_FLAGS[key]] = True
            elif value is not None and key in allowed:
                fields[allowed[key]] = value
            else:
                raise WmiError(WBEM_E_INVALID_QUERY, f"{key} is not allowed in {kind.upper()} OF")
        return AssocQuery(kind, str(path)[1:-1].strip(), **fields)  # type: ignore[arg-type]

    def associators(self, _a: Token, _o: Token, path: Token, _w: Token | None,
                    *clauses: object) -> AssocQuery:
        return self._assoc("associators", path, clauses)

    def references(self, _a: Token, _o: Token, path: Token, _w: Token | None,
                   *clauses: object) -> AssocQuery:
        return self._assoc("references", path, clauses)


@lru_cache(maxsize=256)
def parse_wql(text: str) -> Query:
    """Parse a WQL data query; a syntax error raises WmiError(WBEM_E_INVALID_QUERY)."""
    try:
        tree = _PARSER.parse(text)
    except UnexpectedInput as exc:
        raise WmiError(WBEM_E_INVALID_QUERY, f"syntax error at column {exc.column}") from None
    try:
        query = _Build().transform(tree)
    except WmiError:
        raise
    except Exception as exc:  # lark wraps transformer errors in VisitError
        inner = getattr(exc, "orig_exc", exc)
        if isinstance(inner, WmiError):
            raise inner from None
        raise WmiError(WBEM_E_INVALID_QUERY, str(inner)) from None
    if not isinstance(query, SelectQuery | AssocQuery):
        raise WmiError(WBEM_E_INVALID_QUERY, "not a data query")
    return query


# -- LIKE -----------------------------------------------------------------------------------

@lru_cache(maxsize=512)
def compile_like(pattern: str) -> re.Pattern[str]:
    """Translate a WQL LIKE pattern (MSDocs WmiSdk/like-operator) to a regular expression.

    ``%`` any run of characters, ``_`` one character, ``[abc]`` one of a set, ``[a-z]`` a
    range, ``[^...]`` not in the set or range; ``[%]`` matches a literal ``%``. An
    unterminated ``[`` is an invalid query (choice). Matching is case-insensitive (choice:
    WQL string comparisons are case-insensitive, MSDocs WmiSdk/wql-operators).
    """
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "%":
            out.append(".*")
        elif c == "_":
            out.append(".")
        elif c == "[":
            j = i + 1
            negate = pattern[j:j + 1] == "^"
            if negate:
                j += 1
            start = j
            if pattern[j:j + 1] == "]":  # choice: a ']' first in a set is a member (T-SQL)
                j += 1
            end = pattern.find("]", j)
            if end < 0:
                raise WmiError(WBEM_E_INVALID_QUERY, f"unterminated [ in LIKE pattern {pattern!r}")
            body = pattern[start:end]
            out.append("[" + ("^" if negate else "") + _set_body(body) + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out), re.S | re.I)


def _set_body(body: str) -> str:
    parts = []
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            lo, hi = body[i], body[i + 2]
            if lo > hi:
                lo, hi = hi, lo
            parts.append(f"{re.escape(lo)}-{re.escape(hi)}")
            i += 3
        else:
            parts.append(re.escape(body[i]))
            i += 1
    return "".join(parts) or r"\x00-\U0010FFFF"  # "[]" - choice: matches any one char


def like(value: str, pattern: str) -> bool:
    return compile_like(pattern).fullmatch(value) is not None


# -- evaluation -----------------------------------------------------------------------------

Getter = Callable[[str], Value]
IsaCheck = Callable[[str, str], bool | None]


def _coerce(value: Value, literal: Literal) -> tuple[object, object] | None:
    """Bring a property value and a literal to comparable types, or None if they are not."""
    if isinstance(literal, Null) or value is None:
        return None
    if isinstance(value, bool):
        if isinstance(literal, bool):
            return value, literal
        if isinstance(literal, int | float):
            return int(value), literal
        if isinstance(literal, str) and literal.lower() in ("true", "false"):
            return value, literal.lower() == "true"
        return None
    if isinstance(value, int | float):
        if isinstance(literal, bool):
            return value, int(literal)
        if isinstance(literal, int | float):
            return value, literal
        try:
            return value, (float(literal) if "." in literal else int(literal, 0))
        except ValueError:
            raise WmiError(WBEM_E_INVALID_QUERY, f"{literal!r} is not a number") from None
    if isinstance(value, str):
        text = literal if isinstance(literal, str) else (
            ("TRUE" if literal else "FALSE") if isinstance(literal, bool) else str(literal))
        # WQL string comparisons are case-insensitive (MSDocs WmiSdk/wql-operators).
        return value.casefold(), text.casefold()
    return None


def compare(value: Value, op: str, literal: Literal) -> bool | None:
    """``value op literal`` in three-valued logic: None when either side is NULL."""
    pair = _coerce(value, literal)
    if pair is None:
        return None
    a, b = pair
    try:
        if op == "=":
            return a == b
        if op == "<>":
            return a != b
        if op == "<":
            return bool(a < b)  # type: ignore[operator]
        if op == ">":
            return bool(a > b)  # type: ignore[operator]
        if op == "<=":
            return bool(a <= b)  # type: ignore[operator]
        if op == ">=":
            return bool(a >= b)  # type: ignore[operator]
    except TypeError:
        return None
    raise WmiError(WBEM_E_INVALID_QUERY, f"unknown operator {op}")


def evaluate(expr: Expr, get: Getter, isa: IsaCheck) -> bool | None:
    """Evaluate a WHERE expression; NULL comparisons are unknown (None), SQL-style
    (choice: Kleene logic; an object matches only when the clause is TRUE)."""
    if isinstance(expr, Compare):
        return compare(get(expr.prop), expr.op, expr.value)
    if isinstance(expr, Like):
        v = get(expr.prop)
        if v is None:
            return None
        return like(v if isinstance(v, str) else str(v), expr.pattern)
    if isinstance(expr, IsNull):
        is_null = get(expr.prop) is None
        return not is_null if expr.negated else is_null
    if isinstance(expr, Isa):
        return isa(expr.prop, expr.class_name)
    if isinstance(expr, Not):
        inner = evaluate(expr.expr, get, isa)
        return None if inner is None else not inner
    if isinstance(expr, And):
        left = evaluate(expr.left, get, isa)
        if left is False:
            return False
        right = evaluate(expr.right, get, isa)
        if right is False:
            return False
        return None if left is None or right is None else True
    left = evaluate(expr.left, get, isa)
    if left is True:
        return True
    right = evaluate(expr.right, get, isa)
    if right is True:
        return True
    return None if left is None or right is None else False


def referenced_properties(expr: Expr | None) -> list[str]:
    """Every property name a WHERE clause uses (to check them against the class)."""
    if expr is None:
        return []
    if isinstance(expr, Compare | Like | IsNull | Isa):
        return [expr.prop]
    if isinstance(expr, Not):
        return referenced_properties(expr.expr)
    return referenced_properties(expr.left) + referenced_properties(expr.right)

"""WQL grammar and evaluation, with LIKE and comparisons checked against reference code."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wmilab.hresult import WBEM_E_INVALID_QUERY
from wmilab.repository.cim import WmiError
from wmilab.repository.wql import (
    AssocQuery,
    Compare,
    SelectQuery,
    compare,
    evaluate,
    like,
    parse_wql,
)

# -- a reference LIKE matcher, written independently of the regex translation ----------------


def _tokens(pattern: str) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "%":
            out.append(("any", None))
        elif c == "_":
            out.append(("one", None))
        elif c == "[":
            end = pattern.index("]", i + 1)
            body = pattern[i + 1:end]
            neg = body.startswith("^")
            body = body[1:] if neg else body
            members: list[tuple[str, str]] = []
            j = 0
            while j < len(body):
                if j + 2 < len(body) and body[j + 1] == "-":
                    members.append((min(body[j], body[j + 2]), max(body[j], body[j + 2])))
                    j += 3
                else:
                    members.append((body[j], body[j]))
                    j += 1
            out.append(("set", (neg, members)))
            i = end
        else:
            out.append(("lit", c))
        i += 1
    return out


def _one(tok: tuple[str, object], ch: str) -> bool:
    kind, arg = tok
    if kind == "one":
        return True
    if kind == "lit":
        return str(arg).lower() == ch.lower()
    neg, members = arg  # type: ignore[misc]
    hit = any(lo <= c <= hi for lo, hi in members for c in {ch, ch.lower(), ch.upper()})
    return hit != neg


def reference_like(text: str, pattern: str) -> bool:
    toks = _tokens(pattern)
    # dp[i][j]: text[:i] matches toks[:j]
    dp = [[False] * (len(toks) + 1) for _ in range(len(text) + 1)]
    dp[0][0] = True
    for j, tok in enumerate(toks, 1):
        dp[0][j] = dp[0][j - 1] and tok[0] == "any"
    for i in range(1, len(text) + 1):
        for j, tok in enumerate(toks, 1):
            if tok[0] == "any":
                dp[i][j] = dp[i - 1][j] or dp[i][j - 1]
            else:
                dp[i][j] = dp[i - 1][j - 1] and _one(tok, text[i - 1])
    return dp[len(text)][len(toks)]


ALPHABET = "abcAB.-x1"
piece = st.one_of(
    st.sampled_from(["%", "_"]),
    st.sampled_from(list(ALPHABET)),
    st.builds(lambda neg, a, b, c: f"[{'^' if neg else ''}{a}{b}{c}]",
              st.booleans(), st.sampled_from("abx1"), st.sampled_from(["", "-"]),
              st.sampled_from("bcz9")),
)


@given(st.text(alphabet=ALPHABET, max_size=8), st.lists(piece, max_size=6).map("".join))
def test_like_agrees_with_reference(text: str, pattern: str) -> None:
    assert like(text, pattern) == reference_like(text, pattern)


def test_like_examples_from_the_docs() -> None:
    # MSDocs WmiSdk/like-operator examples.
    assert like("Win32_Process", "Win32_%")
    assert like("comp", "comp[ao]") is False and like("compa", "comp[ao]")
    assert like("compu", "comp[^u]") is False and like("compx", "comp[^u]")
    assert like("50%", "50[%]") and not like("500", "50[%]")
    assert like("SVCHOST.EXE", "svc%.exe")


@given(st.integers(-1000, 1000), st.integers(-1000, 1000),
       st.sampled_from(["=", "<>", "<", ">", "<=", ">="]))
def test_numeric_comparisons(a: int, b: int, op: str) -> None:
    expected = {"=": a == b, "<>": a != b, "<": a < b, ">": a > b, "<=": a <= b,
                ">=": a >= b}[op]
    assert compare(a, op, b) is expected
    assert compare(a, op, str(b)) is expected  # a string literal is converted


@given(st.text(alphabet="abcABC", max_size=4), st.text(alphabet="abcABC", max_size=4),
       st.sampled_from(["=", "<>", "<", ">", "<=", ">="]))
def test_string_comparisons_ignore_case(a: str, b: str, op: str) -> None:
    x, y = a.casefold(), b.casefold()
    expected = {"=": x == y, "<>": x != y, "<": x < y, ">": x > y, "<=": x <= y,
                ">=": x >= y}[op]
    assert compare(a, op, b) is expected


def test_null_is_unknown_and_filtered() -> None:
    q = parse_wql("SELECT * FROM X WHERE NOT A = 1")
    assert isinstance(q, SelectQuery) and q.where is not None
    assert evaluate(q.where, lambda _: None, lambda *_: None) is None
    q2 = parse_wql("SELECT * FROM X WHERE A IS NULL OR A = 1")
    assert isinstance(q2, SelectQuery) and q2.where is not None
    assert evaluate(q2.where, lambda _: None, lambda *_: None) is True


def test_keywords_are_case_insensitive_and_and_binds_tighter() -> None:
    q = parse_wql("select name from win32_process where a = 1 or b = 2 and c = 3")
    assert isinstance(q, SelectQuery) and q.properties == ("name",)
    values = {"a": 1, "b": 0, "c": 0}
    assert q.where is not None
    assert evaluate(q.where, values.get, lambda *_: None) is True
    q2 = parse_wql("SELECT * FROM X WHERE (a = 1 OR b = 2) AND c = 3")
    assert isinstance(q2, SelectQuery) and q2.where is not None
    assert evaluate(q2.where, values.get, lambda *_: None) is False


def test_literal_on_the_left_and_string_escapes() -> None:
    q = parse_wql("SELECT * FROM X WHERE 5 < Size AND Path = 'C:\\\\WINDOWS' AND T = \"a\\\"b\"")
    assert isinstance(q, SelectQuery)
    where = q.where
    assert where is not None
    values = {"Size": 9, "Path": "c:\\windows", "T": 'a"b'}
    assert evaluate(where, values.get, lambda *_: None) is True
    first = parse_wql("SELECT * FROM X WHERE 5 < Size")
    assert isinstance(first, SelectQuery) and first.where == Compare("Size", ">", 5)


def test_associators_clause() -> None:
    q = parse_wql('associators of {Win32_Service.Name="x"} where resultclass = Win32_X '
                  'Role = PartComponent ClassDefsOnly')
    assert q == AssocQuery("associators", 'Win32_Service.Name="x"', result_class="Win32_X",
                           role="PartComponent", class_defs_only=True)


@pytest.mark.parametrize("text", [
    "SELECT", "SELECT * FROM", "SELECT * Win32_Process", "SELECT * FROM X WHERE",
    "SELECT * FROM X WHERE A =", "SELECT * FROM X WHERE A = 1 AND", "DELETE FROM X",
    "SELECT * FROM X WHERE A LIKE 5", "SELECT * FROM X WHERE A LIKE '[ab'",
    "SELECT * FROM X WHERE (A = 1", "REFERENCES OF {X.K=1} WHERE AssocClass = Y",
    "ASSOCIATORS OF {X.K=1} WHERE Bogus = Y",
])
def test_invalid_queries(text: str) -> None:
    with pytest.raises(WmiError) as info:
        parse_wql(text)
    assert info.value.hresult == WBEM_E_INVALID_QUERY

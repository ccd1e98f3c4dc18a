"""Find the line of a key path in TOML source text, for error messages.

``tomllib`` reports syntax errors with a line but keeps no positions for the
values it returns; this module scans the text once and maps every key path
(``("hosts", "B", "netsh", 2)``) to the line where it is written. It
understands table headers, arrays of tables, dotted and quoted keys, inline
tables and multi-line arrays of scalars, which is what scenario files use.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from wmilab.errors import PathPart

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _split_key(text: str) -> list[str] | None:
    """Split a dotted TOML key into parts; None if it is not a key."""
    parts: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return None
        ch = text[i]
        if ch in "\"'":
            end = i + 1
            buf = []
            while end < n and text[end] != ch:
                if ch == '"' and text[end] == "\\" and end + 1 < n:
                    nxt = text[end + 1]
                    buf.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
                    end += 2
                    continue
                buf.append(text[end])
                end += 1
            if end >= n:
                return None
            parts.append("".join(buf))
            i = end + 1
        else:
            m = _BARE.match(text, i)
            if not m:
                return None
            parts.append(m.group(0))
            i = m.end()
        while i < n and text[i] in " \t":
            i += 1
        if i < n:
            if text[i] != ".":
                return None
            i += 1
    return parts


def _key_and_rest(line: str) -> tuple[list[str], str] | None:
    """For ``key = value`` return (key parts, value text)."""
    depth_quote: str | None = None
    for i, ch in enumerate(line):
        if depth_quote:
            if ch == depth_quote:
                depth_quote = None
            continue
        if ch in "\"'":
            depth_quote = ch
        elif ch == "=":
            key = _split_key(line[:i])
            return (key, line[i + 1 :]) if key else None
        elif ch == "#":
            return None
    return None


def _inline_keys(value: str) -> list[tuple[list[str], str]]:
    """Keys directly inside an inline table value ``{ a = 1, b = { c = 2 } }``."""
    out: list[tuple[list[str], str]] = []
    v = value.strip()
    if not v.startswith("{"):
        return out
    body = v[1:]
    depth = 0
    quote: str | None = None
    start = 0
    items: list[str] = []
    for i, ch in enumerate(body):
        if quote:
            if ch == quote:
                quote = None
            continue
        if ch in "\"'":
            quote = ch
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            if depth == 0:
                items.append(body[start:i])
                break
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(body[start:i])
            start = i + 1
    for item in items:
        kr = _key_and_rest(item)
        if kr:
            out.append(kr)
    return out


def _record_inline(
    path: tuple[PathPart, ...], value: str, lineno: int,
    record: Callable[[tuple[PathPart, ...], int], None],
) -> None:
    for sub, rest in _inline_keys(value):
        record((*path, *sub), lineno)
        _record_inline((*path, *sub), rest, lineno, record)


def positions(text: str) -> dict[tuple[PathPart, ...], int]:
    """Map each key path found in ``text`` to its 1-based line number."""
    pos: dict[tuple[PathPart, ...], int] = {}
    table: tuple[PathPart, ...] = ()
    array_counts: dict[tuple[PathPart, ...], int] = {}
    open_array: tuple[tuple[PathPart, ...], int] | None = None  # (path, next index)

    def record(path: tuple[PathPart, ...], line: int) -> None:
        for k in range(1, len(path) + 1):
            pos.setdefault(path[:k], line)

    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if open_array is not None:
            path, idx = open_array
            body = line.split("#", 1)[0] if not line.startswith(("'", '"')) else line
            if body.startswith("]"):
                open_array = None
                continue
            if body:
                pos.setdefault((*path, idx), lineno)
                idx += 1
            open_array = (path, idx) if "]" not in body.rstrip().rstrip(",")[-1:] else None
            if open_array is None:
                continue
            if body.rstrip().endswith("]"):
                open_array = None
            continue
        if line.startswith("[["):
            key = _split_key(line[2 : line.find("]]")])
            if key:
                base = tuple(key)
                idx = array_counts.get(base, 0)
                array_counts[base] = idx + 1
                table = (*base, idx)
                record(table, lineno)
            continue
        if line.startswith("["):
            key = _split_key(line[1 : line.rfind("]")])
            if key:
                table = tuple(key)
                record(table, lineno)
            continue
        kr = _key_and_rest(line)
        if not kr:
            continue
        key, rest = kr
        path = (*table, *key)
        record(path, lineno)
        _record_inline(path, rest, lineno, record)
        value = rest.strip()
        if value.startswith("[") and not value.startswith("[["):
            inner = value[1:].split("#", 1)[0].strip()
            if not inner.endswith("]"):
                open_array = (path, 0)
                if inner:
                    items = [s for s in inner.split(",") if s.strip()]
                    for i in range(len(items)):
                        pos.setdefault((*path, i), lineno)
                    open_array = (path, len(items))
            else:
                items = [s for s in inner[:-1].split(",") if s.strip()]
                for i in range(len(items)):
                    pos.setdefault((*path, i), lineno)
    return pos


def line_of(text: str, path: tuple[PathPart, ...]) -> int | None:
    """The line of ``path``, or of its longest written prefix; None if unknown."""
    pos = positions(text)
    for k in range(len(path), 0, -1):
        if path[:k] in pos:
            return pos[path[:k]]
    return None

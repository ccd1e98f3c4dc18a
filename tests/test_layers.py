"""The package layers of docs/architecture.md, read from the imports of every module.

Every import statement under src/wmilab counts: at module level, inside functions, and under
``if TYPE_CHECKING:`` (a cycle hidden from the interpreter is still a cycle). Relative
imports are resolved to absolute names. A failure lists each offending import as
``module:line imports name``.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "wmilab"

# The base every layer may import: the error classes (wmilab/errors.py: ConfigError and
# WireError) and the status-code catalogue (wmilab/hresult.py); both import nothing of wmilab.
ERROR_BASE = "wmilab.errors"
CODES = "wmilab.hresult"
BASE = (ERROR_BASE, CODES)


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. wmilab.host.gate
    line: int
    name: str  # the imported module or name, absolute, e.g. wmilab.lab.loopback.LoopbackMap


@dataclass(frozen=True)
class Rule:
    layer: str  # package the rule is about, e.g. wmilab.wire
    allowed: tuple[str, ...] | None  # only these (plus the layer itself), or None
    forbidden: tuple[str, ...] = ()
    why: str = ""


RULES = (
    Rule("wmilab.wire", BASE, why="wire/ is sans-IO: it imports nothing of wmilab except "
         "the base (errors, hresult)"),
    # model/ needs ConfigError today (bad scenario input): exactly the error base, no more.
    Rule("wmilab.model", BASE, why="model/ imports nothing outside model/ except the base "
         "(errors, hresult)"),
    Rule("wmilab.repository", None, ("wmilab.host", "wmilab.lab", "wmilab.client",
                                     "wmilab.cli"),
         why="repository/ does not import host, lab, client or cli"),
    Rule("wmilab.transport", None, ("wmilab.host", "wmilab.lab", "wmilab.client",
                                    "wmilab.cli", "wmilab.repository"),
         why="transport/ is below host/ and client/"),
    Rule("wmilab.host", None, ("wmilab.lab", "wmilab.client", "wmilab.cli"),
         why="host/ does not import lab, client or cli"),
    Rule("wmilab.client", None, ("wmilab.lab", "wmilab.cli"),
         why="client/ does not import lab or cli"),
    Rule("wmilab.realhost", None, ("wmilab.host", "wmilab.lab", "wmilab.cli"),
         why="query and doctor call real hosts with the client, never the emulator"),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base.pop()  # a module's relative imports start from its package
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(path: Path) -> list[Import]:
    """Every wmilab import in one file, wherever it stands in the file."""
    module = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(module, node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path.name == "__init__.py", node)
            # ``from wmilab import steps`` imports wmilab.steps: name the imported member too.
            found += [Import(module, node.lineno, f"{base}.{a.name}" if a.name != "*" else base)
                      for a in node.names]
    return [i for i in found if i.name == "wmilab" or i.name.startswith("wmilab.")]


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(rule: Rule, imports: list[Import]) -> list[Import]:
    bad = []
    for imp in imports:
        if not _within(imp.module, rule.layer) or _within(imp.name, rule.layer):
            continue
        if rule.allowed is not None:
            if not any(_within(imp.name, ok) for ok in rule.allowed):
                bad.append(imp)
        elif any(_within(imp.name, no) for no in rule.forbidden):
            bad.append(imp)
    return bad


def all_imports() -> list[Import]:
    return [i for path in sorted(PACKAGE.rglob("*.py")) for i in imports_of(path)]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.layer)
def test_layer(rule: Rule) -> None:
    bad = violations(rule, all_imports())
    listing = "\n".join(f"  {i.module}:{i.line} imports {i.name}" for i in bad)
    assert not bad, f"{rule.why}; offending imports:\n{listing}"


@pytest.mark.parametrize("module", ["errors.py", "hresult.py"])
def test_the_base_imports_nothing_of_wmilab(module: str) -> None:
    assert imports_of(PACKAGE / module) == []


# -- the checker itself must be able to fail -----------------------------------------------


def _write(tmp: Path, rel: str, text: str) -> Path:
    path = tmp / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_checker_sees_type_checking_function_and_relative_imports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    path = _write(tmp_path, "wmilab/host/x.py", (
        "from typing import TYPE_CHECKING\n"
        "from ..errors import ConfigError\n"
        "if TYPE_CHECKING:\n"
        "    from wmilab.lab.loopback import LoopbackLab\n"
        "def f() -> None:\n"
        "    import wmilab.client.session\n"
        "    from ..cli import app\n"
        "    from . import gate\n"))
    got = imports_of(path)
    assert [(i.line, i.name) for i in got] == [
        (2, "wmilab.errors.ConfigError"), (4, "wmilab.lab.loopback.LoopbackLab"),
        (6, "wmilab.client.session"), (7, "wmilab.cli.app"), (8, "wmilab.host.gate")]
    host_rule = next(r for r in RULES if r.layer == "wmilab.host")
    assert [i.line for i in violations(host_rule, got)] == [4, 6, 7]


def test_checker_allows_only_the_error_base_in_wire(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    path = _write(tmp_path, "wmilab/wire/dcom/__init__.py", (
        "from wmilab.errors import WireError\n"
        "from .ndr import NdrReader\n"
        "from ..rpc import AuthLevel\n"
        "from wmilab.model import hresult\n"))
    got = imports_of(path)
    assert [i.name for i in got] == ["wmilab.errors.WireError", "wmilab.wire.dcom.ndr.NdrReader",
                                     "wmilab.wire.rpc.AuthLevel", "wmilab.model.hresult"]
    wire_rule = next(r for r in RULES if r.layer == "wmilab.wire")
    assert [i.line for i in violations(wire_rule, got)] == [4]

"""The scenarios that ship with wmilab: the seed's walk-through, one TOML file per step.

They are package data, so `wmilab examples` can list and copy them wherever wmilab is
installed; in a checkout they are the files in this directory.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path


@dataclass(frozen=True)
class Example:
    name: str    # the file name without .toml, e.g. "03-async-a-unconfigured"
    title: str   # the scenario's title without its step number
    text: str    # the whole file

    @property
    def filename(self) -> str:
        return self.name + ".toml"


def directory() -> Path:
    """The directory that holds the example files (inside the installed package)."""
    return Path(__file__).parent


def _title(text: str) -> str:
    try:
        title = tomllib.loads(text).get("title")
    except tomllib.TOMLDecodeError:
        title = None
    if not isinstance(title, str):
        comments = [ln.lstrip("# ").strip() for ln in text.splitlines() if ln.startswith("#")]
        title = comments[0] if comments else ""
    return re.sub(r"^\d+\.\s+", "", title)


def all_examples() -> list[Example]:
    """Every shipped example, in file-name order."""
    found = []
    for entry in files(__name__).iterdir():
        if entry.name.endswith(".toml"):
            text = entry.read_text(encoding="utf-8")
            found.append(Example(entry.name.removesuffix(".toml"), _title(text), text))
    return sorted(found, key=lambda e: e.name)


def find(name: str) -> Example | None:
    """The example called NAME: its file name with or without .toml, or its number ("3", "03")."""
    key = name.strip().removesuffix(".toml")
    examples = all_examples()
    for ex in examples:
        if ex.name == key:
            return ex
    if key.isdigit():
        numbered = [ex for ex in examples
                    if ex.name.split("-", 1)[0].isdigit() and int(ex.name.split("-", 1)[0]) == int(key)]
        if len(numbered) == 1:
            return numbered[0]
    return None

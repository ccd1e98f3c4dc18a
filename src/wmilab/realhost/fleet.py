"""`wmilab doctor --targets FILE`: many hosts on one asyncio loop, bounded concurrency."""

from __future__ import annotations

import asyncio
import csv
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from wmilab.realhost import options as opt
from wmilab.realhost.doctor import DoctorReport, DoctorRequest, ListenerPool, diagnose

__all__ = ["FleetEntry", "parse_shard", "read_targets", "run_fleet", "summarize"]


@dataclass(frozen=True)
class FleetEntry:
    line: int
    target: str
    user: str | None = None


def read_targets(path: Path) -> list[FleetEntry]:
    """One target per line, or CSV ``target,user`` (a header row naming them is skipped).

    Blank lines and lines starting with # are ignored; a bad line is a
    :class:`opt.UsageError` naming the file and line number.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise opt.UsageError(f"--targets {path}: {getattr(e, 'strerror', None) or e}") from None
    out: list[FleetEntry] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in next(csv.reader([line]))]
        if n == 1 and [f.lower() for f in fields[:2]] in (["target"], ["target", "user"]):
            continue
        if len(fields) > 2 or not fields[0]:
            raise opt.UsageError(f"{path}:{n}: expected TARGET or TARGET,USER, got {line!r}")
        target = fields[0]
        if not (opt.is_address(target) or opt.valid_name(target)):
            raise opt.UsageError(f"{path}:{n}: {target!r} is not an IPv4 address or a host name")
        user = None
        if len(fields) == 2 and fields[1]:
            try:
                user = opt.user(fields[1])
            except opt.UsageError:
                raise opt.UsageError(f"{path}:{n}: user {fields[1]!r}: expected "
                                     "DOMAIN\\user") from None
        out.append(FleetEntry(n, target, user))
    if not out:
        raise opt.UsageError(f"--targets {path}: no targets in the file")
    return out


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N``: every N-th target starting at index I (0 <= I < N)."""
    i_text, sep, n_text = text.partition("/")
    try:
        i, n = int(i_text), int(n_text)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise opt.UsageError(f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. 0/4")
    return i, n


def summarize(reports: Sequence[DoctorReport]) -> Counter[str]:
    """How many hosts stop at each step ("ok" for those that pass)."""
    return Counter("ok" if r.ok else ("error" if r.failed is None else r.failed.step)
                   for r in reports)


async def _one(entry: FleetEntry, base: DoctorRequest, pool: ListenerPool) -> DoctorReport:
    o = base.options
    try:
        address = opt.resolve_target(entry.target, f"line {entry.line}:")
    except opt.UsageError as e:
        rep = DoctorReport(entry.target, "", base.mode, [], None)
        rep.error = str(e)
        return rep
    o = replace(o, address=address, user=entry.user or o.user)
    return await diagnose(replace(base, target=entry.target, options=o), pool)


async def run_fleet(entries: Sequence[FleetEntry], base: DoctorRequest, *, concurrency: int,
                    pool: ListenerPool, on_done: Callable[[DoctorReport], None] | None = None
                    ) -> list[DoctorReport]:
    """Every entry diagnosed, at most ``concurrency`` at a time; reports in entry order.
    The caller closes ``pool`` (it may serve several runs)."""
    sem = asyncio.Semaphore(max(1, concurrency))

    async def bounded(entry: FleetEntry) -> DoctorReport:
        async with sem:
            rep = await _one(entry, base, pool)
        if on_done is not None:
            on_done(rep)
        return rep

    return list(await asyncio.gather(*(bounded(e) for e in entries)))

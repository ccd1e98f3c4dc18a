"""The answer every model check gives: allowed or not, and the rule that decided."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Check:
    """Outcome of one access decision.

    ``reason`` is one line an administrator can read ("CORP\\bob has no Remote
    Enable on root\\cimv2"); ``where`` is a short machine tag naming the
    setting that decided (for example ``"limits"``, ``"policy"``, ``"netsh"``),
    which remedies use to pick the place to change.
    """

    ok: bool
    reason: str
    where: str = ""

    def __bool__(self) -> bool:
        return self.ok

"""The event loop the emulated hosts run on: uvloop's when it is installed, else asyncio's.

uvloop (libuv, in C) does the loop's own work (polling, reading, writing, callbacks) for
less CPU than asyncio's selector loop, which is a large share of what an emulated host
spends per call (docs/benchmarks.md). Everything else is unchanged: the host code uses
only the asyncio API. ``WMILAB_EVENT_LOOP=asyncio`` keeps the standard loop (to compare,
or where uvloop misbehaves); ``WMILAB_EVENT_LOOP=uvloop`` insists on uvloop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from wmilab.errors import ConfigError

__all__ = ["ENV", "loop_factory", "new_event_loop", "run"]

T = TypeVar("T")
ENV = "WMILAB_EVENT_LOOP"


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new event loop: ``uvloop.new_event_loop`` or ``asyncio.new_event_loop``.

    ConfigError for a value of WMILAB_EVENT_LOOP that is not ``asyncio`` or ``uvloop``, or
    ``uvloop`` when it is not installed.
    """
    wanted = os.environ.get(ENV, "").strip().lower()
    if wanted not in ("", "asyncio", "uvloop"):
        raise ConfigError(f"{ENV}={wanted!r}: use asyncio or uvloop")
    if wanted == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        if wanted == "uvloop":
            raise ConfigError(f"{ENV}=uvloop but uvloop is not installed "
                              f"(pip install uvloop)") from None
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the chosen kind (for a loop run in a thread)."""
    return loop_factory()()


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the chosen event loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)

"""`wmilab query`: one WQL query against a real host with wmilab's own client."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wmilab import hresult as hr
from wmilab import steps
from wmilab.client.callback import CallbackListener, SinkPolicy
from wmilab.client.session import (
    C1_QUERY,
    C2_RESULT,
    QUERY_TITLE,
    RESULT_TITLE,
    ConnectOptions,
    StepFailed,
    StepLog,
    connect,
    query_async,
)
from wmilab.wire import wmio

__all__ = ["QueryRequest", "ResolverBindError", "as_csv", "as_json", "columns", "failure_line",
           "jsonable", "run_query", "title_of"]


@dataclass(frozen=True)
class QueryRequest:
    options: ConnectOptions
    wql: str
    mode: str = "semisync"
    resolver_port: int = 135  # where A's OXID resolver listens for Connection 2
    callback_wait: float | None = None  # seconds to wait for B's callback (default: timeout)
    policy: SinkPolicy | None = None  # A's decisions for Connection 2 (tests: the model)


class ResolverBindError(Exception):
    """An asynchronous call needs A's OXID resolver on TCP 135 and it could not be bound."""


def title_of(step: str) -> str:
    spec = steps.TABLE.get(step)
    if spec is not None:
        return spec.title
    return {C1_QUERY: QUERY_TITLE, C2_RESULT: RESULT_TITLE}.get(step, step)


async def run_query(req: QueryRequest, log: StepLog | None = None
                    ) -> tuple[list[wmio.Instance], StepLog]:
    """Rows of the query; :class:`StepFailed` names the step a failure came at."""
    log = log if log is not None else StepLog()
    async with await connect(req.options, log) as session:
        if req.mode != "async":
            return await session.query(req.wql, req.mode), log
        listener = CallbackListener(session.local_address, resolver_port=req.resolver_port,
                                    policy=req.policy)
        try:
            await listener.start()
        except OSError as e:
            raise ResolverBindError(
                f"an asynchronous call needs this machine's OXID resolver on "
                f"{session.local_address}:{req.resolver_port} for B's callback, and it cannot "
                f"be bound ({e.strerror or e}); run as root, or use --mode semisync") from None
        try:
            wait = req.callback_wait if req.callback_wait is not None else req.options.timeout
            return await query_async(session, req.wql, listener, wait), log
        finally:
            await listener.close()


def failure_line(e: StepFailed) -> str:
    h = hr.lookup(e.hresult)
    return (f"0x{e.hresult:08X} {h.symbol} at {e.step} ({title_of(e.step)}): "
            f"{e.kind}: {e.detail}")


def columns(rows: Sequence[wmio.Instance]) -> list[str]:
    """Property names in the order the objects carry them (system properties excluded)."""
    seen: dict[str, None] = {}
    for row in rows:
        for name in row.values:
            if not name.startswith("__"):
                seen.setdefault(name, None)
    return list(seen)


def jsonable(value: wmio.Value) -> Any:
    if isinstance(value, wmio.Instance):
        return {k: jsonable(v) for k, v in value.values.items()}
    if isinstance(value, wmio.ClassDef):
        return value.name
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def as_json(rows: Sequence[wmio.Instance]) -> str:
    cols = columns(rows)
    return json.dumps([{c: jsonable(r.get(c)) for c in cols} for r in rows], indent=2)


def _cell(value: wmio.Value) -> str:
    v = jsonable(value)
    if v is None:
        return ""
    if isinstance(v, list | dict):
        return json.dumps(v)
    return str(v)


def as_csv(rows: Sequence[wmio.Instance]) -> str:
    cols = columns(rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in cols])
    return buf.getvalue()


def cells(rows: Sequence[wmio.Instance]) -> tuple[list[str], list[list[str]]]:
    cols = columns(rows)
    return cols, [[_cell(r.get(c)) for c in cols] for r in rows]

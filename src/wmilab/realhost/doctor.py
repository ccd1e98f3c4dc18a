"""`wmilab doctor`: walk the steps of ``flow`` against a real host, one probe per step.

Connection 1: TCP 135 and the bind (c1.rpcss-port), the NTLM logon on its own
(IObjectExporter::ServerAlive2, c1.logon), activation of WbemLevel1Login (c1.activation), the
WMI port and its bind (c1.wmi-port), the first call into WMI, where DCOM checks remote access
(c1.access), the NTLMLogin result (c1.namespace), then a query (c1.query) that also tells the
Windows version. With ``--mode async`` the query is asynchronous and Connection 2 is watched on
A: did B ask A's resolver (c2.resolver-port), reach the sink (c2.sink-port), as whom
(c2.identity), and did the sink accept its calls (c2.access)?

The first step that fails stops the walk; its HRESULT is the one a Windows client gets and
``check`` names, and the fix comes from the model (:mod:`wmilab.realhost.model_fix`).
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from wmilab import hresult as hr
from wmilab import steps
from wmilab.client.callback import CallbackListener, SinkPolicy
from wmilab.client.session import (
    ConnectOptions,
    StepFailed,
    StepLog,
    StepRecord,
    connect,
    query_async,
)
from wmilab.client.transport import KIND_PROTOCOL
from wmilab.realhost.model_fix import ModelFix, os_of_version, reconstruct_fix
from wmilab.realhost.query import title_of
from wmilab.wire import wmio

__all__ = ["DoctorReport", "DoctorRequest", "ListenerPool", "diagnose"]

OS_QUERY = "SELECT Caption, Version, CSDVersion FROM Win32_OperatingSystem"
ANY_QUERY = "SELECT * FROM __NAMESPACE"  # every namespace has __NAMESPACE (MS-WMI 3.1.4.3)


@dataclass(frozen=True)
class DoctorRequest:
    target: str  # as the user wrote it
    options: ConnectOptions
    mode: str = "semisync"
    callback_wait: float | None = None


class ListenerPool:
    """One callback listener per local address, shared by every target of a run."""

    def __init__(self, resolver_port: int = 135, policy: SinkPolicy | None = None) -> None:
        self.resolver_port = resolver_port
        self.policy = policy
        self.listeners: dict[str, CallbackListener] = {}
        self.errors: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def get(self, address: str) -> CallbackListener | str:
        """The listener on ``address``, or why it could not be started."""
        async with self._lock:  # hosts diagnosed at once must not both bind port 135
            return await self._get(address)

    async def _get(self, address: str) -> CallbackListener | str:
        if address in self.errors:
            return self.errors[address]
        found = self.listeners.get(address)
        if found is None:
            found = CallbackListener(address, resolver_port=self.resolver_port,
                                     policy=self.policy)
            try:
                await found.start()
            except OSError as e:
                why = (f"cannot listen on {address}:{self.resolver_port} for B's callback "
                       f"({e.strerror or e}); run as root, or use --mode semisync")
                self.errors[address] = why
                return why
            self.listeners[address] = found
        return found

    async def close(self) -> None:
        listeners = list(self.listeners.values())
        self.listeners.clear()
        for lst in listeners:
            await lst.close()


@dataclass
class DoctorReport:
    target: str
    address: str
    mode: str
    steps: list[StepRecord]
    failed: StepFailed | None
    windows: str | None = None  # "Microsoft Windows XP Professional 5.1.2600 (Service Pack 2)"
    os: str | None = None  # the model's OS name, when known
    fix: ModelFix | None = None
    ms: float = 0.0
    error: str | None = None  # a run that could not be made at all (no resolver port)
    rows: list[wmio.Instance] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed is None and self.error is None

    @property
    def result(self) -> str:
        if self.error is not None:
            return "error"
        return "ok" if self.failed is None else f"0x{self.failed.hresult:08X}"

    def as_json(self) -> dict[str, Any]:
        f = self.failed
        spec = steps.TABLE.get(f.step) if f is not None else None
        return {
            "target": self.target, "address": self.address, "mode": self.mode,
            "result": self.result,
            "symbol": None if f is None else hr.lookup(f.hresult).symbol,
            "connection": None if f is None else (spec.connection if spec else
                                                  int(f.step[1]) if f.step[1:2].isdigit()
                                                  else None),
            "step": None if f is None else f.step,
            "kind": None if f is None else f.kind,
            "explanation": None if f is None else f"{title_of(f.step)}: {f.detail}",
            "error": self.error,
            "windows": self.windows, "os": self.os,
            "steps": [{"step": s.step, "ok": s.ok, "detail": s.detail, "ms": s.ms}
                      for s in self.steps],
            "fixes": [] if self.fix is None else self.fix.fixes,
            "assumption": None if self.fix is None else self.fix.assumption,
            "fix_proven": None if self.fix is None else self.fix.proven,
            "fix_note": None if self.fix is None else (self.fix.note or None),
            "ms": self.ms,
        }


def _windows(rows: list[wmio.Instance]) -> str | None:
    for r in rows:
        caption, version = r.get("Caption"), r.get("Version")
        if isinstance(version, str):
            sp = r.get("CSDVersion")
            return " ".join(str(x) for x in (caption, version) if x) + (f" ({sp})" if sp else "")
    return None


async def diagnose(req: DoctorRequest, pool: ListenerPool | None = None) -> DoctorReport:
    """Probe one target; never raises for what the target does."""
    t0 = time.perf_counter()
    log = StepLog()
    # A is this machine, running wmilab's own client: EnableDCOM is a Windows setting of A.
    log.add(StepRecord(steps.C1_CLIENT_DCOM, True,
                       "A is wmilab's own client here: no EnableDCOM setting applies", 0.0))
    o = req.options
    rep = DoctorReport(req.target, o.address, req.mode, log.records, None)
    version: str | None = None
    try:
        session = await connect(o, log, check_logon=True)
        async with session:
            if session.version is not None:
                version = ".".join(str(x) for x in session.version)
            cimv2 = o.namespace.strip("\\/").lower().replace("/", "\\") == "root\\cimv2"
            wql = OS_QUERY if cimv2 else ANY_QUERY
            if req.mode != "async":
                rep.rows = await session.query(wql, req.mode)
            else:
                lst = await (pool or ListenerPool()).get(session.local_address)
                if isinstance(lst, str):
                    rep.error = lst
                else:
                    wait = req.callback_wait if req.callback_wait is not None else o.timeout
                    rep.rows = await query_async(session, wql, lst, wait)
            if cimv2:
                rep.windows = _windows(rep.rows)
    except StepFailed as e:
        rep.failed = e
    if version is None and log.server_version is not None:
        version = ".".join(str(x) for x in log.server_version)
    if rep.windows is None and version is not None:
        rep.windows = f"NTLM version {version}"
    found = _version_of(rep.windows)
    rep.os = os_of_version(found)
    if rep.failed is not None and rep.failed.kind == KIND_PROTOCOL:
        rep.fix = ModelFix([], "", False, "the target's answer is not MS-RPCE as Windows "
                           "speaks it: is this a Windows host, and port 135 its RPCSS?")
    elif rep.failed is not None:
        local = o.local_address or _local_of(o.address)
        rep.fix = reconstruct_fix(rep.failed.step, rep.failed.hresult, user=o.user,
                                  namespace=o.namespace, mode=req.mode, os_b=rep.os,
                                  a_ip=local, b_ip=o.address)
    rep.ms = round((time.perf_counter() - t0) * 1000, 3)
    return rep


def _version_of(windows: str | None) -> str | None:
    if not windows:
        return None
    for word in windows.replace("(", " ").split():
        if word[:1].isdigit() and word.count(".") == 2:
            return word
    return None


def _local_of(address: str) -> str:
    """The local address the system routes to ``address`` from (a UDP connect sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((address, 135))
            return str(s.getsockname()[0])
    except OSError:
        return ""

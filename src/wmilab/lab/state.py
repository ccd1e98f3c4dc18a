"""What a running lab made, kept on disk so that ``wmilab lab down`` can undo all of it.

Every namespace is written down before it is created, and every process right after it
starts (with its kernel start time, so a recycled process id is never taken for ours).
After a crash of ``lab up`` the file still lists everything, and ``down`` removes what
exists of it and nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MARKER", "LabState", "ProcessRecord", "lab_key", "marked_processes", "state_root"]

STATE_FILE = "state.json"
# Every process a lab starts carries this variable, set to the lab's state directory, so
# that `down` also finds a process started just before a crash, before it was recorded.
MARKER = "WMILAB_LAB_STATE"


def state_root() -> Path:
    """Where labs keep their state: /run/wmilab as root, else a per-user directory
    (``WMILAB_STATE_DIR`` overrides both)."""
    env = os.environ.get("WMILAB_STATE_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/run/wmilab")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "wmilab"
    return Path(tempfile.gettempdir()) / f"wmilab-{os.geteuid()}"


def lab_key(scenario: Path) -> str:
    """Eight hex digits naming the lab of one scenario file (by its resolved path)."""
    return hashlib.sha256(str(scenario.resolve()).encode()).hexdigest()[:8]


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[19])


def marked_processes(directory: str) -> list[int]:
    """Process ids whose environment holds ``MARKER=directory`` (started by that lab)."""
    needle = f"{MARKER}={directory}".encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if (b"\0" + environ).find(b"\0" + needle) >= 0:
            found.append(int(entry.name))
    return found


@dataclass
class ProcessRecord:
    pid: int
    role: str  # "host B", "capture B", "loopback lab", "loopback worker 2"
    started: int | None  # /proc start time, to tell our process from a recycled pid

    @classmethod
    def of(cls, pid: int, role: str) -> ProcessRecord:
        return cls(pid, role, _start_time(pid))

    def alive(self) -> bool:
        started = _start_time(self.pid)
        if started is None or started != self.started:
            return False
        # A zombie (exited, not yet reaped by its parent) is not running.
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{self.pid}/stat").read_text()
            if stat[stat.rindex(")") + 2] == "Z":
                return False
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL: the process group when the process leads its own (every
        process a lab starts does), else the process alone."""
        if not self.alive():
            return
        try:
            leader = os.getpgid(self.pid) == self.pid
        except OSError:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if leader:
                    os.killpg(self.pid, sig)
                else:
                    os.kill(self.pid, sig)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(self.pid, os.WNOHANG)
                if not self.alive():
                    return
                time.sleep(0.02)


@dataclass
class LabState:
    """The lab of one scenario file: mode, addresses, and everything it created."""

    scenario: str
    key: str
    mode: str  # "netns" or "loopback"
    directory: str
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)  # address, namespace, ...
    namespaces: list[str] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    pcap: str | None = None
    network: str | None = None  # the loopback lab's loopback network (--loopback-net)
    workers: int = 1  # loopback lab: processes serving its hosts (--workers)
    listeners: str = "auto"  # loopback lab: per-host or shared listening sockets
    shard: str | None = None  # loopback lab: "I/N", the part of the hosts served here
    started_at: float = field(default_factory=time.time)

    @property
    def path(self) -> Path:
        return Path(self.directory) / STATE_FILE

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(self.path)

    @classmethod
    def load(cls, directory: Path) -> LabState | None:
        try:
            data = json.loads((directory / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        procs = [ProcessRecord(**p) for p in data.pop("processes", [])]
        return cls(**data, processes=procs)

    def environment(self) -> dict[str, str]:
        """The environment for a process of this lab: ours, plus the lab's marker."""
        return {**os.environ, MARKER: self.directory, "PYTHONUNBUFFERED": "1"}

    def add_process(self, pid: int, role: str) -> ProcessRecord:
        rec = ProcessRecord.of(pid, role)
        self.processes.append(rec)
        self.save()
        return rec

"""One packet capture per host (``DIR/HOST.pcapng``), written by dumpcap.

In the netns lab dumpcap runs inside the host's namespace on its ``eth0``; in the loopback
lab it captures on ``lo`` with a filter for the host's loopback address. dumpcap stops on
SIGTERM and closes the file properly, so Wireshark and tshark open it.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import time
from pathlib import Path

from wmilab.lab.state import LabState, ProcessRecord

__all__ = ["CaptureError", "capture_problem", "start_capture"]


class CaptureError(RuntimeError):
    """dumpcap is missing or did not start; the message says why."""


def capture_problem() -> str | None:
    if shutil.which("dumpcap") is None:
        return "--pcap needs dumpcap (Debian package wireshark-common, installed with tshark)"
    return None


def start_capture(state: LabState, host: str, directory: Path, *, interface: str,
                  namespace: str | None = None, capture_filter: str | None = None,
                  timeout: float = 10.0) -> ProcessRecord:
    """Start dumpcap for ``host`` and return once it writes; recorded in ``state``."""
    problem = capture_problem()
    if problem is not None:
        raise CaptureError(problem)
    out = directory / f"{host}.pcapng"
    out.unlink(missing_ok=True)
    cmd = ["dumpcap", "-q", "-i", interface, "-w", str(out)]
    if capture_filter:
        cmd += ["-f", capture_filter]
    if namespace is not None:
        cmd = ["ip", "netns", "exec", namespace, *cmd]
    log = (Path(state.directory) / f"capture-{host}.log").open("wb")
    with log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, env=state.environment())
    rec = state.add_process(proc.pid, f"capture {host}")
    deadline = time.monotonic() + timeout
    # dumpcap writes the pcapng section header and interface block as capture starts.
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = (Path(state.directory) / f"capture-{host}.log").read_text(errors="replace")
            raise CaptureError(f"dumpcap for {host} stopped: {text.strip()[-300:]}")
        if out.exists() and out.stat().st_size > 0:
            return rec
        time.sleep(0.02)
    raise CaptureError(f"dumpcap for {host} did not start writing {out} within {timeout:g} s")


def settle(pid: int, *, quiet: float = 0.4, timeout: float = 5.0) -> None:
    """Wait until dumpcap ``pid`` has written nothing for ``quiet`` seconds (at most
    ``timeout``): it writes what it captured every 100 ms (dumpcap --update-interval), and
    the packets still queued in the kernel at SIGTERM are lost."""
    out = _output_of(pid)
    if out is None:
        time.sleep(quiet)
        return
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        try:
            size = out.stat().st_size
        except OSError:
            return
        now = time.monotonic()
        if size != last:
            last, since = size, now
        elif now - since >= quiet:
            return
        time.sleep(0.05)


def _output_of(pid: int) -> Path | None:
    """The file dumpcap ``pid`` writes (its ``-w`` argument), from /proc."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    for flag, value in itertools.pairwise(args):
        if flag == b"-w":
            return Path(value.decode(errors="replace"))
    return None

"""What `wmilab query` and `wmilab doctor` take from the command line, checked up front.

Every problem is a :class:`UsageError` with one line naming the option (exit code 2). The
password is never part of a message.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path

from wmilab.client.levels import AUTH_LEVELS

__all__ = ["MODES", "UsageError", "auth_level", "check_mode", "password", "resolve_target",
           "user"]

MODES = ("sync", "semisync", "async")
PASSWORD_ENV = "WMILAB_PASSWORD"
# RFC 1123 host names: labels of letters, digits and hyphens, not starting or ending with one.
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class UsageError(ValueError):
    """Bad command-line input; the message is the whole line to print."""


def password(given: str | None, password_file: Path | None) -> str:
    """-p, else --password-file (its first line), else WMILAB_PASSWORD."""
    if given is not None and password_file is not None:
        raise UsageError("give either -p or --password-file, not both")
    if given is not None:
        return given
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except OSError as e:
            raise UsageError(f"--password-file {password_file}: {e.strerror or e}") from None
        first = text.splitlines()[0] if text else ""
        if not first:
            raise UsageError(f"--password-file {password_file}: the file is empty")
        return first
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env
    raise UsageError(f"no password: give -p, --password-file or {PASSWORD_ENV}")


def user(text: str) -> str:
    """DOMAIN\\user (or DOMAIN/user, or user)."""
    u = text.replace("/", "\\")
    dom, _, name = u.rpartition("\\")
    if not name or "\\" in dom:
        raise UsageError(f"-u {text!r}: expected DOMAIN\\user")
    return u


def auth_level(text: str) -> int:
    try:
        return int(AUTH_LEVELS[text.lower()])
    except KeyError:
        raise UsageError(f"--auth-level {text!r}: expected one of "
                         f"{', '.join(AUTH_LEVELS)}") from None


def check_mode(text: str) -> str:
    if text.lower() not in MODES:
        raise UsageError(f"--mode {text!r}: expected one of {', '.join(MODES)}")
    return text.lower()


def is_address(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def valid_name(text: str) -> bool:
    labels = text.rstrip(".").split(".")
    return bool(text) and len(text) <= 253 and all(_LABEL.match(x) for x in labels)


def resolve_target(text: str, where: str = "TARGET") -> str:
    """An IPv4 address as given, or the first IPv4 address of a host name.

    A name that is not a valid host name is refused before any lookup.
    """
    t = text.strip()
    if is_address(t):
        return t
    if not valid_name(t):
        raise UsageError(f"{where} {text!r}: not an IPv4 address or a host name")
    try:
        infos = socket.getaddrinfo(t, None, socket.AF_INET, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise UsageError(f"{where} {text!r}: cannot resolve the name "
                         f"({getattr(e, 'strerror', None) or e})") from None
    return str(infos[0][4][0])

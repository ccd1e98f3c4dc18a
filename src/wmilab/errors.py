"""The error bases: bad user input (ConfigError) and bad bytes from the network (WireError).

Every package may import this module; it imports nothing of wmilab.
"""

from __future__ import annotations

PathPart = str | int


class ConfigError(ValueError):
    """Bad user input: a scenario field, a netsh command, an SDDL string.

    ``path`` is the key path inside the scenario document (for example
    ``("hosts", "B", "address")``) relative to where the error was raised;
    callers that know more context prefix it with :meth:`within`.
    """

    def __init__(self, message: str, path: tuple[PathPart, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def within(self, *prefix: PathPart) -> ConfigError:
        """Return the same error located below ``prefix``."""
        return ConfigError(self.message, (*prefix, *self.path))

    def __str__(self) -> str:
        if not self.path:
            return self.message
        return f"{dotted(self.path)}: {self.message}"


class WireError(ValueError):
    """Bytes from the network that break a protocol: a malformed PDU, stub, NTLM message or
    MS-WMIO object.

    Not a ConfigError: a bad packet is not bad user input. Every parse error of ``wire/``
    derives from it; the emulated host answers one as Windows does (a fault or a close)
    and goes on serving others.
    """


def dotted(path: tuple[PathPart, ...]) -> str:
    """Render a key path the way TOML writes it: hosts.B.netsh[2]."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if part.replace("_", "").replace("-", "").isalnum() else f'"{part}"'
            out += ("." if out else "") + text
    return out

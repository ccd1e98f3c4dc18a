"""``net localgroup "GROUP" MEMBER... /add|/delete``: local group membership typed at a prompt.

:func:`parse` reads the command into a :class:`GroupEdit`; the directory applies the edits in
order after the OS defaults and the scenario's ``groups`` table (model/identity.py), because
only it knows the names (accounts, domains, built-in groups of the OS). The errors are those
net.exe prints, from the Win32 codes of NetLocalGroupAddMembers / NetLocalGroupDelMembers
(MS-ERREF 2.2; Learn "NetLocalGroupAddMembers function").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wmilab.errors import ConfigError

__all__ = ["GroupEdit", "already_member", "no_such_group", "no_such_member", "not_member",
           "parse", "wrong_type"]


@dataclass(frozen=True)
class GroupEdit:
    """One ``net localgroup`` command: ``members`` added to (or removed from) ``group``."""

    index: int  # the command's index in the host's ``commands`` list (for error places)
    command: str
    group: str
    members: tuple[str, ...]
    add: bool


def _system_error(code: int, text: str) -> str:
    # net.exe reports a Win32 error as "System error N has occurred." then its text.
    return f"System error {code} has occurred. {text}"


def no_such_group() -> str:
    # ERROR_NO_SUCH_ALIAS (1376, MS-ERREF 2.2).
    return _system_error(1376, "The specified local group does not exist.")


def not_member() -> str:
    # ERROR_MEMBER_NOT_IN_ALIAS (1377, MS-ERREF 2.2).
    return _system_error(1377, "The specified account name is not a member of the group.")


def already_member() -> str:
    # ERROR_MEMBER_IN_ALIAS (1378, MS-ERREF 2.2).
    return _system_error(1378, "The specified account name is already a member of the group.")


def wrong_type() -> str:
    # ERROR_INVALID_MEMBER (1388, MS-ERREF 2.2): a local group cannot hold a local group.
    return _system_error(1388, "A new member cannot be added to a local group because the "
                         "member has the wrong account type.")


def no_such_member(name: str) -> str:
    # NERR 3783 (lmerr.h, "net helpmsg 3783"); Choice (docs/choices.md): net.exe's text for a
    # name it cannot resolve, rather than ERROR_NO_SUCH_MEMBER (1387).
    return f"There is no such global user or group: {name}."


def parse(words: Sequence[str], index: int, command: str) -> GroupEdit:
    """``net localgroup GROUP MEMBER [MEMBER...] /add|/delete`` (words after ``net``)."""
    args = list(words[1:])
    switches = [a for a in args if a.startswith("/")]
    names = [a for a in args if not a.startswith("/")]
    verbs = {s.lower() for s in switches}
    unknown = verbs - {"/add", "/delete", "/del"}
    if unknown:
        raise ConfigError(f"The syntax of this command is: NET LOCALGROUP [groupname [/COMMENT:"
                          f"\"text\"]] [/DOMAIN] groupname name [...] {{/ADD | /DELETE}} "
                          f"({', '.join(sorted(unknown))} is not an option wmilab models)")
    if len(verbs) != 1:
        raise ConfigError("The syntax of this command is: NET LOCALGROUP groupname name [...] "
                          "{/ADD | /DELETE} (wmilab models adding and removing members; give "
                          "exactly one of /add and /delete)")
    if len(names) < 2:
        raise ConfigError("The syntax of this command is: NET LOCALGROUP groupname name [...] "
                          "{/ADD | /DELETE} (give the group and at least one member)")
    return GroupEdit(index, command, names[0], tuple(names[1:]), "/add" in verbs)

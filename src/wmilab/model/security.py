"""Security descriptors: SDDL parsing and formatting, and DACL evaluation as AccessCheck does it.

Only what DCOM and WMI security need is modelled: owner, group and a DACL of allow and
deny ACEs. The SACL is accepted in SDDL input and dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from wmilab.errors import ConfigError
from wmilab.model import sids

# COM access rights (MSDocs com/access-control-lists-for-com; MS-DCOM 2.2.31 is silent):
COM_RIGHTS_EXECUTE = 0x1
COM_RIGHTS_EXECUTE_LOCAL = 0x2
COM_RIGHTS_EXECUTE_REMOTE = 0x4
COM_RIGHTS_ACTIVATE_LOCAL = 0x8
COM_RIGHTS_ACTIVATE_REMOTE = 0x10
COM_RIGHTS_ALL = 0x1F

# SDDL access-right strings (MSDocs secauthz/ace-strings). For COM the same bits read
# CC=EXECUTE, DC=EXECUTE_LOCAL, LC=EXECUTE_REMOTE, SW=ACTIVATE_LOCAL, RP=ACTIVATE_REMOTE.
RIGHT_LETTERS: dict[str, int] = {
    "CC": 0x1,
    "DC": 0x2,
    "LC": 0x4,
    "SW": 0x8,
    "RP": 0x10,
    "WP": 0x20,
    "DT": 0x40,
    "LO": 0x80,
    "CR": 0x100,
    "SD": 0x10000,
    "RC": 0x20000,
    "WD": 0x40000,
    "WO": 0x80000,
    "GA": 0x10000000,
    "GX": 0x20000000,
    "GW": 0x40000000,
    "GR": 0x80000000,
}
# Composite file and registry rights (MSDocs secauthz/ace-strings); parsed, never emitted.
COMPOSITE_RIGHTS: dict[str, int] = {
    "FA": 0x1F01FF,
    "FR": 0x120089,
    "FW": 0x120116,
    "FX": 0x1200A0,
    "KA": 0xF003F,
    "KR": 0x20019,
    "KW": 0x20006,
    "KX": 0x20019,
}
_LETTER_ORDER = tuple(RIGHT_LETTERS)
_ALL_LETTER_BITS = sum(RIGHT_LETTERS.values())
# ACE flag strings (MSDocs secauthz/ace-strings).
ACE_FLAGS = ("CI", "OI", "NP", "IO", "ID", "SA", "FA")
# DACL flag strings (MSDocs secauthz/security-descriptor-string-format).
DACL_FLAGS = ("P", "AR", "AI")

AliasResolver = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Ace:
    """One access control entry: allow or deny ``mask`` to ``sid``.

    ``flags`` keeps the SDDL ACE flags (``"CI"`` for container-inherit) so that a
    descriptor formats back as it was written.
    """

    allow: bool
    sid: str
    mask: int
    flags: str = ""


@dataclass(frozen=True, slots=True)
class SecurityDescriptor:
    """Owner, group and DACL. ``dacl_flags`` keeps SDDL DACL flags such as ``"P"``."""

    owner: str | None
    group: str | None
    dacl: tuple[Ace, ...]
    dacl_flags: str = ""

    # -- evaluation ---------------------------------------------------------------
    def granted(self, sids_: frozenset[str], mask: int) -> bool:
        """Whether a token holding ``sids_`` gets every bit of ``mask``.

        AccessCheck walks the DACL in order: an allow ACE for a token SID grants its bits;
        a deny ACE for a token SID denies the request if it names any requested bit not yet
        granted; the check passes once all requested bits are granted, and fails at the
        end of the list otherwise (MSDocs secauthz/how-dacls-control-access-to-an-object).
        """
        if mask == 0:
            return True
        granted = 0
        for ace in self.dacl:
            if ace.sid not in sids_:
                continue
            pending = mask & ~granted
            if ace.allow:
                granted |= ace.mask & pending
                if granted & mask == mask:
                    return True
            elif ace.mask & pending:
                return False
        return False

    def effective_rights(self, sids_: frozenset[str]) -> int:
        """The bits a token holding ``sids_`` is granted (MAXIMUM_ALLOWED semantics)."""
        granted = 0
        denied = 0
        for ace in self.dacl:
            if ace.sid not in sids_:
                continue
            if ace.allow:
                granted |= ace.mask & ~denied
            else:
                denied |= ace.mask & ~granted
        return granted

    def rights_of(self, sid: str) -> int:
        """The bits the allow ACEs name for exactly ``sid`` (no group expansion)."""
        out = 0
        for ace in self.dacl:
            if ace.allow and ace.sid == sid:
                out |= ace.mask
        return out

    def denied_of(self, sid: str) -> int:
        """The bits the deny ACEs name for exactly ``sid``."""
        out = 0
        for ace in self.dacl:
            if not ace.allow and ace.sid == sid:
                out |= ace.mask
        return out

    # -- editing --------------------------------------------------------------------
    def with_entry(self, sid: str, mask: int, flags: str | None = None) -> SecurityDescriptor:
        """Replace ``sid``'s allow entry with ``mask`` (0 removes it).

        The new entry takes the place of the first allow ACE for ``sid``, or goes at the
        end of the DACL; deny ACEs are kept. ``flags`` defaults to the replaced entry's
        flags, else to the flags the other entries share (so WMI entries stay ``CI``).
        """
        old = [a for a in self.dacl if a.allow and a.sid == sid]
        if flags is None:
            if old:
                flags = old[0].flags
            else:
                shared = {a.flags for a in self.dacl}
                flags = shared.pop() if len(shared) == 1 else ""
        new = Ace(True, sid, mask, flags)
        out: list[Ace] = []
        placed = False
        for ace in self.dacl:
            if ace.allow and ace.sid == sid:
                if not placed and mask:
                    out.append(new)
                placed = True
                continue
            out.append(ace)
        if not placed and mask:
            out.append(new)
        return replace(self, dacl=tuple(out))

    # -- SDDL -----------------------------------------------------------------------
    def to_sddl(self) -> str:
        """Format as SDDL, using SID aliases where one exists."""
        out = ""
        if self.owner is not None:
            out += "O:" + _sid_text(self.owner)
        if self.group is not None:
            out += "G:" + _sid_text(self.group)
        out += "D:" + self.dacl_flags
        for ace in self.dacl:
            out += "({};{};{};;;{})".format(
                "A" if ace.allow else "D", ace.flags, format_rights(ace.mask), _sid_text(ace.sid)
            )
        return out

    def __str__(self) -> str:
        return self.to_sddl()


def _sid_text(sid: str) -> str:
    return sids.ALIAS_OF_SID.get(sid, sid)


def format_rights(mask: int) -> str:
    """SDDL rights: letters when every bit has one, else hex (``0x1f``)."""
    if mask and mask & ~_ALL_LETTER_BITS == 0:
        return "".join(k for k in _LETTER_ORDER if mask & RIGHT_LETTERS[k])
    return hex(mask)


def parse_rights(text: str) -> int:
    """Parse an SDDL rights field: ``CCDCLC``, ``0x1f`` or ``31``; ConfigError otherwise."""
    t = text.strip()
    if not t:
        return 0
    if t[0].isdigit():
        try:
            value = int(t, 0)
        except ValueError:
            raise ConfigError(f"access mask {text!r} is not a number") from None
        if not 0 <= value <= 0xFFFFFFFF:
            raise ConfigError(f"access mask {text!r} is out of range")
        return value
    if len(t) % 2:
        raise ConfigError(f"access rights {text!r} must be two-letter codes such as CCDCLC")
    mask = 0
    for i in range(0, len(t), 2):
        code = t[i : i + 2].upper()
        bit = RIGHT_LETTERS.get(code, COMPOSITE_RIGHTS.get(code))
        if bit is None:
            raise ConfigError(f"unknown access right {code!r} in {text!r}")
        mask |= bit
    return mask


def default_alias_resolver(alias: str) -> str:
    """Resolve the SDDL SID aliases that need no domain or machine context."""
    sid = sids.SDDL_ALIASES.get(alias.upper())
    if sid is None:
        if alias.upper() in sids.SDDL_DOMAIN_ALIASES or alias.upper() in sids.SDDL_MACHINE_ALIASES:
            raise ConfigError(
                f"SID alias {alias!r} names a domain or machine account; "
                "it needs the host's context (write the SID instead)"
            )
        raise ConfigError(f"unknown SID alias {alias!r}")
    return sid


def _parse_sid_field(text: str, resolve: AliasResolver) -> str:
    t = text.strip()
    if not t:
        raise ConfigError("empty SID")
    if t.upper().startswith("S-"):
        return sids.parse_sid(t)
    if len(t) == 2 and t.isalpha():
        return resolve(t.upper())
    raise ConfigError(f"{text!r} is neither a SID nor a two-letter SID alias")


_PART_RE = re.compile(r"(O|G|D|S):", re.IGNORECASE)


def parse_sddl(text: str, resolve_alias: AliasResolver | None = None) -> SecurityDescriptor:
    """Parse an SDDL security descriptor such as ``O:BAG:BAD:(A;;CCDCLC;;;WD)``.

    Allow (``A``) and deny (``D``) ACEs are supported; a SACL (``S:``) is accepted and
    dropped. Every error is a ConfigError that names the bad part.
    """
    resolve = resolve_alias or default_alias_resolver
    src = text.strip()
    if not src:
        raise ConfigError("empty SDDL string")
    parts = _split_parts(src)
    owner = group = None
    dacl: tuple[Ace, ...] | None = None
    dacl_flags = ""
    for tag, body in parts:
        try:
            if tag == "O":
                owner = _parse_sid_field(body, resolve)
            elif tag == "G":
                group = _parse_sid_field(body, resolve)
            elif tag == "D":
                dacl_flags, dacl = _parse_acl(body, resolve)
            else:
                _parse_acl(body, lambda a: "S-1-0-0", sacl=True)
        except ConfigError as err:
            raise ConfigError(f"SDDL {tag}: part: {err.message} (in {text!r})") from None
    if dacl is None:
        # Choice: a missing DACL would mean "no access control at all" (a NULL DACL);
        # DCOM and WMI settings never need that, so it is rejected as a likely mistake.
        raise ConfigError(f"SDDL {text!r} has no DACL (D:) part")
    return SecurityDescriptor(owner, group, dacl, dacl_flags)


def _split_parts(src: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    depth = 0
    starts: list[tuple[int, str]] = []
    while pos < len(src):
        ch = src[pos]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"unbalanced ')' at position {pos} in SDDL {src!r}")
        elif depth == 0 and pos + 1 < len(src) and src[pos + 1] == ":":
            m = _PART_RE.match(src, pos)
            if m is None:
                raise ConfigError(f"unknown SDDL part {src[pos:pos + 2]!r} in {src!r}")
            starts.append((pos, m.group(1).upper()))
            pos += 2
            continue
        pos += 1
    if depth:
        raise ConfigError(f"unbalanced '(' in SDDL {src!r}")
    if not starts or starts[0][0] != 0:
        raise ConfigError(f"SDDL {src!r} must start with O:, G:, D: or S:")
    seen: set[str] = set()
    for i, (start, tag) in enumerate(starts):
        if tag in seen:
            raise ConfigError(f"SDDL {src!r} has the {tag}: part twice")
        seen.add(tag)
        end = starts[i + 1][0] if i + 1 < len(starts) else len(src)
        out.append((tag, src[start + 2 : end]))
    return out


def _parse_acl(
    body: str, resolve: AliasResolver, *, sacl: bool = False
) -> tuple[str, tuple[Ace, ...]]:
    b = body.strip()
    if b.upper().startswith("NO_ACCESS_CONTROL"):
        raise ConfigError("NO_ACCESS_CONTROL (a NULL ACL) is not supported")
    idx = b.find("(")
    head = b if idx < 0 else b[:idx]
    flags = head.strip().upper()
    rest = "" if idx < 0 else b[idx:]
    f = flags
    while f:
        for cand in DACL_FLAGS:
            if f.startswith(cand):
                f = f[len(cand) :]
                break
        else:
            raise ConfigError(f"unknown ACL flags {flags!r}")
    aces: list[Ace] = []
    for n, m in enumerate(re.finditer(r"\(([^()]*)\)|(\S)", rest)):
        if m.group(2) is not None:
            raise ConfigError(f"unexpected {m.group(2)!r} between ACEs")
        try:
            ace = _parse_ace(m.group(1), resolve, sacl=sacl)
        except ConfigError as err:
            raise ConfigError(f"ACE {n + 1} ({m.group(1)}): {err.message}") from None
        if ace is not None:
            aces.append(ace)
    return flags, tuple(aces)


def _parse_ace(body: str, resolve: AliasResolver, *, sacl: bool) -> Ace | None:
    fields = body.split(";")
    if len(fields) != 6:
        raise ConfigError(
            "an ACE has six fields type;flags;rights;object;inherited-object;sid, "
            f"found {len(fields)}"
        )
    kind, flags, rights, obj, iobj, sid = (x.strip() for x in fields)
    kind = kind.upper()
    if sacl:
        if kind not in ("AU", "AL", "ML"):
            raise ConfigError(f"ACE type {kind!r} does not belong in a SACL")
        return None
    if kind not in ("A", "D"):
        raise ConfigError(f"ACE type {kind!r} is not supported (use A for allow, D for deny)")
    if obj or iobj:
        raise ConfigError("object ACEs (object GUID fields) are not supported")
    fl = flags.upper()
    f = fl
    while f:
        if f[:2] in ACE_FLAGS:
            f = f[2:]
        else:
            raise ConfigError(f"unknown ACE flag {f[:2]!r}")
    return Ace(kind == "A", _parse_sid_field(sid, resolve), parse_rights(rights), fl)

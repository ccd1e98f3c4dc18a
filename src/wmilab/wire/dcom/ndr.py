"""NDR20 reader and writer for DCOM stubs (MS-RPCE 2.2.5 / C706 chapter 14, little-endian).

The NDR is written by hand. impacket's NDR classes are the test oracle: tests build requests
with impacket and aiowmi and parse them here, and parse our replies with their own code.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from typing import TypeVar

from wmilab.errors import PathPart, WireError, dotted
from wmilab.wire.rpc import guid_from_bytes_le

T = TypeVar("T")


class StubError(WireError):
    """A request stub that cannot be decoded (too short, bad pointer, wrong signature).

    ``path`` names the structure being read (for example ``("RemoteCreateInstance",)``).
    """

    def __init__(self, message: str, path: tuple[PathPart, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return f"{dotted(self.path)}: {self.message}" if self.path else self.message


# ---------------------------------------------------------------------------------------------
# NDR reader and writer (MS-RPCE 2.2.5 / C706 chapter 14, little-endian, 32-bit NDR)
# ---------------------------------------------------------------------------------------------


_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")


class NdrReader:
    """Reads NDR20 primitives from a stub; offsets align relative to the stub start."""

    def __init__(self, data: bytes, what: str = "stub") -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise StubError(
                f"truncated at byte {self.pos} (needs {n} more, "
                f"has {len(self.data) - self.pos})", (self.what,))

    def align(self, n: int) -> None:
        self.pos += (-self.pos) % n

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def raw(self, n: int) -> bytes:
        self._need(n)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def _at(self, size: int, alignment: int) -> int:
        """Align, check ``size`` octets are there, advance; the offset they start at."""
        pos = self.pos
        pos += (-pos) % alignment
        end = pos + size
        if end > len(self.data):
            self.pos = pos
            self._need(size)
        self.pos = end
        return pos

    def u8(self) -> int:
        return self.raw(1)[0]

    def u16(self) -> int:
        return int(_U16.unpack_from(self.data, self._at(2, 2))[0])

    def u32(self) -> int:
        return int(_U32.unpack_from(self.data, self._at(4, 4))[0])

    def i32(self) -> int:
        return int(_I32.unpack_from(self.data, self._at(4, 4))[0])

    def u64(self) -> int:
        return int(_U64.unpack_from(self.data, self._at(8, 8))[0])

    def guid(self) -> uuid.UUID:
        pos = self._at(16, 4)
        return guid_from_bytes_le(self.data[pos:pos + 16])

    def raw_at(self, size: int, alignment: int) -> bytes:
        """``size`` octets after aligning to ``alignment``."""
        pos = self._at(size, alignment)
        return bytes(self.data[pos:pos + size])

    def ptr(self) -> int:
        """A unique/full pointer's referent id (0 means NULL)."""
        return self.u32()

    def conformant_bytes(self) -> bytes:
        count = self.u32()
        return self.raw(count)

    def lpwstr(self) -> str:
        """Conformant varying wide string body ([string] wchar_t*), after its referent id."""
        _max = self.u32()
        offset = self.u32()
        actual = self.u32()
        if offset != 0 or actual > _max:
            raise StubError("malformed string header", (self.what,))
        text = self.raw(2 * actual).decode("utf-16-le", errors="replace")
        return text.rstrip("\x00")

    def unique_lpwstr(self) -> str | None:
        return self.lpwstr() if self.ptr() else None


class NdrWriter:
    """Writes NDR20 primitives; ``ref()`` hands out non-zero referent ids."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self._next_ref = 0x00020000

    def ref(self) -> int:
        # Choice: referent ids count up from 0x00020000, as MIDL-generated stubs do.
        r = self._next_ref
        self._next_ref += 4
        return r

    def align(self, n: int, fill: int = 0) -> None:
        pad = (-len(self.buf)) % n
        if pad:
            self.buf += bytes([fill]) * pad

    def raw(self, data: bytes) -> None:
        self.buf += data

    def u8(self, v: int) -> None:
        self.buf += struct.pack("<B", v)

    def u16(self, v: int) -> None:
        if len(self.buf) & 1:
            self.buf += b"\x00"
        self.buf += _U16.pack(v & 0xFFFF)

    def u32(self, v: int) -> None:
        pad = (-len(self.buf)) & 3
        if pad:
            self.buf += b"\x00" * pad
        self.buf += _U32.pack(v & 0xFFFFFFFF)

    def i32(self, v: int) -> None:
        self.align(4)
        self.buf += _I32.pack(v)

    def u64(self, v: int) -> None:
        self.align(8)
        self.buf += _U64.pack(v)

    def guid(self, v: uuid.UUID) -> None:
        self.align(4)
        self.buf += v.bytes_le

    def ptr(self, present: bool) -> None:
        self.u32(self.ref() if present else 0)

    def lpwstr(self, text: str) -> None:
        """Referent id plus conformant varying NUL-terminated wide string."""
        chars = text + "\x00"
        self.ptr(True)
        self.u32(len(chars))
        self.u32(0)
        self.u32(len(chars))
        self.raw(chars.encode("utf-16-le"))

    def getvalue(self) -> bytes:
        return bytes(self.buf)


def pad8(data: bytes, fill: int = 0) -> bytes:
    return data + bytes([fill]) * ((-len(data)) % 8)


def decode_with(what: str, data: bytes, fn: Callable[[NdrReader], T]) -> T:
    """Run ``fn`` over ``data``; wrap any low-level failure into a StubError naming ``what``."""
    r = NdrReader(data, what)
    try:
        return fn(r)
    except StubError:
        raise
    except (ValueError, KeyError, IndexError, struct.error) as exc:
        raise StubError(f"{what}: cannot decode stub ({exc})", (what,)) from None

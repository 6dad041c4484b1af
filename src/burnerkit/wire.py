"""Byte-level readers and writers shared by every wire and state format.

This is the one place where bytes from outside are sliced. A short or malformed
input raises :class:`CodecError`, which each format's decoder re-raises at its API
edge as the error its caller expects (``RemoteProtocolError`` for peer bytes,
``DecryptionError`` inside authenticated data, ``ValueError`` for local state).
It sits beside :mod:`burnerkit.crypto`, below both wire layers, so the relay server can
share it without importing the end-to-end core. Notation: docs/protocol.md §1.2.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PROTOCOL_VERSION", "CodecError", "Reader", "Writer"]

#: The version byte that leads every burnerkit v1 wire object.
PROTOCOL_VERSION: Final = 1


class CodecError(Exception):
    """Internal: the bytes do not follow the layout. Translated at each API edge."""


class Reader:
    """A cursor over immutable bytes that never reads past the end."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    def take(self, n: int) -> bytes:
        """Return the next ``n`` bytes."""
        end = self._pos + n
        if n < 0 or end > len(self._data):
            raise CodecError("truncated input")
        out = self._data[self._pos : end]
        self._pos = end
        return out

    def u8(self) -> int:
        """Read an unsigned byte."""
        return self.take(1)[0]

    def u16(self) -> int:
        """Read a big-endian u16."""
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        """Read a big-endian u32."""
        return int.from_bytes(self.take(4), "big")

    def u64(self) -> int:
        """Read a big-endian u64."""
        return int.from_bytes(self.take(8), "big")

    def var16(self) -> bytes:
        """Read a u16 length and that many bytes."""
        return self.take(self.u16())

    def var32(self) -> bytes:
        """Read a u32 length and that many bytes."""
        return self.take(self.u32())

    def optional(self, n: int) -> bytes | None:
        """Read a presence byte (0 or 1) and, if 1, ``n`` bytes."""
        flag = self.u8()
        if flag == 0:
            return None
        if flag != 1:
            raise CodecError("bad presence flag")
        return self.take(n)

    def rest(self) -> bytes:
        """Return everything not read yet."""
        out = self._data[self._pos :]
        self._pos = len(self._data)
        return out

    def end(self) -> None:
        """Require that the input is fully consumed."""
        if self._pos != len(self._data):
            raise CodecError("trailing bytes")


class Writer:
    """Accumulates a byte layout; the inverse of :class:`Reader`."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def raw(self, data: bytes) -> Writer:
        """Append bytes as they are."""
        self._parts.append(bytes(data))
        return self

    def u8(self, value: int) -> Writer:
        """Append an unsigned byte."""
        self._parts.append(value.to_bytes(1, "big"))
        return self

    def u16(self, value: int) -> Writer:
        """Append a big-endian u16."""
        self._parts.append(value.to_bytes(2, "big"))
        return self

    def u32(self, value: int) -> Writer:
        """Append a big-endian u32."""
        self._parts.append(value.to_bytes(4, "big"))
        return self

    def u64(self, value: int) -> Writer:
        """Append a big-endian u64."""
        self._parts.append(value.to_bytes(8, "big"))
        return self

    def var16(self, data: bytes) -> Writer:
        """Append a u16 length and the bytes."""
        return self.u16(len(data)).raw(data)

    def var32(self, data: bytes) -> Writer:
        """Append a u32 length and the bytes."""
        return self.u32(len(data)).raw(data)

    def optional(self, data: bytes | None) -> Writer:
        """Append a presence byte and, if present, the bytes."""
        if data is None:
            return self.u8(0)
        return self.u8(1).raw(data)

    def getvalue(self) -> bytes:
        """The bytes written so far."""
        return b"".join(self._parts)

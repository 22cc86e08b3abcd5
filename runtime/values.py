"""Decoding bytes read from the kernel into Python values, by the types in the compiled program.

    decode(IntType(8, True), b'\\xff' * 8)            # -1
    decode(StringType(16), b'bash\\0...')             # 'bash'
    decode(ProbeType(), id_bytes, {782: 'tracepoint:syscalls:sys_enter_openat'})

Map readers hand the printers these values: keys as tuples (empty for a scalar map); values as int,
str, tuple, or what the map's kind makes of them (pybpf.mapkinds: `Stats`, `{bucket_index: count}`).
"""

from __future__ import annotations

import struct

from pybpf import types as T
from pybpf.runtime import symbols
from pybpf.runtime.formatters import render


class Array(tuple):
    """A decoded fixed-size array: a tuple that prints as bpftrace prints arrays, [1,2,3]."""


class Pointer(int):
    """A decoded kernel pointer: an unsigned integer that prints in hex, as bpftrace prints one."""

    def __str__(self) -> str:
        return hex(self)


class Struct(tuple):
    """A decoded struct or union: (name, value) pairs, printed { .name = value, ... }."""


class Record(tuple):
    """A decoded record, `(a=1, b="x")`: a named tuple (`r.a`, `r._asdict()`) of a class made
    once per list of field names (record_class), printed { .a = 1, .b = x } as bpftrace prints it.
    `_names` are the script's names: a name Python's namedtuple refuses (a keyword such as
    `from`, or one starting with `_`) is the field `_N` in Python, N its position."""
    __slots__ = ()
    _names: tuple[str, ...] = ()


_RECORD_CLASSES: dict[tuple[str, ...], type] = {}


def record_class(names: tuple[str, ...]) -> type:
    """The named-tuple class of records with these fields, made at its first use."""
    cls = _RECORD_CLASSES.get(names)
    if cls is None:
        from collections import namedtuple
        cls = _RECORD_CLASSES[names] = type("Record", (namedtuple("Record", names, rename=True), Record),
                                            {"__slots__": (), "_names": names})
    return cls


def text_of(value) -> str:
    """A decoded value as bpftrace writes it in text: strings bare, tuples as (a, b, (c, d)),
    arrays as [1,2,3], structs and records as { .a = 1, .b = x }, bools as true and false."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Array):
        return "[" + ",".join(map(text_of, value)) + "]"
    if isinstance(value, Struct):
        return "{ " + ", ".join(f".{name} = {text_of(v)}" for name, v in value) + " }"
    if isinstance(value, Record):
        return "{ " + ", ".join(f".{name} = {text_of(v)}" for name, v in zip(value._names, value)) + " }"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(text_of, value)) + ")"
    return str(value)


def decode_string(raw: bytes) -> str:
    """The string up to its NUL. Bytes that are not UTF-8 stay bytes, as the lone surrogates of
    `surrogateescape`: text output writes them back as they came (bpftrace prints the bytes), JSON
    and metrics labels as `\\xNN` (escape_bytes)."""
    end = raw.find(b"\0")
    return (raw if end < 0 else raw[:end]).decode("utf-8", "surrogateescape")


def escape_bytes(text: str) -> str:
    """text with each byte that is not UTF-8 written as the four characters `\\xNN`."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def decode(t: T.Type, buf: bytes | memoryview, offset: int = 0,
           probe_names: dict[int, str] | None = None):
    if isinstance(t, T.IntType):
        value = int.from_bytes(buf[offset:offset + t.size], "little", signed=t.signed)
        return bool(value) if t.boolean else value
    if isinstance(t, T.StringType):
        return decode_string(bytes(buf[offset:offset + t.size]))
    if isinstance(t, T.BitfieldType):
        value = int.from_bytes(buf[offset:offset + t.size], "little") >> t.shift & (1 << t.bits) - 1
        return value - (1 << t.bits) if t.signed and value >> (t.bits - 1) else value
    if isinstance(t, T.ProbeType):
        pid = int.from_bytes(buf[offset:offset + 8], "little")
        return (probe_names or {}).get(pid, f"probe#{pid}")
    if isinstance(t, T.TupleType):
        parts = [decode(e, buf, offset + off, probe_names) for e, off in zip(t.elements, t.offsets())]
        return record_class(t.names)._make(parts) if t.names else tuple(parts)
    if isinstance(t, T.FormattedType):
        return render(t, bytes(buf[offset:offset + t.size]))
    if isinstance(t, T.PointerType):
        return Pointer(int.from_bytes(buf[offset:offset + 8], "little"))
    if isinstance(t, T.StructType):
        return Struct((name, decode(f, buf, offset + off, probe_names)) for name, off, f in t.fields)
    if isinstance(t, T.ArrayType):
        step = t.element.size
        return Array(decode(t.element, buf, offset + i * step) for i in range(t.count))
    if isinstance(t, T.StackType):
        return symbols.render(t, bytes(buf[offset:offset + t.size]))
    return None


def decode_slots(types: tuple[T.Type, ...], buf: bytes | memoryview, offset: int = 0,
                 probe_names: dict[int, str] | None = None) -> tuple:
    """Values laid one per 8-byte-aligned slot: map keys and printf arguments."""
    return tuple(decode(t, buf, offset + off, probe_names)
                 for t, off in zip(types, T.slot_offsets(types)))


def slot_decoder(types: tuple[T.Type, ...], probe_names: dict[int, str] | None = None):
    """decode_slots for one fixed list of types, compiled once into a single struct unpack: the
    hot path of printf events and map keys. Falls back to decode_slots for tuples."""
    if any(isinstance(t, (T.TupleType, T.ArrayType, T.StructType, T.PointerType, T.FormattedType,
                          T.StackType)) or (isinstance(t, T.IntType) and (t.size != 8 or t.boolean))
           for t in types):
        return lambda buf, offset=0: decode_slots(types, buf, offset, probe_names)
    names = probe_names or {}
    fields, converters = ["<"], []
    for t in types:
        if isinstance(t, T.StringType):
            fields.append(f"{t.size}s{T.slot_size(t) - t.size}x")
            converters.append(decode_string)
        elif isinstance(t, T.ProbeType):
            fields.append("Q")
            converters.append(lambda pid: names.get(pid, f"probe#{pid}"))
        else:
            fields.append("q" if t.signed else "Q")
            converters.append(None)
    layout = struct.Struct("".join(fields))
    if not any(converters):
        return layout.unpack_from
    pairs = tuple(enumerate(converters))

    def decode_all(buf, offset=0):
        values = layout.unpack_from(buf, offset)
        return tuple(convert(values[i]) if convert else values[i] for i, convert in pairs)
    return decode_all

"""C types laid out as C lays them out on x86-64 (System V, which the BPF target shares), and
written as BTF: the back half of pybpf.cdefs, which reads the definitions.

    layout = Layout(kernel_btf)
    point = layout.add(Type(STRUCT, "point"))
    layout.record(point, [("x", int_id, None, None), ("flags", uint_id, 3, None)], False, 0)
    blob = layout.encode()            # split BTF over the kernel's: ids follow kernel_btf's
"""

from __future__ import annotations

import struct

from pybpf import btf as B
from pybpf.records import factory, record
from pybpf.uapi.btf import (BTF_HEADER_SIZE, BTF_KIND_ARRAY, BTF_KIND_ENUM, BTF_KIND_ENUM64,
                            BTF_KIND_FLOAT, BTF_KIND_FUNC_PROTO, BTF_KIND_FWD, BTF_KIND_INT,
                            BTF_KIND_PTR, BTF_KIND_STRUCT, BTF_KIND_TYPEDEF, BTF_KIND_UNION,
                            BTF_MAGIC, BTF_VERSION)


class CError(Exception):
    """A definition pybpf cannot read; `at` is the token it stopped at."""

    def __init__(self, message: str, at: object):
        super().__init__(message)
        self.at = at


@record
class Type:
    """A type being built: what its BTF record says."""
    kind: int
    name: str = ""
    size: int = 0                       # ints, records, enums; the target for ptr/typedef/array
    ref: int = 0                        # ptr, typedef, array element, func proto return
    nelems: int = 0
    int_bits: int = 0                   # an int's encoding word
    members: list = factory(list)    # (name, type id, bit offset, bitfield size)
    values: list = factory(list)     # (name, value)
    signed: bool = False
    is_union: bool = False


class Layout:
    """Types under construction on top of the kernel's, with sizes and alignments."""

    def __init__(self, kernel: B.Btf | None):
        self.kernel = kernel
        self.first_id = kernel.end_id if kernel else 1
        self.types: list[Type] = []
        self.aligns: dict[int, int] = {}
        self.ints: dict[str, int] = {}

    def add(self, t: Type, align: int = 1) -> int:
        self.types.append(t)
        type_id = self.first_id + len(self.types) - 1
        self.aligns[type_id] = align
        return type_id

    def own(self, type_id: int) -> Type | None:
        i = type_id - self.first_id
        return self.types[i] if type_id >= self.first_id else None

    def int_type(self, name: str, size: int, signed: bool) -> int:
        if name not in self.ints:
            encoding = (1 if signed else 0) | (4 if name == "_Bool" else 0)
            self.ints[name] = self.add(Type(BTF_KIND_INT, name, size, int_bits=encoding << 24 | size * 8),
                                       size)
        return self.ints[name]

    def float_type(self, name: str) -> int:
        if name not in self.ints:
            size = 4 if name == "float" else 8
            self.ints[name] = self.add(Type(BTF_KIND_FLOAT, name, size), size)
        return self.ints[name]

    def pointer(self, target: int) -> int:
        return self.add(Type(BTF_KIND_PTR, ref=target), 8)

    def sizeof(self, type_id: int) -> int:
        t = self.own(type_id)
        if t is None:
            if self.kernel is None or type_id == 0:
                raise CError("incomplete type void", None)
            try:
                return self.kernel.sizeof(type_id)
            except B.BtfError:
                raise CError(f"incomplete type {self.kernel.c_name(type_id)}", None) from None
        if t.kind in (BTF_KIND_INT, BTF_KIND_FLOAT, BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_ENUM, BTF_KIND_ENUM64):
            return t.size
        if t.kind == BTF_KIND_PTR:
            return 8
        if t.kind == BTF_KIND_ARRAY:
            return t.nelems * self.sizeof(t.ref)
        if t.kind == BTF_KIND_TYPEDEF:
            return self.sizeof(t.ref)
        raise CError(f"incomplete type {t.name and ('union ' if t.is_union else 'struct ') + t.name}",
                     None)

    def alignof(self, type_id: int) -> int:
        t = self.own(type_id)
        if t is not None:
            if t.kind == BTF_KIND_ARRAY or t.kind == BTF_KIND_TYPEDEF:
                return self.alignof(t.ref)
            return self.aligns[type_id]
        if type_id not in self.aligns:
            self.aligns[type_id] = self._kernel_align(type_id)
        return self.aligns[type_id]

    def _kernel_align(self, type_id: int) -> int:
        """BTF keeps no alignment: a record's is its members' largest, unless a member sits off
        its own alignment (a packed record: 1)."""
        t = self.kernel.resolve(type_id)
        if isinstance(t, B.Array):
            return self.alignof(t.type_id)
        if isinstance(t, B.Struct):
            align = 1
            for m in t.members:
                a = self.alignof(m.type_id)
                if not m.bitfield_size and m.bit_offset % (8 * a):
                    return 1
                align = max(align, a)
            return align if t.size % align == 0 else 1
        return min(max(self.sizeof(type_id), 1), 16)

    def record(self, type_id: int, members: list[tuple[str, int, int | None, object]],
               packed: bool, aligned: int) -> None:
        """Lay out a struct's or union's members: (name, type id, bitfield width or None, token)."""
        t = self.types[type_id - self.first_id]
        union = t.kind == BTF_KIND_UNION
        bits, align, end = 0, 1, 0
        for name, member_id, width, token in members:
            try:
                size, a = self.sizeof(member_id), (1 if packed else self.alignof(member_id))
            except CError as e:
                raise CError(f"member {name or '(anonymous)'} has an {e}", token) from None
            if union:
                bits = 0
            if width is None:
                bits = -(-bits // (8 * a)) * 8 * a
                t.members.append((name, member_id, bits, 0))
                bits += size * 8
                align = max(align, a)
            else:
                if width > size * 8 or width < 0:
                    raise CError(f"width of bitfield {name} ({width}) exceeds its type "
                                 f"({size * 8} bits)", token)
                unit = 8 * (self.alignof(member_id) if not packed else 1)
                if width == 0:
                    bits = -(-bits // unit) * unit
                    continue
                if not packed and bits // unit != (bits + width - 1) // unit:
                    bits = -(-bits // unit) * unit
                if name:
                    t.members.append((name, member_id, bits, width))
                    align = max(align, a)
                bits += width
            end = max(end, bits)
        align = max(align, aligned)
        t.size = -(-(-(-end // 8)) // align) * align
        self.aligns[type_id] = align

    def encode(self) -> bytes:
        """The types as a BTF blob, split over the kernel's when there is one."""
        str_base = self.kernel.string_end if self.kernel else 0
        strings, offsets = bytearray(b"\0"), {"": 0}

        def string(text: str) -> int:
            if text not in offsets:
                offsets[text] = len(strings)
                strings.extend(text.encode() + b"\0")
            return str_base + offsets[text] if text else 0

        out = bytearray()
        index_type = self.int_type("int", 4, True)
        for t in self.types:
            name = string(t.name)
            if t.kind == BTF_KIND_INT:
                out += struct.pack("<IIII", name, BTF_KIND_INT << 24, t.size, t.int_bits)
            elif t.kind in (BTF_KIND_PTR, BTF_KIND_TYPEDEF):
                out += struct.pack("<III", name, t.kind << 24, t.ref)
            elif t.kind == BTF_KIND_ARRAY:
                out += struct.pack("<IIIIII", 0, BTF_KIND_ARRAY << 24, 0, t.ref, index_type, t.nelems)
            elif t.kind in (BTF_KIND_STRUCT, BTF_KIND_UNION):
                bitfields = any(width for *_, width in t.members)
                out += struct.pack("<III", name, t.kind << 24 | bitfields << 31 | len(t.members),
                                   t.size)
                for m_name, m_type, bit, width in t.members:
                    out += struct.pack("<III", string(m_name), m_type,
                                       width << 24 | bit if bitfields else bit)
            elif t.kind == BTF_KIND_ENUM:
                out += struct.pack("<III", name, BTF_KIND_ENUM << 24 | t.signed << 31 | len(t.values), 4)
                for v_name, value in t.values:
                    out += struct.pack("<II", string(v_name), value & 0xFFFFFFFF)
            elif t.kind == BTF_KIND_ENUM64:
                out += struct.pack("<III", name, BTF_KIND_ENUM64 << 24 | t.signed << 31 | len(t.values), 8)
                for v_name, value in t.values:
                    v = value & (1 << 64) - 1
                    out += struct.pack("<III", string(v_name), v & 0xFFFFFFFF, v >> 32)
            elif t.kind == BTF_KIND_FLOAT:
                out += struct.pack("<III", name, BTF_KIND_FLOAT << 24, t.size)
            elif t.kind == BTF_KIND_FWD:
                out += struct.pack("<III", name, BTF_KIND_FWD << 24 | t.is_union << 31, 0)
            else:                                           # a function's prototype, no params
                out += struct.pack("<III", 0, BTF_KIND_FUNC_PROTO << 24, t.ref)
        header = struct.pack("<HBBIIIII", BTF_MAGIC, BTF_VERSION, 0, BTF_HEADER_SIZE, 0, len(out),
                             len(out), len(strings))
        return header + bytes(out) + bytes(strings)

"""The kernel's BTF types as the language's types, for the type checker and the code generator.

    kt = KernelTypes(btf.vmlinux())
    task = kt.curtask_type()                       # PointerType(<id>, 'struct task_struct *')
    field = kt.member(task, "comm")                # KernelField(offset=..., type=StringType(16), read=...)
    kt.parse_type_name("struct task_struct *")     # PointerType(...), for casts

A value read out of kernel memory is described by a `KernelRead`: how many bytes to read and how to
widen them to the 64-bit integers, strings and pointers the language computes with.
"""

from __future__ import annotations

import re

from pybpf import btf as B
from pybpf import types as T
from pybpf.errors import PybpfError
from pybpf.records import record


class KernelTypeError(PybpfError):
    """A name or access the kernel's types do not have; the message is the user-facing one."""


@record(frozen=True)
class KernelRead:
    kind: str               # 'int', 'pointer', 'string' (a char array) or 'record' (address only)
    size: int               # bytes read (a bitfield: the bytes that hold it)
    signed: bool = False
    bit_shift: int = 0      # a bitfield: its first bit within what is read
    bits: int = 0           # a bitfield: its width; 0 for whole values
    user: bool = False      # in the process's memory: bpf_probe_read_user


@record(frozen=True)
class KernelField:
    offset: int             # bytes from the record's address
    type: T.Type
    read: KernelRead
    type_id: int = 0        # its BTF type, for &field


INT_TYPE_NAMES = {f"{'u' if u else ''}int{bits}": T.IntType(bits // 8, not u)
                  for bits in (8, 16, 32, 64) for u in (False, True)}
BOOL_TYPE = INT_TYPE_NAMES["bool"] = T.IntType(1, False, True)      # bpftrace's bool: a byte, 0 or 1
# The kernel's C name of each, for pointers to them: (uint32 *) is (unsigned int *).
INT_C_NAMES = {"int8": "signed char", "uint8": "unsigned char", "int16": "short",
               "uint16": "unsigned short", "int32": "int", "uint32": "unsigned int",
               "int64": "long long", "uint64": "unsigned long long"}


def is_char(t) -> bool:
    """C's plain char, whose arrays are strings; unsigned char, __u8 and signed char arrays are
    arrays of integers, as bpftrace reads them."""
    return isinstance(t, B.Int) and t.size == 1 and t.name == "char"


class KernelTypes:
    def __init__(self, btf: B.Btf):
        self.btf = btf

    def convert(self, type_id: int, user: bool = False) -> tuple[T.Type, KernelRead]:
        """The language type of a BTF type, and how a value of it is read; `user`: the value is
        in the process's memory, and so is what a pointer in it points at."""
        btf = self.btf
        t = btf.resolve(type_id)
        if isinstance(t, B.Int):
            return T.IntType(8, t.signed), KernelRead("int", t.size, t.signed, user=user)
        if isinstance(t, B.Enum):
            return T.IntType(8, t.signed), KernelRead("int", t.size, t.signed, user=user)
        if isinstance(t, B.Ptr):
            return self.pointer_to(t.type_id, user), KernelRead("pointer", 8, user=user)
        if isinstance(t, B.Struct):
            return (T.RecordType(t.id, btf.c_name(t.id), t.size, user),
                    KernelRead("record", t.size, user=user))
        if isinstance(t, B.Array):
            if is_char(btf.resolve(t.type_id)):
                return T.StringType(max(t.nelems, 1)), KernelRead("string", t.nelems, user=user)
            array = self.array_value(t, user)
            return array, KernelRead("array", array.size, user=user)
        raise KernelTypeError(f"values of type {btf.c_name(type_id)} are not supported")

    def array_value(self, t: B.Array, user: bool = False) -> T.ArrayType:
        """An array of integers, of structs or unions, or of such arrays (int m[2][3]) or of char
        strings, as a value copied whole (`user`: from the process's memory)."""
        elem = self.btf.resolve(t.type_id)
        if isinstance(elem, (B.Int, B.Enum)):
            return T.ArrayType(T.IntType(elem.size, elem.signed), t.nelems)
        if isinstance(elem, B.Struct):
            return T.ArrayType(self.struct_layout(elem.id, user), t.nelems)
        if isinstance(elem, B.Array):
            inner = self.btf.resolve(elem.type_id)
            row = T.StringType(max(elem.nelems, 1)) if is_char(inner) else self.array_value(elem, user)
            return T.ArrayType(row, t.nelems)
        raise KernelTypeError(f"arrays of {self.btf.c_name(t.type_id)} are not supported yet")

    def struct_layout(self, type_id: int, user: bool = False) -> T.StructType:
        """A struct or union as a value copied whole (`user`: from the process's memory): every
        member at its C offset (the members of anonymous ones in place), bitfields as the bytes
        that hold them; members of other kinds refused by name."""
        btf = self.btf
        fields: list[tuple[str, int, T.ValueType]] = []

        def add(record: int, base: int) -> None:
            for m in btf.members(record):
                offset = base + m.bit_offset // 8
                member = btf.resolve(m.type_id)
                if not m.name and isinstance(member, B.Struct):
                    add(member.id, offset)
                    continue
                if m.bitfield_size or m.bit_offset % 8:
                    fields.append((m.name, *self.bitfield(base * 8 + m.bit_offset,
                                                          m.bitfield_size, member, t.size)))
                    continue
                fields.append((m.name, offset, self.member_value(member.id, user)))

        t = btf.resolve(type_id)
        add(t.id, 0)
        return T.StructType(btf.c_name(t.id), tuple(fields), t.size)

    @staticmethod
    def bitfield(bit: int, bits: int, member, record_size: int) -> tuple[int, T.BitfieldType]:
        """(offset, type) of a bitfield `bits` wide at bit `bit` of a record: the fewest of 1, 2,
        4 or 8 bytes that hold it, moved back where they would pass the record's end."""
        bits = bits or member.size * 8
        size = next(s for s in (1, 2, 4, 8) if s * 8 >= bit % 8 + bits)
        offset = min(bit // 8, record_size - size)
        return offset, T.BitfieldType(size, bit - offset * 8, bits,
                                      isinstance(member, (B.Int, B.Enum)) and member.signed)

    def member_value(self, type_id: int, user: bool = False) -> T.ValueType:
        """How a member of a struct copied whole is kept and printed. A pointer stays typed, as
        the member read through a pointer is: it compares with pointers and integers, and prints
        in hex."""
        btf = self.btf
        t = btf.resolve(type_id)
        if isinstance(t, (B.Int, B.Enum)):
            return T.IntType(t.size, t.signed)
        if isinstance(t, B.Ptr):
            return self.pointer_to(t.type_id, user)
        if isinstance(t, B.Struct):
            return self.struct_layout(t.id, user)
        if isinstance(t, B.Array):
            if is_char(btf.resolve(t.type_id)):
                return T.StringType(max(t.nelems, 1))
            return self.array_value(t, user)
        raise KernelTypeError(f"members of type {btf.c_name(type_id)} cannot be copied yet")

    def pointer_to(self, pointee: int, user: bool = False) -> T.PointerType:
        name = self.btf.c_name(pointee) if pointee else "void"
        return T.PointerType(pointee, name + (" *" if not name.endswith("*") else "*"), user=user)

    def record_id(self, t: T.Type) -> int | None:
        """The struct/union a value gives access to: itself, or what it points at."""
        if isinstance(t, T.RecordType):
            return t.btf_id
        if isinstance(t, T.PointerType) and t.pointee:
            r = self.btf.resolve(t.pointee)
            if isinstance(r, B.Struct):
                return r.id
        return None

    def member(self, base: T.Type, name: str) -> KernelField:
        record = self.record_id(base)
        if record is None:
            raise KernelTypeError(f"Can not access field '{name}' on type '{base}'")
        path = self.btf.field_path(record, name)
        if path is None:
            record_name = self.btf.c_name(record)
            from difflib import get_close_matches      # only for an error's hint (~1.5 ms to import)
            hint = get_close_matches(name, self.btf.member_names(record), n=1)
            did_you_mean = f"; did you mean '{hint[0]}'?" if hint else ""
            raise KernelTypeError(f"Struct/union of type '{record_name}' does not contain a field "
                                  f"named '{name}'{did_you_mean}")
        m = path.member
        user = isinstance(base, (T.PointerType, T.RecordType)) and base.user
        t, read = self.convert(m.type_id, user)
        if not m.bitfield_size:
            return KernelField(m.bit_offset // 8, t, read, m.type_id)
        first_byte = m.bit_offset // 8
        shift = m.bit_offset - first_byte * 8
        size = (shift + m.bitfield_size + 7) // 8
        size = next(s for s in (1, 2, 4, 8) if s >= size)
        return KernelField(first_byte, t, KernelRead("int", size, read.signed, shift,
                                                     m.bitfield_size, user))

    def curtask_type(self) -> T.PointerType:
        task = self.btf.find_id("task_struct", "struct")
        if task is None:
            raise KernelTypeError("this kernel's BTF has no struct task_struct")
        return self.pointer_to(task)

    def parse_type_name(self, text: str) -> T.Type:
        """'struct task_struct *', 'union bpf_attr *', 'uint32', 'int *' -> a language type."""
        base = text.rstrip("* \t").strip()
        depth = text.count("*")
        if base in INT_TYPE_NAMES and not depth:
            return INT_TYPE_NAMES[base]
        m = re.fullmatch(r"(struct|union|enum)\s+(\w+)", base)
        if m:
            kind, name = m.groups()
            type_id = self.btf.find_id(name, kind)
            if type_id is None:
                close = [n for n, _ in self.btf.names(name[:3])][:200]
                from difflib import get_close_matches
                hint = get_close_matches(name, close, n=1)
                did_you_mean = f"; did you mean '{kind} {hint[0]}'?" if hint else ""
                raise KernelTypeError(f"Unknown {kind}: {kind} {name}{did_you_mean}")
        else:
            type_id = self.btf.find_id(INT_C_NAMES.get(base, base), "int") \
                if base in INT_C_NAMES else self.btf.find_id(base)
            if type_id is None:
                raise KernelTypeError(f"Unknown type: {base}")
        if not depth:
            t, read = self.convert(type_id)     # an integer typedef casts to its own width
            return T.IntType(read.size, t.signed) if isinstance(t, T.IntType) else t
        pointer = self.pointer_to(type_id)
        for _ in range(depth - 1):
            pointer = T.PointerType(0, pointer.name + "*")    # deeper levels: void-like
        return pointer

    def sizeof(self, t: T.Type) -> int:
        if isinstance(t, T.RecordType):
            return t.size
        if isinstance(t, T.PointerType):
            return 8
        return t.size

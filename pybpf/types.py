"""Value types of the language, shared by the type checker, the code generator and the runtime.

    IntType(8, signed=True)        # every integer value in a map, key or event is 8 bytes
    StringType(64)                 # NUL-padded bytes, compared bytewise
    TupleType((IntType(8, True), StringType(16)))
    TupleType((IntType(8, True), StringType(2)), ("a", "b"))    # a record: (a=1, b="x")

In maps, keys and ring-buffer records every element occupies `slot_size(t)` bytes: its size rounded
up to 8, so offsets never need padding rules and both sides of the kernel agree by construction.
"""

from __future__ import annotations

from pybpf.records import record

STRING_SIZE = 64      # default size of str() and string literals stored in maps (max_strlen)
# The largest max_strlen: two such strings (a str() and the printf record holding it) fit in a
# program's per-CPU scratch space (backend/codegen.py SCRATCH_LIMIT).
MAX_STRLEN = 8192
COMM_SIZE = 16        # TASK_COMM_LEN


@record(frozen=True)
class IntType:
    """An integer; with `boolean`, bpftrace's bool: 0 or 1, printed `true`/`false`."""
    size: int = 8
    signed: bool = True
    boolean: bool = False

    def __str__(self) -> str:
        return "bool" if self.boolean else f"{'' if self.signed else 'u'}int{self.size * 8}"


@record(frozen=True)
class StringType:
    size: int = STRING_SIZE

    def __str__(self) -> str:
        return f"string[{self.size}]"


@record(frozen=True)
class ProbeType:
    """The `probe` builtin: a u64 id, named by CompiledProgram.probe_names."""
    size: int = 8

    def __str__(self) -> str:
        return "probe"


@record(frozen=True)
class TupleType:
    """A tuple, or with `names` a record (bpftrace's named tuple): the same layout, its elements
    also reached by name and printed { .name = value, ... }."""
    elements: tuple["ValueType", ...]
    names: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return sum(slot_size(e) for e in self.elements)

    def offsets(self) -> list[int]:
        return slot_offsets(self.elements)

    def __str__(self) -> str:
        if self.names:
            return "(" + ", ".join(f"{n}={e}" for n, e in zip(self.names, self.elements)) + ")"
        return "(" + ", ".join(str(e) for e in self.elements) + ")"


@record(frozen=True)
class ArrayType:
    """A fixed-size array: `(uint8[8])x`, an `int y[4]` member; its elements integers, or
    arrays (`int m[2][3]`) or strings (`char names[4][16]`). Compared bytewise, printed [a,b,...]."""
    element: "IntType | ArrayType | StringType"
    count: int

    @property
    def size(self) -> int:
        return self.element.size * self.count

    def __str__(self) -> str:
        return f"{self.element}[{self.count}]"


@record(frozen=True)
class StructType:
    """A kernel struct or union copied whole (`print(*p)`, `$s = *p`): its bytes as the kernel lays
    them out; `fields` are (name, offset, type) at C offsets, printed { .name = value, ... }."""
    name: str                     # 'struct cfs_rq'
    fields: tuple[tuple[str, int, "ValueType"], ...]
    size: int

    def __str__(self) -> str:
        return self.name


@record(frozen=True)
class BitfieldType:
    """A bitfield member of a struct copied whole: `bits` bits from bit `shift` of the `size`
    bytes (1, 2, 4 or 8) at its offset; read as an integer and printed as one."""
    size: int
    shift: int
    bits: int
    signed: bool = False

    def __str__(self) -> str:
        return f"{'' if self.signed else 'u'}int:{self.bits}"


@record(frozen=True)
class FormattedType:
    """A value the kernel records as `size` bytes and user space prints as text, rendered by its
    `kind` (pybpf.runtime.formatters: strftime's time, strerror's message, username's name, ...);
    `param` is what the rendering needs from the program (strftime's format)."""
    kind: str
    size: int = 8
    param: str = ""

    def __str__(self) -> str:
        return self.kind


@record(frozen=True)
class StackType:
    """kstack / ustack: a stack id from the program's stack-trace map and, for user stacks, the
    pid whose mappings name its frames (two u64); printed as frames, symbolized at print time.
    `mode` is bpftrace's (bpftrace, perf, raw); `limit` the most frames printed."""
    user: bool
    mode: str = "bpftrace"
    limit: int = 127
    size: int = 16

    def __str__(self) -> str:
        return f"{'u' if self.user else 'k'}stack"


@record(frozen=True)
class VoidType:
    """The type of a call that yields nothing (printf, exit, ...)."""
    size: int = 0

    def __str__(self) -> str:
        return "void"


@record(frozen=True)
class PointerType:
    """A pointer typed by the kernel's BTF: `pointee` is a vmlinux BTF type id (0 = void). Stored
    in maps and printed as a u64. `user`: it points into the process's memory, not the kernel's
    (a syscall tracepoint's struct argument, a cast in a uprobe), and is read with
    bpf_probe_read_user."""
    pointee: int
    name: str                     # its C name, for messages: 'struct task_struct *'
    size: int = 8
    signed: bool = False
    user: bool = False

    def __str__(self) -> str:
        return self.name


@record(frozen=True)
class RecordType:
    """A struct or union in kernel (or, `user`, the process's) memory, known by its address (a
    value of it is never copied: only its members are read)."""
    btf_id: int
    name: str                     # 'struct task_struct'
    size: int
    user: bool = False

    def __str__(self) -> str:
        return self.name


ValueType = (IntType | StringType | ProbeType | TupleType | ArrayType | StructType | FormattedType
             | StackType | BitfieldType)
Type = (IntType | StringType | ProbeType | TupleType | ArrayType | StructType | FormattedType | StackType
        | VoidType | PointerType | RecordType)


def slot_size(t: Type) -> int:
    """Bytes a value of type t occupies in a key, map value or record: size rounded up to 8."""
    return (t.size + 7) & ~7


def slot_offsets(types: tuple[Type, ...] | list[Type]) -> list[int]:
    offsets, at = [], 0
    for t in types:
        offsets.append(at)
        at += slot_size(t)
    return offsets


def to_json(t: Type) -> object:
    if isinstance(t, IntType):
        return ["bool", t.size] if t.boolean else ["int", t.size, t.signed]
    if isinstance(t, StringType):
        return ["str", t.size]
    if isinstance(t, ProbeType):
        return ["probe"]
    if isinstance(t, TupleType):
        return ["tuple", [to_json(e) for e in t.elements], list(t.names)]
    if isinstance(t, FormattedType):
        return ["formatted", t.kind, t.size, t.param]
    if isinstance(t, ArrayType):
        return ["array", to_json(t.element), t.count]
    if isinstance(t, PointerType):
        return ["pointer", t.pointee, t.name, t.user]
    if isinstance(t, StructType):
        return ["struct", t.name, [[n, off, to_json(f)] for n, off, f in t.fields], t.size]
    if isinstance(t, StackType):
        return ["stack", t.user, t.mode, t.limit]
    if isinstance(t, BitfieldType):
        return ["bitfield", t.size, t.shift, t.bits, t.signed]
    return ["void"]


def from_json(j: list) -> Type:
    tag = j[0]
    if tag == "int":
        return IntType(j[1], j[2])
    if tag == "bool":
        return IntType(j[1], False, True)
    if tag == "str":
        return StringType(j[1])
    if tag == "probe":
        return ProbeType()
    if tag == "tuple":
        return TupleType(tuple(from_json(e) for e in j[1]), tuple(j[2]) if len(j) > 2 else ())
    if tag == "formatted":
        return FormattedType(j[1], j[2], j[3])
    if tag == "array":
        return ArrayType(from_json(j[1]), j[2])
    if tag == "pointer":
        return PointerType(j[1], j[2], user=j[3])
    if tag == "struct":
        return StructType(j[1], tuple((n, off, from_json(f)) for n, off, f in j[2]), j[3])
    if tag == "stack":
        return StackType(j[1], j[2], j[3])
    if tag == "bitfield":
        return BitfieldType(j[1], j[2], j[3], j[4])
    return VoidType()

"""The kinds of BTF type (include/uapi/linux/btf.h), one frozen record each, as pybpf.btf
decodes them. `type_id` is the referenced type (0 = void). Imported through pybpf.btf.
"""

from __future__ import annotations

from pybpf.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar

INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4     # BTF_INT_* encoding bits



@record(frozen=True, slots=True)
class Member:
    name: str                 # '' for an anonymous struct/union member
    type_id: int
    bit_offset: int           # from the start of the enclosing record
    bitfield_size: int = 0    # 0 unless a bitfield

    @property
    def offset(self) -> int:
        """Byte offset (of the containing storage unit for a bitfield)."""
        return self.bit_offset // 8


@record(frozen=True, slots=True)
class EnumValue:
    name: str
    value: int


@record(frozen=True, slots=True)
class Param:
    name: str                 # may be '' in a func proto without names
    type_id: int              # 0 with name '' is the '...' of a variadic function


@record(frozen=True, slots=True)
class VarSecInfo:
    type_id: int
    offset: int
    size: int


@record(frozen=True, slots=True)
class BtfType:
    id: int
    name: str
    kind: ClassVar[str] = "unknown"


class Void(BtfType):
    __slots__ = ()
    kind: ClassVar[str] = "void"


@record(frozen=True, slots=True)
class Int(BtfType):
    size: int
    encoding: int             # INT_SIGNED | INT_CHAR | INT_BOOL
    bits: int
    bit_offset: int = 0
    kind: ClassVar[str] = "int"

    @property
    def signed(self) -> bool:
        return bool(self.encoding & INT_SIGNED)


@record(frozen=True, slots=True)
class Float(BtfType):
    size: int
    kind: ClassVar[str] = "float"


@record(frozen=True, slots=True)
class _Ref(BtfType):
    type_id: int


# Kinds with the same fields are subclasses of one; __slots__ = () keeps them slotted.
class Ptr(_Ref):
    __slots__ = ()
    kind: ClassVar[str] = "ptr"


@record(frozen=True, slots=True)
class Array(BtfType):
    type_id: int              # element type
    index_type_id: int
    nelems: int
    kind: ClassVar[str] = "array"


@record(frozen=True, slots=True)
class Struct(BtfType):
    size: int
    members: tuple[Member, ...]
    kind: ClassVar[str] = "struct"


class Union(Struct):
    __slots__ = ()
    kind: ClassVar[str] = "union"


@record(frozen=True, slots=True)
class Enum(BtfType):
    size: int
    values: tuple[EnumValue, ...]
    signed: bool = False
    kind: ClassVar[str] = "enum"


class Enum64(Enum):
    __slots__ = ()
    kind: ClassVar[str] = "enum64"


@record(frozen=True, slots=True)
class Fwd(BtfType):
    is_union: bool = False
    kind: ClassVar[str] = "fwd"


class Typedef(_Ref):
    __slots__ = ()
    kind: ClassVar[str] = "typedef"


class Volatile(_Ref):
    __slots__ = ()
    kind: ClassVar[str] = "volatile"


class Const(_Ref):
    __slots__ = ()
    kind: ClassVar[str] = "const"


class Restrict(_Ref):
    __slots__ = ()
    kind: ClassVar[str] = "restrict"


class TypeTag(_Ref):
    __slots__ = ()
    kind: ClassVar[str] = "type_tag"


@record(frozen=True, slots=True)
class Func(BtfType):
    type_id: int              # its FuncProto
    linkage: str              # 'static', 'global', 'extern'
    kind: ClassVar[str] = "func"


@record(frozen=True, slots=True)
class FuncProto(BtfType):
    type_id: int              # return type
    params: tuple[Param, ...]
    kind: ClassVar[str] = "func_proto"

    @property
    def variadic(self) -> bool:
        return bool(self.params) and self.params[-1] == Param("", 0)


@record(frozen=True, slots=True)
class Var(BtfType):
    type_id: int
    linkage: str
    kind: ClassVar[str] = "var"


@record(frozen=True, slots=True)
class Datasec(BtfType):
    size: int
    vars: tuple[VarSecInfo, ...]
    kind: ClassVar[str] = "datasec"


@record(frozen=True, slots=True)
class DeclTag(BtfType):
    type_id: int
    component_idx: int        # -1: the type itself; else a member or parameter index
    kind: ClassVar[str] = "decl_tag"


AnyType = (Void | Int | Float | Ptr | Array | Struct | Union | Enum | Enum64 | Fwd | Typedef | Volatile
           | Const | Restrict | TypeTag | Func | FuncProto | Var | Datasec | DeclTag)


@record(frozen=True, slots=True)
class FieldPath:
    """A member found by name, possibly inside anonymous members: offsets summed from the outer record."""
    member: Member            # bit_offset is relative to the record searched
    path: tuple[str, ...]     # the names walked, '' for each anonymous member

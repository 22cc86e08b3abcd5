"""LLVM IR building blocks shared by the lowering modules: types, constants, and llvmlite's
opaque-pointer switch, which must be set before llvmlite.ir is first imported (import this module
rather than llvmlite.ir)."""

from __future__ import annotations

import llvmlite

llvmlite.ir_layer_typed_pointers_enabled = False
from llvmlite import ir  # noqa: E402  (the switch above must precede the import)

from pybpf import types as T  # noqa: E402

I1, I8, I16, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
PTR = ir.PointerType()


def c64(v: int) -> ir.Constant:
    return ir.Constant(I64, v & 0xFFFFFFFFFFFFFFFF)


U64_MAX = (1 << 64) - 1


def upper_bound(value: ir.Value, depth: int = 8) -> int:
    """The largest unsigned value an integer can hold, as far as the instructions that made it show
    (a mask, a shift right or a division by a constant, a remainder, a zero extension, a select;
    else all ones): the known bits LLVM's optimiser, which pybpf does not run, would find. clang
    -O2 drops the range checks of hist(nsecs & 0xffff) from the same C with them."""
    if isinstance(value, ir.Constant) and isinstance(value.constant, int):
        return value.constant & U64_MAX
    if depth == 0 or not isinstance(value, ir.Instruction):
        return U64_MAX
    op, args = value.opname, value.operands

    def bound(i: int) -> int:
        return upper_bound(args[i], depth - 1)

    divisor = args[1].constant if len(args) == 2 and isinstance(args[1], ir.Constant) else None
    if op == "and":
        return min(bound(0), bound(1))
    if op == "lshr" and isinstance(divisor, int) and 0 <= divisor < 64:
        return bound(0) >> divisor
    if op == "udiv" and isinstance(divisor, int) and divisor > 0:
        return bound(0) // divisor
    if op == "urem" and isinstance(divisor, int) and divisor > 0:
        return min(bound(0), divisor - 1)
    if op == "zext":
        return min(bound(0), (1 << args[0].type.width) - 1)
    if op == "select":
        return max(bound(1), bound(2))
    return U64_MAX


def opaque(value):
    """llvmlite types its allocas, GEPs and globals with typed pointers internally even when it
    prints `ptr`; its builder then refuses stores of other types through them. LLVM 22 has only
    opaque pointers, so say so."""
    value.type = PTR
    return value


def slot(t: T.Type) -> int:
    return T.slot_size(t)


def is_buffer(t: T.Type) -> bool:
    """Values kept in stack buffers (passed around as pointers) rather than in registers."""
    return isinstance(t, (T.StringType, T.TupleType, T.ArrayType, T.StructType, T.FormattedType,
                          T.StackType))


class HelperCallee:
    """A callee for llvmlite's call(): with opaque pointers the function type is not in the
    pointer, so it is carried beside it."""

    def __init__(self, pointer: ir.Value, fnty: ir.FunctionType):
        self.pointer, self.function_type = pointer, fnty
        self.type = PTR

    def get_reference(self) -> str:
        return self.pointer.get_reference()

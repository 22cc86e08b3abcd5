"""The value types survive the compiled program's JSON (what the compile cache stores)."""

import pytest

from pybpf import types as T

ARRAY = T.ArrayType(T.IntType(1, False), 8)
STRUCT = T.StructType("struct s", (("a", 0, T.IntType(4, True)), ("p", 8, T.FormattedType("pointer")),
                                   ("arr", 16, ARRAY), ("in", 24, T.StructType("struct t", (), 0))), 24)


@pytest.mark.parametrize("t", [ARRAY, STRUCT, T.PointerType(114, "struct task_struct *"),
                               T.TupleType((T.IntType(), ARRAY, STRUCT))], ids=str)
def test_json_round_trip(t):
    assert T.from_json(T.to_json(t)) == t


def test_sizes_and_names():
    assert (ARRAY.size, str(ARRAY), T.slot_size(ARRAY)) == (8, "uint8[8]", 8)
    assert (STRUCT.size, str(STRUCT), T.slot_size(STRUCT)) == (24, "struct s", 24)

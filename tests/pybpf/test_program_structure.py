"""Program structure of bpftrace's language: kernel enumerators as constants, probe spellings,
config blocks, macros and C definitions. Each error is checked in its exact rendering."""

import os

import pytest

from pybpf import types as T
from pybpf.compiler import compile_to_ir
from pybpf.diagnostics import CompileError

needs_btf = pytest.mark.skipif(not os.path.exists("/sys/kernel/btf/vmlinux"),
                               reason="no kernel BTF")


def error_of(source: str) -> str:
    with pytest.raises(CompileError) as info:
        compile_to_ir(source)
    return str(info.value)


@needs_btf
def test_kernel_enumerator_is_a_constant():
    _, checked, _ = compile_to_ir("BEGIN { @r = SKB_DROP_REASON_NOT_SPECIFIED; @m = BPF_MAP_TYPE_HASH; }")
    assert checked.maps["@r"].value == T.IntType(8, False)
    from pybpf.btf import vmlinux
    names = {n.name: v for n, v in checked.constants.items()}
    assert names == {"SKB_DROP_REASON_NOT_SPECIFIED":
                     vmlinux().enumerator("SKB_DROP_REASON_NOT_SPECIFIED")[1].value,
                     "BPF_MAP_TYPE_HASH": 1}


@needs_btf
def test_unknown_identifier_is_no_enumerator():
    assert error_of("BEGIN { @x = NOT_AN_ENUMERATOR; }") == (
        "stdin:1:14-31: ERROR: Unknown identifier: 'NOT_AN_ENUMERATOR'\n"
        "BEGIN { @x = NOT_AN_ENUMERATOR; }\n"
        "             ~~~~~~~~~~~~~~~~~")

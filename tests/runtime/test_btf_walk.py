"""pybpf.runtime.btf_walk: the kernel's walk over a type section gives what the Python walk gives."""

import os
import struct

import pytest

from pybpf import btf
from pybpf.backend.progbtf import program_btf
from pybpf.btf import VMLINUX, Btf, _parse_header
from pybpf.runtime import btf_walk

FUNCTIONS_BTF = program_btf(list(btf_walk.FUNCTIONS))


def walk_types(types, strings, hash_names=True):
    return btf_walk.walk_types(types, strings, FUNCTIONS_BTF, hash_names)

needs_vmlinux = pytest.mark.skipif(not os.path.exists(VMLINUX), reason=f"{VMLINUX} is missing")


def sections(data: bytes):
    h = _parse_header(data)
    return data[h.type_off:h.type_off + h.type_len], data[h.str_off:h.str_off + h.str_len]


@pytest.mark.kernel
@needs_vmlinux
def test_kernel_and_python_walks_agree_on_vmlinux():
    with open(VMLINUX, "rb") as f:
        data = f.read()
    found = walk_types(*sections(data))
    assert found is not None
    python_btf = Btf.from_bytes(data)
    python = python_btf._walk_in_python()
    assert found[:4] == tuple(python)[:4] and python.name_table is None
    assert len(found[0]) > 100_000 and found[2] and found[3]
    # the hash table: every named record once, in its name's bucket
    heads, chains, bucket = found[4]
    names, str_len = found[1], _parse_header(data).str_len
    reached = set()
    for head in range(len(heads)):
        at = heads[head]
        while at:
            assert at - 1 not in reached and bucket(python_btf._str_bytes(names[at - 1])) == head
            reached.add(at - 1)
            at = chains[at - 1]
    assert reached == {i for i, off in enumerate(names) if 0 < off < str_len}


@pytest.mark.kernel
@needs_vmlinux
def test_btf_loads_vmlinux_through_the_kernel(monkeypatch):
    from pybpf.compiler import _walk_btf_in_kernel      # what a compile gives pybpf.btf
    monkeypatch.setattr(btf, "kernel_walk", _walk_btf_in_kernel)
    monkeypatch.setattr(Btf, "_walk_in_python", lambda self: pytest.fail("walked in Python"))
    kernel = Btf.load(VMLINUX, cache=False)
    assert kernel.find("task_struct", "struct").size > 0


def blob(types: bytes, strings: bytes) -> bytes:
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings)) + types + strings


@pytest.mark.kernel
def test_what_the_kernel_walk_refuses_python_walks():
    strings = b"\0int\0tcp_sock\0e\0A\0"
    int_type = struct.pack("<IIII", 1, 1 << 24, 4, 32)
    suffix_named = struct.pack("<III", 9, 4 << 24, 0)                   # 'sock' inside 'tcp_sock'
    enum = struct.pack("<IIIIi", 14, 6 << 24 | 1, 4, 16, 1)
    types = int_type + suffix_named + enum
    found = walk_types(types, strings)
    assert found[:4] == tuple(Btf.from_bytes(blob(types, strings))._walk_in_python())[:4]
    assert list(found[0]) == [0, 4, 7] and list(found[2]) == [2] and found[3] is False
    heads, chains, bucket = found[4]
    assert heads[bucket(b"int")] == 1 and heads[bucket(b"sock")] == 2 and heads[bucket(b"e")] == 3
    unhashed = walk_types(types, strings, hash_names=False)
    assert unhashed[:4] == found[:4] and unhashed[4] is None
    assert walk_types(types + struct.pack("<III", 0, 25 << 24, 0), strings) is None     # unknown kind
    assert walk_types(types + struct.pack("<III", 0, 4 << 24 | 1, 0), strings) is None  # truncated
    assert walk_types(b"", strings) is None

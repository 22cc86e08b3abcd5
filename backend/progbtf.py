"""A program's own BTF: what BPF_PROG_LOAD needs with func_info, which the verifier requires of a
program that passes a callback (bpf_for_each_map_elem's) by address.

    btf, type_ids = program_btf([("probe_0", True), ("for_map_1", False)])
    type_ids                      # {'probe_0': 5, 'for_map_1': 6}: BTF_KIND_FUNC ids for func_info

LLVM's .BTF is no use here: with line tables only its FUNC_PROTO parameters have no names, and the
kernel refuses a FUNC whose parameters are unnamed. So pybpf writes the few types itself, from the
ELF's function symbols: a global function is a probe, `long f(void *ctx)`; a static one is a
bpf_for_each_map_elem callback, `long f(void *map, void *key, void *value, void *ctx)`, the only
kind of subprogram pybpf generates. The verifier reads linkage and names from them (a callback must
be static); it checks a static function's arguments by its own analysis, not by these types.
"""

from __future__ import annotations

import struct

from pybpf.uapi.btf import (BTF_FUNC_GLOBAL, BTF_FUNC_STATIC, BTF_HEADER_SIZE, BTF_INT_SIGNED,
                            BTF_KIND_FUNC, BTF_KIND_FUNC_PROTO, BTF_KIND_INT, BTF_KIND_PTR,
                            BTF_MAGIC, BTF_VERSION)

PROBE_PARAMS = ("ctx",)
CALLBACK_PARAMS = ("map", "key", "value", "ctx")

_TYPE = struct.Struct("<III")        # name_off, info (vlen | kind << 24 | kind_flag << 31), size/type
_U32 = struct.Struct("<I")
_PARAM = struct.Struct("<II")        # name_off, type
_HEADER = struct.Struct("<HBBIIIII")  # magic, version, flags, hdr_len, type off/len, str off/len
_LONG, _VOID_PTR = 1, 2              # the first two type ids below


def program_btf(functions: list[tuple[str, bool]]) -> tuple[bytes, dict[str, int]]:
    """BTF for (name, is_global) functions, and each name's FUNC type id."""
    strings = bytearray(b"\0")
    offsets: dict[str, int] = {}

    def string(text: str) -> int:
        if text not in offsets:
            offsets[text] = len(strings)
            strings.extend(text.encode() + b"\0")
        return offsets[text]

    types = bytearray()
    types += _TYPE.pack(string("long"), BTF_KIND_INT << 24, 8) + _U32.pack(BTF_INT_SIGNED << 24 | 64)
    types += _TYPE.pack(0, BTF_KIND_PTR << 24, 0)
    protos = {}
    for is_global, params in ((True, PROBE_PARAMS), (False, CALLBACK_PARAMS)):
        types += _TYPE.pack(0, BTF_KIND_FUNC_PROTO << 24 | len(params), _LONG)
        types += b"".join(_PARAM.pack(string(p), _VOID_PTR) for p in params)
        protos[is_global] = 2 + len(protos) + 1
    type_ids = {}
    for name, is_global in functions:
        linkage = BTF_FUNC_GLOBAL if is_global else BTF_FUNC_STATIC
        types += _TYPE.pack(string(name), BTF_KIND_FUNC << 24 | linkage, protos[is_global])
        type_ids[name] = 2 + len(protos) + len(type_ids) + 1
    header = _HEADER.pack(BTF_MAGIC, BTF_VERSION, 0, BTF_HEADER_SIZE, 0, len(types), len(types),
                          len(strings))
    return header + bytes(types) + bytes(strings), type_ids

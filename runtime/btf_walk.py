"""The walk over a BTF type section, done by the kernel: ~6 ms for vmlinux's 125,827 records where
the same walk in Python takes ~55 ms.

    found = walk_types(types, strings, program_btf(FUNCTIONS), hash_names=True)
    offsets, names, enum_records, names_at_starts, (heads, chains, name_hash) = found   # or None

A record's length depends on its kind and vlen, so the id -> record offset table needs one pass
over every record, which Python runs at ~0.4 us a record. Here a hand-assembled SYSCALL program
(run once with BPF_PROG_TEST_RUN) makes that pass with bpf_loop over one BPF_F_MMAPABLE array
value: the type and string sections are copied in through the map's mapping, the tables are read
back out of it. With hash_names it also hashes each record's name (its first 16 bytes) into a
chained table (~1.7 ms more), so that pybpf.btf finds a name without searching the 2.3 MB string
section. The BTF naming the program's two functions (which the verifier wants of a program passing
a callback) comes from the caller: pybpf.backend.progbtf writes it. None when the kernel does not
run it (no privileges, an older kernel, a refusal) or the section is malformed: pybpf.btf then
walks in Python, which also words the error. tests/runtime/test_btf_walk.py checks both walks
agree on vmlinux.
"""

from __future__ import annotations

import array
import mmap
import os
import struct

from pybpf.program import MapDef
from pybpf.runtime.errors import BpfError
from pybpf.runtime.loader import create_map, load_btf, load_program
from pybpf.runtime.syscall import bpf
from pybpf.uapi.bpf import (BPF_ADD, BPF_ALU64, BPF_AND, BPF_B, BPF_CALL, BPF_EXIT, BPF_F_MMAPABLE,
                            BPF_F_SLEEPABLE, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_K,
                            BPF_LD_IMM64, BPF_LDX, BPF_LSH, BPF_MEM, BPF_MOV, BPF_MUL, BPF_PSEUDO_FUNC,
                            BPF_PSEUDO_MAP_FD, BPF_REG_FP, BPF_RSH, BPF_ST, BPF_STX, BPF_SUB, BPF_XOR,
                            BPF_DW, BPF_W, BPF_X, BpfCmd, BpfFunc, BpfMapType, BpfProgType, TestRunAttr,
                            bpf_insn)
from pybpf.uapi.btf import (BTF_KIND_ENUM, BTF_KIND_ENUM64, BTF_KIND_FIXED_WORDS,
                            BTF_KIND_VLEN_WORDS)

# The kinds 1 to LAST_KIND are known; their word counts go into the program 2 bits a kind, in one
# 64-bit constant each.
LAST_KIND = max(k for k, n in enumerate(BTF_KIND_FIXED_WORDS) if n is not None)

# The program's functions for program_btf: (name, global); the callback must be static.
FUNCTIONS = (("btf_walk", True), ("btf_walk_step", False))

# The map value: a header of u32s, then the type section, the string section, and three tables of
# u32 with room for a record every 12 bytes (the smallest record).
COUNT, ENUMS, POS, STATUS, MID = 0, 4, 8, 12, 16      # header fields (byte offsets)
# A hash table of the names: bucket (NAME_HASH_BITS of name_hash) -> 1 + the last record's index
# with a name there, and per record the one before it (0: none).
NAME_HASH_BITS = 17
_NAME_HASH_MUL = 0x9E3779B97F4A7C15
_ONES, _HIGHS = 0x0101010101010101, 0x8080808080808080
HEADER = 24
OK, BAD_KIND, TRUNCATED = 0, 1, 2                     # STATUS values
_R0, _R1, _R2, _R3, _R4, _R5, _R6, _R7, _R8, _R9 = range(10)


def _ld_imm64(dst: int, imm: int, src: int = 0) -> bytes:
    return struct.pack("<BBhIBBhI", BPF_LD_IMM64, dst | src << 4, 0, imm & 0xFFFFFFFF, 0, 0, 0, imm >> 32)


def _alu(op: int, dst: int, imm: int) -> bytes:
    return bpf_insn(BPF_ALU64 | op | BPF_K, dst, imm=imm)


def _alu_reg(op: int, dst: int, src: int) -> bytes:
    return bpf_insn(BPF_ALU64 | op | BPF_X, dst, src)


def _load(dst: int, src: int, off: int, size: int = BPF_W) -> bytes:
    return bpf_insn(BPF_LDX | size | BPF_MEM, dst, src, off)


def _store(dst: int, off: int, src: int) -> bytes:
    return bpf_insn(BPF_STX | BPF_W | BPF_MEM, dst, src, off)


def _store_imm(dst: int, off: int, imm: int) -> bytes:
    return bpf_insn(BPF_ST | BPF_W | BPF_MEM, dst, off=off, imm=imm)


def _assemble(parts: list) -> tuple[bytes, dict[str, int]]:
    """Instructions and ('label', name) / ('jump', op, reg, imm, name) / ('callback', name) items;
    the code and where each label is (in instructions)."""
    at, labels = 0, {}
    for p in parts:
        if isinstance(p, bytes):
            at += len(p) // 8
        elif p[0] == "label":
            labels[p[1]] = at
        else:
            at += 2 if p[0] == "callback" else 1
    out, at = bytearray(), 0
    for p in parts:
        if isinstance(p, bytes):
            out += p
            at += len(p) // 8
        elif p[0] == "jump":
            _, op, reg, imm, name = p
            out += bpf_insn(BPF_JMP | op | BPF_K, reg, off=labels[name] - at - 1, imm=imm)
            at += 1
        elif p[0] == "callback":
            out += _ld_imm64(_R2, labels[p[1]] - at - 1, BPF_PSEUDO_FUNC)
            at += 2
    return bytes(out), labels


def _hash_name(heads: int, chains: int) -> list:
    """Instructions: the name at r2 + 1 (its first 16 bytes, as name_hash takes them) into the
    hash table: its bucket's head becomes record r9, whose chain gets the head before."""
    return [
        _load(_R6, _R2, 1, BPF_DW), _load(_R7, _R2, 9, BPF_DW),
        *_masked_at_nul(_R6, _R5, "first"),
        *_masked_at_nul(_R7, _R5, "mix"),
        ("jump", BPF_JA, 0, 0, "mix"),                               # 16 bytes or more: all kept
        ("label", "first"),
        _alu(BPF_MOV, _R7, 0),
        ("label", "mix"),
        _ld_imm64(_R0, _NAME_HASH_MUL), _alu_reg(BPF_MUL, _R6, _R0), _alu_reg(BPF_XOR, _R6, _R7),
        _alu_reg(BPF_MUL, _R6, _R0), _alu(BPF_RSH, _R6, 64 - NAME_HASH_BITS), _alu(BPF_LSH, _R6, 2),
        _alu_reg(BPF_ADD, _R6, _R8), _alu(BPF_ADD, _R6, heads), _load(_R0, _R6, 0),
        _alu_reg(BPF_MOV, _R7, _R9), _alu(BPF_LSH, _R7, 2), _alu_reg(BPF_ADD, _R7, _R8),
        _alu(BPF_ADD, _R7, chains), _store(_R7, 0, _R0),
        _alu_reg(BPF_MOV, _R0, _R9), _alu(BPF_ADD, _R0, 1), _store(_R6, 0, _R0),
    ]


def _program(map_fd: int, type_len: int, str_len: int, max_records: int, hash_names: bool
             ) -> tuple[bytes, int]:
    """The instructions and the callback's first instruction. main: bpf_loop(max_records, step).
    step: the record at POS: its word offset, name and (for enums) index into the tables, MID set
    when its name offset is not where a string starts, with hash_names its name in the hash table,
    POS moved past it; 1 (stop) at the end."""
    types = HEADER
    strings = types + _pad8(type_len)
    offsets = strings + _pad8(str_len + 16)
    chains = offsets + 12 * max_records
    heads = chains + 4 * max_records
    fixed = sum(n << 2 * k for k, n in enumerate(BTF_KIND_FIXED_WORDS[:LAST_KIND + 1]) if n)
    per_vlen = sum(n << 2 * k for k, n in enumerate(BTF_KIND_VLEN_WORDS[:LAST_KIND + 1]))
    main = [
        _ld_imm64(_R1, max_records),
        ("callback", "step"),
        _alu(BPF_MOV, _R3, 0), _alu(BPF_MOV, _R4, 0),
        bpf_insn(BPF_JMP | BPF_CALL, imm=BpfFunc.loop),
        _alu(BPF_MOV, _R0, 0), bpf_insn(BPF_JMP | BPF_EXIT),
    ]
    step = [
        ("label", "step"),
        _store_imm(BPF_REG_FP, -4, 0),
        _ld_imm64(_R1, map_fd, BPF_PSEUDO_MAP_FD),
        _alu_reg(BPF_MOV, _R2, BPF_REG_FP), _alu(BPF_ADD, _R2, -4),
        bpf_insn(BPF_JMP | BPF_CALL, imm=BpfFunc.map_lookup_elem),
        ("jump", BPF_JEQ, _R0, 0, "stop"),
        _alu_reg(BPF_MOV, _R8, _R0),                                 # r8: the value
        _load(_R1, _R8, POS), _load(_R9, _R8, COUNT),                # r1: byte offset, r9: index
        ("jump", BPF_JGE, _R1, type_len, "stop"),
        ("jump", BPF_JGT, _R1, type_len - 12, "truncated"),
        ("jump", BPF_JGE, _R9, max_records, "truncated"),
        _alu_reg(BPF_MOV, _R2, _R8), _alu(BPF_ADD, _R2, types), _alu_reg(BPF_ADD, _R2, _R1),
        _load(_R3, _R2, 0), _load(_R4, _R2, 4),                      # r3: name offset, r4: info
        _alu_reg(BPF_MOV, _R5, _R9), _alu(BPF_LSH, _R5, 2), _alu_reg(BPF_ADD, _R5, _R8),
        _alu(BPF_ADD, _R5, offsets),
        _alu_reg(BPF_MOV, _R0, _R1), _alu(BPF_RSH, _R0, 2), _store(_R5, 0, _R0),
        _alu(BPF_ADD, _R5, 4 * max_records), _store(_R5, 0, _R3),
        ("jump", BPF_JEQ, _R3, 0, "kind"),                           # anonymous
        ("jump", BPF_JGE, _R3, str_len, "mid"),
        _alu_reg(BPF_MOV, _R2, _R8), _alu(BPF_ADD, _R2, strings - 1), _alu_reg(BPF_ADD, _R2, _R3),
        _load(_R0, _R2, 0, BPF_B),
        ("jump", BPF_JEQ, _R0, 0, "hash"),
        _store_imm(_R8, MID, 1),
        ("label", "hash"),
        *(_hash_name(heads, chains) if hash_names else []),
        ("jump", BPF_JA, 0, 0, "kind"),
        ("label", "mid"),
        _store_imm(_R8, MID, 1),
        ("label", "kind"),
        _alu_reg(BPF_MOV, _R5, _R4), _alu(BPF_RSH, _R5, 24), _alu(BPF_AND, _R5, 0x1F),
        _alu_reg(BPF_MOV, _R0, _R5), _alu(BPF_ADD, _R0, -1),
        ("jump", BPF_JGT, _R0, LAST_KIND - 1, "bad_kind"),
        _alu_reg(BPF_MOV, _R0, _R5), _alu(BPF_LSH, _R0, 1),
        _ld_imm64(_R2, fixed), _alu_reg(BPF_RSH, _R2, _R0), _alu(BPF_AND, _R2, 3),
        _ld_imm64(_R3, per_vlen), _alu_reg(BPF_RSH, _R3, _R0), _alu(BPF_AND, _R3, 3),
        _alu(BPF_AND, _R4, 0xFFFF), _alu_reg(BPF_MUL, _R3, _R4),
        _alu_reg(BPF_ADD, _R2, _R3), _alu(BPF_ADD, _R2, 3), _alu(BPF_LSH, _R2, 2),   # r2: bytes
        ("jump", BPF_JEQ, _R5, BTF_KIND_ENUM, "enum"),
        ("jump", BPF_JEQ, _R5, BTF_KIND_ENUM64, "enum"),
        ("label", "next"),
        _alu_reg(BPF_ADD, _R1, _R2), _store(_R8, POS, _R1),
        _alu(BPF_ADD, _R9, 1), _store(_R8, COUNT, _R9),
        _alu(BPF_MOV, _R0, 0), bpf_insn(BPF_JMP | BPF_EXIT),
        ("label", "enum"),
        _load(_R0, _R8, ENUMS),
        ("jump", BPF_JGE, _R0, max_records, "truncated"),
        _alu_reg(BPF_MOV, _R3, _R0), _alu(BPF_LSH, _R3, 2), _alu_reg(BPF_ADD, _R3, _R8),
        _alu(BPF_ADD, _R3, offsets + 8 * max_records), _store(_R3, 0, _R9),
        _alu(BPF_ADD, _R0, 1), _store(_R8, ENUMS, _R0),
        ("jump", BPF_JA, 0, 0, "next"),
        ("label", "truncated"),
        _store_imm(_R8, STATUS, TRUNCATED), _alu(BPF_MOV, _R0, 1), bpf_insn(BPF_JMP | BPF_EXIT),
        ("label", "bad_kind"),
        _store_imm(_R8, STATUS, BAD_KIND), _alu(BPF_MOV, _R0, 1), bpf_insn(BPF_JMP | BPF_EXIT),
        ("label", "stop"),
        _alu(BPF_MOV, _R0, 1), bpf_insn(BPF_JMP | BPF_EXIT),
    ]
    code, labels = _assemble(main + step)
    return code, labels["step"]


def _pad8(n: int) -> int:
    return (n + 7) & ~7


def name_hash(name: bytes) -> int:
    """The bucket of a name (no NUL in it) as the program computes it from its first 16 bytes."""
    head = name[:16].ljust(16, b"\0")
    w0, w1 = int.from_bytes(head[:8], "little"), int.from_bytes(head[8:], "little")
    mask = (1 << 64) - 1
    return (((w0 * _NAME_HASH_MUL) & mask ^ w1) * _NAME_HASH_MUL & mask) >> (64 - NAME_HASH_BITS)


def _masked_at_nul(word: int, mask: int, done: str) -> list:
    """Instructions: keep the bytes of the u64 in register `word` before its first NUL (with
    `mask` as scratch) and jump to `done` when it had one; fall through when it had none."""
    return [
        _ld_imm64(_R0, _ONES), _alu_reg(BPF_MOV, mask, word), _alu_reg(BPF_SUB, mask, _R0),
        _alu_reg(BPF_MOV, _R0, word), _alu(BPF_XOR, _R0, -1), _alu_reg(BPF_AND, mask, _R0),
        _ld_imm64(_R0, _HIGHS), _alu_reg(BPF_AND, mask, _R0),       # the high bit of each NUL byte
        ("jump", BPF_JEQ, mask, 0, f"{done}_none"),
        _alu_reg(BPF_MOV, _R0, mask), _alu(BPF_ADD, _R0, -1), _alu_reg(BPF_XOR, mask, _R0),
        _alu(BPF_RSH, mask, 8), _alu_reg(BPF_AND, word, mask),     # the bytes below the first NUL
        ("jump", BPF_JA, 0, 0, done),
        ("label", f"{done}_none"),
    ]


def walk_types(types, strings, functions_btf: tuple[bytes, dict[str, int]], hash_names: bool = True
               ) -> tuple[array.array, array.array, array.array, bool, tuple | None] | None:
    """For a type section and its string section (buffers, native byte order, no base), with the
    BTF of FUNCTIONS and their type ids: each record's u32 word offset, its name offset, the
    indexes of the ENUM/ENUM64 records, whether every name offset is where a string starts, and
    with hash_names the names' hash table (heads by name_hash bucket, each record's chain: 1 + an
    index, 0 at the end; and name_hash; ~1.7 ms more for vmlinux), else None. None when the kernel
    cannot or the walk fails."""
    type_len, str_len = len(types), len(strings)
    if not type_len or type_len % 4 or not str_len:
        return None
    max_records = type_len // 12
    tables = HEADER + _pad8(type_len) + _pad8(str_len + 16)
    size = tables + 12 * max_records + (4 * max_records + (4 << NAME_HASH_BITS) if hash_names else 0)
    fds = []
    try:
        map_fd = create_map("pybpf_btf_walk", MapDef(map_type=BpfMapType.ARRAY, key_size=4,
                                                       value_size=size, max_entries=1,
                                                       map_flags=BPF_F_MMAPABLE))
        fds.append(map_fd)
        with mmap.mmap(map_fd, size, mmap.MAP_SHARED,
                       mmap.PROT_READ | mmap.PROT_WRITE) as value:
            view = memoryview(value)
            try:
                view[HEADER:HEADER + type_len] = types
                strings_at = HEADER + _pad8(type_len)
                view[strings_at:strings_at + str_len] = strings
                code, callback = _program(map_fd, type_len, str_len, max_records, hash_names)
                btf, ids = functions_btf
                fds.append(load_btf(btf))
                fds.append(load_program("pybpf_btf_walk", BpfProgType.SYSCALL, code, "GPL",
                                        btf_fd=fds[-1], prog_flags=BPF_F_SLEEPABLE,
                                        func_info=((0, ids[FUNCTIONS[0][0]]),
                                                   (callback, ids[FUNCTIONS[1][0]]))))
                bpf(BpfCmd.PROG_TEST_RUN, TestRunAttr(prog_fd=fds[-1]))
                count, n_enums, pos, status, mid = struct.unpack_from("<5I", view, 0)
                if status != OK or pos != type_len:
                    return None
                parts = [(tables, count), (tables + 4 * max_records, count),
                         (tables + 8 * max_records, n_enums)]
                if hash_names:     # the heads, then the chains
                    parts += [(tables + 16 * max_records, 1 << NAME_HASH_BITS),
                              (tables + 12 * max_records, count)]
                out = []
                for at, n in parts:
                    table = array.array("I")
                    table.frombytes(view[at:at + 4 * n])
                    out.append(table)
                return out[0], out[1], out[2], not mid, (out[3], out[4], name_hash) if hash_names else None
            finally:
                view.release()
    except (BpfError, OSError, ValueError):
        return None
    finally:
        for fd in fds:
            os.close(fd)

"""The arguments of user-space functions from their DWARF (a binary built with -g), for
`uprobe:BIN:FUNC { args.NAME }` as bpftrace reads them: the parameters' types become split BTF
over the kernel's, so the type checker reads them as it reads a kernel function's BTF arguments
(`args.req->id`, `str(args.name)`, `*args.count`).

    typed = function_arguments("/usr/bin/app", ["handle"], btf.vmlinux())
    typed.btf                          # the types, ids after the kernel's
    typed.functions["handle"].args     # [('fd', 131072), ('req', 131075)]: in register order
    typed.functions["handle"].refused  # {'scale': 'a floating-point argument (...)'}

Where each argument is, by the System V x86-64 calling convention, for the simple cases: integer,
enum, bool, char and pointer (C++ reference) parameters take rdi, rsi, rdx, rcx, r8, r9 in order,
after a hidden pointer when the function returns a struct of more than 16 bytes. Refused, with
the reason: floating-point parameters (SSE registers), parameters past the sixth register (on the
stack), structs, unions and 128-bit integers passed by value, and, after one of 16 bytes or
fewer, every later parameter (pybpf does not classify the registers such a value takes; a
larger one is on the stack and leaves the registers alone).

pyelftools reads the DWARF; this module is imported only when a uprobe's block reads `args`, never
on the cache-hit start-up path.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from pybpf.checked import KPROBE_ARG_REGISTERS
from pybpf.errors import PybpfError
from pybpf.uapi.btf import (BTF_HEADER_SIZE, BTF_INT_BOOL, BTF_INT_CHAR, BTF_INT_SIGNED,
                            BTF_KIND_ARRAY, BTF_KIND_CONST, BTF_KIND_ENUM, BTF_KIND_FLOAT,
                            BTF_KIND_FWD, BTF_KIND_INT, BTF_KIND_PTR, BTF_KIND_RESTRICT,
                            BTF_KIND_STRUCT, BTF_KIND_TYPEDEF, BTF_KIND_UNION, BTF_KIND_VOLATILE,
                            BTF_MAGIC, BTF_VERSION)

# DW_ATE_* encodings of base types (DWARF 5, 7.8)
DW_ATE_BOOLEAN, DW_ATE_COMPLEX_FLOAT, DW_ATE_FLOAT = 2, 3, 4
DW_ATE_SIGNED, DW_ATE_SIGNED_CHAR, DW_ATE_UNSIGNED_CHAR = 5, 6, 8
DW_OP_PLUS_UCONST = 0x23
# A struct or union of more than 16 bytes is passed on the stack and returned in memory (the
# caller's buffer's address then a hidden first argument); a smaller one may take registers.
MEMORY_CLASS_SIZE = 16

_TYPE = struct.Struct("<III")
_HEADER = struct.Struct("<HBBIIIII")
_QUALIFIERS = {"DW_TAG_const_type": BTF_KIND_CONST, "DW_TAG_volatile_type": BTF_KIND_VOLATILE,
               "DW_TAG_restrict_type": BTF_KIND_RESTRICT, "DW_TAG_typedef": BTF_KIND_TYPEDEF}
_POINTERS = ("DW_TAG_pointer_type", "DW_TAG_reference_type", "DW_TAG_rvalue_reference_type")
_RECORDS = {"DW_TAG_structure_type": BTF_KIND_STRUCT, "DW_TAG_class_type": BTF_KIND_STRUCT,
            "DW_TAG_union_type": BTF_KIND_UNION}


class DwarfError(PybpfError):
    """A binary or function whose DWARF cannot be read: the message is for the user."""


@dataclass
class FunctionArgs:
    args: list[tuple[str, int]] = field(default_factory=list)     # (name, type id), register order
    refused: dict[str, str] = field(default_factory=dict)         # name -> why it cannot be read
    params: list[tuple[str, int]] = field(default_factory=list)   # every parameter, for -lv


@dataclass
class TypedFunctions:
    btf: object                                   # pybpf.btf.Btf: split over the kernel's
    functions: dict[str, FunctionArgs]


def _chain(die):
    """A DIE, then the declaration it completes (DW_AT_specification) or the abstract instance it
    is a concrete copy of (DW_AT_abstract_origin), and so on (a few links at most)."""
    for _ in range(8):
        if die is None:
            return
        yield die
        link = next((a for a in ("DW_AT_specification", "DW_AT_abstract_origin")
                     if a in die.attributes), None)
        die = die.get_DIE_from_attribute(link) if link else None


def _attr(die, name: str):
    """An attribute of a DIE or of the DIEs it links to (_chain)."""
    return next((d.attributes[name].value for d in _chain(die) if name in d.attributes), None)


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else (value or "")


def _type_die(die):
    """The DIE of a DIE's DW_AT_type, or None (void)."""
    return next((d.get_DIE_from_attribute("DW_AT_type") for d in _chain(die)
                 if "DW_AT_type" in d.attributes), None)


def _uleb(data: list[int]) -> int:
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return value


class _BtfWriter:
    """DWARF types as split BTF: one id per type DIE, in the order first needed."""

    def __init__(self, base):
        self.base = base
        self.types: list[bytes | None] = []
        self.strings = bytearray(b"\0")
        self.string_offsets: dict[str, int] = {}
        self.ids: dict[int, int] = {}              # DIE offset -> type id
        self.index_type = 0

    def string(self, text: str) -> int:
        if not text:
            return 0
        if text not in self.string_offsets:
            self.string_offsets[text] = self.base.string_end + len(self.strings)
            self.strings += text.encode() + b"\0"
        return self.string_offsets[text]

    def reserve(self, key: int | None) -> int:
        self.types.append(None)
        type_id = len(self.base) + len(self.types) - 1
        if key is not None:
            self.ids[key] = type_id
        return type_id

    def put(self, type_id: int, kind: int, name: str, size_or_type: int, extra: bytes = b"",
            vlen: int = 0, kind_flag: int = 0) -> int:
        self.types[type_id - len(self.base)] = _TYPE.pack(
            self.string(name), kind << 24 | vlen | kind_flag << 31, size_or_type) + extra
        return type_id

    def int_type(self, name: str, size: int, encoding: int) -> int:
        return self.put(self.reserve(None), BTF_KIND_INT, name, size,
                        struct.pack("<I", encoding << 24 | size * 8))

    def type_id(self, die) -> int:
        """The BTF id of a type DIE (0: void, and what BTF cannot say, such as functions)."""
        if die is None:
            return 0
        found = self.ids.get(die.offset)
        if found is not None:
            return found
        tag, name = die.tag, _text(_attr(die, "DW_AT_name"))
        size = _attr(die, "DW_AT_byte_size") or 0
        if tag == "DW_TAG_base_type":
            encoding = _attr(die, "DW_AT_encoding")
            if encoding in (DW_ATE_FLOAT, DW_ATE_COMPLEX_FLOAT):
                return self.put(self.reserve(die.offset), BTF_KIND_FLOAT, name, size)
            bits = (BTF_INT_SIGNED if encoding in (DW_ATE_SIGNED, DW_ATE_SIGNED_CHAR) else 0) | \
                (BTF_INT_CHAR if encoding in (DW_ATE_SIGNED_CHAR, DW_ATE_UNSIGNED_CHAR) else 0) | \
                (BTF_INT_BOOL if encoding == DW_ATE_BOOLEAN else 0)
            type_id = self.reserve(die.offset)
            return self.put(type_id, BTF_KIND_INT, name, size, struct.pack("<I", bits << 24 | size * 8))
        if tag in _POINTERS or tag in _QUALIFIERS:
            type_id = self.reserve(die.offset)
            target = _type_die(die)
            pointee = 0 if target is not None and target.tag == "DW_TAG_subroutine_type" \
                else self.type_id(target)
            kind = BTF_KIND_PTR if tag in _POINTERS else _QUALIFIERS[tag]
            return self.put(type_id, kind, name if kind == BTF_KIND_TYPEDEF else "", pointee)
        if tag in _RECORDS:
            kind = _RECORDS[tag]
            type_id = self.reserve(die.offset)
            if _attr(die, "DW_AT_declaration"):
                return self.put(type_id, BTF_KIND_FWD, name, 0,
                                kind_flag=int(kind == BTF_KIND_UNION))
            return self.record(type_id, die, kind, name, size)
        if tag == "DW_TAG_enumeration_type":
            type_id = self.reserve(die.offset)
            values = [(_text(_attr(c, "DW_AT_name")), _attr(c, "DW_AT_const_value") or 0)
                      for c in die.iter_children() if c.tag == "DW_TAG_enumerator"]
            signed = any(v < 0 for _, v in values)
            extra = b"".join(struct.pack("<II", self.string(n), v & 0xFFFFFFFF) for n, v in values)
            return self.put(type_id, BTF_KIND_ENUM, name, size or 4, extra, len(values), int(signed))
        if tag == "DW_TAG_array_type":
            return self.array(die)
        return 0

    def record(self, type_id: int, die, kind: int, name: str, size: int) -> int:
        members, bitfields = [], False
        for m in die.iter_children():
            if m.tag != "DW_TAG_member" or "DW_AT_external" in m.attributes:   # static members
                continue
            location = _attr(m, "DW_AT_data_member_location") or 0
            if isinstance(location, list):            # an expression: DW_OP_plus_uconst N
                location = _uleb(location[1:]) if location[:1] == [DW_OP_PLUS_UCONST] else 0
            bit_size = _attr(m, "DW_AT_bit_size") or 0
            bit_offset = location * 8
            if bit_size:
                bitfields = True
                if "DW_AT_data_bit_offset" in m.attributes:
                    bit_offset = m.attributes["DW_AT_data_bit_offset"].value
                elif "DW_AT_bit_offset" in m.attributes:    # DWARF 2-4: from the storage's top bit
                    storage = _attr(m, "DW_AT_byte_size") or 0
                    bit_offset += storage * 8 - m.attributes["DW_AT_bit_offset"].value - bit_size
            members.append((_text(_attr(m, "DW_AT_name")), self.type_id(_type_die(m)),
                            bit_size, bit_offset))
        extra = b"".join(struct.pack("<III", self.string(n), t,
                                     (bits << 24 | off) if bitfields else off)
                         for n, t, bits, off in members)
        return self.put(type_id, kind, name, size, extra, len(members), int(bitfields))

    def array(self, die) -> int:
        """An array DIE: one BTF array per dimension, the outermost first."""
        type_id = self.reserve(die.offset)
        counts = []
        for sub in die.iter_children():
            if sub.tag == "DW_TAG_subrange_type":
                count = _attr(sub, "DW_AT_count")
                upper = _attr(sub, "DW_AT_upper_bound")
                counts.append(count if isinstance(count, int) else
                              upper + 1 if isinstance(upper, int) else 0)
        if not self.index_type:
            self.index_type = self.int_type("unsigned int", 4, 0)
        element = self.type_id(_type_die(die))
        for count in reversed(counts[1:]):
            element = self.put(self.reserve(None), BTF_KIND_ARRAY, "", 0,
                               struct.pack("<III", element, self.index_type, count))
        return self.put(type_id, BTF_KIND_ARRAY, "", 0,
                        struct.pack("<III", element, self.index_type, counts[0] if counts else 0))

    def blob(self) -> bytes:
        types = b"".join(t or b"" for t in self.types)
        return _HEADER.pack(BTF_MAGIC, BTF_VERSION, 0, BTF_HEADER_SIZE, 0, len(types), len(types),
                            len(self.strings)) + types + bytes(self.strings)


def _strip(die):
    """The type under typedefs and qualifiers."""
    seen = 0
    while die is not None and (die.tag in _QUALIFIERS) and seen < 32:
        die = _type_die(die)
        seen += 1
    return die


def _register_class(die) -> str | None:
    """'int' for an argument passed in one general-purpose register, else why it is refused."""
    t = _strip(die)
    if t is None:
        return "int"
    size = _attr(t, "DW_AT_byte_size") or 0
    if t.tag == "DW_TAG_base_type" and _attr(t, "DW_AT_encoding") in (DW_ATE_FLOAT,
                                                                     DW_ATE_COMPLEX_FLOAT):
        return "a floating-point argument, passed in an SSE register, which pybpf does not read"
    if t.tag in _POINTERS or (t.tag in ("DW_TAG_base_type", "DW_TAG_enumeration_type")
                              and size <= 8):
        return "int"
    if size > MEMORY_CLASS_SIZE:
        return f"passed by value on the stack ({size} bytes), which pybpf does not read"
    return f"passed by value ({size} bytes), which pybpf does not read"


_functions_cache: dict[tuple[str, int], dict] = {}


def _subprograms(dwarf, key) -> dict:
    """{name: DIE} of the functions the DWARF defines (linkage names too), memoized per file."""
    found = _functions_cache.get(key)
    if found is None:
        found = {}
        for cu in dwarf.iter_CUs():
            for die in cu.get_top_DIE().iter_children():
                if die.tag != "DW_TAG_subprogram" or "DW_AT_declaration" in die.attributes:
                    continue
                for attr in ("DW_AT_name", "DW_AT_linkage_name"):
                    name = _text(_attr(die, attr))
                    if name and (name not in found or not found[name].has_children):
                        found[name] = die
        _functions_cache[key] = found
    return found


def _arguments(die, writer: _BtfWriter) -> FunctionArgs:
    result = FunctionArgs()
    ret = _strip(_type_die(die))
    register = 1 if ret is not None and ret.tag in _RECORDS and \
        (_attr(ret, "DW_AT_byte_size") or 0) > MEMORY_CLASS_SIZE else 0
    lost = ""
    for i, p in enumerate(c for c in die.iter_children() if c.tag == "DW_TAG_formal_parameter"):
        name = _text(_attr(p, "DW_AT_name")) or f"__arg{i}"
        type_id = writer.type_id(_type_die(p))
        result.params.append((name, type_id))
        why = _register_class(_type_die(p))
        if lost:
            result.refused[name] = lost
        elif why != "int":
            result.refused[name] = why
            if why.startswith("passed by value ("):
                lost = f"after {name}, passed by value, whose registers pybpf does not work out"
        elif register >= len(KPROBE_ARG_REGISTERS):
            result.refused[name] = (f"passed on the stack (only the first "
                                    f"{len(KPROBE_ARG_REGISTERS)} are in registers)")
        else:
            # the list's index is the register's (pybpf.checked.KPROBE_ARG_REGISTERS)
            while len(result.args) < register:
                result.args.append(("", 0))
            result.args.append((name, type_id))
            register += 1
    return result


def function_arguments(path: str, names: list[str], base) -> TypedFunctions:
    """The arguments of functions `names` of `path` from its DWARF, typed in one split BTF over
    `base` (the kernel's); of a wildcard's functions, those the DWARF has (crt's _start has
    none). Raises DwarfError when the binary has no DWARF or lacks the one function asked."""
    from elftools.common.exceptions import DWARFError, ELFError
    from elftools.elf.elffile import ELFFile
    from pybpf import btf as B
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if not elf.has_dwarf_info() or elf.get_section_by_name(".debug_info") is None:
                raise DwarfError(f"{path} has no DWARF debug info (build it with -g) to type "
                                 "args from")
            dwarf = elf.get_dwarf_info()
            subprograms = _subprograms(dwarf, (path, os.stat(path).st_mtime_ns))
            writer = _BtfWriter(base)
            functions = {}
            for name in names:
                die = subprograms.get(name)
                if die is not None:
                    functions[name] = _arguments(die, writer)
                elif len(names) == 1:
                    raise DwarfError(f"no DWARF debug info for function '{name}' in {path}")
            return TypedFunctions(B.Btf.from_bytes(writer.blob(), base=base, name=path), functions)
    except OSError as e:
        raise DwarfError(f"cannot read {path}: {e.strerror}") from None
    except (ELFError, DWARFError, KeyError, IndexError, ValueError) as e:
        raise DwarfError(f"cannot read the DWARF of {path}: {e}") from None

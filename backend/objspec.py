"""ELF object -> ObjectSpec: what the loader needs, read without touching the kernel.

    spec = parse_object(elf)                     # the compiler does it once: CompiledProgram.object
    spec.maps['__pybpf_events']                  # MapDef(map_type=27, key_size=0, ..., max_entries=1 << 20)
    spec.programs['tracepoint/syscalls/sys_enter_openat'].relocations   # {insn byte offset: map symbol}
    spec.license                                 # 'GPL'

Pure: no syscalls, no root. The object's shape is the one pybpf.program describes: legacy map
definitions in section "maps", a "license" section, one executable section per program, and
R_BPF_64_64 relocations of ld_imm64 instructions against map symbols. A program with for-loop
callbacks holds them in its own section after its main function; the ld_imm64 that loads a
callback's address is relocated against that section, and is patched here once and for all
(BPF_PSEUDO_FUNC, the callback's first instruction relative to the next one). Such a section also
gets its func_info, and the object the BTF that names its functions (pybpf.backend.progbtf): the
verifier takes a callback only with them. Objects without callbacks carry neither.
"""

from __future__ import annotations

import struct

from pybpf.backend.progbtf import program_btf
from pybpf.program import MapDef, ObjectFormatError, ObjectSpec, ElfProgramSection
from pybpf.uapi.bpf import BPF_INSN_SIZE, BPF_LD_IMM64, BPF_PSEUDO_FUNC

MAPS_SECTION = "maps"
LICENSE_SECTION = "license"
R_BPF_64_64 = 1                  # relocation type of a ld_imm64 against a map symbol
SHF_EXECINSTR = 0x4
SHT_SYMTAB, SHT_RELA, SHT_NOBITS, SHT_REL = 2, 4, 8, 9
STT_OBJECT, STT_FUNC, STT_SECTION = 1, 2, 3
STB_GLOBAL = 1

_MAP_DEF = struct.Struct("<5I")  # u32 type, key_size, value_size, max_entries, map_flags
# ELF64 little-endian (what LLVM's bpfel target writes): the header's section-table fields, a
# section header, a symbol, a relocation (elf.h's Elf64_Ehdr, Elf64_Shdr, Elf64_Sym, Elf64_Rel)
_EHDR = struct.Struct("<16s24xQ10xHHH")        # e_ident, e_shoff, e_shentsize, e_shnum, e_shstrndx
_SHDR = struct.Struct("<IIQQQQIIQQ")           # name, type, flags, addr, offset, size, link, info, ...
_SYM = struct.Struct("<IBBHQQ")                # name, info (bind << 4 | type), other, shndx, value, size
_REL = struct.Struct("<QQ")                    # offset, info (symbol << 32 | type)


class _Section:
    __slots__ = ("name", "type", "flags", "link", "info", "data")

    def __init__(self, name: str, type_: int, flags: int, link: int, info: int, data: bytes):
        self.name, self.type, self.flags, self.link, self.info, self.data = \
            name, type_, flags, link, info, data


class _Symbol:
    __slots__ = ("name", "type", "bind", "shndx", "value", "size")

    def __init__(self, name: str, info: int, shndx: int, value: int, size: int):
        self.name, self.type, self.bind = name, info & 0xF, info >> 4
        self.shndx, self.value, self.size = shndx, value, size


def _string(table: bytes, at: int) -> str:
    end = table.find(b"\0", at)
    return table[at:end if end >= 0 else len(table)].decode("utf-8", "replace")


def _sections(elf: bytes) -> list[_Section]:
    """The section table, read once (struct: pyelftools cost ~50 ms to import on every compile)."""
    if elf[:6] != b"\x7fELF\x02\x01":
        raise ObjectFormatError("not a 64-bit little-endian ELF object")
    _, shoff, shentsize, shnum, shstrndx = _EHDR.unpack_from(elf)
    headers = [_SHDR.unpack_from(elf, shoff + i * shentsize) for i in range(shnum)]
    names = elf[headers[shstrndx][4]:][:headers[shstrndx][5]] if shstrndx < shnum else b""
    return [_Section(_string(names, name), type_, flags, link, info,
                     elf[offset:offset + size] if type_ != SHT_NOBITS else b"")
            for name, type_, flags, _, offset, size, link, info, _, _ in headers]


def _symbols(sections: list[_Section], symtab: _Section) -> list[_Symbol]:
    strings = sections[symtab.link].data
    data = symtab.data[:len(symtab.data) - len(symtab.data) % _SYM.size]
    return [_Symbol(_string(strings, name), info, shndx, value, size)
            for name, info, _, shndx, value, size in _SYM.iter_unpack(data)]


def parse_object(elf_bytes: bytes) -> ObjectSpec:
    sections = _sections(elf_bytes)
    symtab = next((section for section in sections if section.type == SHT_SYMTAB), None)
    if symtab is None:
        raise ObjectFormatError("object has no symbol table")
    # One walk over the sections, relocations indexed by the section they patch: looking them up
    # per program walked every section once per program, quadratic (`tracepoint:*:*`, 1587
    # programs and 3199 sections, took a minute).
    program_sections, relocations_of, maps_section = {}, {}, None
    for index, section in enumerate(sections):
        if section.type == SHT_REL:
            relocations_of.setdefault(section.info, []).append(section)
        elif section.type == SHT_RELA:
            raise ObjectFormatError(f"{section.name}: RELA relocations (LLVM's BPF target writes REL)")
        elif section.flags & SHF_EXECINSTR and section.data:
            program_sections[index] = section
        elif section.name == MAPS_SECTION:
            maps_section = (index, section)
    symbols = _symbols(sections, symtab)
    maps = _map_defs(maps_section, symbols) if maps_section else {}
    functions = _functions(symbols, program_sections)
    with_callbacks = {name for found in functions.values() if len(found) > 1 for _, name, _ in found}
    btf, type_ids = program_btf([(name, is_global) for found in functions.values()
                                 for _, name, is_global in found if name in with_callbacks]) \
        if with_callbacks else (b"", {})
    by_name = {section.name: section for section in sections}
    lines = _line_info(by_name.get(".BTF"), by_name.get(".BTF.ext"))
    programs = {}
    for index, section in program_sections.items():
        insns = bytearray(section.data)
        starts = {offset: name for offset, name, _ in functions.get(index, ())}
        relocations = _relocations(relocations_of.get(index, ()), section.name, index, insns,
                                   symbols, maps, starts)
        func_info = tuple((offset // BPF_INSN_SIZE, type_ids[name])
                          for offset, name in sorted(starts.items()) if name in type_ids)
        programs[section.name] = ElfProgramSection(section.name, bytes(insns), relocations,
                                                   lines.get(section.name, ()), func_info)
    return ObjectSpec(maps, programs, _license(by_name.get(LICENSE_SECTION)), btf)


def _functions(symbols, program_sections) -> dict[int, list[tuple[int, str, bool]]]:
    """Per program section, its functions: (byte offset, name, global), the main one first."""
    functions: dict[int, list[tuple[int, str, bool]]] = {}
    for sym in symbols:
        if sym.type == STT_FUNC and sym.shndx in program_sections:
            functions.setdefault(sym.shndx, []).append((sym.value, sym.name, sym.bind == STB_GLOBAL))
    for found in functions.values():
        found.sort()
    return functions


_BTF_HEADER = struct.Struct("<HBBIIIII")       # magic, version, flags, hdr_len, type/str off+len
_BTF_EXT_HEADER = struct.Struct("<HBBIIIII")   # magic, version, flags, hdr_len, func/line off+len
_U32 = struct.Struct("<I")
_LINE_INFO = struct.Struct("<IIII")            # insn_off (bytes), file_name_off, line_off, line_col


def _line_info(btf: _Section | None, ext: _Section | None) -> dict[str, tuple[tuple[int, int, int], ...]]:
    """.BTF.ext line info (Documentation/bpf/btf.rst): per section, the source line and column
    (line_col = line << 10 | column) of instructions. Absent (no debug info): empty."""
    if btf is None or ext is None:
        return {}
    btf_data, ext_data = btf.data, ext.data
    _, _, _, hdr_len, _, _, str_off, str_len = _BTF_HEADER.unpack_from(btf_data)
    strings = btf_data[hdr_len + str_off:hdr_len + str_off + str_len]
    _, _, _, ext_hdr_len, _, _, line_off, line_len = _BTF_EXT_HEADER.unpack_from(ext_data)
    at = ext_hdr_len + line_off
    end = at + line_len
    if line_len < 4:
        return {}
    record_size = _U32.unpack_from(ext_data, at)[0]
    at += 4
    out = {}
    while at + 8 <= end:
        name_off, count = struct.unpack_from("<II", ext_data, at)
        at += 8
        name = strings[name_off:strings.index(b"\0", name_off)].decode()
        records = []
        for i in range(count):
            insn_off, _, _, line_col = _LINE_INFO.unpack_from(ext_data, at + i * record_size)
            records.append((insn_off // BPF_INSN_SIZE, line_col >> 10, line_col & 0x3FF))
        out[name] = tuple(sorted(records))
        at += count * record_size
    return out


def _map_defs(maps_section, symbols) -> dict[str, MapDef]:
    index, section = maps_section
    data = section.data
    maps = {}
    for sym in symbols:
        if sym.shndx != index or sym.type != STT_OBJECT:
            continue
        offset = sym.value
        if sym.size != _MAP_DEF.size or offset + _MAP_DEF.size > len(data):
            raise ObjectFormatError(f"map {sym.name!r}: definition of {sym.size} bytes, "
                                    f"expected {_MAP_DEF.size}")
        maps[sym.name] = MapDef(*_MAP_DEF.unpack_from(data, offset))
    return maps


def _relocations(sections, name: str, index: int, insns: bytearray, symbols: list,
                 maps: dict[str, MapDef], starts: dict[int, str]) -> dict[int, str]:
    """The map references of program `name` (section `index`, instructions insns), from its
    relocation sections. A reference to one of its own functions (starts: byte offset -> name) is
    patched into insns instead."""
    relocations = {}
    for section in sections:
        for offset, info in _REL.iter_unpack(section.data[:len(section.data) - len(section.data) % _REL.size]):
            symbol_index, kind = info >> 32, info & 0xFFFFFFFF
            if symbol_index >= len(symbols):
                raise ObjectFormatError(f"{name}+{offset}: relocation against symbol {symbol_index}, "
                                        f"past the symbol table")
            sym = symbols[symbol_index]
            symbol = sym.name
            own_code = sym.shndx == index and sym.type in (STT_SECTION, STT_FUNC)
            if kind != R_BPF_64_64 or not (symbol in maps or own_code):
                raise ObjectFormatError(f"{name}+{offset}: unsupported relocation (type "
                                        f"{kind}) against {symbol!r}; only map references "
                                        f"and the program's own callbacks are supported")
            if offset % BPF_INSN_SIZE or offset >= len(insns) or insns[offset] != BPF_LD_IMM64:
                raise ObjectFormatError(f"{name}+{offset}: relocation of {symbol!r} not at a ld_imm64")
            if own_code:
                _patch_function_address(insns, offset, sym.value, starts, name)
            else:
                relocations[offset] = symbol
    return relocations


def _patch_function_address(insns: bytearray, offset: int, base: int, starts: dict[int, str],
                            name: str) -> None:
    """The ld_imm64 at `offset` loads the address base + imm of a function of this section: make it
    BPF_PSEUDO_FUNC with imm = the function's first instruction relative to the next one."""
    target = base + int.from_bytes(insns[offset + 4:offset + 8], "little", signed=True)
    if target not in starts:
        raise ObjectFormatError(f"{name}+{offset}: ld_imm64 of byte {target}, which starts no function")
    insns[offset + 1] = (insns[offset + 1] & 0x0F) | (BPF_PSEUDO_FUNC << 4)
    relative = (target - offset) // BPF_INSN_SIZE - 1
    insns[offset + 4:offset + 8] = relative.to_bytes(4, "little", signed=True)
    insns[offset + 12:offset + 16] = bytes(4)


def _license(section: _Section | None) -> str:
    if section is None:
        raise ObjectFormatError("object has no license section")
    return section.data.split(b"\0", 1)[0].decode()

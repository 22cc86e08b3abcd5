"""ELF object -> ObjectSpec: what the loader needs, read without touching the kernel.

    spec = parse_object(compiled.elf)
    spec.maps['__pybpf_events']                  # MapDef(map_type=27, key_size=0, ..., max_entries=1 << 20)
    spec.programs['tracepoint/syscalls/sys_enter_openat'].relocations   # {insn byte offset: map symbol}
    spec.license                                 # 'GPL'

Pure: no syscalls, no root. The object's shape is the one pybpf.program describes: legacy map
definitions in section "maps", a "license" section, one executable section per program, and
R_BPF_64_64 relocations of ld_imm64 instructions against map symbols.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection

from pybpf.runtime.errors import ObjectFormatError
from pybpf.uapi.bpf import BPF_INSN_SIZE, BPF_LD_IMM64

MAPS_SECTION = "maps"
LICENSE_SECTION = "license"
R_BPF_64_64 = 1                  # relocation type of a ld_imm64 against a map symbol

_MAP_DEF = struct.Struct("<5I")  # u32 type, key_size, value_size, max_entries, map_flags


@dataclass(frozen=True)
class MapDef:
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int = 0


@dataclass(frozen=True)
class ProgramSection:
    name: str
    insns: bytes
    relocations: dict[int, str]  # byte offset of a ld_imm64 in insns -> map symbol


@dataclass(frozen=True)
class ObjectSpec:
    maps: dict[str, MapDef]
    programs: dict[str, ProgramSection]
    license: str


def parse_object(elf_bytes: bytes) -> ObjectSpec:
    elf = ELFFile(io.BytesIO(elf_bytes))
    symtab = elf.get_section_by_name(".symtab")
    if symtab is None:
        raise ObjectFormatError("object has no symbol table")
    maps = _map_defs(elf, symtab)
    programs = {}
    for index, section in enumerate(elf.iter_sections()):
        if section["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and section["sh_size"] > 0:
            programs[section.name] = ProgramSection(
                section.name, section.data(), _relocations(elf, index, section.name, symtab, maps))
    return ObjectSpec(maps, programs, _license(elf))


def _map_defs(elf: ELFFile, symtab) -> dict[str, MapDef]:
    section = elf.get_section_by_name(MAPS_SECTION)
    if section is None:
        return {}
    index = _section_index(elf, MAPS_SECTION)
    data = section.data()
    maps = {}
    for sym in symtab.iter_symbols():
        if sym["st_shndx"] != index or sym["st_info"]["type"] != "STT_OBJECT":
            continue
        offset = sym["st_value"]
        if sym["st_size"] != _MAP_DEF.size or offset + _MAP_DEF.size > len(data):
            raise ObjectFormatError(f"map {sym.name!r}: definition of {sym['st_size']} bytes, "
                                    f"expected {_MAP_DEF.size}")
        maps[sym.name] = MapDef(*_MAP_DEF.unpack_from(data, offset))
    return maps


def _relocations(elf: ELFFile, index: int, name: str, symtab, maps: dict[str, MapDef]) -> dict[int, str]:
    insns = elf.get_section(index).data()
    relocations = {}
    for section in elf.iter_sections():
        if not isinstance(section, RelocationSection) or section["sh_info"] != index:
            continue
        for rel in section.iter_relocations():
            symbol = symtab.get_symbol(rel["r_info_sym"]).name
            offset = rel["r_offset"]
            if rel["r_info_type"] != R_BPF_64_64 or symbol not in maps:
                raise ObjectFormatError(f"{name}+{offset}: unsupported relocation (type "
                                        f"{rel['r_info_type']}) against {symbol!r}; only map references "
                                        f"are supported")
            if offset % BPF_INSN_SIZE or offset >= len(insns) or insns[offset] != BPF_LD_IMM64:
                raise ObjectFormatError(f"{name}+{offset}: relocation of {symbol!r} not at a ld_imm64")
            relocations[offset] = symbol
    return relocations


def _license(elf: ELFFile) -> str:
    section = elf.get_section_by_name(LICENSE_SECTION)
    if section is None:
        raise ObjectFormatError("object has no license section")
    return section.data().split(b"\0", 1)[0].decode()


def _section_index(elf: ELFFile, name: str) -> int:
    return next(i for i, s in enumerate(elf.iter_sections()) if s.name == name)

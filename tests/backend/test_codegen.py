"""Facts about the generated IR and ELF object, without the kernel (the ELF read with pyelftools)."""

import io
import struct

import pytest
from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from pybpf.backend.objspec import parse_object
from pybpf.compiler import CompileOptions, compile_source, compile_to_ir

BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY = 1, 5, 6
BPF_FUNC_map_lookup_elem, BPF_FUNC_map_update_elem, BPF_FUNC_get_current_comm = 1, 2, 16
BPF_FUNC_ringbuf_output = 130


@pytest.fixture(scope="module")
def mixed():
    """One object with BEGIN, END and two interval probes: no tracefs needed."""
    return compile_source("BEGIN { @[comm] = count(); @x = 1; } END { @s = sum(3); } "
                          "interval:s:1 { @h = hist(2); } interval:ms:500 { @v[1] = 2; }")


def elf_of(compiled):
    return ELFFile(io.BytesIO(compiled.elf))


def program_sections(elf):
    return [s for s in elf.iter_sections() if s["sh_flags"] & SH_FLAGS.SHF_EXECINSTR and s.data_size]


def helper_calls(insns: bytes) -> list[int]:
    """The helper ids of every `call` (opcode 0x85, src_reg 0) in a program's instructions."""
    calls = []
    for off in range(0, len(insns), 8):
        opcode, regs, _, imm = struct.unpack_from("<BBhi", insns, off)
        if opcode == 0x85 and regs >> 4 == 0:
            calls.append(imm)
    return calls


def test_elf_is_bpf_relocatable(mixed):
    elf = elf_of(mixed)
    assert elf["e_machine"] == "EM_BPF" and elf["e_type"] == "ET_REL"
    assert elf.little_endian and elf.elfclass == 64


def test_license_section(mixed):
    elf = elf_of(mixed)
    assert elf.get_section_by_name("license").data().rstrip(b"\0") == b"GPL"


def test_no_eh_frame_and_functions_are_nounwind(mixed):
    names = [s.name for s in elf_of(mixed).iter_sections()]
    assert not [n for n in names if "eh_frame" in n]
    ir, _, _ = compile_to_ir("BEGIN { @a = 1; }")
    defines = [line for line in ir.splitlines() if line.startswith("define")]
    assert defines and all("nounwind" in d or "#" in d for d in defines)
    attrs = {line.split("=")[0].strip(): line for line in ir.splitlines()
             if line.startswith("attributes #")}
    for d in defines:
        group = d.split("#")[1].split()[0] if "#" in d else None
        assert "nounwind" in d or (group is not None and "nounwind" in attrs[f"attributes #{group}"])


def test_one_program_section_per_probe(mixed):
    sections = [s.name for s in program_sections(elf_of(mixed))]
    assert len(sections) == 4 == len(mixed.programs)
    assert sorted(sections) == sorted(p.section for p in mixed.programs)
    kinds = sorted(s.split("/")[0] for s in sections)
    assert kinds == ["perf_event", "perf_event", "raw_tracepoint", "raw_tracepoint"]
    assert sorted(p.prog_type for p in mixed.programs) == [7, 7, 17, 17]


def test_a_probe_with_several_same_kind_points_is_one_program():
    c = compile_source("BEGIN, END { @a = count(); }")
    # BEGIN and END are run separately: one program each, same layout
    assert len(program_sections(elf_of(c))) == len(c.programs)
    c2 = compile_source("interval:s:1, interval:s:2 { @a = count(); }")
    assert len(c2.programs) == 1 and len(c2.programs[0].attach_points) == 2
    assert len(program_sections(elf_of(c2))) == 1


def test_map_types(mixed):
    maps = parse_object(mixed.elf).maps
    assert {m.name for m in mixed.maps} == {"@", "@x", "@s", "@h", "@v"}
    by_name = {m.name: maps[m.symbol] for m in mixed.maps}
    # aggregations are per-CPU (a hash; an array may serve a map without keys); values hashes
    assert by_name["@"].map_type == BPF_MAP_TYPE_PERCPU_HASH              # keyed by comm
    for name in ("@s", "@h"):
        assert by_name[name].map_type in (BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY)
    assert by_name["@x"].map_type == by_name["@v"].map_type == BPF_MAP_TYPE_HASH


def test_aggregation_is_percpu_and_value_is_hash():
    agg = parse_object(compile_source("BEGIN { @c[1] = count(); }").elf).maps
    plain = parse_object(compile_source("BEGIN { @c[1] = 5; }").elf).maps
    user = lambda maps: [d for s, d in maps.items() if not s.startswith("__pybpf")]  # noqa: E731
    (a,) = user(agg)
    (p,) = user(plain)
    assert (a.map_type, a.key_size, a.value_size) == (BPF_MAP_TYPE_PERCPU_HASH, 8, 8)
    assert (p.map_type, p.key_size, p.value_size) == (BPF_MAP_TYPE_HASH, 8, 8)


def test_count_by_comm_makes_one_lookup():
    c = compile_source("BEGIN { @[comm] = count(); }")
    (section,) = program_sections(elf_of(c))
    insns = section.data()
    # The code laid out first, up to the first exit, is the common case: the key is there.
    first_exit = next(off for off in range(0, len(insns), 8) if insns[off] == 0x95)
    assert helper_calls(insns[:first_exit]) == [BPF_FUNC_get_current_comm, BPF_FUNC_map_lookup_elem]
    calls = helper_calls(insns)
    # more lookups only after an insert: when it failed, one to count it (__pybpf_helper_errors)
    # and one to count its warning record if the ring refused it (__pybpf_lost); one when another
    # CPU inserted the key first
    assert calls.count(BPF_FUNC_map_lookup_elem) == 4
    assert calls.count(BPF_FUNC_map_update_elem) == 1     # the first event inserts
    assert set(calls) == {BPF_FUNC_map_lookup_elem, BPF_FUNC_get_current_comm,
                          BPF_FUNC_map_update_elem, BPF_FUNC_ringbuf_output}


def test_plain_assignment_makes_no_lookup():
    c = compile_source("BEGIN { @a = 1; }")
    (section,) = program_sections(elf_of(c))
    # the rest runs only when the update fails: count it, warn (and count a refused warning)
    assert helper_calls(section.data()) == [BPF_FUNC_map_update_elem, BPF_FUNC_map_lookup_elem,
                                            BPF_FUNC_ringbuf_output, BPF_FUNC_map_lookup_elem]


def test_map_relocations_point_at_ld_imm64(mixed):
    spec = parse_object(mixed.elf)
    for prog in spec.programs.values():
        for offset, symbol in prog.relocations.items():
            assert prog.insns[offset] == 0x18            # BPF_LD | BPF_IMM | BPF_DW
            assert symbol in spec.maps


def test_ir_targets_bpf():
    ir, _, _ = compile_to_ir("BEGIN { @a = 1; }")
    assert 'target triple = "bpf' in ir
    assert "alloca" in ir


def test_an_index_known_at_run_time_warns_out_of_bounds_once_per_place():
    source = ("BEGIN { $a = (uint8[4])(uint32)1; $i = 5; @x = $a[$i] + $a[$i]; @y = $a[$i + 1]; "
              "@z = $a[3]; }")
    compiled = compile_source(source)
    places = [(source.index("$a[$i]") + 1, 6), (source.rindex("$a[$i]") + 1, 6),
              (source.index("$a[$i + 1]") + 1, 10)]
    assert [w.split("\n")[0] for w in compiled.runtime_warnings] == [
        f"stdin:1:{start}-{start + n}: WARNING: Array access out of bounds. This can lead to "
        "unexpected results." for start, n in places]
    assert compiled.runtime_warnings[0].split("\n")[1:] == [source, " " * (places[0][0] - 1) + "~" * 6]
    # --no-warnings: no check in the code; a constant index is checked when compiling
    assert compile_source(source, options=CompileOptions(warning_level=0)).runtime_warnings == ()
    assert "runtime_warning" not in compile_to_ir("BEGIN { $a = (uint8[4])(uint32)1; @z = $a[3]; }")

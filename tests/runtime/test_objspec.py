"""ELF -> ObjectSpec (pybpf.backend.objspec), without the kernel; the objects are built by bpfobj."""

import pytest
from bpfobj import MapDecl, build_object, program, standard_maps

from pybpf.backend import objspec
from pybpf.backend.objspec import parse_object
from pybpf.program import EVENTS_MAP, LOST_MAP, MapDef, ObjectFormatError
from pybpf.uapi.bpf import BPF_LD_IMM64, BpfMapType


@pytest.fixture(scope="module")
def spec():
    return parse_object(build_object(
        standard_maps(1 << 16) + [MapDecl("counts", BpfMapType.PERCPU_HASH, 8, 8, 16)],
        {"tracepoint/rt_count": program(count="counts", emit=(1, 0)),
         "raw_tracepoint/rt_begin": program(emit=(2, 0))}))


def test_map_definitions_by_symbol(spec):
    assert spec.maps["counts"] == MapDef(BpfMapType.PERCPU_HASH, 8, 8, 16, 0)
    assert spec.maps[EVENTS_MAP] == MapDef(BpfMapType.RINGBUF, 0, 0, 1 << 16, 0)
    assert len(spec.maps) == 4


def test_one_program_per_executable_section(spec):
    assert set(spec.programs) == {"tracepoint/rt_count", "raw_tracepoint/rt_begin"}   # not the empty .text
    assert all(len(p.insns) % 8 == 0 for p in spec.programs.values())
    assert spec.license == "GPL"


def test_relocations_point_at_ld_imm64_of_maps(spec):
    relocations = spec.programs["tracepoint/rt_count"].relocations
    assert set(relocations.values()) == {"counts", EVENTS_MAP, LOST_MAP}
    insns = spec.programs["tracepoint/rt_count"].insns
    assert all(insns[offset] == BPF_LD_IMM64 for offset in relocations)
    assert set(spec.programs["raw_tracepoint/rt_begin"].relocations.values()) == {EVENTS_MAP, LOST_MAP}


def test_reference_to_a_non_map_is_refused():
    elf = build_object([], {"tracepoint/rt_x": "\nentry:\n  %v = load i64, ptr @data\n  ret i64 %v"},
                       globals_ir='@data = global i64 7, section ".data"')
    with pytest.raises(ObjectFormatError, match="unsupported relocation"):
        parse_object(elf)


def test_missing_license_is_refused():
    with pytest.raises(ObjectFormatError, match="license"):
        parse_object(build_object([], {"tracepoint/rt_x": "\nentry:\n  ret i64 0"}, license=None))


def test_line_info_maps_instructions_to_statements():
    from pybpf.compiler import compile_source
    compiled = compile_source('BEGIN {\n  @x = 1;\n  printf("hi\\n");\n}')
    (section,) = parse_object(compiled.elf).programs.values()
    lines = {line for _, line, _ in section.lines}
    assert {2, 3} <= lines                                  # both statements have code
    first_printf = min(i for i, line, _ in section.lines if line == 3)
    assert section.source_of(first_printf) == (3, 3)
    assert section.source_of(len(section.insns) // 8) is not None
    assert (3, 3, 3, 17) in compiled.statement_spans         # printf("hi\n"); underlined whole


def test_compiled_program_carries_its_parsed_object():
    # the compiler parses its ELF once; the run side loads from compiled.object, also after a
    # round trip through the compile cache's JSON
    from pybpf.compiler import compile_source
    from pybpf.program import CompiledProgram
    compiled = compile_source('BEGIN { @x[1] = count(); printf("%d\\n", 1); exit(); }')
    assert compiled.object == parse_object(compiled.elf)
    assert CompiledProgram.from_data(compiled.to_data()).object == compiled.object


def _sections_walked(monkeypatch, elf: bytes) -> tuple[int, int]:
    """(walks over every section, sections visited in all) while parse_object reads elf."""
    walks, visited = [0], [0]
    read_sections = objspec._sections

    class Counting(list):
        def __iter__(self):
            walks[0] += 1
            for section in super().__iter__():
                visited[0] += 1
                yield section
    monkeypatch.setattr(objspec, "_sections", lambda elf: Counting(read_sections(elf)))
    parse_object(elf)
    return walks[0], visited[0]


def test_the_parse_walks_the_sections_a_fixed_number_of_times_whatever_the_programs(monkeypatch):
    """Relocations are indexed once by the section they patch: a program count that grows does
    not add walks over every section (it made `tracepoint:*:*` quadratic: a minute)."""

    def with_programs(n):
        return build_object(standard_maps(), {f"tracepoint/rt_p{i}": program(emit=(1, i))
                                               for i in range(n)})
    small, large = with_programs(2), with_programs(40)
    sections = len(objspec._sections(large))
    assert sections > 80                           # a program and its relocations, 40 times
    assert _sections_walked(monkeypatch, small)[0] == _sections_walked(monkeypatch, large)[0] <= 3
    assert _sections_walked(monkeypatch, large)[1] <= 3 * sections

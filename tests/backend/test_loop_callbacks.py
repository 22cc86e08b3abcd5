"""What a for-loop over a map compiles to: a static callback in the program's own section, the
ld_imm64 of its address patched to BPF_PSEUDO_FUNC, func_info and the BTF that names the
functions. No kernel: the loads are in tests/e2e/test_map_loops.py."""

from pybpf.btf import Btf
from pybpf.compiler import compile_source
from pybpf.program import CompiledProgram
from pybpf.uapi.bpf import BPF_INSN_SIZE, BPF_LD_IMM64, BPF_PSEUDO_FUNC


def function_references(insns: bytes) -> list[tuple[int, int]]:
    """(instruction index, target instruction) of each BPF_PSEUDO_FUNC ld_imm64."""
    found = []
    for at in range(0, len(insns), BPF_INSN_SIZE):
        if insns[at] == BPF_LD_IMM64 and insns[at + 1] >> 4 == BPF_PSEUDO_FUNC:
            index = at // BPF_INSN_SIZE
            found.append((index, index + 1 + int.from_bytes(insns[at + 4:at + 8], "little", signed=True)))
    return found


def test_a_loop_is_a_callback_of_its_programs_section_named_by_func_info_and_btf():
    compiled = compile_source("BEGIN { @m[1] = 1; for ($kv : @m) { @n += $kv.1; } "
                              "for ($kv : @m) { @n -= 1; } @len = len(@m); }")
    (section,) = compiled.object.programs.values()
    starts = [start for start, _ in section.func_info]
    assert starts[0] == 0 and len(starts) == 4          # the probe, two loop bodies, len()'s
    assert sorted(target for _, target in function_references(section.insns)) == starts[1:]
    btf = Btf(compiled.object.btf)
    funcs = [btf[type_id] for _, type_id in section.func_info]
    assert [(f.name, f.linkage) for f in funcs] == [
        ("probe_0", "global"), ("for_map_1", "static"), ("for_map_2", "static"), ("map_len_3", "static")]
    assert [p.name for p in btf[funcs[1].type_id].params] == ["map", "key", "value", "ctx"]
    assert not section.relocations.keys() & {i * BPF_INSN_SIZE for i, _ in function_references(section.insns)}


def test_programs_without_loops_carry_no_btf_and_no_func_info():
    compiled = compile_source("BEGIN { @m[1] = 1; for ($i : 0..3) { @n += $i; } } END { @m[2] = 2; }")
    assert compiled.object.btf == b""
    assert all(section.func_info == () for section in compiled.object.programs.values())


def test_only_the_program_with_a_loop_gets_func_info_and_it_survives_the_cache_record():
    compiled = compile_source("BEGIN { @m[1] = 1; for ($kv : @m) { @n += 1; } } END { @m[2] = 2; }")
    again = CompiledProgram.from_data(compiled.to_data())
    assert again.object == compiled.object
    with_info = [name for name, s in again.object.programs.items() if s.func_info]
    assert len(with_info) == 1 and again.object.btf

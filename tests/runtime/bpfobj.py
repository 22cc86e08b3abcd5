"""Tiny BPF objects for runtime tests, built with llvmlite the way the backend builds them.

    elf = build_object(
        [MapDecl('counts', BpfMapType.PERCPU_HASH, 8, 8, 16)],
        {'tracepoint/rt_count': program(count='counts', only_pid=os.getpid())})

`program()` composes one body from optional steps, in order: keep only one process's events, count
into a per-CPU hash at key 0 (count += 1, or += `count_by`), emit a ring-buffer record
{u32 kind, u32 index, u64 tgid (or bpf_ktime_get_ns() with emit_time)} and, when the ring buffer
refuses it, count into the lost map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import llvmlite.binding as llvm

from pybpf.program import EVENTS_MAP, LOST_MAP, START_MAP
from pybpf.uapi.bpf import BpfFunc, BpfMapType


@dataclass(frozen=True)
class MapDecl:
    symbol: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int


def standard_maps(ringbuf_size: int = 1 << 16) -> list[MapDecl]:
    """The three maps every compiled program has (pybpf.program)."""
    return [MapDecl(EVENTS_MAP, BpfMapType.RINGBUF, 0, 0, ringbuf_size),
            MapDecl(LOST_MAP, BpfMapType.PERCPU_ARRAY, 4, 8, 1),
            MapDecl(START_MAP, BpfMapType.ARRAY, 4, 8, 1)]


def _helper(func: BpfFunc) -> str:
    return f"inttoptr (i64 {int(func)} to ptr)"


def _increment(symbol: str, key_ir: str, amount: str, label: str, then: str) -> str:
    """*lookup(symbol, key) += amount, inserting `amount` when the key is missing."""
    return f"""
  store i64 0, ptr %key
  %{label}_p = call ptr {_helper(BpfFunc.map_lookup_elem)}(ptr {symbol}, ptr {key_ir})
  %{label}_null = icmp eq ptr %{label}_p, null
  br i1 %{label}_null, label %{label}_new, label %{label}_add
{label}_add:
  %{label}_old = load i64, ptr %{label}_p
  %{label}_sum = add i64 %{label}_old, {amount}
  store i64 %{label}_sum, ptr %{label}_p
  br label %{then}
{label}_new:
  store i64 {amount}, ptr %value
  %{label}_r = call i64 {_helper(BpfFunc.map_update_elem)}(ptr {symbol}, ptr {key_ir}, ptr %value, i64 0)
  br label %{then}
{then}:"""


def program(count: str | None = None, count_by: str = "1", emit: tuple[int, int] | None = None,
            emit_time: bool = False, only_pid: int | None = None) -> str:
    body = f"""
entry:
  %key = alloca i64, align 8
  %value = alloca i64, align 8
  %record = alloca [16 x i8], align 8
  %pid_tgid = call i64 {_helper(BpfFunc.get_current_pid_tgid)}()
  %tgid = lshr i64 %pid_tgid, 32"""
    if only_pid is not None:
        body += f"""
  %ours = icmp eq i64 %tgid, {only_pid}
  br i1 %ours, label %wanted, label %done
wanted:"""
    if count:
        body += _increment(f"@{count}", "%key", count_by, "count", "counted")
    if emit:
        kind, index = emit
        if emit_time:
            body += f"\n  %now = call i64 {_helper(BpfFunc.ktime_get_ns)}()"
        body += f"""
  store i32 {kind}, ptr %record
  %index_at = getelementptr i8, ptr %record, i64 4
  store i32 {index}, ptr %index_at
  %arg_at = getelementptr i8, ptr %record, i64 8
  store i64 {"%now" if emit_time else "%tgid"}, ptr %arg_at
  %emitted = call i64 {_helper(BpfFunc.ringbuf_output)}(ptr @{EVENTS_MAP}, ptr %record, i64 16, i64 0)
  %refused = icmp ne i64 %emitted, 0
  br i1 %refused, label %lost, label %done
lost:""" + _increment(f"@{LOST_MAP}", "%key", "1", "lost", "lost_counted").replace(
            "store i64 0, ptr %key", "store i32 0, ptr %key")
    return body + """
  br label %done
done:
  ret i64 0"""


def build_object(maps: list[MapDecl], programs: dict[str, str], globals_ir: str = "",
                 license: str | None = "GPL") -> bytes:
    """An ELF object: `programs` maps a section name to a body from program() (or hand-written IR)."""
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    lines = ['target triple = "bpfel"',
             'target datalayout = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"', globals_ir]
    if license is not None:
        lines.append(f'@_license = global [{len(license) + 1} x i8] c"{license}\\00", section "license"')
    for m in maps:
        lines.append(f'@{m.symbol} = global {{ i32, i32, i32, i32, i32 }} {{ i32 {m.map_type}, '
                     f'i32 {m.key_size}, i32 {m.value_size}, i32 {m.max_entries}, i32 0 }}, section "maps", align 4')
    for section, body in programs.items():
        name = re.sub(r"\W", "_", section)
        lines.append(f'define i64 @{name}(ptr %ctx) #0 section "{section}" {{{body}\n}}')
    lines.append("attributes #0 = { nounwind }")
    module = llvm.parse_assembly("\n".join(lines))
    module.verify()
    machine = llvm.Target.from_triple("bpfel").create_target_machine(cpu="v3", opt=2)
    return machine.emit_object(module)


# A per-CPU counter at key 0 that program(count="counts") increments, and loading one program
# beside it: what the attach tests share.
COUNTS = MapDecl("counts", BpfMapType.PERCPU_HASH, 8, 8, 4)


def load_counting(spec, body: str):
    """Load one program (a BpfProgramSpec and its IR body) with the standard maps and COUNTS:
    -> (LoadedObject, the program's fd)."""
    from pybpf.backend.objspec import parse_object
    from pybpf.program import CompiledProgram
    from pybpf.runtime.loader import load

    elf = build_object(standard_maps() + [COUNTS], {spec.section: body})
    compiled = CompiledProgram(elf, parse_object(elf), (spec,), ())
    obj = load(compiled.object, compiled)
    return obj, obj.prog_fds[spec.section]


def load_one(section: str, prog_type: int, body: str):
    from pybpf.program import BpfProgramSpec
    return load_counting(BpfProgramSpec(section, prog_type, ()), body)


def count(obj) -> int:
    """COUNTS[0] summed over the CPUs."""
    import struct
    from pybpf.cpus import cpu_slots
    from pybpf.runtime.maps import lookup, value_buffer_size

    raw = lookup(obj.map_fds["counts"], bytes(8), value_buffer_size(8, True))
    return sum(struct.unpack(f"<{cpu_slots()}q", raw)) if raw else 0

"""The compile driver: runs the passes in order and stops after the first one that reports errors.

    compiled = compile_source('tracepoint:syscalls:sys_enter_open* { @[probe] = count(); }')
    ir_text = compile_source(src, stage="llvm")          # stop early to look inside

parse -> resolve probes -> check types -> lay out resources -> lower to IR -> emit ELF -> parse the
ELF once (CompiledProgram.object: what the loader needs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pybpf.diagnostics import NO_SPAN, CompileError, Diagnostics
from pybpf.features import Features
from pybpf.program import DEFAULT_RINGBUF_SIZE, CompiledProgram, ProgramSpec

# bpftrace's max_probes: more attach points than this are refused before compiling (every one costs
# load and attach time, and runs on its event); BPFTRACE_MAX_PROBES raises it.
DEFAULT_MAX_PROBES = 1024


@dataclass
class CompileOptions:
    """What shapes a compiled program besides its source: the positional parameters ($1...),
    each map's entries (--map-entries), the event ring buffer's size (-B) and the rest below."""

    params: tuple[str, ...] = ()
    map_entries: int | None = None
    ringbuf_size: int = DEFAULT_RINGBUF_SIZE
    # Syscall tracepoints of one probe share one program on raw sys_enter/sys_exit (resources.py).
    share_syscalls: bool = True
    # What the kernel supports (kprobes, fentry), for the kprobe <-> fentry choice; None: ask the
    # running kernel.
    features: Features | None = None
    # The process that watchpoints watch (-p).
    pid: int | None = None
    # The most attach points a program may have, checked before compiling (BPFTRACE_MAX_PROBES).
    max_probes: int = DEFAULT_MAX_PROBES
    unsafe: bool = False        # --unsafe: allow system() and signal()


@dataclass
class StageTimes:
    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def _front_end(source: str, filename: str, options: CompileOptions, times: StageTimes):
    from pybpf.parser import parse
    from pybpf.probes import resolve_probes
    from pybpf.resources import plan_resources
    from pybpf.semantic import check_types

    diags = Diagnostics(source, filename)
    program = times.run("parse", parse, source, filename)
    groups = times.run("probes", resolve_probes, program, diags,
                       options.features or _kernel_features(), options.pid)
    if diags.has_errors:
        raise CompileError(diags)
    attach_points = sum(len(group.points) for group in groups)
    if attach_points > options.max_probes:
        # Before type checking and LLVM: a wildcard too wide is refused at once, not after minutes.
        diags.error(f"Can't attach to {attach_points} probes because it exceeds the current limit of "
                    f"{options.max_probes} probes; raise it with the BPFTRACE_MAX_PROBES environment "
                    f"variable, with care: every probe adds to the load and attach time and runs on "
                    f"each of its events", NO_SPAN)
        raise CompileError(diags)
    checked = times.run("check", check_types, program, groups, diags, options.params,
                       options.unsafe)
    if diags.has_errors:
        raise CompileError(diags)
    if not groups:
        diags.error("No probes to attach", program.span)
        raise CompileError(diags)
    plan = times.run("layout", plan_resources, checked, options.map_entries, options.share_syscalls)
    return diags, checked, plan


def _kernel_features() -> Features:
    """The running kernel's answers. The driver, not a pass, reaches into the run side for them:
    answering means loading a program."""
    from pybpf.runtime.features import KernelFeatures
    return KernelFeatures()


def _lower(source: str, filename: str, options: CompileOptions, times: StageTimes):
    from pybpf.backend.codegen import generate_ir

    diags, checked, plan = _front_end(source, filename, options, times)
    lowered = times.run("lower", generate_ir, checked, plan, diags, options.ringbuf_size)
    if lowered is None:
        raise CompileError(diags)
    return lowered, checked, plan


def compile_to_ir(source: str, filename: str = "stdin", options: CompileOptions | None = None,
                  times: StageTimes | None = None):
    """-> (ir_text, checked, plan)."""
    lowered, checked, plan = _lower(source, filename, options or CompileOptions(),
                                    times or StageTimes())
    return lowered.ir_text, checked, plan


def compile_source(source: str, filename: str = "stdin", options: CompileOptions | None = None,
                   times: StageTimes | None = None) -> CompiledProgram:
    """Compile `source` into a CompiledProgram (the ELF object and what the run side needs), with
    no cache; raises CompileError. `filename` names the source in errors; `times`, when given,
    collects each stage's seconds. pybpf.compile is the library's entry point."""
    from pybpf.backend.emit import Emitter
    from pybpf.backend.objspec import parse_object

    options = options or CompileOptions()
    times = times or StageTimes()
    emitter = Emitter()          # loads LLVM in parallel with the passes before it
    try:
        lowered, checked, plan = _lower(source, filename, options, times)
    except BaseException:
        emitter.cancel()
        raise
    elf = times.run("llvm", emitter.emit, lowered.ir_text)
    return CompiledProgram(
        elf=elf,
        object=times.run("elf", parse_object, elf),     # parsed once, here: the run side reads no ELF
        programs=tuple(ProgramSpec(p.section, p.prog_type, p.points, p.expected_attach_type,
                                   p.attach_btf_id,
                                   p.syscall_filter.raw_tracepoint if p.syscall_filter else "")
                       for p in plan.programs),
        maps=tuple(plan.maps.values()),
        printfs=tuple(plan.printfs),
        time_formats=tuple(plan.time_formats),
        probe_names=dict(plan.probe_names),
        statement_spans=lowered.statement_spans,
    )

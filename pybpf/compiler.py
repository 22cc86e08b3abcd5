"""The compile driver: runs the passes in order and stops after the first one that reports errors.

    compiled = compile_source('tracepoint:syscalls:sys_enter_open* { @[probe] = count(); }')
    ir_text, checked, plan = compile_to_ir(source)       # stop before LLVM to look inside

PASSES: parse -> read the preamble (macros, C definitions) -> read settings -> resolve probes -> check types -> lay out resources -> lower to IR, each of one shape
(Pass); then compile_source emits the ELF and parses it once (CompiledProgram.object: what the
loader needs).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from pybpf.diagnostics import NO_SPAN, Diagnostics, render
from pybpf.features import Features, WithoutFeatures
from pybpf.program import BpfProgramSpec, CompiledProgram, ring_size_of_pages
from pybpf.records import factory, record

TYPE_CHECKING = False
if TYPE_CHECKING:      # the passes' modules load when first run: a cache hit imports none of them
    from typing import Any

    from pybpf import ast
    from pybpf.backend.codegen import LoweredModule
    from pybpf.cdefs import Header
    from pybpf.checked import CheckedScript
    from pybpf.providers.base import ProbeGroup
    from pybpf.resources import ResourcePlan
    from pybpf.settings import Settings


# Stack bytes a second lowering keeps free for LLVM's spill slots, when the first left too few.
SPILL_ROOM = 64


@record
class CompileOptions:
    """What shapes a compiled program besides its source: the positional parameters ($1...),
    each map's entries (--map-entries), the event ring buffer's size (--ringbuf-size) and the rest below."""

    params: tuple[str, ...] = ()
    map_entries: int | None = None
    ringbuf_size: int | None = None        # None: sized to the script (program.EVENT_RING_RECORDS_PER_CPU)
    # Syscall tracepoints of one probe share one program on raw sys_enter/sys_exit (resources.py).
    share_syscalls: bool = True
    # Other tracepoints whose block reads no `args` attach as raw tracepoints, and a program serves
    # many points through cookies (resources.py); False: a perf event each, as bpftrace.
    group_tracepoints: bool = True
    # What the kernel supports (kprobes, fentry, cookies), for the kprobe <-> fentry choice and
    # programs shared through cookies; None: ask the running kernel.
    features: Features | None = None
    # --no-feature: names of pybpf.features.NO_FEATURE_NAMES answered False whatever the kernel says.
    no_features: tuple[str, ...] = ()
    # The process that watchpoints watch (-p).
    pid: int | None = None
    # The most attach points a program may have, checked before compiling; None: the max_probes
    # setting (more are refused before compiling: every one costs load and attach time).
    max_probes: int | None = None
    # The BPFTRACE_* variables that set settings (pybpf.settings.environment), over the script's
    # config block.
    environment: tuple[tuple[str, str], ...] = ()
    unsafe: bool = False        # --unsafe: allow system() and signal()
    # -p/-c: probes run only in the traced process, whose pid the session gives at load time.
    filter_pid: bool = False
    # Which helper failures are warned about as they happen, as bpftrace >= 0.23: 0 none
    # (--no-warnings), 1 map updates and deletes, stacks, comm, signals (the default), 2 also the
    # memory reads (-k). Every failure is counted either way (pybpf.backend.lower_helpers).
    warning_level: int = 1
    # The C headers the script's types come from besides BTF: --include FILEs and the #includes
    # found in -I folders, read (as trusted files) before compiling, so the cache key covers them.
    headers: tuple[Header, ...] = ()


@record
class StageTimes:
    seconds: dict[str, float] = factory(dict)

    def run(self, name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


# A pass: (the previous pass's result, the shared Diagnostics, the options) -> its own result, or
# None once it has reported an error. The driver stops after the first pass that reports one.
@record(frozen=True)
class Pass:
    name: str                    # the stage StageTimes, -v and benchmarks/compile_stages.py show
    run: Callable[[Any, Diagnostics, CompileOptions], Any]


@record(frozen=True)
class ResolvedProbes:
    program: ast.Script
    groups: list[ProbeGroup]


@record(frozen=True)
class PlannedScript:
    checked: CheckedScript
    plan: ResourcePlan


@record(frozen=True)
class LoweredScript:
    checked: CheckedScript
    plan: ResourcePlan
    module: LoweredModule


def _parse(source: str, diags: Diagnostics, options: CompileOptions) -> ast.Script | None:
    from pybpf.parser import parse_source
    return parse_source(diags, options.headers)


def _read_preamble(program: ast.Script, diags: Diagnostics, options: CompileOptions) -> ast.Script:
    """Macros and #defines expanded, C definitions and headers read (their errors reported)."""
    from pybpf.macros import expand_macros
    c_types = _c_types(program, options)
    for message, span in c_types.errors if c_types else ():
        diags.error(message, span)
    return expand_macros(program, diags)


def _c_types(program: ast.Script, options: CompileOptions):
    """The script's C definitions and headers as types (pybpf.cdefs), None without any: read
    once, by the first pass that asks."""
    if not program.c_definitions and not options.headers:
        return None
    from pybpf.cdefs import types_of
    return types_of(program, options.headers)


def _read_settings(program: ast.Script, diags: Diagnostics, options: CompileOptions) -> ast.Script:
    """The config block and the environment checked once, their errors and warnings reported."""
    from pybpf.settings import resolve_settings
    resolve_settings(program.config, options.environment, diags)
    return program


def settings_of(program: ast.Script, options: CompileOptions) -> Settings:
    """The settings in force (after _read_settings has checked them): what a pass reads."""
    from pybpf.settings import resolve_settings
    return resolve_settings(program.config, options.environment, Diagnostics(""))


def _resolve_probes(program: ast.Script, diags: Diagnostics, options: CompileOptions) -> ResolvedProbes:
    from pybpf.checked import split_arguments
    from pybpf.probes import resolve_probes
    settings = settings_of(program, options)
    groups = resolve_probes(program, diags, _features(options), options.pid,
                            split_arguments(options.params)[0], settings.missing_probes)
    attach_points = sum(len(group.points) for group in groups)
    max_probes = options.max_probes or settings.max_probes
    if attach_points > max_probes and not diags.has_errors:
        # Before type checking and LLVM: a wildcard too wide is refused at once, not after minutes.
        diags.error(f"Can't attach to {attach_points} probes because it exceeds the current limit of "
                    f"{max_probes} probes; raise it with the BPFTRACE_MAX_PROBES environment "
                    f"variable, with care: every probe adds to the load and attach time and runs on "
                    f"each of its events", NO_SPAN)
    return ResolvedProbes(program, groups)


def _check_types(resolved: ResolvedProbes, diags: Diagnostics, options: CompileOptions) -> CheckedScript:
    from pybpf.semantic import check_types
    settings = settings_of(resolved.program, options)
    checked = check_types(resolved.program, resolved.groups, diags, options.params, options.unsafe,
                          settings.max_strlen, settings.stack_mode,
                          _c_types(resolved.program, options))
    if not resolved.groups and not diags.has_errors:
        diags.error("No probes to attach", resolved.program.span)
    return checked


def _plan_resources(checked: CheckedScript, diags: Diagnostics, options: CompileOptions) -> PlannedScript:
    from pybpf.resources import plan_resources
    settings = settings_of(checked.program, options)
    map_entries = options.map_entries or settings.max_map_keys
    plan = plan_resources(checked, map_entries, options.share_syscalls, options.group_tracepoints,
                          _features(options))
    if len(plan.programs) > settings.max_bpf_progs:
        # The programs pybpf loads, which shared and grouped attach points make fewer than
        # bpftrace's one a point; refused before LLVM, as the probes' limit.
        diags.error(f"Your program is trying to generate more than {len(plan.programs)} BPF "
                    f"programs, which exceeds the current limit of {settings.max_bpf_progs}", NO_SPAN,
                    "You can increase the limit through the BPFTRACE_MAX_BPF_PROGS environment "
                    "variable.")
    return PlannedScript(checked, plan)


def _generate_ir(planned: PlannedScript, diags: Diagnostics,
                 options: CompileOptions, spill_room: int = 0) -> LoweredScript | None:
    from pybpf.backend.codegen import generate_ir
    from pybpf.cpus import possible_cpu_ids
    try:
        cpus = len(possible_cpu_ids())          # what the default ring buffer is sized by
    except (OSError, ValueError):
        cpus = os.cpu_count() or 1
    pages = settings_of(planned.checked.program, options).perf_rb_pages
    ringbuf_size = options.ringbuf_size or (ring_size_of_pages(pages, cpus) if pages else None)
    module = generate_ir(planned.checked, planned.plan, diags, ringbuf_size, cpus,
                         options.filter_pid, options.warning_level, spill_room)
    return None if module is None else LoweredScript(planned.checked, planned.plan, module)


# The passes, in order. Adding one is one entry here: a function of the shape of Pass.run.
FRONT_END = (
    Pass("parse", _parse),
    Pass("preamble", _read_preamble),
    Pass("settings", _read_settings),
    Pass("probes", _resolve_probes),
    Pass("check", _check_types),
    Pass("layout", _plan_resources),
)
PASSES = FRONT_END + (Pass("lower", _generate_ir),)


def run_passes(passes: tuple[Pass, ...], source: str, filename: str, options: CompileOptions,
               times: StageTimes, diags: Diagnostics | None = None):
    """The last pass's result; a CompileError with every diagnostic after the first pass that
    reports an error. `diags`, when given, keeps the warnings of a compile that succeeds."""
    from pybpf import btf      # here: a cache hit imports the compiler's options, not the BTF reader

    btf.kernel_walk = _walk_btf_in_kernel
    diags = diags or Diagnostics(source, filename)
    result = source
    for each in passes:
        result = times.run(each.name, each.run, result, diags, options)
        if diags.has_errors:
            raise diags.as_error()
    btf.save_lookups()                    # what the passes looked up in the kernel's types
    return result


def _front_end(source: str, filename: str, options: CompileOptions, times: StageTimes) -> PlannedScript:
    """Up to the resource plan: all a type check needs, without LLVM."""
    return run_passes(FRONT_END, source, filename, options, times)


def attach_points(source: str, filename: str = "stdin", options: CompileOptions | None = None,
                  times: StageTimes | None = None) -> list[str]:
    """The attach points of a program, wildcards expanded (`-l -e PROG`); nothing is compiled."""
    through_probes = [each.name for each in FRONT_END].index("probes") + 1
    resolved = run_passes(FRONT_END[:through_probes], source, filename, options or CompileOptions(),
                          times or StageTimes())
    return [point.name for group in resolved.groups for point in group.points]


def _features(options: CompileOptions) -> Features:
    features = options.features or _kernel_features()
    return WithoutFeatures(features, options.no_features) if options.no_features else features


def _kernel_features() -> Features:
    """The running kernel's answers. The driver, not a pass, reaches into the run side for them:
    answering means loading a program."""
    from pybpf.runtime.features import KernelFeatures
    return KernelFeatures()


def _walk_btf_in_kernel(types, strings, hash_names: bool):
    """pybpf.btf's pass over a large type section, made by the kernel (~6 ms for vmlinux, ~55 in
    Python). The driver joins the two sides: the runtime runs the program, the backend writes the
    BTF that names its functions."""
    from pybpf.backend.progbtf import program_btf
    from pybpf.runtime.btf_walk import FUNCTIONS, walk_types
    return walk_types(types, strings, program_btf(list(FUNCTIONS)), hash_names)


def compile_to_ir(source: str, filename: str = "stdin", options: CompileOptions | None = None,
                  times: StageTimes | None = None):
    """-> (ir_text, checked, plan)."""
    lowered = run_passes(PASSES, source, filename, options or CompileOptions(), times or StageTimes())
    return lowered.module.ir_text, lowered.checked, lowered.plan


def compile_source(source: str, filename: str = "stdin", options: CompileOptions | None = None,
                   times: StageTimes | None = None) -> CompiledProgram:
    """Compile `source` into a CompiledProgram (the ELF object and what the run side needs), with
    no cache; raises CompileError. `filename` names the source in errors; `times`, when given,
    collects each stage's seconds. pybpf.compile is the library's entry point."""
    from pybpf.backend.emit import Emitter, StackLimitExceeded
    from pybpf.backend.objspec import parse_object

    options = options or CompileOptions()
    times = times or StageTimes()
    emitter = Emitter()          # loads LLVM in parallel with the passes before it
    diags = Diagnostics(source, filename)
    try:
        lowered = run_passes(PASSES, source, filename, options, times, diags)
    except BaseException:
        emitter.cancel()
        raise
    plan = lowered.plan
    settings = settings_of(lowered.checked.program, options)
    try:
        elf = times.run("llvm", emitter.emit, lowered.module.ir_text)
    except StackLimitExceeded:
        # The values fit the stack, LLVM's spills of the registers live across calls did not (a
        # long probe whose values take nearly 512 bytes): lower again, leaving them room.
        lowered = _generate_ir(PlannedScript(lowered.checked, plan), diags, options, SPILL_ROOM)
        if lowered is None:
            raise diags.as_error() from None
        elf = times.run("llvm", Emitter().emit, lowered.module.ir_text)
    return CompiledProgram(
        elf=elf,
        object=times.run("elf", parse_object, elf),     # parsed once, here: the run side reads no ELF
        programs=tuple(BpfProgramSpec(p.section, p.prog_type, p.points, p.expected_attach_type,
                                   p.attach_btf_id,
                                   p.syscall_filter.raw_tracepoint if p.syscall_filter else "")
                       for p in plan.programs),
        maps=tuple(plan.maps.values()),
        printfs=tuple(plan.printfs),
        time_formats=tuple(plan.time_formats),
        probe_names=dict(plan.probe_names),
        statement_spans=lowered.module.statement_spans,
        print_maps_on_exit=settings.print_maps_on_exit,
        missing_probes=settings.missing_probes,
        max_cat_bytes=settings.max_cat_bytes,
        verifier_log_size=settings.log_size,
        warnings=tuple(render(d, source, filename) for d in diags.items if d.severity == "WARNING"),
        depends_on=tuple(sorted(lowered.checked.depends_on.union(
            *(group.depends_on for group in lowered.checked.groups)))),
        helper_sites=lowered.module.helper_sites,
        runtime_warnings=lowered.module.runtime_warnings,
        pcap_files=tuple(plan.pcap_files),
    )

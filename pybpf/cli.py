"""The `pybpf` command: bpftrace's command line.

    pybpf -e 'tracepoint:syscalls:sys_enter_open* { @[probe] = count(); }'
    pybpf script.pbt ARG1 ARG2          # $1, $2; str($1)
    pybpf -l 'tracepoint:syscalls:*open*'
    pybpf --emit llvm -e '...'          # or asm, obj (-o FILE); --verify-only loads through the verifier

The command is a client of the library (pybpf.api): it compiles with pybpf.compile, runs a Trace
that prints through pybpf.make_output, and exits with the program's exit code. It owns the event
loop, the signals and the -c/-p processes. Whatever the user typed, the answer is a message and an
exit status, never a traceback.
"""

from __future__ import annotations

import errno
import functools
import mmap
import os
import select
import signal
import sys
import time
from types import SimpleNamespace

import pybpf
from pybpf import __version__, diskcache, settings
from pybpf.compiler import CompileOptions
from pybpf.deepstack import on_deep_stack
from pybpf.errors import PybpfError
from pybpf.features import NO_FEATURE_NAMES
from pybpf.program import (DEFAULT_MAP_ENTRIES, EVENT_RING_MAX_SIZE, EVENT_RING_RECORDS_PER_CPU,
                           RINGBUF_MAX_SIZE)
from pybpf.records import record

TYPE_CHECKING = False       # typing costs ~2 ms at every start
if TYPE_CHECKING:
    import argparse
    from typing import NoReturn

POLL_INTERVAL_S = 0.2


def _help_width() -> int:
    """The terminal's width, given to argparse's formatter up front: argparse builds a formatter for
    every add_argument, and without a width each one imports shutil (and with it zlib, bz2 and
    lzma), for a help text that is rarely printed; looked up once a parser, not once a formatter
    (30 lookups cost ~4 ms when standard output is not a terminal)."""
    try:
        width = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        try:
            width = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            width = 80
    return width - 2


def _untranslated(message: str) -> str:
    """argparse's gettext: its messages as written. gettext would look for a catalog of its default
    domain in the interpreter's locale folders for each message argparse builds, importing locale
    (~1.4 ms at every start); the interpreter ships none, and pybpf's own messages are English."""
    return message


def _parser() -> argparse.ArgumentParser:
    import argparse     # here: the common command lines are read without it (_common_options)

    argparse._ = _untranslated
    p = argparse.ArgumentParser(
        prog="pybpf", description="Trace the running kernel with bpftrace's language, "
        "compiled to eBPF by Python.",
        epilog="examples:\n"
               "  pybpf -e 'tracepoint:syscalls:sys_enter_open* < @[probe] = count(); >'\n"
               "  pybpf -l 'tracepoint:syscalls:*open*'\n"
               "  pybpf script.pbt 100\n"
               "environment: bpftrace's settings, as BPFTRACE_MAX_PROBES, BPFTRACE_MAX_MAP_KEYS,\n"
               "  BPFTRACE_MAX_STRLEN, BPFTRACE_MISSING_PROBES, BPFTRACE_PRINT_MAPS_ON_EXIT (also\n"
               "  set in a script's config block; docs/language.md lists them all)",
        formatter_class=functools.partial(argparse.RawDescriptionHelpFormatter, width=_help_width()))
    p.add_argument("-e", dest="program", metavar="PROGRAM", help="the program to run")
    p.add_argument("-l", "--list", dest="list", nargs="?", const="", metavar="PATTERN",
                   help="list probes matching PATTERN")
    p.add_argument("-f", dest="format", metavar="FORMAT",
                   help="output format: text (default), json or folded")
    p.add_argument("-o", "--output", dest="output", metavar="FILE", help="write output to FILE")
    p.add_argument("-p", "--pid", dest="pid", metavar="PID",
                   help="trace only that process; its end ends the trace")
    p.add_argument("-c", "--cmd", dest="command", metavar="CMD",
                   help="run CMD (split as a shell would, not run by one), held until every probe "
                        "is attached; the trace ends when it exits; its pid is `cpid`")
    p.add_argument("--usdt-file-activation", action="store_true",
                   help="raise USDT semaphores in every process that maps the file (bpftrace's "
                        "option; pybpf always does: the kernel counts them, ref_ctr_offset)")
    p.add_argument("-I", dest="include_dirs", metavar="DIR", action="append",
                   help="look for the script's #include headers in DIR (their types and "
                        "#defines; headers BTF answers need none)")
    p.add_argument("--include", dest="include_files", metavar="FILE", action="append",
                   help="read FILE's C types and #defines before the script's")
    p.add_argument("-v", "--verbose", dest="verbose", action="store_true",
                   help="verbose: stage timings, the whole verifier log on a rejection")
    p.add_argument("-B", dest="buffering", metavar="MODE",
                   help="output buffering: line (each event as it comes, the default), full "
                        "(written when the buffer fills, and at exit) or none")
    p.add_argument("-q", "--quiet", dest="quiet", action="store_true",
                   help="quiet: no \"Attaching N probes...\" line")
    p.add_argument("--no-warnings", dest="warnings", action="store_false",
                   help="print no WARNING lines (nor warnf()'s)")
    p.add_argument("-k", "--warnings", dest="helper_reads", action="count",
                   help="also warn when a memory read (probe_read_*: str(), fields through "
                        "pointers) fails; map updates and deletes are warned about without it")
    p.add_argument("--ringbuf-size", dest="ringbuf_size", metavar="BYTES", type=_ringbuf_size,
                   help="size of the event ring buffer: a power of two of at least the page size, "
                        "K/M suffixes allowed (default: sized to the script, "
                        f"{EVENT_RING_RECORDS_PER_CPU} of its largest record per CPU, "
                        f"at most {EVENT_RING_MAX_SIZE >> 20}M)")
    p.add_argument("--map-entries", metavar="N", type=_map_entries,
                   help=f"maximum entries of each map (default: {DEFAULT_MAP_ENTRIES})")
    p.add_argument("--no-shared-syscalls", dest="share_syscalls", action="store_false",
                   help="attach each syscall tracepoint of a wildcard as its own perf event (slower "
                        "to attach and detach; nothing runs on the other syscalls)")
    p.add_argument("--no-grouped-tracepoints", dest="group_tracepoints", action="store_false",
                   help="attach each other tracepoint as its own perf event, with a program of its "
                        "own where the block reads probe, as bpftrace (slower to attach and detach)")
    p.add_argument("--emit", choices=("llvm", "asm", "obj"),
                   help="print the LLVM IR or BPF assembly, or write the ELF object; no loading")
    p.add_argument("--unsafe", action="store_true",
                   help="allow functions with effects beyond tracing: system(), signal()")
    p.add_argument("--no-feature", dest="no_features", metavar="FEATURE[,FEATURE]",
                   action="append",
                   help="act as if the kernel lacked these: uprobe_multi (one link for a "
                        "wildcard's uprobes), kprobe_multi, kprobe_session (which pybpf never uses)")
    p.add_argument("--dry-run", action="store_true",
                   help="load and attach every probe, then stop at once: no BEGIN, END or maps "
                        "(as bpftrace)")
    p.add_argument("--verify-only", action="store_true",
                   help="compile and load through the verifier, attach nothing")
    p.add_argument("--no-cache", action="store_true",
                   help="read and write no cache at all (compiled objects, BTF index, parser tables)")
    p.add_argument("--clear-cache", action="store_true",
                   help="empty pybpf's cache folder (compiled objects, BTF index, parser tables) and exit")
    p.add_argument("--cache-max-size", metavar="SIZE", type=_cache_size,
                   help="bound of the cache folder, least recently used entries out first; K/M/G "
                        f"suffixes (default: ${diskcache.MAX_SIZE_ENV}, else "
                        f"{diskcache.DEFAULT_MAX_BYTES >> 20}M)")
    p.add_argument("-d", "--debug", dest="debug", metavar="STAGE[,STAGE]", action="append",
                   help="print what a stage produced to stderr, then run: ast (the parsed tree), "
                        "types (the maps' and variables' types), codegen or codegen-opt (the LLVM "
                        "IR), dis (the BPF assembly), verifier (the kernel's log of each "
                        "program's load), or all; may be repeated")
    p.add_argument("--info", action="store_true",
                   help="print the kernel's release, the BPF map and program types and helpers "
                        "it has, and pybpf's build, then exit")
    p.add_argument("--metrics", metavar="[HOST:]PORT|unix:PATH",
                   help="while the script runs, serve its maps to Prometheus on "
                        "http://HOST:PORT/metrics (default host 127.0.0.1), or on a Unix socket "
                        "only root can connect to (needs pybpf[metrics])")
    p.add_argument("--metrics-maps", metavar="@A,@B",
                   help="with --metrics: serve only these maps (default: all)")
    p.add_argument("--metrics-max-series", metavar="N",
                   help="with --metrics: serve at most N keys of each map, the top ones by value; "
                        "pybpf_series_dropped{map} counts the others (default: 10000)")
    p.add_argument("--metrics-prefix", metavar="PREFIX",
                   help="with --metrics: the start of every metric's name (default: pybpf_)")
    p.add_argument("-V", "--version", action="version", version=f"pybpf v{__version__}",
                   help="print the version (\"pybpf vX.Y.Z\", as bpftrace's) and exit")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="FILE [ARGS]",
                   help="a .pbt/.bt script (- for stdin) and its positional parameters")
    p.set_defaults(**_option_defaults())
    return p


# bpftrace's stages that pybpf has (not libbpf: pybpf loads without it); codegen-opt is codegen:
# pybpf runs no IR passes, the BPF backend compiles the IR as it is, optimizing at -O2.
DEBUG_STAGES = ("ast", "types", "codegen", "codegen-opt", "dis", "verifier")
MAX_PID = 0x400000      # bpftrace's bound: the largest pid_max of 64-bit Linux


def _option_defaults() -> dict[str, object]:
    """Each option's value when it is not given, for the parser (set_defaults) and for the command
    lines read without it (_common_options): in this one place."""
    return {"program": None, "list": None, "format": "text", "output": None, "pid": None,
            "command": None, "include_dirs": [], "include_files": [], "verbose": False,
            "buffering": "line", "quiet": False, "warnings": True, "helper_reads": 0,
            "ringbuf_size": None, "map_entries": None, "share_syscalls": True,
            "group_tracepoints": True, "emit": None, "unsafe": False, "no_features": [],
            "dry_run": False, "verify_only": False, "usdt_file_activation": False,
            "no_cache": False, "clear_cache": False, "cache_max_size": None, "debug": [],
            "info": False, "metrics": None, "metrics_maps": None, "metrics_max_series": None,
            "metrics_prefix": None}


def _common_options(argv: list[str]) -> SimpleNamespace | None:
    """The two common command lines, `pybpf FILE [ARGS]` and `pybpf -e PROGRAM`, read as the parser
    reads them (tests/pybpf/test_cli_options.py compares), without it: importing argparse (and
    gettext) and building the parser cost ~2.4 ms at every start. None for any other command line,
    which the parser reads (options, help, errors)."""
    if argv and not argv[0].startswith("-"):
        program, args = None, list(argv)        # the script's own arguments may look like options
    elif len(argv) == 2 and argv[0] == "-e" and not argv[1].startswith("-"):
        program, args = argv[1], []
    else:
        return None
    return SimpleNamespace(**{**_option_defaults(), "program": program, "args": args})


MAX_MAP_ENTRIES = 1 << 24


def _invalid(message: str) -> Exception:
    """A bad option value, which the parser reports with the option (argparse is imported: the
    parser is the one calling)."""
    import argparse

    return argparse.ArgumentTypeError(message)


def _ringbuf_size(text: str) -> int:
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    try:
        size = int(text[:-1] if scale > 1 else text, 0) * scale
    except ValueError:
        raise _invalid(f"not a size in bytes: {text!r}") from None
    if size < mmap.PAGESIZE or size & (size - 1) or size > RINGBUF_MAX_SIZE:
        raise _invalid(
            f"the ring buffer size must be a power of two from the page size ({mmap.PAGESIZE}) "
            f"to {RINGBUF_MAX_SIZE >> 20}M bytes, not {text}")
    return size


def _check_options(opts) -> None:
    """The option values argparse takes as strings, checked with bpftrace 0.26's messages (one
    ERROR: line, status 1), before anything is compiled."""
    if opts.buffering not in ("line", "full", "none"):
        raise SystemExit(error("USAGE: -B must be either 'line', 'full', or 'none'."))
    if opts.format not in ("text", "json", "folded"):
        raise SystemExit(error(f'Invalid output format "{opts.format}"\n'
                               f"Valid formats: 'text', 'json', 'folded'"))
    if opts.helper_reads > 1:
        raise SystemExit(error("USAGE: -kk has been deprecated. Use a single -k for runtime "
                               "warnings for errors in map lookups and probe reads."))
    if opts.helper_reads and not opts.warnings:
        raise SystemExit(error("USAGE: -k, --warnings conflicts with --no-warnings"))
    if opts.command is not None and opts.pid is not None:
        raise SystemExit(error("USAGE: Cannot use both -c and -p."))
    opts.debug = _debug_stages(opts.debug)
    opts.no_features = _no_features(opts.no_features)
    if opts.pid is not None:
        opts.pid = _pid(opts.pid)


def _no_features(given: list[str]) -> tuple[str, ...]:
    """--no-feature a,b --no-feature c: the features, each named once, sorted (a cache key part)."""
    names = {name for text in given for name in text.split(",")}
    if names - set(NO_FEATURE_NAMES):
        raise SystemExit(error(f"USAGE: --no-feature can only have values "
                               f"'{','.join(NO_FEATURE_NAMES)}'."))
    return tuple(sorted(names))


def _debug_stages(given: list[str]) -> tuple[str, ...]:
    """-d a,b -d c: the stages, each named once, in pybpf's order."""
    wanted = set()
    for stage in (s for arg in given for s in arg.split(",") if s):
        if stage != "all" and stage not in DEBUG_STAGES:
            raise SystemExit(error(f"USAGE: invalid option for -d: {stage}"))
        wanted.update(DEBUG_STAGES if stage == "all" else (stage,))
    return tuple(s for s in DEBUG_STAGES if s in wanted)


def _pid(text: str) -> int:
    """-p PID as bpftrace 0.26 reads it (util::to_uint, decimal here), with its messages."""
    digits = len(text) - len(text.lstrip("0123456789"))
    if digits < len(text):
        why = "invalid trailing bytes" if digits else "invalid integer"
        raise SystemExit(error(f"Failed to parse pid: {why}: {text}"))
    if int(text) > MAX_PID:
        raise SystemExit(error(f"Pid out of range: {int(text)}"))
    return int(text)


def _cache_size(text: str) -> int:
    try:
        return diskcache.parse_size(text)
    except ValueError as e:
        raise _invalid(str(e)) from None


def _map_entries(text: str) -> int:
    try:
        entries = int(text, 0)
    except ValueError:
        raise _invalid(f"not a number: {text!r}") from None
    if not 1 <= entries <= MAX_MAP_ENTRIES:
        raise _invalid(f"map entries must be from 1 to {MAX_MAP_ENTRIES}, not {text}")
    return entries


def _settings_environment() -> tuple[tuple[str, str], ...]:
    """The BPFTRACE_* settings (pybpf.settings), as bpftrace reads them, or one line saying what is
    wrong."""
    try:
        return settings.environment(os.environ)
    except settings.SettingError as e:
        raise SystemExit(error(str(e))) from None


def _uncached_btf() -> str:
    """BPFTRACE_BTF's types are another file's than the kernel's the compile cache is keyed by:
    with it set, nothing is cached."""
    return "BPFTRACE_BTF" if os.environ.get("BPFTRACE_BTF") else ""


def error(message: str) -> int:
    print(f"ERROR: {message}", file=sys.stderr)
    return 1


def _read_program(opts) -> tuple[str, str, list[str]]:
    if opts.program is not None:
        return opts.program, "stdin", list(opts.args)
    if not opts.args:
        raise SystemExit(error("no program given: use -e PROGRAM or a script file (see -h)"))
    path, *params = opts.args
    if path == "-":
        if sys.stdin is None:
            raise SystemExit(error("cannot read the program from stdin: it is closed"))
        return _source_text(sys.stdin.buffer.read()), "stdin", params
    try:
        with open(path, "rb") as f:
            return _source_text(f.read()), path, params
    except OSError as e:
        raise SystemExit(error(f"cannot read {path}: {e.strerror}")) from None


def _source_text(raw: bytes) -> str:
    """A script is bytes, as bpftrace reads it: bytes that are not UTF-8 stay bytes (as the lone
    surrogates of `surrogateescape`, which is also how Python hands over -e and the arguments), so
    a string literal keeps them and the parser reports one anywhere else."""
    return raw.decode("utf-8", "surrogateescape")


def _without_end_of_options(args: list[str]) -> list[str]:
    """The script and its parameters with the first `--` left out: it ends the options, as in
    bpftrace (getopt), and is never $1."""
    if "--" not in args:
        return args
    i = args.index("--")
    return args[:i] + args[i + 1:]


def _stdout_text():
    """Standard output for text: UTF-8 whatever the locale, the bytes of kernel strings written as
    they came (bpftrace writes bytes), so neither a non-UTF-8 terminal nor a non-UTF-8 string
    stops the output. None when standard output is closed."""
    if sys.stdout is None:
        return None
    sys.stdout.flush()
    return open(sys.stdout.fileno(), "w", encoding="utf-8", errors="surrogateescape", closefd=False)


def _require_stdout(stream):
    if stream is None:
        raise SystemExit(error("cannot write the output: standard output is closed (use -o FILE)"))
    return stream


def _require_privileges(what: str) -> None:
    """Before anything is compiled or loaded: say plainly that tracing needs privileges, rather
    than let an unprivileged run end in whatever the kernel refuses first."""
    from pybpf.runtime.syscall import has_tracing_capabilities

    if not has_tracing_capabilities():
        raise SystemExit(error(f"pybpf needs root, or the CAP_BPF and CAP_PERFMON capabilities, to "
                               f"{what}; this process has neither (run it with sudo)"))


def _list(pattern: str, verbose: bool) -> int:
    """-l [PATTERN]; with -v (-lv) each probe's arguments and their C types, or a kernel struct's
    members (-lv 'struct task_struct')."""
    from pybpf.listing import RECORD_KINDS, describe_probe, describe_type, list_probes
    from pybpf.providers import find

    out = _require_stdout(_stdout_text())
    if verbose and pattern.partition(" ")[0] in RECORD_KINDS:
        out.write("".join(line + "\n" for line in describe_type(pattern)))
        out.flush()
        return 0
    provider = find(pattern.partition(":")[0])
    if provider is None or provider.name not in ("uprobe", "uretprobe", "usdt"):
        _require_privileges("list kernel probes")      # tracefs is root's
    for name in list_probes(pattern or None):
        lines = [name] + (describe_probe(name) if verbose else [])
        out.write("".join(line + "\n" for line in lines))
    out.flush()
    return 0


def _headers(opts, source: str) -> tuple:
    """The headers -I and --include give the script (pybpf.include), read as trusted files."""
    if not opts.include_dirs and not opts.include_files:
        return ()                   # the common case imports nothing
    from pybpf.include import read_headers
    from pybpf.preprocessor import Conditionals, predefined
    return read_headers(source, Conditionals(predefined()), tuple(opts.include_dirs),
                        tuple(opts.include_files))


def _list_program(opts) -> int:
    """-l -e PROGRAM: the probes the program attaches to, one a line (as bpftrace 0.26)."""
    from pybpf.compiler import attach_points

    _require_privileges("list kernel probes")
    out = _require_stdout(_stdout_text())
    source, filename, params = _read_program(opts)
    names = on_deep_stack(attach_points, source, filename,
                          CompileOptions(params=tuple(params), headers=_headers(opts, source)))
    out.write("".join(name + "\n" for name in names))
    out.flush()
    return 0


def _ast_lines(value, name: str = "", depth: int = 0) -> list[str]:
    """-d ast: one node a line, its fields indented under it (spans left out)."""
    from pybpf.ast import is_node

    pad, label = "  " * depth, f"{name}: " if name else ""
    if is_node(value):
        fields = [(n, getattr(value, n)) for n in value._fields if n != "span"]
        simple = [f"{n}={v!r}" for n, v in fields if not _has_nodes(v)]
        lines = [f"{pad}{label}{type(value).__name__}" + (f" {' '.join(simple)}" if simple else "")]
        for n, v in fields:
            if _has_nodes(v):
                lines += _ast_lines(v, n, depth + 1)
        return lines
    if isinstance(value, tuple):
        return [line for i, item in enumerate(value) for line in _ast_lines(item, f"{name}[{i}]", depth)]
    return [f"{pad}{label}{value!r}"]


def _has_nodes(value) -> bool:
    from pybpf.ast import is_node

    return is_node(value) or (isinstance(value, tuple) and any(map(_has_nodes, value)))


def _debug(stages: tuple[str, ...], source: str, filename: str, options: CompileOptions) -> None:
    """-d STAGE: what each compile stage produced, to stderr, before the run (bpftrace's headers)."""
    from pybpf.backend.emit import emit_assembly
    from pybpf.compiler import compile_to_ir
    from pybpf.parser import parse

    if "ast" in stages:
        tree = on_deep_stack(parse, source, filename)
        print("AST after: parse\n-------------------\n" + "\n".join(_ast_lines(tree)),
              file=sys.stderr)
    if not {"types", "codegen", "codegen-opt", "dis"} & set(stages):
        return
    ir_text, checked, plan = on_deep_stack(compile_to_ir, source, filename, options)
    if "types" in stages:
        print("Types\n-----\n" + "\n".join(_type_lines(checked, plan)), file=sys.stderr)
    if "codegen" in stages or "codegen-opt" in stages:
        print("LLVM IR (compiled as it is: no IR passes)\n---------------------------\n\n" + ir_text,
              file=sys.stderr)
    if "dis" in stages:
        print("Disassembled bytecode\n----------------------------\n\n" + emit_assembly(ir_text),
              file=sys.stderr)


def _type_lines(checked, plan) -> list[str]:
    """-d types: each map's key and value types, then each scratch variable's."""
    lines = [f"{spec.name}{'[' + ', '.join(map(str, spec.key)) + ']' if spec.key else ''}: "
             f"{spec.kind.name.lower()} {spec.value}" for spec in plan.maps.values()]
    bindings = {id(b): b for b in checked.variables.values()}
    return lines + [f"{b.name}: {b.type}" for b in bindings.values()]


def _print_verifier_log(probe: str, log: str) -> None:
    print(f"Verifier log of {probe}\n" + log, file=sys.stderr)


def _emit(kind: str, source: str, filename: str, options: CompileOptions, out_path) -> int:
    from pybpf.backend.emit import emit_assembly
    from pybpf.compiler import compile_source, compile_to_ir

    if kind == "obj":
        # The whole compile, as a run does it: LLVM loads in its child while the front end works.
        elf = on_deep_stack(compile_source, source, filename, options).elf
        if out_path:
            with open(out_path, "wb") as f:
                f.write(elf)
        else:
            _require_stdout(sys.stdout).buffer.write(elf)
        return 0
    ir_text, _, _ = on_deep_stack(compile_to_ir, source, filename, options)
    _write_text(out_path, ir_text if kind == "llvm" else emit_assembly(ir_text))
    return 0


def _write_text(path, text: str) -> None:
    if path:
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
    else:
        out = _require_stdout(_stdout_text())
        out.write(text)
        out.flush()


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _verify_only(program) -> int:
    compiled = program.compiled
    try:
        program.verify()
    except pybpf.NotSupportedError as e:
        # The program compiled; this kernel cannot take it (e.g. fentry under lockdown).
        # --verify-only answers "is my program right?": say what stopped the check, not fail.
        print(f"{_plural(len(compiled.programs), 'program')} compiled; not loaded: {e}")
        return 0
    print(f"{_plural(len(compiled.programs), 'program')} passed the verifier; "
          f"{_plural(compiled.attach_count, 'attach point')} (none attached)")
    return 0


class _Interrupted(BaseException):
    """A stop signal that came before the trace ran (compile, load, attach) or while its maps were
    printed: it unwinds through the cleanup of whatever was made so far, and pybpf exits with 1.
    Not a KeyboardInterrupt: subprocess waits 0.25 s on one for a child it assumes got it too."""


class _StopRequested:
    """Ctrl-C, SIGTERM and SIGHUP end pybpf in every phase, at once. While the trace runs, they end
    it as exit() does: END, maps, detach, status 0 (as bpftrace). Before it runs and while the maps
    print they interrupt: the handler raises _Interrupted wherever the main thread is (Python code
    between two bytecodes, or a wait or syscall that returns EINTR), so a long compile or load
    stops too. The signal also writes to a wakeup pipe the run loop polls, so the run ends at once,
    not at the next timeout (Python resumes an interrupted wait when the handler returns)."""

    def __init__(self):
        self.requested = False
        self._interrupting = True
        self._wakeup, write_end = os.pipe()
        os.set_blocking(self._wakeup, False)
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        self.requested = True
        if self._interrupting:
            self._interrupting = False     # once: the cleanup it unwinds through is not cut short
            raise _Interrupted(signal.Signals(signum).name)

    def serve(self, trace, traced_pidfd: int | None = None) -> None:
        """Serve events until exit(), a stop signal or the end of the traced process (-p, -c); a
        signal that comes later interrupts."""
        self._interrupting = False
        # poll, not select: select() refuses fds from 1024 on (many maps, or many files open)
        ready = select.poll()
        ready.register(trace.fileno(), select.POLLIN)
        ready.register(self._wakeup, select.POLLIN)
        if traced_pidfd is not None:
            ready.register(traced_pidfd, select.POLLIN)     # readable once it has exited
        while True:
            ended = {fd for fd, _ in ready.poll(POLL_INTERVAL_S * 1000)}
            if self.requested or not trace.poll(0) or traced_pidfd in ended:
                break
        self._interrupting = True


class _Command:
    """-c CMD: forked at once, held before exec until every probe is attached (as bpftrace holds
    it), so the trace sees the command from its first instruction; ended by close() if it still
    runs when the trace stops."""

    def __init__(self, command: str):
        import shlex

        argv = shlex.split(command)
        if not argv:
            raise SystemExit(error("-c: the command is empty"))
        held, self._release = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self._release)
            if os.read(held, 1):        # released; end of file: pybpf gave up before attaching
                try:
                    os.execvp(argv[0], argv)
                except OSError as e:
                    os.write(2, f"ERROR: -c: cannot run {argv[0]}: {e.strerror}\n".encode())
                    os._exit(127)
            os._exit(1)
        os.close(held)
        self.pidfd = os.pidfd_open(self.pid)

    def release(self) -> None:
        os.write(self._release, b"x")
        os.close(self._release)
        self._release = -1

    def close(self) -> None:
        if self._release >= 0:
            os.close(self._release)         # never released: it exits without running CMD
        elif os.waitpid(self.pid, os.WNOHANG)[0]:
            self.pid = 0                    # reaped
        else:
            os.kill(self.pid, signal.SIGTERM)
        if self.pid:
            os.waitpid(self.pid, 0)
        os.close(self.pidfd)


def _run(program, opts, stream, stop: _StopRequested, metrics: MetricsSettings | None = None) -> int:
    output = pybpf.make_output(opts.format, stream, quiet=opts.quiet,
                               flush_each=opts.buffering != "full", warnings=opts.warnings)
    warn = None if opts.warnings else _ignore_warning
    child = _Command(opts.command) if opts.command else None
    traced_pidfd = child.pidfd if child else _pidfd(opts.pid) if opts.pid is not None else None
    try:
        trace = program.run(output=output, on_warning=warn, pid=child.pid if child else opts.pid or 0,
                            cpid=child.pid if child else 0)
        try:
            if opts.dry_run:        # bpftrace's: stop once every probe is attached, before BEGIN
                trace.start(run_begin=False)
                stream.flush()
                return 0
            # Bound before loading, so a busy port fails with nothing attached; maps read from start on.
            server = _serve_metrics(trace, metrics) if metrics else None
            try:
                trace.start()
                if child:
                    child.release()
                stop.serve(trace, traced_pidfd)
            finally:
                if server:
                    server.close()      # before stop() closes the maps
            trace.stop()                # END, the maps and the lost events printed
        finally:
            trace.close()
    finally:
        if child:
            child.close()
        elif traced_pidfd is not None:
            os.close(traced_pidfd)
    stream.flush()      # -B full leaves the last of the output in the buffer
    return trace.exit_code


def _pidfd(pid: int) -> int:
    """-p PID: an fd that becomes readable when the process exits, which ends the trace."""
    try:
        return os.pidfd_open(pid)
    except OSError as e:
        raise SystemExit(error(f"-p {pid}: {e.strerror}" if e.errno != errno.ESRCH
                               else f"-p {pid}: no such process")) from None


def _warning_level(opts) -> int:
    """Which failed helper calls print a warning as they happen (CompileOptions.warning_level)."""
    if not opts.warnings:
        return 0
    return 2 if opts.helper_reads else 1


def _ignore_warning(text: str) -> None:
    """--no-warnings"""


@record(frozen=True)
class MetricsSettings:
    """--metrics and the options that shape what it serves, checked before compiling."""
    address: tuple[str, int] | str
    maps: list[str] | None
    max_series: int
    prefix: str


def _metrics_settings(opts) -> MetricsSettings | None:
    """--metrics [HOST:]PORT|unix:PATH and the --metrics-* options, checked before compiling: the
    package is there, every value parses; one ERROR: line otherwise. The map names are checked
    against the program when the collector is made."""
    given = [name for name in ("maps", "max_series", "prefix") if getattr(opts, f"metrics_{name}") is not None]
    if not opts.metrics:
        if given:
            raise SystemExit(error(f"--metrics-{given[0].replace('_', '-')} needs --metrics"))
        return None
    try:
        from pybpf.runtime.metrics import DEFAULT_MAX_SERIES, PREFIX, check_max_series, check_prefix, parse_address
    except ImportError as e:
        if e.name != "prometheus_client":
            raise
        raise SystemExit(error("--metrics needs the prometheus_client package: "
                               "install pybpf[metrics] (pip install 'pybpf[metrics]')")) from None
    option = "--metrics"
    try:
        address = parse_address(opts.metrics)
        option = "--metrics-maps"
        maps = None if opts.metrics_maps is None else _map_names(opts.metrics_maps)
        option = "--metrics-max-series"
        max_series = DEFAULT_MAX_SERIES if opts.metrics_max_series is None else \
            check_max_series(_integer(opts.metrics_max_series))
        option = "--metrics-prefix"
        prefix = PREFIX if opts.metrics_prefix is None else check_prefix(opts.metrics_prefix)
    except ValueError as e:
        raise SystemExit(error(f"{option}: {e}")) from None
    return MetricsSettings(address, maps, max_series, prefix)


def _map_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    bad = next((name for name in names if not name.startswith("@")), None)
    if bad is not None:
        raise ValueError(f"not a map name: {bad!r} (maps are named with @, as @opens,@reads)")
    return names


def _integer(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise ValueError(f"not a number: {text!r}") from None


def _serve_metrics(trace, settings: MetricsSettings):
    from pybpf.metrics import Collector
    from pybpf.runtime.metrics import serve_metrics

    try:
        collector = Collector(trace, maps=settings.maps, max_series=settings.max_series,
                              prefix=settings.prefix)
    except ValueError as e:
        raise SystemExit(error(f"--metrics-maps: {e}")) from None
    address = settings.address
    try:
        server = serve_metrics(collector, address)
    except OSError as e:
        where = f"unix:{address}" if isinstance(address, str) else "{}:{}".format(*address)
        raise SystemExit(error(f"--metrics: cannot serve on {where}: {e.strerror or e}")) from None
    print(f"serving metrics on {server.where}", file=sys.stderr, flush=True)
    return server


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # bpftrace's -lv is -l with -v, not -l with the pattern "v".
    argv = [a for arg in argv for a in (("-v", "-l") if arg in ("-lv", "-vl") else (arg,))]
    opts = _common_options(argv) or _parser().parse_args(argv)
    opts.args = _without_end_of_options(opts.args)
    _check_options(opts)
    if opts.clear_cache:
        return _clear_cache()
    if opts.info:
        return _info()
    # this run's cache settings, undone on return for a caller that runs main() again
    saved, diskcache.settings = diskcache.settings, diskcache.Settings(
        disabled="--no-cache" if opts.no_cache else _uncached_btf(), max_bytes=opts.cache_max_size)
    try:
        if os.environ.get("BPFTRACE_BTF"):
            from pybpf import btf
            btf.use_file(os.environ["BPFTRACE_BTF"])
        if opts.list is not None and opts.program is not None:
            return _list_program(opts)
        if opts.list is not None:
            return _list(opts.list or (opts.args[0] if opts.args else ""), opts.verbose)
        return _main(opts)
    except PybpfError as e:
        print(e.render(), file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`pybpf ... | head`): everything is already detached (the session
        # closes on the way out); say nothing, and keep the interpreter's last flush quiet too.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except KeyboardInterrupt:
        return 1
    except _Interrupted:
        return _exit_interrupted()
    except OSError as e:        # the output file (-o) or stdout: cannot open or write
        if e.errno in (errno.EMFILE, errno.ENFILE):     # a pipe, an epoll fd, a tracefs file...
            return error(f"out of file descriptors: {e.strerror}; raise the limit (ulimit -n)")
        where = f"{e.filename}: " if e.filename else "cannot write the output: "
        return error(f"{where}{e.strerror or e}")
    except Exception as e:
        if opts.verbose:
            raise
        return error(f"internal error, please report it (run with -v for the traceback): "
                     f"{type(e).__name__}: {e}")
    finally:
        diskcache.settings = saved


def _info() -> int:
    _require_privileges("probe the kernel's BPF features")
    from pybpf.runtime.info import render_info

    out = _require_stdout(_stdout_text())
    out.write(render_info(__version__))
    out.flush()
    return 0


def _clear_cache() -> int:
    cleared = diskcache.clear()
    if cleared.failed:
        more = f" (and {len(cleared.failed) - 1} more)" if len(cleared.failed) > 1 else ""
        return error(f"could not empty the cache {diskcache.root()}: {cleared.failed[0]}{more}; "
                     f"remove it as the user that owns it")
    print(f"removed {_plural(cleared.objects, 'compiled object')}, and the other caches, "
          f"from {diskcache.root()}")
    return 0


def _exit_interrupted() -> NoReturn:
    """Everything pybpf made is released by now (the unwinding closed it): leave without the
    interpreter's teardown, which only frees memory (0.1 s after a large compile, more on a busy
    machine) and would hold the exit back past the 0.2 s a stop signal is answered in. Output is
    flushed as it is written; what is left in the buffer is the write the signal cut short, and
    flushing it could wait on a reader that stopped reading."""
    os._exit(1)


def _render_verifier_error(e, program, verbose: bool) -> str:
    """The rejection on the statement whose code failed, then the verifier's last lines; the whole
    log with -v."""
    tail = e.log if verbose else "(run with -v for the whole verifier log)"
    return f"{program.describe_rejection(e)}\n{tail}"


def _main(opts) -> int:
    stdout = None if opts.output else _require_stdout(_stdout_text())
    if not opts.emit:
        _require_privileges("load BPF programs")
    stop = _StopRequested()
    source, filename, params = _read_program(opts)
    metrics = _metrics_settings(opts)
    options = CompileOptions(params=tuple(params), map_entries=opts.map_entries,
                             ringbuf_size=opts.ringbuf_size,
                             share_syscalls=opts.share_syscalls,
                             group_tracepoints=opts.group_tracepoints, pid=opts.pid,
                             environment=_settings_environment(), unsafe=opts.unsafe,
                             filter_pid=opts.pid is not None or opts.command is not None,
                             no_features=opts.no_features,
                             warning_level=_warning_level(opts), headers=_headers(opts, source))
    if set(opts.debug) - {"verifier"}:
        _debug(opts.debug, source, filename, options)
    if opts.emit:
        return _emit(opts.emit, source, filename, options, opts.output)
    start = time.perf_counter()
    program = pybpf.compile(source, options=options, filename=filename)
    for warning in program.warnings:
        print(warning, file=sys.stderr)
    if opts.verbose:
        for note in diskcache.notes():
            print(note, file=sys.stderr)
        stages = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in program.stage_seconds.items()) \
            or "from the cache"
        print(f"compiled in {(time.perf_counter() - start) * 1000:.1f} ms ({stages}); "
              f"{_plural(len(program.compiled.programs), 'program')}, {len(program.elf)} bytes of ELF",
              file=sys.stderr)
    try:
        if "verifier" in opts.debug:
            program.verify(_print_verifier_log)      # a load of its own, before the run's
        if opts.verify_only:
            return _verify_only(program)
        if opts.output:
            with open(opts.output, "w", encoding="utf-8", errors="surrogateescape") as stream:
                return _run(program, opts, stream, stop, metrics)
        return _run(program, opts, stdout, stop, metrics)
    except pybpf.VerifierError as e:
        print(_render_verifier_error(e, program, opts.verbose), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

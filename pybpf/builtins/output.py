"""Functions whose effect is in user space: printf, errorf, warnf, print, time, join, cat, exit,
unwatch. Each sends a ring-buffer
record (pybpf.program.EventKind) that the runtime acts on. The formats printf, print and time print
with go into the compiled program (their layouts, called by pybpf.resources); pybpf.printf_format
parses printf formats for both sides, runtime/printf.py and runtime/output.py apply them."""

from __future__ import annotations

from pybpf import ast
from pybpf import types as T
from pybpf.builtins.entry import function
from pybpf.builtins.formatted import integer_argument
from pybpf.builtins.maps import check_whole_map
from pybpf.checked import INT, MAX_PRINTF_ARGS, VOID, is_int, storable, stored
from pybpf.printf_format import PrintfFormatError, parse_printf
from pybpf.program import EVENT_HEADER_SIZE, EVENTS_MAP, EXIT_MAP, LOST_MAP, EventKind, PrintfSpec
from pybpf.uapi.bpf import BpfFunc

DEFAULT_TIME_FORMAT = "%H:%M:%S\n"


def check_printf(c, e):
    if not e.args or not isinstance(e.args[0], ast.String):
        c.error("printf() expects a format string literal as its first argument", e.span)
        return None
    fmt = e.args[0]
    c.set(fmt, T.StringType(len(fmt.value) + 1))
    try:
        conversions = parse_printf(fmt.value.decode("utf-8", "surrogateescape"))
    except PrintfFormatError as err:
        c.error(f"printf: {err}", fmt.span)
        return None
    args = e.args[1:]
    if len(args) > MAX_PRINTF_ARGS:
        c.error(f"printf: too many arguments ({len(args)}, at most {MAX_PRINTF_ARGS})", e.span)
        return None
    if len(args) != len(conversions):
        more = "Too many" if len(args) > len(conversions) else "Not enough"
        c.error(f"printf: {more} arguments for format string ({len(args)} supplied, "
                f"{len(conversions)} expected)", e.span)
        return None
    for arg, conv in zip(args, conversions):
        t = c.expr(arg)
        if t is None:
            continue
        expects = conv.expects
        if expects == "buf":
            ok = isinstance(t, T.FormattedType) and t.kind == "buf"
        elif expects == "str":
            ok = isinstance(t, (T.StringType, T.ProbeType, T.TupleType, T.FormattedType,
                                  T.StackType))
        else:
            ok = is_int(t)
        if not ok:
            wanted = {"buf": "buffer", "str": "string", "int": "integer"}[expects]
            c.error(f"printf: %{conv.char} specifier expects a value of type {wanted} (got {t})",
                    arg.span)
    return VOID


def layout_printf(plan, checked, e):
    fmt = e.args[0].value.decode("utf-8", "surrogateescape")     # a byte not UTF-8 stays a byte
    plan.add_printf(e, PrintfSpec(fmt, tuple(storable(checked.types[a]) for a in e.args[1:])))


def printf_event(kind: EventKind):
    """The lowering of printf and its kin: a record of `kind` with the laid-out format's index
    and the arguments."""
    def lower(g, e):
        index = g.plan.printf_index[e]
        spec = g.plan.printfs[index]
        g.emit_event(kind, index, [(g.expr(a), t) for a, t in zip(e.args[1:], spec.args)])
        return g.constant(0)
    return lower


def located_printf(severity: str):
    """errorf/warnf: a printf whose text, on stderr, starts with the call's place in the source as
    bpftrace writes it: `stdin:1:9-62: ERROR: `. The place is known when checking (the file
    name is the checker's), so the rule keeps it with the call's compile-time values."""
    def check(c, e):
        t = check_printf(c, e)
        if t is not None:
            span = e.span
            c.result.constants[e] = (f"{c.diags.filename}:{span.line}:{span.column}-"
                                     f"{span.end_column}: {severity}: ")
        return t
    return check


def layout_located_printf(plan, checked, e):
    prefix = checked.constants[e].replace("%", "%%")
    fmt = prefix + e.args[0].value.decode("utf-8", "surrogateescape")
    plan.add_printf(e, PrintfSpec(fmt, tuple(storable(checked.types[a]) for a in e.args[1:])))


def check_print(c, e):
    """print(@m) prints a whole map, print(@m, top[, div]) its `top` greatest entries (0: all)
    with integer values divided by `div`; print(value) one value."""
    arg = e.args[0]
    if isinstance(arg, ast.Map):
        for extra in e.args[1:]:
            t = c.expr(extra)
            if t is not None and not is_int(t):
                c.error(f"print(): top and div must be integers, got {t}", extra.span)
                return None
        return check_whole_map(c, e)
    if len(e.args) > 1:
        c.error("print() takes top and div arguments only after a map", e.args[1].span)
        return None
    t = c.expr(arg)
    if isinstance(t, T.RecordType):
        t = c.struct_value(arg, t)
    if t is not None and not isinstance(t, (T.IntType, T.StringType, T.TupleType, T.ArrayType,
                                            T.StructType, T.ProbeType, T.FormattedType,
                                            T.StackType, T.PointerType)):
        c.error(f"print() cannot print a value of type {t}", arg.span)
    return VOID


def layout_print(plan, checked, e):
    """print(value) is a printf of the value and a newline; a typed pointer prints in hex, as a
    map value of it does."""
    if isinstance(e.args[0], ast.Map):
        return
    t = stored(checked.types[e.args[0]])
    plan.add_printf(e, PrintfSpec("%d\n" if isinstance(t, T.IntType) else "%s\n", (t,)))


def lower_print(g, e):
    arg = e.args[0]
    if isinstance(arg, ast.Map):
        # top and div travel only when given: a plain print(@m) record stays 8 bytes
        limits = [(g.expr(a), INT) for a in e.args[1:]]
        if len(limits) == 1:
            limits.append((g.constant(1), INT))
        g.emit_event(EventKind.PRINT, g.plan.map_index(arg.name), limits)
    else:
        index = g.plan.printf_index[e]
        g.emit_event(EventKind.VALUE, index, [(g.expr(arg), g.plan.printfs[index].args[0])])
    return g.constant(0)


def check_time(c, e):
    if e.args and not isinstance(e.args[0], ast.String):
        c.error("time() expects a format string literal", e.args[0].span)
        return None
    if e.args and b"\0" in e.args[0].value:
        c.error("time() format cannot contain a NUL byte", e.args[0].span)
        return None
    if e.args:
        c.set(e.args[0], T.StringType(len(e.args[0].value) + 1))
    return VOID


def layout_time(plan, checked, e):
    plan.add_time_format(e, e.args[0].value.decode("utf-8", "surrogateescape") if e.args
                         else DEFAULT_TIME_FORMAT)


def lower_time(g, e):
    g.emit_event(EventKind.TIME, g.plan.time_index[e])
    return g.constant(0)


def check_exit(c, e):
    if e.args:
        t = c.expr(e.args[0])
        if t is not None and not is_int(t):
            c.error(f"exit() expects an integer exit code, got {t}", e.args[0].span)
            return None
    return VOID


# join(argv): at most this many strings, each cut to this many bytes (bpftrace reads 16).
JOIN_MAX_ARGS = 16
JOIN_ARG_SIZE = 256
JOIN_ARGS = (INT,) + (T.StringType(JOIN_ARG_SIZE),) * JOIN_MAX_ARGS


def check_join(c, e):
    """join(argv[, sep]): argv a user array of string pointers ending in NULL (execve's)."""
    t = c.expr(e.args[0])
    if t is not None and not is_int(t):
        c.error(f"join() expects an array of string pointers, got {t}", e.args[0].span)
        return None
    if len(e.args) == 2:
        if not isinstance(e.args[1], ast.String):
            c.error("join() expects a string literal separator", e.args[1].span)
            return None
        c.set(e.args[1], T.StringType(len(e.args[1].value) + 1))
    return VOID


def layout_join(plan, checked, e):
    sep = e.args[1].value.decode("utf-8", errors="replace") if len(e.args) == 2 else " "
    plan.add_printf(e, PrintfSpec(sep, JOIN_ARGS))


def lower_join(g, e):
    """The record (4 KiB) is too big for the BPF stack: it is reserved in the ring buffer and the
    strings read straight into it, up to the first NULL pointer."""
    size = EVENT_HEADER_SIZE + sum(T.slot_size(t) for t in JOIN_ARGS)
    g.note_event_record(size)
    argv = g.expr(e.args[0])
    record = g.b.inttoptr(g.helper(BpfFunc.ringbuf_reserve, g.map_ptr(EVENTS_MAP),
                                   g.constant(size), g.constant(0)), g.pointer_type)
    reserved, lost = g.branch_if(g.is_present(record), "join_reserved", "join_lost")
    done = g.new_block("join_done")
    g.b.position_at_end(lost)
    g.with_array_element(LOST_MAP, 0, "join_lost_count",
                         lambda n: g.store64(g.b.add(g.load64(n), g.constant(1)), n))
    g.b.branch(done)
    g.b.position_at_end(reserved)
    g.store64(g.constant(int(EventKind.JOIN) | (g.plan.printf_index[e] << 32)), record)
    g.store64(g.constant(0), record, EVENT_HEADER_SIZE)
    pointer = g.alloca(8, "join_arg")
    finish = g.new_block("join_submit")
    for i in range(JOIN_MAX_ARGS):
        g.helper(BpfFunc.probe_read_user, pointer, g.constant(8),
                 g.b.inttoptr(g.b.add(argv, g.constant(8 * i)), g.pointer_type))
        address = g.load64(pointer)
        more = g.new_block("join_string")
        g.b.cbranch(g.b.icmp_unsigned("!=", address, g.constant(0)), more, finish)
        g.b.position_at_end(more)
        offset = EVENT_HEADER_SIZE + 8 + i * JOIN_ARG_SIZE
        g.helper(BpfFunc.probe_read_user_str, g.gep(record, offset), g.constant(JOIN_ARG_SIZE),
                 g.b.inttoptr(address, g.pointer_type))
        g.store64(g.constant(i + 1), record, EVENT_HEADER_SIZE)
    g.b.branch(finish)
    g.b.position_at_end(finish)
    g.helper(BpfFunc.ringbuf_submit, record, g.constant(0))
    g.b.branch(done)
    g.b.position_at_end(done)
    return g.constant(0)


# bpf_trace_vprintk takes at most this many arguments (the kernel's MAX_BPRINTF_VARARGS), and
# only these conversions: flags "0+- " and a width, no precision, no h/hh (bpf_bprintf_prepare).
DEBUGF_MAX_ARGS = 12
DEBUGF_CONVERSIONS = frozenset("diuxXcs")


def check_debugf(c, e):
    """debugf(fmt, args...): printf's rule, within what the kernel's bpf_trace_vprintk formats."""
    t = check_printf(c, e)
    if t is None:
        return None
    fmt = e.args[0]
    if len(e.args) - 1 > DEBUGF_MAX_ARGS:
        c.error(f"debugf: too many arguments ({len(e.args) - 1}, at most {DEBUGF_MAX_ARGS})", e.span)
        return None
    for conv in parse_printf(fmt.value.decode("utf-8", "surrogateescape")):
        text = fmt.value.decode("utf-8", "surrogateescape")[conv.start:conv.end]
        if (conv.char not in DEBUGF_CONVERSIONS or conv.precision is not None or "#" in conv.flags
                or conv.length in ("h", "hh")):
            c.error(f"debugf: the kernel's bpf_trace_vprintk does not take {text!r} (only %d %i "
                    f"%u %x %X %c %s, with flags 0+- and a width)", fmt.span)
            return None
    for arg in e.args[1:]:
        if isinstance(c.result.types.get(arg), (T.TupleType, T.FormattedType, T.StackType,
                                                  T.ProbeType)):
            c.error("debugf: %s takes a string only: the kernel formats it", arg.span)
            return None
    c.diags.warning("The debugf() builtin is not recommended for production use. For more "
                    "information see bpf_trace_printk in bpf-helpers(7).", e.span)
    return VOID


def lower_debugf(g, e):
    """bpf_trace_vprintk: the kernel formats the text into the trace buffer (trace_pipe). The
    arguments are u64s: integers, and for %s the address of the string's buffer."""
    fmt = e.args[0].value + b"\0"
    args = e.args[1:]
    data = g.alloca(8 * len(args), "debugf_args") if args else \
        g.b.inttoptr(g.constant(0), g.pointer_type)
    for i, arg in enumerate(args):
        value = g.expr(arg)
        if isinstance(g.type_of(arg), T.StringType):
            value = g.b.ptrtoint(value, g.integer_type(8))
        g.store64(value, data, 8 * i)
    g.helper(BpfFunc.trace_vprintk, g.string_constant(fmt, len(fmt)), g.constant(len(fmt)), data,
             g.constant(8 * len(args)))
    return g.constant(0)


def lower_exit(g, e):
    # The flag first: the runtime ends on it even if the record below finds the ring full. It
    # holds the exit code too (see EXIT_MAP), so the code survives a lost record.
    flag_value = g.constant(1)
    if e.args:
        code = g.b.and_(g.expr(e.args[0]), g.constant(0xFF))
        flag_value = g.b.or_(flag_value, g.b.shl(code, g.constant(8)))
    g.with_array_element(EXIT_MAP, 0, "exit_flag", lambda flag: g.store64(flag_value, flag))
    g.emit_event(EventKind.EXIT, 0)
    # As bpftrace: exit() also ends the probe; what follows it is unreachable
    g.b.ret(g.constant(0))
    g.b.position_at_end(g.new_block("after_exit"))
    return g.constant(0)


def check_unwatch(c, e):
    return VOID if integer_argument(c, e, e.args[0]) else None


def lower_unwatch(g, e):
    """User space detaches the watchpoints on the address when it reads the record."""
    g.emit_event(EventKind.UNWATCH, 0, [(g.expr(e.args[0]), INT)])
    return g.constant(0)


BUILTINS = (
    function("printf", None, check_printf, printf_event(EventKind.PRINTF), layout_printf),
    function("errorf", None, located_printf("ERROR"), printf_event(EventKind.ERRORF),
             layout_located_printf),
    function("warnf", None, located_printf("WARNING"), printf_event(EventKind.WARNF),
             layout_located_printf),
    function("print", (1, 3), check_print, lower_print, layout_print),
    function("time", (0, 1), check_time, lower_time, layout_time),
    function("join", (1, 2), check_join, lower_join, layout_join),
    # The file is read and printed in user space when the record is read (pybpf.runtime.command).
    function("cat", None, check_printf, printf_event(EventKind.CAT), layout_printf),
    function("debugf", None, check_debugf, lower_debugf),
    function("exit", (0, 1), check_exit, lower_exit),
    function("unwatch", (1, 1), check_unwatch, lower_unwatch),
)

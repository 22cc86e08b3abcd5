"""What the probe provides: args, arg0..arg5, sarg0..N, retval, func, probe, usermode, ctx,
reg("name").

Whether a probe has these is a question for its provider (pybpf.providers), asked by the small
functions below.
"""

from __future__ import annotations

from pybpf import ast
from pybpf import types as T
from pybpf.builtins.entry import function, identifier, typed
from pybpf.checked import UINT, function_name
from pybpf.ktypes import KernelTypeError
from pybpf.providers.base import Args, Context, ProbeGroup
from pybpf.uapi.bpf import BpfFunc
from pybpf.uapi.ptrace import CODE_SEGMENT, PT_REGS_OFFSETS


def provides_args(group: ProbeGroup) -> bool:
    """args.NAME: tracepoint fields, or a function's BTF-typed arguments."""
    return group.provider.args is not Args.NONE


def provides_function(group: ProbeGroup) -> bool:
    """func: the probe is on a function."""
    return group.provider.func


def provides_numbered_args(group: ProbeGroup) -> bool:
    """arg0..argN: a function's arguments as integers, from registers or the context."""
    return group.provider.numbered_args


def provides_registers(group: ProbeGroup) -> bool:
    """The context starts with the interrupted pt_regs: kprobes and uprobes, and perf events
    (struct bpf_perf_event_data)."""
    return group.provider.context in (Context.PT_REGS, Context.PERF_SAMPLE)


def check_args(c, e):
    if not provides_args(c.group):
        c.error("The args builtin can only be used with tracepoint, rawtracepoint, "
                "kprobe, fentry and uprobe probes", e.span)
        return None
    return c.args_value(e)


def lower_args(g, e):
    """`args` as a value: its fields read one by one into a struct (semantic_kernel.args_value)."""
    t = g.type_of(e)
    buf = g.alloca(t.size, "args")
    g.zero(buf, t.size)
    for access, (_, offset, field) in zip(g.checked.args_values[e], t.fields):
        value = g.expr(access)
        if isinstance(field, T.StringType):
            g.copy(g.gep(buf, offset), field.size, value, field.size)
        else:
            g.store64(value, buf, offset)
    return buf


def check_numbered_arg(c, e):
    if not provides_numbered_args(c.group):
        c.error(f"The {e.name} builtin can only be used with kprobe, uprobe and usdt probes", e.span)
        return None
    why = c.group.provider.numbered_arg_error(c.group, int(e.name[3:]))
    if why:
        c.error(f"{e.name}: {why}", e.span)
        return None
    return UINT


def check_stack_arg(c, e):
    if c.group.provider.name not in ("kprobe", "uprobe"):
        c.error(f"The {e.name} builtin can only be used with kprobe and uprobe probes", e.span)
        return None
    return UINT


def lower_stack_arg(g, e):
    """sargN: the N-th argument passed on the stack (x86-64), the 8 bytes at sp + 8 * (N + 1)
    (the return address is at sp on entry), from user or kernel memory as the probe's."""
    sp = g.load_context(PT_REGS_OFFSETS["sp"])
    address = g.b.add(sp, g.constant(8 * (int(e.name[4:]) + 1)))
    read = BpfFunc.probe_read_user if g.program.group.provider.name == "uprobe" \
        else BpfFunc.probe_read_kernel
    buf = g.alloca(8, "sarg")
    g.helper(read, buf, g.constant(8), g.b.inttoptr(address, g.pointer_type))
    return g.load64(buf)


# The struct a probe's context points to, where the kernel's BTF names it.
CONTEXT_STRUCTS = {Context.PT_REGS: "pt_regs", Context.PERF_SAMPLE: "bpf_perf_event_data"}


def check_ctx(c, e):
    """ctx: the program's context pointer; `struct pt_regs *` and the like where the provider's
    context is one kernel struct, else a uint64 (tracepoint records, raw tracepoint arguments)."""
    struct = CONTEXT_STRUCTS.get(c.group.provider.context)
    if struct is None:
        return UINT
    kt = c.kernel_types(e.span)
    if kt is None:
        return None
    try:
        return kt.parse_type_name(f"struct {struct} *")
    except KernelTypeError as err:
        c.error(str(err), e.span)
        return None


def check_func(c, e):
    if not provides_function(c.group):
        c.error("The func builtin can only be used with kprobe, fentry and uprobe "
                "probes and their return probes", e.span)
        return None
    return T.StringType(max(len(function_name(p)) for p in c.group.points) + 1)


def lower_func(g, e):
    """A constant of the program; in one that several uprobes share through cookies (a uprobe_multi
    link), the name of the point whose cookie it runs with, found by binary search."""
    size = g.type_of(e).size
    if g.probe_value is None or len(g.program.points) == 1:
        return g.string_constant(function_name(g.point).encode(), size)
    by_cookie = sorted((p.cookie, function_name(p).encode()) for p in g.program.points)
    buf = g.alloca(size, "func")
    done = g.new_block("func_found")

    def search(lo: int, hi: int) -> None:
        if hi - lo == 1:
            padded = by_cookie[lo][1].ljust((size + 7) & ~7, b"\0")
            for off in range(0, len(padded), 8):
                g.store64(g.constant(int.from_bytes(padded[off:off + 8], "little")), buf, off)
            g.b.branch(done)
            return
        mid = (lo + hi) // 2
        below, above = g.new_block("func_below"), g.new_block("func_above")
        g.b.cbranch(g.b.icmp_unsigned("<", g.probe_value, g.constant(by_cookie[mid][0])), below,
                    above)
        g.b.position_at_end(below)
        search(lo, mid)
        g.b.position_at_end(above)
        search(mid, hi)

    search(0, len(by_cookie))
    g.b.position_at_end(done)
    return buf


def lower_probe(g, e):
    """A constant of the program (one per attach point), or, in a program shared by several, the
    value its syscall-number dispatch chose or the cookie its point was attached with."""
    return g.probe_value if g.probe_value is not None else g.constant(g.program.probe_id)


def check_usermode(c, e):
    if not provides_registers(c.group):
        c.error("The usermode builtin can only be used with kprobe, uprobe, profile and interval "
                "probes", e.span)
        return None
    return UINT


def lower_usermode(g, e):
    """1 when the registers the probe interrupted are user code's: ring 3 in cs's low bits."""
    ring = g.b.and_(g.load_context(CODE_SEGMENT), g.constant(3))
    return g.from_bool(g.b.icmp_unsigned("==", ring, g.constant(3)))


def check_reg(c, e):
    """reg("name"): a register of the interrupted code, by pt_regs's field name (x86-64: ip, sp,
    ax, di, ...), where the context is the registers (kprobe, uprobe, profile)."""
    (name,) = e.args
    if not isinstance(name, ast.String):
        c.error("reg() expects a string literal", name.span)
        return None
    c.set(name, T.StringType(len(name.value) + 1))
    if not provides_registers(c.group):
        c.error(f"The reg function cannot be used with '{c.group.provider.name}' probes", e.span)
        return None
    register = name.value.decode(errors="replace")
    if register not in PT_REGS_OFFSETS:
        c.error(f"'{register}' is not a valid register on this architecture", name.span)
        return None
    c.result.constants[e] = PT_REGS_OFFSETS[register]
    return UINT


BUILTINS = (
    # args.NAME is typed by pybpf.semantic_kernel; this entry is `args` as a value.
    identifier("args", check_args, lower_args, reads_context=True),
    identifier("argN", check_numbered_arg, lambda g, e: g.load_argument(int(e.name[3:])),
               pattern=r"arg\d+", reads_context=True),
    identifier("sargN", check_stack_arg, lower_stack_arg, pattern=r"sarg\d+", reads_context=True),
    # retval's type comes from the function's BTF: semantic_kernel and lower_kernel hold the rule.
    identifier("retval", lambda c, e: c.retval(e), lambda g, e: g.retval(e), reads_context=True),
    identifier("func", check_func, lower_func),
    identifier("probe", typed(T.ProbeType()), lower_probe),
    identifier("usermode", check_usermode, lower_usermode, reads_context=True),
    function("reg", (1, 1), check_reg, lambda g, e: g.load_context(g.checked.constants[e]),
             reads_context=True),
    identifier("ctx", check_ctx, lambda g, e: g.b.ptrtoint(g.ctx, g.integer_type(8)),
               reads_context=True),
)

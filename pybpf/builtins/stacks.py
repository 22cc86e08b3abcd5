"""Stacks and symbols: `kstack` and `ustack`, bare or as kstack(N), kstack(mode), kstack(mode, N),
as bpftrace's; ksym(addr) and usym(addr), named when printed; kaddr("name") and uaddr("name"),
resolved when the program compiles.

    @[kstack] = count();          @[ustack(perf, 5)] = count();          printf("%s", kstack);

The kernel records the frames in the program's stack-trace map (pybpf.program.STACKS_MAP) and gives
the program an id; the value is that id and, for a user stack, the pid whose mappings name the
frames (user addresses mean nothing without their process). The runtime symbolizes them when it
prints (pybpf.runtime.symbols).
"""

from __future__ import annotations

from pybpf import ast, facts
from pybpf import types as T
from pybpf.builtins.entry import function, identifier
from pybpf.builtins.formatted import check_integer_formatted, first_argument_as_record
from pybpf.checked import UINT
from pybpf.records import replace
from pybpf.program import STACKS_MAP
from pybpf.uapi.bpf import BPF_F_USER_STACK, PERF_MAX_STACK_DEPTH, BpfFunc

MODES = ("bpftrace", "perf", "raw")
KALLSYMS = "/proc/kallsyms"
KSYM = T.FormattedType("ksym")
USYM = T.FormattedType("usym", 16)         # the address, then the pid whose mappings name it


def check_stack_call(c, e):
    """kstack(N), kstack(mode), kstack(mode, N): mode a bare word, N a literal in 1..127; the
    stack_mode setting is the mode a call does not name."""
    mode, limit = c.stack_mode, PERF_MAX_STACK_DEPTH
    args = list(e.args)
    if args and isinstance(args[0], ast.Builtin):
        if args[0].name not in MODES:
            c.error(f"{e.name}: unknown stack mode '{args[0].name}' (expected one of "
                    f"{', '.join(MODES)})", args[0].span)
            return None
        mode = args.pop(0).name
    if args:
        n = args.pop(0)
        if not isinstance(n, ast.Integer) or not 0 < n.value <= PERF_MAX_STACK_DEPTH:
            c.error(f"{e.name}: the number of frames must be an integer literal from 1 to "
                    f"{PERF_MAX_STACK_DEPTH}", n.span)
            return None
        limit = n.value
    if args:
        c.error(f"{e.name}: expects ([mode,] [frames])", args[0].span)
        return None
    return T.StackType(e.name == "ustack", mode, limit)


def lower_stack(g, e):
    """Two u64: the id bpf_get_stackid returns (negative when the kernel could not record the
    stack: the runtime prints no frames then) and the pid, so user frames resolve by process."""
    user = g.type_of(e).user
    buf = g.alloca(16, "stack")
    stack_id = g.helper(BpfFunc.get_stackid, g.ctx, g.map_ptr(STACKS_MAP),
                        g.constant(BPF_F_USER_STACK if user else 0))
    g.store64(stack_id, buf)
    pid = g.b.lshr(g.helper(BpfFunc.get_current_pid_tgid), g.constant(32)) if user else \
        g.constant(0)
    g.store64(pid, buf, 8)
    return buf


def lower_usym(g, e):
    buf = g.alloca(16, "usym")
    g.store64(g.expr(e.args[0]), buf)
    g.store64(g.b.lshr(g.helper(BpfFunc.get_current_pid_tgid), g.constant(32)), buf, 8)
    return buf


def kernel_symbol(name: str) -> int | None:
    """The address /proc/kallsyms gives `name` (0 to those without CAP_SYSLOG), or None."""
    with open(KALLSYMS) as f:
        return next((int(parts[0], 16) for parts in map(str.split, f)
                     if len(parts) >= 3 and parts[2] == name), None)


def check_kaddr(c, e):
    """kaddr("name"): the address of a kernel symbol, read from /proc/kallsyms at compile time."""
    (name,) = e.args
    if not isinstance(name, ast.String):
        c.error("kaddr() expects a string literal", name.span)
        return None
    c.set(name, T.StringType(len(name.value) + 1))
    wanted = name.value.decode(errors="replace")
    try:
        found = kernel_symbol(wanted)
    except OSError as err:
        c.error(f"kaddr: cannot read {KALLSYMS}: {err.strerror}", e.span)
        return None
    if not found:       # absent, or zeros: kallsyms hides addresses from those without CAP_SYSLOG
        c.error(f"kaddr: no kernel symbol named '{wanted}'", name.span)
        return None
    c.result.constants[e] = found
    c.result.depends_on.add(facts.observe("boot"))     # KASLR moves it at the next boot
    return UINT


UADDR_PROVIDERS = ("uprobe", "uretprobe", "usdt")


def _site_offset(point) -> int:
    """The file offset a uprobe or usdt point fires at."""
    from pybpf import elfsym
    if point.provider == "usdt":
        return point.perf_event.config2
    path, func, offset = elfsym.parse_uprobe_target(point.target)
    return elfsym.uprobe_offset(path, func, offset)


def check_uaddr(c, e):
    """uaddr("name"): the address of a symbol of the probe's binary, as bpftrace's: a pointer to
    an unsigned integer of the symbol's size (1, 2, 4 or 8 bytes; uint64 otherwise), in the
    process's memory. In a PIE or a shared object the symbol moves with the load bias, which
    the program finds where it fires: bpf_get_func_ip (the probed address) minus the site's
    address in the file. Records, per attach point, (symbol address, site address or None)."""
    from pybpf import elfsym
    (name,) = e.args
    if c.group.provider.name not in UADDR_PROVIDERS:
        c.error(f'uaddr can not be used with "{c.group.provider.name}" probes', e.span)
        return None
    if not isinstance(name, ast.String):
        c.error("uaddr() expects a string literal", name.span)
        return None
    c.set(name, T.StringType(len(name.value) + 1))
    wanted = name.value.decode(errors="replace")
    found, sizes = {}, set()
    for point in c.group.points:
        path = point.target.partition(":")[0]
        try:
            address, size = elfsym.defined_symbol(path, wanted)
            site = elfsym.vaddr_of_offset(path, _site_offset(point)) \
                if elfsym.position_independent(path) else None
        except elfsym.SymbolError:
            c.error(f"Could not resolve symbol: {path}:{wanted}", e.span)
            return None
        found[point.name] = (address, site)
        sizes.add(size if size in (1, 2, 4, 8) else 8)
    if len(sizes) > 1:
        c.error(f"uaddr: '{wanted}' has different sizes in the probe's binaries", name.span)
        return None
    kt = c.kernel_types(e.span)
    if kt is None:
        return None
    c.result.constants[e] = found
    return replace(kt.parse_type_name(f"uint{sizes.pop() * 8} *"), user=True)


def lower_uaddr(g, e):
    """The symbol's file address, plus the load bias where the binary has one (the program is
    per attach point: pybpf.resources)."""
    address, site = g.checked.constants[e][g.point.name]
    if site is None:
        return g.constant(address)
    return g.b.add(g.helper(BpfFunc.get_func_ip, g.ctx), g.constant(address - site))


BUILTINS = (
    # Both need the context: bpf_get_stackid takes it (and a kernel stack is walked from its
    # registers: a raw tracepoint's start in the BPF program, a tracepoint's at the traced code).
    identifier("kstack", lambda c, e: T.StackType(False, c.stack_mode), lower_stack, reads_context=True),
    identifier("ustack", lambda c, e: T.StackType(True, c.stack_mode), lower_stack, reads_context=True),
    function("kstack", (0, 2), check_stack_call, lower_stack, reads_context=True),
    function("ustack", (0, 2), check_stack_call, lower_stack, reads_context=True),
    function("ksym", (1, 1), check_integer_formatted(KSYM), first_argument_as_record),
    function("usym", (1, 1), check_integer_formatted(USYM), lower_usym),
    function("kaddr", (1, 1), check_kaddr, lambda g, e: g.constant(g.checked.constants[e])),
    function("uaddr", (1, 1), check_uaddr, lower_uaddr),
)

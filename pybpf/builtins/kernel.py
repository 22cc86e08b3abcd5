"""The kernel's objects, reached through its BTF: percpu_kaddr("name"[, cpu]), a per-CPU
variable's address; and the helpers only BPF tracing programs (fentry/fexit, BTF tracepoints)
have: socket_cookie(sk), path(p[, size]) and skboutput(file, skb, length, offset).

    i:s:1 { $rq = percpu_kaddr("runqueues", 0); if ($rq != 0) { print($rq->nr_running); } }
    fentry:tcp_rcv_established { @[socket_cookie(args.sk)] = count(); }
    fentry:vfs_open { printf("%s\\n", path(args.path)); }
    rawtracepoint:netif_receive_skb { skboutput("in.pcap", args.skb, args.skb->len, 0); }

percpu_kaddr loads the variable's per-CPU offset with a ksym ld_imm64 (its BTF id) and asks
bpf_this_cpu_ptr or bpf_per_cpu_ptr for this or that CPU's copy, as bpftrace does. The verifier
finds the variable's address by name in kallsyms, which lists data symbols only with
CONFIG_KALLSYMS_ALL: without it (this VM's kernel) the program cannot load, and the rule says so
when it compiles.
"""

from __future__ import annotations

from pybpf import ast, facts
from pybpf import types as T
from pybpf.builtins.entry import function
from pybpf.builtins.stacks import kernel_symbol
from pybpf.checked import INT, UINT, is_int
from pybpf.program import SKB_OUTPUT_MAP
from pybpf.uapi.bpf import BPF_F_CTXLEN_SHIFT, BPF_F_CURRENT_CPU, BpfFunc, BpfProgType

PERCPU_SECTION = ".data..percpu"
PATH_PROVIDERS = ("fentry", "fexit")       # bpftrace adds iter, which pybpf has not


def check_percpu_kaddr(c, e):
    name = e.args[0]
    if not isinstance(name, ast.String):
        c.error("percpu_kaddr() expects a string literal", name.span)
        return None
    c.set(name, T.StringType(len(name.value) + 1))
    if len(e.args) == 2:
        t = c.expr(e.args[1])
        if t is None:
            return None
        if not is_int(t):
            c.error(f"percpu_kaddr() expects an integer CPU, got {t}", e.args[1].span)
            return None
    kt = c.kernel_types(e.span)
    if kt is None:
        return None
    wanted = name.value.decode(errors="replace")
    var = kt.btf.find(wanted, "var")
    section = kt.btf.find(PERCPU_SECTION, "datasec")
    if var is None or section is None or all(v.type_id != var.id for v in section.vars):
        c.error(f"percpu_kaddr: no per-CPU kernel variable named '{wanted}' in the kernel's BTF",
                name.span)
        return None
    try:
        listed = kernel_symbol(wanted) is not None
    except OSError as err:
        listed, why = False, f"which pybpf cannot read: {err.strerror}"
    else:
        why = "which lists data symbols only with CONFIG_KALLSYMS_ALL"
    if not listed:
        c.error(f"percpu_kaddr: the kernel cannot resolve '{wanted}': it is not in "
                f"/proc/kallsyms, {why}", name.span)
        return None
    c.result.constants[e] = var.id
    c.result.depends_on.add(facts.observe("boot"))      # the kernel's symbols, as kaddr's
    return kt.pointer_to(var.type_id)


def lower_percpu_kaddr(g, e):
    """This CPU's copy: never NULL. Another CPU's: NULL past the kernel's CPU ids, which a
    program must check before it reads through it (bpftrace's rule too)."""
    variable = g.kernel_variable(g.checked.constants[e])
    if len(e.args) == 1:
        return g.helper(BpfFunc.this_cpu_ptr, variable)
    cpu = g.b.and_(g.expr(e.args[1]), g.constant(0xFFFFFFFF))
    return g.helper(BpfFunc.per_cpu_ptr, variable, cpu)


def tracing_program(c, e) -> bool:
    """The helper exists only in BPF tracing programs: fentry/fexit, and rawtracepoint, which
    then loads as a BTF tracepoint (pybpf.providers.rawtracepoint). Elsewhere the verifier
    refuses the call, so it is refused first, at compile time, in bpftrace's words."""
    if c.group.provider.prog_type == BpfProgType.TRACING or c.group.provider.name == "rawtracepoint":
        return True
    c.error(f'{e.name} can not be used with "{c.group.provider.name}" probes', e.span)
    return False


def kernel_pointer_to(c, e, arg, struct: str, records: bool = False) -> bool:
    """arg is a pointer to kernel struct `struct` (const or not), or, `records`, such a struct in
    kernel memory, passed by its address (args.file->f_path)."""
    t = c.expr(arg)
    if t is None:
        return False
    kt = c.kernel_types(arg.span) if isinstance(t, (T.PointerType, T.RecordType)) else None
    record = kt.record_id(t) if kt is not None and not t.user else None
    if record is not None and (records or isinstance(t, T.PointerType)) and \
            f"struct {kt.btf.type(record).name}" == struct:
        return True
    c.error(f"{e.name}() only supports '{struct} *' as the argument ('{t}' provided)", arg.span)
    return False


def check_socket_cookie(c, e):
    if not tracing_program(c, e) or not kernel_pointer_to(c, e, e.args[0], "struct sock"):
        return None
    return UINT


def check_path(c, e):
    """path(p[, size]): the path of a `struct path` (a pointer, or a member such as
    args.file->f_path), up to size bytes (max_strlen by default) through bpf_d_path. The kernel
    takes it only in fentry/fexit programs of the functions it lists (btf_allowlist_d_path)."""
    if c.group.provider.name not in PATH_PROVIDERS:
        c.error("The path function can only be used with 'fentry', 'fexit', 'iter' probes", e.span)
        return None
    if not kernel_pointer_to(c, e, e.args[0], "struct path", records=True):
        return None
    size = c.string_size
    if len(e.args) == 2:
        size = c.constant_int(e.args[1])
        if size is None:
            return None
        if not 1 <= size <= c.string_size:
            c.error(f"path: size must be between 1 and {c.string_size} (max_strlen)",
                    e.args[1].span)
            return None
    return T.StringType(size)


def lower_path(g, e):
    size = g.type_of(e).size
    buf = g.alloca(size, "path")
    g.zero(buf, size)
    g.helper(BpfFunc.d_path, g.b.inttoptr(g.expr(e.args[0]), g.pointer_type), buf, g.constant(size))
    return buf


# skboutput's sample header: the file's index, the bytes to skip, the time (CLOCK_BOOTTIME ns),
# the bytes asked for; the packet's bytes follow it, then the perf record's padding (pybpf.runtime.pcap
# reads them).
SKB_HEADER_SIZE = 32


def check_skboutput(c, e):
    """skboutput("file", skb, length, offset): `length` bytes of the skb's data (its first
    `offset` bytes left out) written to a pcap file, as bpftrace's; an int: the helper's 0 or
    -errno."""
    path, skb, length, offset = e.args
    if not tracing_program(c, e):
        return None
    if not isinstance(path, ast.String) or not path.value:
        c.error("skboutput() expects a file name string literal", path.span)
        return None
    c.set(path, T.StringType(len(path.value) + 1))
    if not kernel_pointer_to(c, e, skb, "struct sk_buff"):
        return None
    for arg in (length, offset):
        t = c.expr(arg)
        if t is not None and not is_int(t):
            c.error(f"skboutput() expects integer length and offset, got {t}", arg.span)
            return None
    return INT


def lower_skboutput(g, e):
    """bpf_skb_output: the header, then `length` bytes of the skb, as one sample of this CPU's
    perf buffer (the kernel refuses a length past the skb's with -EFAULT)."""
    path, skb, length, offset = e.args
    header = g.alloca(SKB_HEADER_SIZE, "skb_header")
    g.store64(g.constant(g.plan.pcap_index[e]), header)
    g.store64(g.expr(offset), header, 8)
    g.store64(g.helper(BpfFunc.ktime_get_boot_ns), header, 16)
    size = g.b.and_(g.expr(length), g.constant(0xFFFFFFFF))
    g.store64(size, header, 24)
    flags = g.b.or_(g.b.shl(size, g.constant(BPF_F_CTXLEN_SHIFT)), g.constant(BPF_F_CURRENT_CPU))
    return g.helper(BpfFunc.skb_output, g.b.inttoptr(g.expr(skb), g.pointer_type),
                    g.map_ptr(SKB_OUTPUT_MAP), flags, header, g.constant(SKB_HEADER_SIZE))


BUILTINS = (
    function("percpu_kaddr", (1, 2), check_percpu_kaddr, lower_percpu_kaddr),
    function("socket_cookie", (1, 1), check_socket_cookie,
             lambda g, e: g.helper(BpfFunc.get_socket_cookie, g.expr(e.args[0])),
             tracing_program=True),
    function("path", (1, 2), check_path, lower_path),
    function("skboutput", (4, 4), check_skboutput, lower_skboutput,
             layout=lambda plan, checked, e: plan.add_pcap_file(
                 e, e.args[0].value.decode("utf-8", "surrogateescape")),
             tracing_program=True),
)

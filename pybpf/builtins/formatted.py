"""Values printed as text that user space makes (pybpf.types.FormattedType, rendered by
pybpf.runtime.formatters): strftime, strerror, syscall_name, username, macaddr, ntop, buf,
cgroup_path; and pton, which parses an address when the program compiles."""

from __future__ import annotations

from pybpf import ast
from pybpf import types as T
from pybpf.builtins.entry import function, identifier, typed
from pybpf.builtins.strings import longest_string
from pybpf.checked import UINT, is_int
from pybpf.uapi.bpf import BpfFunc
from pybpf.uapi.headers import ADDRESS_FAMILIES
from pybpf.uapi.unistd_64 import SYSCALL_NAMES

AF_INET, AF_INET6 = ADDRESS_FAMILIES["AF_INET"], ADDRESS_FAMILIES["AF_INET6"]

USERNAME = T.FormattedType("username")
STRERROR = T.FormattedType("strerror")
SYSCALL_NAME = T.FormattedType("syscall_name")
MACADDR = T.FormattedType("macaddr", 6)
INET = T.FormattedType("inet", 24)          # u64 address family, then 16 bytes of address
MAC_SIZE = 6


_SYSCALL_BY_NAME = {name: number for number, name in SYSCALL_NAMES.items()}


def syscall_number(name: str) -> int | None:
    """The number of the syscall syscall_name() prints as `name`."""
    return _SYSCALL_BY_NAME.get(name)


def integer_argument(c, e, arg) -> bool:
    t = c.expr(arg)
    if t is not None and not is_int(t):
        c.error(f"{e.name}() expects an integer, got {t}", arg.span)
        return False
    return t is not None


def as_record(g, value):
    """An integer as an 8-byte formatted value (a stack slot holding it)."""
    buf = g.alloca(8, "formatted")
    g.store64(value, buf)
    return buf


def first_argument_as_record(g, e):
    """strerror(errno), syscall_name(nr), ksym(addr), cgroup_path(id): the integer argument, named
    in user space."""
    return as_record(g, g.expr(e.args[0]))


def check_strftime(c, e):
    fmt, ns = e.args
    if not isinstance(fmt, ast.String):
        c.error("strftime() expects a format string literal", fmt.span)
        return None
    c.set(fmt, T.StringType(len(fmt.value) + 1))
    if not integer_argument(c, e, ns):
        return None
    return T.FormattedType("strftime", 8, fmt.value.decode("utf-8", errors="replace"))


def check_integer_formatted(t: T.FormattedType):
    return lambda c, e: t if integer_argument(c, e, e.args[0]) else None


def is_bytes(t) -> bool:
    """A string or an array of bytes (char[N]; unsigned char[N], __u8[N], (uint8[N])x): what
    ntop, macaddr and buf read as bytes."""
    return isinstance(t, T.StringType) or (isinstance(t, T.ArrayType) and
                                           isinstance(t.element, T.IntType) and t.element.size == 1)


def check_macaddr(c, e):
    """macaddr(x): the first six bytes of a string or byte array, or of an integer in memory
    order, or the six bytes a kernel pointer points to."""
    t = c.expr(e.args[0])
    if t is None:
        return None
    if is_bytes(t) and t.size < MAC_SIZE:
        c.error(f"macaddr() needs at least {MAC_SIZE} bytes, got {t}", e.args[0].span)
        return None
    if not (is_bytes(t) or is_int(t)):
        c.error(f"macaddr() expects a byte array, an integer or a pointer, got {t}", e.args[0].span)
        return None
    return MACADDR


def lower_macaddr(g, e):
    t = g.type_of(e.args[0])
    value = g.expr(e.args[0])
    buf = g.alloca(8, "macaddr")
    if is_bytes(t):
        g.copy(buf, 8, value, min(T.slot_size(t), 8))
    elif isinstance(t, T.PointerType):
        g.zero(buf, 8)
        g.helper(BpfFunc.probe_read_kernel, buf, g.constant(MAC_SIZE),
                 g.b.inttoptr(value, g.pointer_type))
    else:
        g.store64(value, buf)
    return buf


def check_ntop(c, e):
    """ntop([af,] addr): an integer is an IPv4 address (its 4 bytes in memory order), a 4- or
    16-byte array IPv4 or IPv6; af (AF_INET 2, AF_INET6 10) says which explicitly."""
    *family, addr = e.args
    af = None
    if family:
        af = c.constant_int(family[0])
        if af is None:
            return None
        if af not in (AF_INET, AF_INET6):
            c.error(f"ntop(): address family {af} is neither AF_INET (2) nor AF_INET6 (10)",
                    family[0].span)
            return None
    t = c.expr(addr)
    if t is None:
        return None
    if is_int(t):
        inferred = AF_INET
    elif is_bytes(t) and t.size in (4, 16):
        inferred = AF_INET if t.size == 4 else AF_INET6
    elif isinstance(t, T.FormattedType) and t.kind == "inet":
        inferred = None      # pton's: it carries its family
    else:
        c.error(f"ntop() expects an integer or a 4- or 16-byte array, got {t}", addr.span)
        return None
    if af == AF_INET6 and is_int(t):
        c.error("ntop(): an integer holds no IPv6 address", addr.span)
        return None
    c.result.constants[e] = af if af is not None else inferred
    return INET


def lower_ntop(g, e):
    addr = e.args[-1]
    t = g.type_of(addr)
    value = g.expr(addr)
    if isinstance(t, T.FormattedType):
        return value
    buf = g.alloca(INET.size, "inet")
    g.zero(buf, INET.size)
    g.store64(g.constant(g.checked.constants[e]), buf)
    if is_bytes(t):
        g.copy(g.gep(buf, 8), 16, value, T.slot_size(t))
    else:
        g.store64(g.b.and_(value, g.constant(0xFFFFFFFF)), buf, 8)
    return buf


def check_pton(c, e):
    """pton("addr"), parsed when the program compiles: an IPv4 address is the uint32 whose bytes
    in memory are the address (as a kernel __be32 field holds it), an IPv6 one an address value."""
    (text,) = e.args
    if not isinstance(text, ast.String):
        c.error("pton() expects a string literal", text.span)
        return None
    c.set(text, T.StringType(len(text.value) + 1))
    import ipaddress     # only here: ~2 ms to import for every compile
    try:
        address = ipaddress.ip_address(text.value.decode(errors="replace"))
    except ValueError:
        c.error(f"pton(): {text.value.decode(errors='replace')!r} is not an IPv4 or IPv6 address",
                text.span)
        return None
    c.result.constants[e] = address.packed
    return UINT if address.version == 4 else INET


def lower_pton(g, e):
    packed = g.checked.constants[e]
    if len(packed) == 4:
        return g.constant(int.from_bytes(packed, "little"))
    return g.string_constant(AF_INET6.to_bytes(8, "little") + packed, INET.size)


def check_buf(c, e):
    """buf(x, n): n bytes read from address x (n up to str()'s longest; a length known only at
    run time reads up to max_strlen), or of a string or byte array (n optional)."""
    most = longest_string(c)
    t = c.expr(e.args[0])
    if t is None:
        return None
    if not (is_int(t) or is_bytes(t)):
        c.error(f"buf() expects an address or a byte array, got {t}", e.args[0].span)
        return None
    if len(e.args) == 1:
        if not is_bytes(t):
            c.error("buf() of an address needs a length: buf(x, n)", e.span)
            return None
        size = c.result.constants[e] = t.size
    elif (n := c.fold(e.args[1])) is not None:
        if not 0 <= n <= most:
            c.error(f"buf() length must be between 0 and {most}", e.args[1].span)
            return None
        c.set(e.args[1], UINT)
        size = c.result.constants[e] = min(n, t.size) if is_bytes(t) else n
    else:
        if not integer_argument(c, e, e.args[1]):
            return None
        size = c.string_size if not is_bytes(t) else t.size
    return T.FormattedType("buf", 8 + size)


def lower_buf(g, e):
    t_arg = g.type_of(e.args[0])
    size = g.type_of(e).size - 8
    value = g.expr(e.args[0])
    buf = g.alloca(8 + size, "buf")
    g.zero(buf, 8 + size)
    length = g.constant(size)
    if e not in g.checked.constants:
        # A run-time length: at most the buffer's (the verifier needs the bound).
        wanted = g.expr(e.args[1])
        length = g.b.select(g.b.icmp_unsigned("<", wanted, length), wanted, length)
    g.store64(length, buf)
    if is_bytes(t_arg):
        g.copy(g.gep(buf, 8), size, value, min(T.slot_size(t_arg), (size + 7) & ~7))
    else:
        read = BpfFunc.probe_read_kernel if isinstance(t_arg, T.PointerType) else BpfFunc.probe_read
        g.helper(read, g.gep(buf, 8), length, g.b.inttoptr(value, g.pointer_type))
    return buf


def check_cgroup_path(c, e):
    """cgroup_path(id[, "filter"]): the paths of cgroup `id` in the mounted hierarchies whose
    names match the filter's wildcards (cgroup v2's is "unified"), found when printed."""
    if not integer_argument(c, e, e.args[0]):
        return None
    hierarchies = "*"
    if len(e.args) == 2:
        if not isinstance(e.args[1], ast.String):
            c.error("cgroup_path() expects a string literal filter", e.args[1].span)
            return None
        c.set(e.args[1], T.StringType(len(e.args[1].value) + 1))
        hierarchies = e.args[1].value.decode("utf-8", errors="replace")
    return T.FormattedType("cgroup_path", 8, hierarchies)


def lower_uid(g, e):
    uid = g.b.and_(g.helper(BpfFunc.get_current_uid_gid), g.constant(0xFFFFFFFF))
    return as_record(g, uid)


BUILTINS = (
    function("strftime", (2, 2), check_strftime, lambda g, e: as_record(g, g.expr(e.args[1]))),
    function("strerror", (1, 1), check_integer_formatted(STRERROR), first_argument_as_record),
    # bpftrace copies the name into a string[64] in the kernel; the number alone, named when
    # printed, costs one store and keeps the key 8 bytes
    function("syscall_name", (1, 1), check_integer_formatted(SYSCALL_NAME), first_argument_as_record),
    identifier("username", typed(USERNAME), lower_uid),
    function("macaddr", (1, 1), check_macaddr, lower_macaddr),
    function("ntop", (1, 2), check_ntop, lower_ntop),
    function("pton", (1, 1), check_pton, lower_pton),
    function("buf", (1, 2), check_buf, lower_buf),
    function("cgroup_path", (1, 2), check_cgroup_path, first_argument_as_record),
)

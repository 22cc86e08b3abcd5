"""Strings: str() reads or cuts one; strncmp() and strcontains() compare them in the kernel."""

from __future__ import annotations

from pybpf import ast, types as T
from pybpf.builtins.entry import function
from pybpf.checked import INT, is_int
from pybpf.diagnostics import Span
from pybpf.uapi.bpf import BpfFunc


def longest_string(c) -> int:
    """The longest str(x, n) and buf(x, n): four default strings, or max_strlen when larger."""
    return max(T.STRING_SIZE * 4, c.string_size)


def check_str(c, e):
    t = _check_str_argument(c, e)
    if t is None:
        return None
    size = c.string_size
    if len(e.args) == 2:
        n = c.constant_int(e.args[1])
        if n is None:
            return None
        most = longest_string(c)
        if not 1 <= n <= most:
            c.error(f"str() length must be between 1 and {most}", e.args[1].span)
            return None
        # n bytes, the NUL among them, as bpftrace 0.26: str(p, 5) -> "/etc" (0.17 kept n
        # characters and added the NUL)
        size = n
    if isinstance(t, T.StringType):
        return T.StringType(min(t.size, size)) if len(e.args) == 2 else t
    if not is_int(t):
        c.error(f"str() expects a pointer or a string, got {t}", e.args[0].span)
        return None
    # bpftrace's address spaces: a typed pointer keeps its own; an integer is an address in the
    # process where a cast of one would be (uprobes, usdt, a syscall tracepoint's arguments)
    if isinstance(t, T.PointerType):
        c.result.string_reads[e] = t.user
    elif c.casts_to_user():
        c.result.string_reads[e] = True
    return T.StringType(size)


def _check_str_argument(c, e):
    """str()'s first argument. A positional parameter there is its word (`str($1)`), and
    bpftrace reads `str($1 + K)` as the word from byte K on: a pointer into the text, to which
    only one constant up to its length may be added."""
    arg = e.args[0]
    if isinstance(arg, ast.Binary) and (isinstance(arg.left, ast.PositionalParam)
                                        or isinstance(arg.right, ast.PositionalParam)):
        return _check_param_suffix(c, arg)
    if not isinstance(arg, ast.PositionalParam) and any(
            isinstance(n, ast.PositionalParam) for n in ast.walk(arg)):
        c.error("str() only accepts positional parameters directly or with a single constant "
                "offset added", e.span)
        return None
    c.in_str_call = True        # str($1) reads a positional parameter as text
    try:
        return c.expr(arg)
    finally:
        c.in_str_call = False


def _check_param_suffix(c, b):
    param, offset = (b.left, b.right) if isinstance(b.left, ast.PositionalParam) else (b.right, b.left)
    text = c.param_text(param.index).encode("utf-8", "surrogateescape")
    if b.op != "+" or not isinstance(offset, ast.Integer) or not 0 <= offset.value <= len(text):
        c.error(f"only addition of a single constant less or equal to the length of "
                f"${param.index} (which is {len(text)}) is allowed inside str()",
                _operator_onwards(c, b))
        return None
    c.result.param_suffixes[b] = text[offset.value:]
    return c.set(b, T.StringType(len(text) - offset.value + 1))


def _operator_onwards(c, b) -> Span:
    """bpftrace's span of a bad offset: from the operator to the end of the right operand."""
    line = b.left.span.end_line
    column = c.diags.source.split("\n")[line - 1].find(b.op, b.left.span.end_column - 1) + 1
    if column == 0 or line != b.right.span.end_line:
        line, column = b.right.span.line, b.right.span.column
    return Span(line, column, b.right.span.end_line, b.right.span.end_column)


# str() of an address: the helper for its memory (pybpf.checked.CheckedScript.string_reads)
STRING_READS = {True: BpfFunc.probe_read_user_str, False: BpfFunc.probe_read_kernel_str,
                None: BpfFunc.probe_read_str}


def lower_str(g, e):
    t = g.type_of(e)
    arg_t = g.type_of(e.args[0])
    suffix = g.checked.param_suffixes.get(e.args[0])
    value = g.expr(e.args[0]) if suffix is None else g.string_constant(suffix, arg_t.size)
    buf = g.alloca(t.size, "str")
    if isinstance(arg_t, T.StringType):
        g.copy(buf, t.size, value, min(arg_t.size, t.size))
        if t.size < arg_t.size:
            # Slots copy 8 bytes at a time: terminate the cut string explicitly.
            g.b.store(g.constant(0, bits=8), g.gep(buf, t.size - 1))
        return buf
    g.zero(buf, t.size)
    g.helper(STRING_READS[g.checked.string_reads.get(e)], buf, g.constant(t.size),
             g.b.inttoptr(value, g.pointer_type))
    return buf


def string_arguments(c, e, count: int) -> bool:
    """The first `count` arguments are strings (each reported when not)."""
    ok = True
    for arg in e.args[:count]:
        t = c.expr(arg)
        if t is not None and not isinstance(t, T.StringType):
            c.error(f"{e.name}() expects string arguments, got {t}", arg.span)
            ok = False
        ok = ok and t is not None
    return ok


def check_strncmp(c, e):
    if not string_arguments(c, e, 2):
        return None
    n = c.constant_int(e.args[2])
    if n is None:
        return None
    if n < 0:
        c.error("strncmp() needs a length of at least 0", e.args[2].span)
        return None
    c.result.constants[e] = n
    return INT


def lower_strncmp(g, e):
    """0 when the strings agree up to their NUL or the first n bytes, 1 when they differ, as
    bpftrace (which reads no further than the shorter string either)."""
    a, b, _ = e.args
    equal = g.strings_equal(g.expr(a), g.type_of(a).size, g.expr(b), g.type_of(b).size,
                            g.checked.constants[e])
    return g.from_bool(g.b.not_(equal))


def check_strcontains(c, e):
    return INT if string_arguments(c, e, 2) else None


def lower_strcontains(g, e):
    """1 when the needle occurs in the haystack. A loop over the haystack's positions, each
    comparing the needle's bytes unrolled: (haystack size) x (needle size) compares at most,
    whatever the strings hold, and nothing on a probe that does not call it."""
    hay, needle = (g.expr(a) for a in e.args)
    hay_size, needle_size = (g.type_of(a).size for a in e.args)
    b = g.b
    found = g.alloca(8, "contains")
    position = g.alloca(8, "position")
    g.store64(g.constant(0), found)
    g.store64(g.constant(0), position)
    head, body, done = g.new_block("contains_at"), g.new_block("contains_cmp"), \
        g.new_block("contains_done")
    b.branch(head)
    b.position_at_end(head)
    pos = g.load64(position)
    b.cbranch(b.icmp_unsigned("<", pos, g.constant(hay_size)), body, done)
    b.position_at_end(body)
    mismatch, match = g.new_block("contains_next"), g.new_block("contains_found")
    for j in range(needle_size):
        want = b.load(g.gep(needle, j), typ=g.byte_type)
        at_end, more = g.branch_if(b.icmp_unsigned("==", want, g.constant(0, bits=8)),
                                   "needle_end", "needle_byte")
        b.position_at_end(at_end)
        b.branch(match)
        b.position_at_end(more)
        index = b.add(pos, g.constant(j))
        inside = g.new_block("hay_byte")
        b.cbranch(b.icmp_unsigned("<", index, g.constant(hay_size)), inside, mismatch)
        b.position_at_end(inside)
        got = b.load(g.byte_at(hay, index), typ=g.byte_type)
        same = g.new_block("same_byte")
        if j == 0:
            # The haystack ends at its NUL: what follows it is not searched.
            differ = g.new_block("first_byte_differs")
            b.cbranch(b.icmp_unsigned("==", got, want), same, differ)
            b.position_at_end(differ)
            b.cbranch(b.icmp_unsigned("==", got, g.constant(0, bits=8)), done, mismatch)
        else:
            b.cbranch(b.icmp_unsigned("==", got, want), same, mismatch)
        b.position_at_end(same)
    b.branch(match)     # every byte of a needle without a NUL matched
    b.position_at_end(match)
    g.store64(g.constant(1), found)
    b.branch(done)
    b.position_at_end(mismatch)
    g.store64(b.add(pos, g.constant(1)), position)
    b.branch(head)
    b.position_at_end(done)
    return g.load64(found)


BUILTINS = (
    function("str", (1, 2), check_str, lower_str),
    function("strncmp", (3, 3), check_strncmp, lower_strncmp),
    function("strcontains", (2, 2), check_strcontains, lower_strcontains),
)

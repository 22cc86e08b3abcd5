"""The syntax tree: every node a frozen, slotted record with identity and a source span.

    tracepoint:syscalls:sys_enter_openat /pid > 1/ { @[comm] = count(); }

    Script(probes=(Probe(attach_points=(AttachPointText('tracepoint:syscalls:sys_enter_openat'),),
                          predicate=Binary('>', Builtin('pid'), Integer(1)),
                          body=(Assign(Map('@', (Builtin('comm'),)), None, Call('count', ())),)),))

Types are not stored here: the type checker keeps them in a side table keyed by node.
"""

from __future__ import annotations

from pybpf.diagnostics import Span
from pybpf.records import record

# Frozen and slotted, compared by identity (the checker's side tables are keyed by node); a
# pybpf.records record rather than a @dataclass: 36 classes cost ~15 ms to make with dataclasses.
node = record(frozen=True, slots=True, eq=False)


# Expressions ---------------------------------------------------------------------------------

@node
class Integer:
    value: int
    span: Span


@node
class String:
    value: bytes          # escapes decoded, no terminating NUL
    span: Span


@node
class Builtin:
    name: str             # pid, comm, nsecs, args, probe, ...
    span: Span


@node
class PositionalParam:
    index: int            # $1 -> 1; $# is ParamCount
    span: Span


@node
class ParamCount:
    span: Span


@node
class Variable:
    name: str             # with the '$'
    span: Span


@node
class Map:
    name: str             # with the '@'; '@' alone is the anonymous map
    keys: tuple["Expr", ...] | None   # None: no brackets (scalar map)
    span: Span


@node
class Call:
    name: str
    args: tuple["Expr", ...]
    span: Span


@node
class FieldAccess:
    base: "Expr"
    field: str
    arrow: bool           # '->' rather than '.'
    span: Span


@node
class TupleIndex:
    base: "Expr"
    index: int
    span: Span


@node
class Index:
    base: "Expr"              # an array, or a tuple with a constant index
    index: "Expr"
    span: Span


@node
class Binary:
    op: str
    left: "Expr"
    right: "Expr"
    span: Span


@node
class Unary:
    op: str               # '!', '~', '-', '+'
    operand: "Expr"
    span: Span


@node
class IncDec:
    op: str               # '++' or '--'
    prefix: bool
    target: "Expr"        # Variable or Map
    span: Span


@node
class Ternary:
    cond: "Expr"
    then: "Expr"
    otherwise: "Expr"
    span: Span


@node
class Cast:
    type_name: str        # 'struct task_struct *', 'uint32'
    operand: "Expr"
    span: Span


@node
class Deref:
    operand: "Expr"           # *ptr
    span: Span


@node
class AddressOf:
    operand: "Expr"           # &ptr->field, &*ptr
    span: Span


@node
class SizeOf:
    type_name: str | None     # sizeof(TYPE) ...
    operand: "Expr | None"    # ... or sizeof(expr)
    span: Span


@node
class OffsetOf:
    type_name: str
    fields: tuple[str, ...]   # offsetof(struct s, a.b) -> ('a', 'b')
    span: Span


@node
class Tuple:
    elements: tuple["Expr", ...]
    span: Span
    # A record, (a=1, b="x"): each element's field name ("" for one without a name, which the
    # checker refuses beside named ones) and the span of that name; () for a plain tuple.
    names: tuple[str, ...] = ()
    name_spans: tuple[Span, ...] = ()


Expr = (Integer | String | Builtin | PositionalParam | ParamCount | Variable | Map | Call
        | FieldAccess | TupleIndex | Index | Binary | Unary | IncDec | Ternary | Tuple | Cast | Deref
        | AddressOf | SizeOf | OffsetOf)


# Statements ----------------------------------------------------------------------------------

@node
class ExprStatement:
    expr: Expr
    span: Span


@node
class Assign:
    target: Variable | Map
    op: str | None        # None for '=', '+' for '+=', ...
    value: Expr
    span: Span


@node
class If:
    cond: Expr
    then: tuple["Statement", ...]
    otherwise: tuple["Statement", ...]
    span: Span


@node
class While:
    cond: Expr
    body: tuple["Statement", ...]
    span: Span


@node
class Unroll:
    count: Expr
    body: tuple["Statement", ...]
    span: Span


@node
class VarDecl:
    """`let $x;`, `let $x: uint16 = e;`: a variable of the innermost block, zero until assigned."""
    var: Variable
    type_name: str | None     # 'uint16', or None: typed by its assignments
    value: Expr | None
    span: Span


@node
class ForRange:
    """`for ($i : start..end) { }`: start and end are evaluated once; end is excluded."""
    var: Variable
    start: Expr
    end: Expr
    body: tuple["Statement", ...]
    span: Span


@node
class ForMap:
    """`for ($kv : @m) { }`: $kv is (key, value) for each element."""
    var: Variable
    map: Map
    body: tuple["Statement", ...]
    span: Span


@node
class Jump:
    kind: str             # 'return', 'break', 'continue'
    span: Span


Statement = ExprStatement | Assign | VarDecl | If | While | Unroll | ForRange | ForMap | Jump


# Probes --------------------------------------------------------------------------------------

@node
class AttachPointText:
    text: str             # as written: 't:syscalls:sys_enter_open*', 'BEGIN'
    span: Span


@node
class Probe:
    attach_points: tuple[AttachPointText, ...]
    predicate: Expr | None
    body: tuple[Statement, ...]
    span: Span


@node
class ConfigItem:
    """`name = value` in the preamble's `config = { ... }` block (pybpf.settings)."""
    name: str
    value: int | str      # an integer literal, or a word or string as written
    span: Span


@node
class Macro:
    """`macro name($var, @map, expr) { ... }`, expanded where it is called (pybpf.macros)."""
    name: str
    params: tuple[str, ...]     # '$a' a variable, '@m' a map, 'x' any expression
    body: tuple[Statement, ...]
    span: Span
    hygienic: bool = True       # False for a #define: its body may name the caller's variables


@node
class CDefinition:
    """`struct NAME { ... };`, `union`, `enum` or `typedef ... NAME;` in the preamble (pybpf.cdefs)."""
    kind: str             # 'struct', 'union', 'enum', 'typedef'
    name: str
    text: str             # the whole definition, as written
    span: Span


@node
class Script:
    probes: tuple[Probe, ...]
    span: Span
    config: tuple[ConfigItem, ...] = ()
    macros: tuple[Macro, ...] = ()
    includes: tuple[str, ...] = ()      # the headers of its #include lines: 'linux/sched.h'
    c_definitions: tuple[CDefinition, ...] = ()
    # Its #defines as written, (head, body), head `NAME` or `NAME(a, b)`: the constants and macros
    # its C definitions may use.
    defines: tuple[tuple[str, str], ...] = ()


def is_node(value) -> bool:
    """Whether value is a node of this tree (rather than a span, a string, a tuple...)."""
    return type(value).__module__ == __name__ and hasattr(value, "_fields")


def children(n) -> tuple:
    """The direct child nodes of n, in source order (for generic walks)."""
    out = []
    for name in n.__slots__:
        value = getattr(n, name)
        if isinstance(value, tuple):
            out.extend(v for v in value if hasattr(v, "span"))
        elif hasattr(value, "span") and name != "span":
            out.append(value)
    return tuple(out)


def walk(n):
    """n and every node below it, depth first, in source order. A stack, not recursion: nested
    generators would cost the depth for every node (and the recursion limit on deep programs)."""
    stack = [n]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


def reads_builtin(n, *names: str) -> bool:
    """Whether n or a node below it reads one of these builtins (`probe`, `func`, ...)."""
    return any(isinstance(m, Builtin) and m.name in names for m in walk(n))

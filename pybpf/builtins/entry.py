"""What one builtin is: its name, kind, arity, type rule and lowering."""

from __future__ import annotations

import enum
import re

from pybpf import types as T
from pybpf.program import MapKind
from pybpf.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:     # typing is not imported to compile (~2 ms); the aliases are for type checkers
    from collections.abc import Callable
    from typing import Any, TypeAlias

    # A type rule: (type checker, node) -> the node's type, or None after reporting an error.
    Rule: TypeAlias = Callable[[Any, Any], "T.Type | None"]
    # A lowering: (function builder, node) -> the node's ir.Value (pointers for strings and tuples).
    Lowering: TypeAlias = Callable[[Any, Any], Any]
    # A layout: (resource plan, checked program, call) -> None; records what the call needs in the
    # compiled program (a printf format, a time format), for the lowering and the runtime to find.
    Layout: TypeAlias = Callable[[Any, Any, Any], None]


class Kind(enum.Enum):
    IDENTIFIER = "identifier"   # pid, comm, arg0
    FUNCTION = "function"       # str(p), printf("...")


@record(frozen=True)
class Builtin:
    name: str
    kind: Kind
    check: Rule
    lower: Lowering | None       # None: never a value (args is read only as args.NAME)
    # Functions: (least, most) arguments, checked before the rule runs with one message for all;
    # None when the rule counts them itself (printf). Identifiers take none.
    arity: tuple[int, int] | None = None
    # Identifiers that are a family of names (arg0, arg1, ...): the names this entry answers.
    pattern: re.Pattern | None = None
    layout: Layout | None = None
    # Refused unless the user passed --unsafe (system, signal): what it does reaches past tracing.
    unsafe: bool = False
    # Reads the program's context (args, ctx, the registers kstack and ustack start from): a
    # tracepoint probe that reads none may run as a raw tracepoint program instead
    # (pybpf.resources), and a for-loop over a map refuses it, its body running in a callback
    # that has no context (as bpftrace refuses it).
    reads_context: bool = False
    # Its helper exists only in BPF tracing programs (socket_cookie): a rawtracepoint block that
    # calls it loads as a BTF tracepoint (pybpf.resources).
    tracing_program: bool = False


@record(frozen=True)
class Aggregation:
    """count(), sum(v), hist(v), ...: called only as `@m[k] = name(args)`. The call types the map
    (its kind and, for lhist, its buckets); the map kind lowers the update (lower_maps.aggregate).
    check(checker, call, map node, map_kind) reports bad arguments or assigns the map. The map
    kind names the function: count() gives a MapKind.COUNT map."""
    map_kind: MapKind
    arity: int
    check: Callable[[Any, Any, Any, MapKind], None]
    optional: int = 0            # arguments that may follow the `arity` required ones (hist's k)

    @property
    def name(self) -> str:
        return self.map_kind.value


def identifier(name: str, check: Rule, lower: Lowering, pattern: str | None = None,
               reads_context: bool = False) -> Builtin:
    return Builtin(name, Kind.IDENTIFIER, check, lower,
                   pattern=re.compile(pattern) if pattern else None, reads_context=reads_context)


def function(name: str, arity: tuple[int, int] | None, check: Rule, lower: Lowering,
             layout: Layout | None = None, unsafe: bool = False,
             reads_context: bool = False, tracing_program: bool = False) -> Builtin:
    return Builtin(name, Kind.FUNCTION, check, lower, arity, layout=layout, unsafe=unsafe,
                   reads_context=reads_context, tracing_program=tracing_program)


def typed(t: T.Type) -> Rule:
    """The rule of a builtin whose type never varies."""
    return lambda checker, node: t

"""Compiling on a stack deep enough for the deepest program the parser accepts.

    compiled = on_deep_stack(compile_cached, source, filename, options)

The compiler's passes recurse once per level of the program's tree, and the parser accepts as
many levels as the recursion limit allows (pybpf.parser.nesting_limit), up to MAX_NESTING
(10,000): this limit allows all of them. Measured at that depth (sums, nested ifs, casts, unary
chains): under 30,000 Python frames and 16 MiB of C stack; the main thread's 8 MiB would overflow
first. The CLI and the library (pybpf.compile) both compile through here, so a deep program is
the same diagnostic for both.
"""

from __future__ import annotations

import sys
import threading

TYPE_CHECKING = False       # typing costs ~2 ms at every start; only type checkers read these
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    Result = TypeVar("Result")

COMPILE_RECURSION_LIMIT = 50_000
COMPILE_STACK_SIZE = 64 << 20


def on_deep_stack(compile_fn: Callable[..., Result], *args: Any) -> Result:
    """compile_fn(*args) in a thread whose stack and recursion limit take the deepest program;
    its exception is re-raised in the caller."""
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, compile_fn(*args)))
        except BaseException as e:          # handed to the caller as it is
            outcome.append((False, e))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, COMPILE_RECURSION_LIMIT))
    stack_size = threading.stack_size(COMPILE_STACK_SIZE)
    try:
        thread = threading.Thread(target=run, name="pybpf-compile", daemon=True)
        thread.start()
        thread.join()
    finally:
        threading.stack_size(stack_size)
        sys.setrecursionlimit(limit)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value

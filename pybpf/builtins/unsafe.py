"""Functions with effects beyond tracing, refused without --unsafe (pybpf.semantic checks the
entries' `unsafe`): system() runs a command in user space, signal() signals the traced process,
override(rc) makes the probed kernel function return rc without running."""

from __future__ import annotations

import signal as signals

from pybpf import ast
from pybpf.builtins.entry import function
from pybpf.builtins.formatted import integer_argument
from pybpf.builtins.output import check_printf, layout_printf, printf_event
from pybpf.checked import VOID, is_int
from pybpf.program import EventKind
from pybpf.uapi.bpf import BpfFunc

# As bpftrace: the probes where the current task is the traced one (not BEGIN, END or interval).
SIGNAL_PROVIDERS = ("kprobe", "kretprobe", "uprobe", "uretprobe", "usdt", "profile")


def signal_number(name: str) -> int | None:
    """'SIGKILL', 'KILL' -> 9; None for a name that is no signal."""
    name = name.upper()
    try:
        return int(signals.Signals[name if name.startswith("SIG") else "SIG" + name])
    except KeyError:
        return None


def check_signal(c, e):
    if c.group.provider.name not in SIGNAL_PROVIDERS:
        c.error(f'signal can not be used with "{c.group.provider.name}" probes', e.span)
        return None
    (arg,) = e.args
    if isinstance(arg, ast.String):
        number = signal_number(arg.value.decode(errors="replace"))
        if number is None:
            c.error(f"signal: invalid signal name {arg.value.decode(errors='replace')!r}", arg.span)
            return None
        c.set(arg, VOID)
        c.result.constants[e] = number
        return VOID
    t = c.expr(arg)
    if t is not None and not is_int(t):
        c.error(f"signal() expects a signal name or number, got {t}", arg.span)
        return None
    number = c.fold(arg)
    if number is not None and not 1 <= number < signals.NSIG:
        c.error(f"signal: {number} is not a valid signal number", arg.span)
        return None
    return VOID


def lower_signal(g, e):
    """bpf_send_signal: the signal goes to the current task's process when the probe returns."""
    number = g.checked.constants.get(e)
    value = g.constant(number) if number is not None else g.expr(e.args[0])
    g.helper(BpfFunc.send_signal, g.b.and_(value, g.constant(0xFFFFFFFF)))
    return g.constant(0)


def check_override(c, e):
    """override(rc), bpftrace's: kprobes only; the kernel allows it on functions marked
    ALLOW_ERROR_INJECTION, with CONFIG_BPF_KPROBE_OVERRIDE (it refuses the attach otherwise)."""
    if c.group.provider.name != "kprobe":
        c.error("override can only be used with kprobes.", e.span)
        return None
    return VOID if integer_argument(c, e, e.args[0]) else None


def lower_override(g, e):
    g.helper(BpfFunc.override_return, g.ctx, g.expr(e.args[0]))
    return g.constant(0)


BUILTINS = (
    # The command runs in user space when its record is read (pybpf.runtime.command).
    function("system", None, check_printf, printf_event(EventKind.SYSTEM), layout_printf,
             unsafe=True),
    function("signal", (1, 1), check_signal, lower_signal, unsafe=True),
    function("override", (1, 1), check_override, lower_override, unsafe=True, reads_context=True),
)

"""What `pybpf -l` and `-lv` print for tracepoints, raw tracepoints and kernel functions.

    describe_probe("tracepoint:syscalls:sys_enter_openat")
    # ['    int __syscall_nr', '    int dfd', '    const char * filename', '    int flags', '    umode_t mode']
    describe_probe("rawtracepoint:sched_switch")
    # ['    bool preempt', '    struct task_struct * prev', '    struct task_struct * next', ...]
    describe_probe("fexit:vfs_read")
    # ['    struct file * file', '    char * buf', '    size_t count', '    loff_t * pos', '    ssize_t retval']
    list_btf_probes("rawtracepoint", "sched_*")
    # ['rawtracepoint:sched_kthread_stop', ...]

describe_probe gives the argument lines printed under the probe's name, as bpftrace -lv prints them:
tracepoint fields are the format file's declarations as written there (common_* fields left out),
BTF arguments are `TYPE NAME` with the C type spelled by pybpf.btf (`struct file * file`). Probes with
no typed arguments (kprobe) have none. Short provider names (`t:`, `rt:`, `f:`, `kfunc:` ...) work.
"""

from __future__ import annotations

import fnmatch
import os
import re

from pybpf import btf as _btf
from pybpf import elfsym
from pybpf import tracefs
from pybpf.probes import PROVIDER_ALIASES

AVAILABLE_FILTER_FUNCTIONS = "available_filter_functions"     # in tracefs: what kprobes can attach to

_FIELD_DECL = re.compile(r"^\s*field:(?P<decl>[^;]+);", re.M)
_DECL_NAME = re.compile(r"(?P<name>[A-Za-z_]\w*)\s*(\[[^\]]*\])?\s*$")


class ListingError(Exception):
    """The probe does not exist, or its provider has nothing to describe."""


def _split(name: str) -> tuple[str, str]:
    head, sep, target = name.partition(":")
    provider = PROVIDER_ALIASES.get(head)
    if not sep or provider is None:
        raise ListingError(f"not a probe name: {name!r}")
    return provider, target


def _btf_for(target: str) -> tuple[_btf.Btf, str]:
    """The BTF holding `FUNC` (vmlinux) or `MODULE:FUNC` (the module's split BTF), and the bare name."""
    module, sep, func = target.rpartition(":")
    if not sep or module == "vmlinux":
        return _btf.vmlinux(), func
    return _btf.module(module), func


def _arg_line(btf: _btf.Btf, type_id: int, name: str) -> str:
    return f"    {btf.c_name(type_id)} {name}"


def tracepoint_fields(category: str, name: str) -> list[str]:
    """The non-common field declarations of a tracepoint's format file, as written there."""
    path = os.path.join(tracefs.root(), "events", category, name, "format")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise ListingError(f"tracepoint not found: {category}:{name}") from None
    lines = []
    for m in _FIELD_DECL.finditer(text):
        decl = " ".join(m["decl"].split())
        field_name = _DECL_NAME.search(decl.replace("[]", ""))
        if field_name and field_name["name"].startswith("common_"):
            continue
        lines.append(f"    {decl}")
    return lines


def describe_probe(name: str) -> list[str]:
    """The argument lines `-lv` prints under a probe's name (without the name itself)."""
    provider, target = _split(name)
    try:
        if provider == "tracepoint":
            category, sep, event = target.partition(":")
            if not sep:
                raise ListingError(f"{name}: a tracepoint is CATEGORY:NAME")
            return tracepoint_fields(category, event)
        if provider == "rawtracepoint":
            btf, tp = _btf_for(target)
            return [_arg_line(btf, p.type_id, p.name) for p in btf.tracepoint_args(tp)]
        if provider in ("fentry", "fexit"):
            btf, func = _btf_for(target)
            lines = [_arg_line(btf, p.type_id, p.name) for p in btf.func_args(func)]
            if provider == "fexit":
                ret = btf.func_return(func)
                if ret:                    # a void function has no retval
                    lines.append(_arg_line(btf, ret, "retval"))
            return lines
    except (_btf.BtfError, tracefs.TracefsError) as e:
        raise ListingError(f"{name}: {e}") from None
    if provider in ("kprobe", "kretprobe", "uprobe", "uretprobe"):
        return []                  # untyped: arg0..argN, retval
    raise ListingError(f"{name}: -lv does not describe {provider} probes")


def _kprobe_functions() -> list[str] | None:
    """Functions ftrace (hence kprobes) can attach to, or None when tracefs does not tell (unmounted,
    or unreadable: this machine's lockdown refuses the read)."""
    try:
        with open(os.path.join(tracefs.root(), AVAILABLE_FILTER_FUNCTIONS)) as f:
            return sorted({line.split()[0] for line in f if line.strip()})
    except (OSError, tracefs.TracefsError):
        return None


def list_btf_probes(provider: str, pattern: str = "*") -> list[str]:
    """Probe names `PROVIDER:NAME` matching a shell pattern: raw tracepoints (every btf_trace_NAME
    typedef), fentry/fexit functions (BTF FUNCs), kprobe/kretprobe functions
    (available_filter_functions when readable, else the BTF FUNCs). Sorted, vmlinux only. For uprobe and
    uretprobe the pattern is BINARY:FUNC_PATTERN ('bash:read*'): pybpf.elfsym.list_uprobes."""
    canonical = PROVIDER_ALIASES.get(provider)
    if canonical in ("uprobe", "uretprobe"):
        try:
            return elfsym.list_uprobes(pattern, canonical)
        except elfsym.SymbolError as e:
            raise ListingError(str(e)) from None
    btf = _btf.vmlinux()
    if canonical == "rawtracepoint":
        names = btf.list_names("rawtracepoint", pattern)
    elif canonical in ("fentry", "fexit"):
        names = btf.list_names("func", pattern)
    elif canonical in ("kprobe", "kretprobe"):
        functions = _kprobe_functions()
        names = ([f for f in functions if fnmatch.fnmatchcase(f, pattern)] if functions is not None
                 else btf.list_names("func", pattern))
    else:
        raise ListingError(f"{provider!r} probes are not listed from BTF")
    return [f"{canonical}:{n}" for n in names]

"""`pybpf -l [PATTERN]` and `-lv`: each provider lists and describes its own probes
(pybpf.providers); this module reads the pattern and picks the providers.

    list_probes("t:syscalls:sys_enter_open*")    # ['tracepoint:syscalls:sys_enter_open', ...]
    list_probes("rt:sched_*")                    # ['rawtracepoint:sched_kthread_stop', ...]
    describe_probe("tracepoint:syscalls:sys_enter_openat")
    # ['    int __syscall_nr', '    int dfd', '    const char * filename', '    int flags', '    umode_t mode']
    describe_probe("fexit:vfs_read")
    # ['    struct file * file', '    char * buf', '    size_t count', '    loff_t * pos', '    ssize_t retval']

describe_probe gives the argument lines printed under the probe's name, as bpftrace -lv prints them:
tracepoint fields are the format file's declarations as written there (common_* fields left out),
BTF arguments are `TYPE NAME` with the C type spelled by pybpf.btf (`struct file * file`). Probes with
no typed arguments (kprobe) have none. Short provider names (`t:`, `rt:`, `f:`, `kfunc:` ...) work.
"""

from __future__ import annotations

import fnmatch

from pybpf import providers
from pybpf.providers.base import ListingError, has_wildcard

__all__ = ["ListingError", "describe_probe", "describe_type", "list_probes"]

RECORD_KINDS = ("struct", "union")


def list_probes(pattern: str | None = None) -> list[str]:
    """Every listable probe whose full name matches the pattern. A pattern that names its provider
    asks that provider; otherwise the providers listed by default (tracepoints: kernel functions
    and raw tracepoints number tens of thousands) are filtered, a bare word as `*word*`."""
    head, sep, rest = (pattern or "").partition(":")
    provider = providers.find(head) if sep else None
    if provider is not None:
        return provider.list_probes(rest or "*")
    names = [name for p in providers.PROVIDERS if p.listed_by_default for name in p.list_probes("*")]
    if not pattern:
        return names
    if not sep and not has_wildcard(pattern):
        pattern = f"*{pattern}*"
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def describe_probe(name: str) -> list[str]:
    """The argument lines `-lv` prints under a probe's name (without the name itself)."""
    head, sep, target = name.partition(":")
    provider = providers.find(head)
    if not sep or provider is None:
        raise ListingError(f"not a probe name: {name!r}")
    return provider.describe(target)


def describe_type(name: str) -> list[str]:
    """`-lv 'struct task_struct'`: the kernel type's members from BTF, as bpftrace prints it
    (`struct list_head {`, a tab and `struct list_head *next;` per member, `};`)."""
    from pybpf.btf import Btf, BtfError

    kind, _, record = name.partition(" ")
    btf = Btf.load()
    type_id = btf.find_id(record.strip(), kind)
    if type_id is None:
        raise ListingError(f"no {kind} {record.strip()!r} in the kernel's BTF")
    try:
        lines = [f"\t{btf.declaration(m.type_id, m.name)}"
                 f"{f':{m.bitfield_size}' if m.bitfield_size else ''};" for m in btf.members(type_id)]
    except BtfError as e:
        raise ListingError(str(e)) from None
    return [f"{kind} {record.strip()} {{", *lines, "};", ""]

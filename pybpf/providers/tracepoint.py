"""tracepoint:CATEGORY:NAME (`t:`), wildcards in both: a TRACEPOINT program whose context is the
record the tracepoint's format file lays out, which `args.NAME` reads (pybpf.tracefs).

    t:syscalls:sys_enter_openat { printf("%s\\n", str(args.filename)); }
"""

from __future__ import annotations

import fnmatch
import os
import re

from pybpf import tracefs
from pybpf.program import AttachPoint
from pybpf.providers.base import (Args, Context, ListingError, ProbeGroup, ProbeNotFound, Provider,
                                  has_wildcard)
from pybpf.uapi.bpf import BpfProgType

SYSCALLS_CATEGORY = "syscalls"
_FIELD_DECL = re.compile(r"^\s*field:(?P<decl>[^;]+);", re.M)
_DECL_NAME = re.compile(r"(?P<name>[A-Za-z_]\w*)\s*(\[[^\]]*\])?\s*$")


def expand_tracepoints(category: str, name: str) -> list[tuple[str, str]]:
    if not has_wildcard(category + name):
        return [(category, name)]
    return [(c, n) for c, n in tracefs.list_tracepoints()
            if fnmatch.fnmatchcase(c, category) and fnmatch.fnmatchcase(n, name)]


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


def raw_tracepoint_points(points: list[AttachPoint]) -> set[AttachPoint]:
    """The points that have a raw tracepoint: the kernel's tracepoint NAME, which fires at the same
    place handing BPF its arguments instead of the record. A program that does not read the record
    may attach there (pybpf.resources): closing a raw tracepoint link takes ~0.2 ms, a tracepoint's
    perf event ~40 ms. Those whose NAME has a `btf_trace_NAME` typedef in vmlinux's BTF and names no
    other tracefs event; syscalls:* (not tracepoints of their own, and known without loading BTF)
    and modules' stay perf events."""
    candidates = {point: point.target.partition(":")[2] for point in points
                  if not point.target.startswith(SYSCALLS_CATEGORY + ":")}
    if not candidates:
        return set()
    from pybpf.btf import strings_with_prefix

    counts: dict[str, int] = {}
    for _, name in tracefs.list_tracepoints():
        counts[name] = counts.get(name, 0) + 1
    # one scan of the BTF's strings, ~5 ms; listing the typedefs needs the type index (~0.15 s cold)
    typed = strings_with_prefix("btf_trace_")
    return {point for point, name in candidates.items() if counts.get(name) == 1 and name in typed}


class TracepointFormats(dict):
    """A group's tracepoint formats by point name, each read from tracefs when first asked for:
    a block that reads no `args` needs none (`tracepoint:*:*` has 2,300 format files)."""

    def __init__(self):
        super().__init__()
        self.events: dict[str, tuple[str, str]] = {}      # point name -> (category, name)

    def __missing__(self, point_name: str) -> tracefs.TracepointFormat:
        fmt = self[point_name] = tracefs.read_format(*self.events[point_name])
        return fmt


class Tracepoint(Provider):
    name = "tracepoint"
    spellings = ("tracepoint", "t")
    context = Context.TRACEPOINT_RECORD
    args = Args.TRACEPOINT_FORMAT
    prog_type = BpfProgType.TRACEPOINT
    section = "tracepoint"
    attach_kind = "tracepoint"
    listed_by_default = True

    def resolve(self, text: str, target: str, group: ProbeGroup) -> None:
        category, sep, name = target.partition(":")
        if not sep or not category or not name or ":" in name:
            raise ValueError(f"invalid tracepoint: {text} (expected tracepoint:CATEGORY:NAME)")
        found = 0
        if not isinstance(group.formats, TracepointFormats):
            group.formats = TracepointFormats()
        for c, n in expand_tracepoints(category, name):
            if not tracefs.has_event(c, n):
                if has_wildcard(target):
                    continue       # listed but gone, or not a real event directory
                raise ProbeNotFound(f"tracepoint not found: {c}:{n}")
            point = self.point(f"{c}:{n}")
            group.add(point)
            group.formats.events[point.name] = (c, n)
            found += 1
        if not found:
            raise ProbeNotFound(f"tracepoint not found: {target}")

    def list_probes(self, pattern: str) -> list[str]:
        return [f"tracepoint:{c}:{n}" for c, n in tracefs.list_tracepoints()
                if fnmatch.fnmatchcase(f"{c}:{n}", pattern)]

    def describe(self, target: str) -> list[str]:
        category, sep, event = target.partition(":")
        if not sep:
            raise ListingError(f"tracepoint:{target}: a tracepoint is CATEGORY:NAME")
        try:
            return tracepoint_fields(category, event)
        except tracefs.TracefsError as e:
            raise ListingError(f"tracepoint:{target}: {e}") from None


TRACEPOINT = Tracepoint()

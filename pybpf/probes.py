"""Resolve-probes pass: each probe's attach-point text -> concrete attach points, wildcards expanded.

    groups = resolve_probes(program, diags)
    groups[0].provider                  # 'tracepoint'
    groups[0].points                    # (AttachPoint('tracepoint', 'syscalls:sys_enter_open'), ...)
    groups[0].formats[...]              # the tracepoint's record layout, for `args`

A probe whose attach points belong to several providers becomes one group per provider: each group
is one BPF program of one program type.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from pybpf import ast, tracefs
from pybpf.diagnostics import Diagnostics
from pybpf.program import AttachPoint

# Every spelling a user may write -> the provider's canonical name.
PROVIDER_ALIASES = {
    "BEGIN": "BEGIN", "begin": "BEGIN", "END": "END", "end": "END",
    "tracepoint": "tracepoint", "t": "tracepoint",
    "interval": "interval", "i": "interval",
    "rawtracepoint": "rawtracepoint", "rt": "rawtracepoint",
    "kprobe": "kprobe", "k": "kprobe", "kretprobe": "kretprobe", "kr": "kretprobe",
    "fentry": "fentry", "f": "fentry", "kfunc": "fentry",
    "fexit": "fexit", "fr": "fexit", "kretfunc": "fexit",
    "uprobe": "uprobe", "u": "uprobe", "uretprobe": "uretprobe", "ur": "uretprobe",
    "usdt": "usdt", "U": "usdt", "profile": "profile", "p": "profile",
    "software": "software", "s": "software", "hardware": "hardware", "h": "hardware",
}

SUPPORTED_PROVIDERS = ("BEGIN", "END", "tracepoint", "interval")

_INTERVAL_UNITS_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


@dataclass
class ProbeGroup:
    """The attach points of one probe that share a provider: compiled into one BPF program."""
    probe: ast.Probe
    provider: str
    points: list[AttachPoint] = field(default_factory=list)
    formats: dict[str, tracefs.TracepointFormat] = field(default_factory=dict)  # by point name


def _has_wildcard(text: str) -> bool:
    return any(c in text for c in "*?[")


def expand_tracepoints(category: str, name: str) -> list[tuple[str, str]]:
    if not _has_wildcard(category + name):
        return [(category, name)]
    return [(c, n) for c, n in tracefs.list_tracepoints()
            if fnmatch.fnmatchcase(c, category) and fnmatch.fnmatchcase(n, name)]


def _interval(text: str, target: str) -> AttachPoint:
    unit, _, count = target.partition(":")
    if unit == "hz" and count.isdigit() and int(count) > 0:
        return AttachPoint("interval", target, 1_000_000_000 // int(count))
    if unit in _INTERVAL_UNITS_NS and count.isdigit() and int(count) > 0:
        return AttachPoint("interval", target, int(count) * _INTERVAL_UNITS_NS[unit])
    raise ValueError(f"invalid interval probe: {text} (expected interval:UNIT:N with UNIT one of "
                     "s, ms, us, ns, hz)")


def _resolve_one(text: str) -> tuple[str, list[AttachPoint], dict[str, tracefs.TracepointFormat]]:
    """Raises ValueError with the user-facing message when the text names nothing usable."""
    head, sep, target = text.partition(":")
    provider = PROVIDER_ALIASES.get(head)
    if provider is None:
        raise ValueError(f"Invalid probe type: {head}" if sep else f"Invalid probe: {text}")
    if provider in ("BEGIN", "END"):
        return provider, [AttachPoint(provider)], {}
    if provider not in SUPPORTED_PROVIDERS:
        raise ValueError(f"{provider} probes are not supported by pybpf yet")
    if provider == "interval":
        return provider, [_interval(text, target)], {}
    category, sep, name = target.partition(":")
    if not sep or not category or not name or ":" in name:
        raise ValueError(f"invalid tracepoint: {text} (expected tracepoint:CATEGORY:NAME)")
    matches = expand_tracepoints(category, name)
    points, formats = [], {}
    for c, n in matches:
        try:
            fmt = tracefs.read_format(c, n)
        except tracefs.TracefsError:
            if _has_wildcard(target):
                continue       # listed but gone, or not a real event directory
            raise ValueError(f"tracepoint not found: {c}:{n}") from None
        point = AttachPoint("tracepoint", f"{c}:{n}")
        points.append(point)
        formats[point.name] = fmt
    if not points:
        raise ValueError(f"tracepoint not found: {target}")
    return provider, points, formats


def resolve_probes(program: ast.Program, diags: Diagnostics) -> list[ProbeGroup]:
    groups: list[ProbeGroup] = []
    for probe in program.probes:
        by_provider: dict[str, ProbeGroup] = {}
        for text in probe.attach_points:
            try:
                provider, points, formats = _resolve_one(text.text)
            except ValueError as e:
                diags.error(str(e), text.span)
                continue
            except tracefs.TracefsError as e:
                diags.error(str(e), text.span)
                continue
            group = by_provider.setdefault(provider, ProbeGroup(probe, provider))
            for p in points:
                if p not in group.points:
                    group.points.append(p)
            group.formats.update(formats)
        groups.extend(by_provider.values())
    return groups


def list_probes(pattern: str | None = None) -> list[str]:
    """`pybpf -l [PATTERN]`: every listable probe whose full name matches the pattern."""
    names = [f"tracepoint:{c}:{n}" for c, n in tracefs.list_tracepoints()]
    if not pattern:
        return names
    head, sep, rest = pattern.partition(":")
    if sep and head in PROVIDER_ALIASES:
        pattern = f"{PROVIDER_ALIASES[head]}:{rest}"
    elif not sep:
        pattern = f"*{pattern}*" if not _has_wildcard(pattern) else pattern
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]

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
from pybpf.uapi.bpf import BpfAttachType

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

SUPPORTED_PROVIDERS = ("BEGIN", "END", "tracepoint", "interval", "rawtracepoint", "kprobe",
                       "kretprobe", "fentry", "fexit", "uprobe", "uretprobe", "profile")
# Probes on kernel functions and raw tracepoints: typed from BTF.
BTF_PROVIDERS = ("rawtracepoint", "fentry", "fexit")
FUNCTION_PROVIDERS = ("kprobe", "kretprobe", "fentry", "fexit")

_INTERVAL_UNITS_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


@dataclass
class ProbeGroup:
    """The attach points of one probe that share a provider: compiled into one BPF program."""
    probe: ast.Probe
    provider: str
    points: list[AttachPoint] = field(default_factory=list)
    formats: dict[str, tracefs.TracepointFormat] = field(default_factory=dict)  # by point name
    # BTF-typed probes, by point name: the arguments (name, BTF type id), the return type id
    # (fexit), and the BTF id the program is loaded against (fentry/fexit: the FUNC).
    btf_args: dict[str, list] = field(default_factory=dict)
    btf_return: dict[str, int] = field(default_factory=dict)
    btf_target: dict[str, int] = field(default_factory=dict)
    # A probe moved to the other mechanism for a kernel function (kprobe <-> fentry): its points'
    # names as the user wrote them, which `probe` shows.
    written_names: dict[str, str] = field(default_factory=dict)


def _has_wildcard(text: str) -> bool:
    return any(c in text for c in "*?[")


def expand_tracepoints(category: str, name: str) -> list[tuple[str, str]]:
    if not _has_wildcard(category + name):
        return [(category, name)]
    return [(c, n) for c, n in tracefs.list_tracepoints()
            if fnmatch.fnmatchcase(c, category) and fnmatch.fnmatchcase(n, name)]


def _timed(provider: str, text: str, target: str) -> AttachPoint:
    """interval:UNIT:N (one CPU) and profile:UNIT:N (every CPU). A profile in hz samples at that
    frequency (period_ns 0: the kernel spreads the samples); everything else has a period."""
    unit, _, count = target.partition(":")
    if unit == "hz" and count.isdigit() and int(count) > 0:
        period = 0 if provider == "profile" else 1_000_000_000 // int(count)
        return AttachPoint(provider, target, period)
    if unit in _INTERVAL_UNITS_NS and count.isdigit() and int(count) > 0:
        return AttachPoint(provider, target, int(count) * _INTERVAL_UNITS_NS[unit])
    raise ValueError(f"invalid {provider} probe: {text} (expected {provider}:UNIT:N with UNIT one "
                     "of s, ms, us, ns, hz)")


def _resolve_uprobe(provider: str, text: str, target: str) -> list[AttachPoint]:
    """uprobe:BINARY:FUNC[+OFFSET]: BINARY a path, a program on PATH or a library name (libc);
    wildcards in FUNC. Checked with the runtime's own reader (pybpf.elfsym): every function must
    exist and the offset fall inside it."""
    from pybpf import elfsym

    try:
        binary, name, offset = elfsym.parse_uprobe_target(target)
        if "+" in target and provider != "uprobe":
            raise ValueError(f"an offset (+N) is only valid on uprobe: {text}")
        path = elfsym.find_binary(binary)
        names = sorted(n for n in elfsym.function_symbols(path) if fnmatch.fnmatchcase(n, name)) \
            if _has_wildcard(name) else [name]
        if not names:
            raise ValueError(f"no function matches {name!r} in {path}")
        for n in names:
            elfsym.uprobe_offset(path, n, offset)
    except elfsym.SymbolError as e:
        raise ValueError(str(e)) from None
    suffix = "+" + target.rpartition("+")[2] if "+" in target else ""
    return [AttachPoint(provider, f"{path}:{n}{suffix}") for n in names]


def _resolve_btf(provider: str, text: str, target: str, group: ProbeGroup) -> None:
    """rawtracepoint:NAME, fentry/fexit/kprobe/kretprobe:FUNC[+OFFSET], wildcards in the name."""
    from pybpf import btf as B

    if ":" in target:
        raise ValueError(f"{provider}:MODULE:NAME (module probes) is not supported yet: {text}")
    name, plus, offset = target.partition("+")
    if plus:
        try:
            if provider != "kprobe" or int(offset, 0) < 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"an offset (+N, N >= 0) is only valid on kprobe: {text}") from None
    try:
        kernel = B.vmlinux()
        kind = "rawtracepoint" if provider == "rawtracepoint" else "fentry"
        names = kernel.list_names(kind, name) if _has_wildcard(name) else [name]
        for n in names:
            if provider == "rawtracepoint":
                if kernel.tracepoint_typedef(n) is None:
                    raise ValueError(f"rawtracepoint not found: {n} (no btf_trace_{n} in the "
                                     "kernel's BTF)")
                args = kernel.tracepoint_args(n)
            else:
                func = kernel.func(n)
                if func is None:
                    if provider in ("kprobe", "kretprobe"):
                        args = []           # a function without BTF: arg0..argN still work
                    else:
                        raise ValueError(f"function not found: {n} (no BTF for it; "
                                         "fentry/fexit need BTF)")
                else:
                    args = kernel.func_proto_params(func)
                    group.btf_target[f"{provider}:{n}"] = func.id
                    group.btf_return[f"{provider}:{n}"] = kernel.func_return(n)
            point = AttachPoint(provider, n + (f"+{offset}" if plus else ""))
            group.points.append(point)
            group.btf_args[point.name] = [(a.name, a.type_id) for a in args]
    except B.BtfError as e:
        raise ValueError(str(e)) from None
    if not group.points:
        raise ValueError(f"{provider} not found: {target}")


# The other mechanism for the same kernel function, when the kernel lacks the one written.
FALLBACK_PROVIDERS = {"kprobe": "fentry", "kretprobe": "fexit", "fentry": "kprobe",
                      "fexit": "kretprobe"}


def _fall_back(group: ProbeGroup) -> None:
    """kprobes missing but fentry loads: a kprobe becomes an fentry probe; fentry refused but
    kprobes present: the reverse (bpftrace does neither). Deciding needs the kernel's answer, so
    this asks it: the kprobe PMU in sysfs, and a trivial fentry program loaded and closed."""
    from pybpf.runtime.attach.fentry import fentry_available
    from pybpf.runtime.attach.kprobe import kprobes_available

    if not group.points or any("+" in p.target or p.name not in group.btf_target
                               for p in group.points):
        return          # offsets and functions without BTF exist only for kprobes
    first = group.btf_target[group.points[0].name]
    wanted = FALLBACK_PROVIDERS[group.provider]
    if group.provider in ("kprobe", "kretprobe"):
        if kprobes_available() or not fentry_available(first, _ATTACH_TYPES[wanted]):
            return
    elif fentry_available(first, _ATTACH_TYPES[group.provider]) or not kprobes_available():
        return
    moved = []
    for point in group.points:
        new = AttachPoint(wanted, point.target)
        for table in (group.btf_args, group.btf_return, group.btf_target):
            table[new.name] = table.pop(point.name)
        group.written_names[new.name] = point.name
        moved.append(new)
    group.provider, group.points = wanted, moved


_ATTACH_TYPES = {"fentry": BpfAttachType.TRACE_FENTRY, "fexit": BpfAttachType.TRACE_FEXIT}


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
    if provider in ("interval", "profile"):
        return provider, [_timed(provider, text, target)], {}
    if provider in ("uprobe", "uretprobe"):
        return provider, _resolve_uprobe(provider, text, target), {}
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
            head, _, target = text.text.partition(":")
            provider = PROVIDER_ALIASES.get(head)
            if provider in BTF_PROVIDERS or provider in FUNCTION_PROVIDERS:
                group = by_provider.setdefault(provider, ProbeGroup(probe, provider))
                try:
                    _resolve_btf(provider, text.text, target, group)
                except ValueError as e:
                    diags.error(str(e), text.span)
                continue
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
        for group in by_provider.values():
            if group.provider in FALLBACK_PROVIDERS:
                _fall_back(group)
        groups.extend(by_provider.values())
    return groups


def list_probes(pattern: str | None = None) -> list[str]:
    """`pybpf -l [PATTERN]`: every listable probe whose full name matches the pattern. Probes of
    kernel functions and raw tracepoints are listed only when the pattern names their provider
    (there are tens of thousands)."""
    head, sep, rest = (pattern or "").partition(":")
    provider = PROVIDER_ALIASES.get(head) if sep else None
    if provider in BTF_PROVIDERS or provider in FUNCTION_PROVIDERS or \
            provider in ("uprobe", "uretprobe"):
        from pybpf.listing import list_btf_probes
        return list_btf_probes(provider, rest or "*")
    names = [f"tracepoint:{c}:{n}" for c, n in tracefs.list_tracepoints()]
    if not pattern:
        return names
    if provider:
        pattern = f"{provider}:{rest}"
    elif not sep:
        pattern = f"*{pattern}*" if not _has_wildcard(pattern) else pattern
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]

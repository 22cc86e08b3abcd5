"""Resolve-probes pass: each probe's attach-point text -> concrete attach points, wildcards expanded.

    groups = resolve_probes(program, diags, features)
    groups[0].provider                  # the TRACEPOINT provider (pybpf.providers)
    groups[0].points                    # [AttachPoint('tracepoint', 'syscalls:sys_enter_open'), ...]
    groups[0].formats[...]              # the tracepoint's record layout, for `args`

A probe whose attach points belong to several providers becomes one group per provider: each group
is one BPF program of one program type. Each provider resolves its own text; this pass only finds
the provider, collects its errors, and moves a group to the provider's alternative when the kernel
(asked through `features`) lacks the written one.
"""

from __future__ import annotations

import re

from pybpf import ast, providers, tracefs
from pybpf.diagnostics import Diagnostics
from pybpf.features import Features
from pybpf.providers.base import ProbeGroup, ProbeNotFound
from pybpf.records import replace


def _fall_back(group: ProbeGroup, features: Features) -> None:
    """kprobes missing but fentry loads: a kprobe becomes an fentry probe; fentry refused but
    kprobes present: the reverse (bpftrace does neither)."""
    written = group.provider
    if not written.alternative or not group.points or \
            any("+" in p.target or p.name not in group.btf_target for p in group.points):
        return          # offsets and functions without BTF exist only for kprobes
    other = providers.named(written.alternative)
    if not written.available(group, features) and other.available(group, features):
        group.move_to(other)


def _watch(group: ProbeGroup, pid: int) -> None:
    group.set_points([replace(p, perf_event=replace(p.perf_event, pid=pid)) for p in group.points])


_PARAM = re.compile(r"\$([0-9]+)")


def with_params(text: str, params: tuple[str, ...]) -> str:
    """A probe name with its positional parameters (`uprobe:$1:main`, `interval:ms:$2`) replaced
    by their words, as bpftrace does: a missing one is empty."""
    return _PARAM.sub(lambda m: params[int(m[1]) - 1] if 0 < int(m[1]) <= len(params) else "",
                      text)


def resolve_probes(program: ast.Script, diags: Diagnostics, features: Features,
                   pid: int | None = None, params: tuple[str, ...] = (),
                   missing_probes: str = "error") -> list[ProbeGroup]:
    """pid: the process that probes watching one process (watchpoints) watch, and the one
    user-space probes (uprobe, usdt) look in and fire in; params: the positional parameters that
    probe names may hold; missing_probes (the setting): a probe that names nothing here is an
    error, a warning, or left out silently."""
    groups: list[ProbeGroup] = []
    for probe in program.probes:
        by_provider: dict[str, ProbeGroup] = {}
        for text in probe.attach_points:
            name = with_params(text.text, params)
            head, sep, target = name.partition(":")
            provider = providers.find(head)
            if provider is None:
                diags.error(f"Invalid probe type: {head}" if sep else f"Invalid probe: {name}",
                            text.span)
                continue
            group = by_provider.setdefault(provider.name, ProbeGroup(probe, provider, pid=pid))
            try:
                provider.resolve(name, target, group)
                if provider.watches_process and pid is None:
                    raise ValueError(f"{provider.name} probes watch one process: give its id with "
                                     "-p PID")
            except ProbeNotFound as e:
                if missing_probes == "error":
                    diags.error(str(e), text.span)
                elif missing_probes == "warn":
                    diags.warning(f"{e}: left out (missing_probes = warn)", text.span)
            except (ValueError, tracefs.TracefsError) as e:
                diags.error(str(e), text.span)
        if missing_probes != "error":
            by_provider = {name: g for name, g in by_provider.items() if g.points}
        for group in by_provider.values():
            _fall_back(group, features)
            if group.provider.watches_process and pid is not None:
                _watch(group, pid)
        groups.extend(by_provider.values())
    return groups

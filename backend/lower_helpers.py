"""Checks of the BPF helpers that can fail: every failure is counted in the kernel, and reported as
bpftrace reports it where bpftrace warns. And bpftrace's other run-time warnings (an array index
out of bounds): a RUNTIME_WARNING record where the check fails.

    r = g.helper(BpfFunc.map_update_elem, ...)     # checked here when the helper is in CHECKED
    g.warn_at_run_time(out_of_bounds, ARRAY_ACCESS_OOB, e.span)

Each checked call is one branch on its return value, taken only on failure; the failure path adds
one to the call site's per-CPU counter (HELPER_ERRORS_MAP, at the index of its HelperErrorSite in
CompiledProgram.helper_sites) and, where the warning level asks, writes a HELPER_ERROR record of
the site and the errno. The runtime reads the counters for the library, the metrics and the summary at
exit (pybpf.runtime.helper_errors), and prints the records as bpftrace's warnings.

Mixed into pybpf.backend.codegen.FunctionBuilder.
"""

from __future__ import annotations

import errno

from llvmlite import ir

from pybpf.backend.irutil import c64
from pybpf.diagnostics import Diagnostic, locate, render
from pybpf.program import ERRNO_MASK, HELPER_ERRORS_MAP, SITE_BITS, EventKind, HelperErrorSite
from pybpf.uapi.bpf import BpfFunc


# Warning levels, as bpftrace >= 0.23 has them: --no-warnings, the default, -k.
NO_WARNINGS, WARN_BY_DEFAULT, WARN_ALL = 0, 1, 2

# The helpers whose failures are checked, and the level from which each failure is also a warning
# printed as it happens. bpftrace leaves the reads to -k: a failed read yields zeros, which a
# script can test; a stack that could not be recorded is one too (it prints no frames), and a
# kernel thread sampled for its user stack would warn at every sample. bpftrace also checks
# get_current_comm, which fails only for a size the verifier already refused: unchecked here, its
# check would double the code of `@[comm] = count()`.
CHECKED = {
    BpfFunc.map_update_elem: WARN_BY_DEFAULT,
    BpfFunc.map_delete_elem: WARN_BY_DEFAULT,
    BpfFunc.send_signal: WARN_BY_DEFAULT,
    BpfFunc.get_stackid: WARN_ALL,
    BpfFunc.probe_read: WARN_ALL,
    BpfFunc.probe_read_str: WARN_ALL,
    BpfFunc.probe_read_user: WARN_ALL,
    BpfFunc.probe_read_user_str: WARN_ALL,
    BpfFunc.probe_read_kernel: WARN_ALL,
    BpfFunc.probe_read_kernel_str: WARN_ALL,
}


class HelperSites:
    """The module's HelperErrorSites, one per (helper, map, errno, source span): a statement
    lowered into several programs counts in one place."""

    def __init__(self, diags, warning_level: int):
        self.diags = diags
        self.warning_level = warning_level
        self.sites: list[HelperErrorSite] = []
        self._index: dict[tuple, int] = {}

    def index(self, func: BpfFunc, map_name: str, errno_: int, span) -> int:
        warns = CHECKED[func] <= self.warning_level
        location, context = locate(span, self.diags.source, self.diags.filename)
        key = (func.name, map_name, errno_, warns, location)
        if key not in self._index:
            self._index[key] = len(self.sites)
            self.sites.append(HelperErrorSite(func.name, map_name, errno_, warns, location, context,
                                              span.line, span.column))
        return self._index[key]


# bpftrace's words for an array index known only at run time that is out of bounds
ARRAY_ACCESS_OOB = "Array access out of bounds. This can lead to unexpected results."


class RuntimeWarnings:
    """The module's run-time warnings other than helper failures, each rendered once as a
    diagnostic (place, message, source line); a RUNTIME_WARNING record carries its index. None
    with --no-warnings, where bpftrace prints none."""

    def __init__(self, diags, warning_level: int):
        self.diags = diags
        self.enabled = warning_level >= WARN_BY_DEFAULT
        self.texts: list[str] = []

    def index(self, message: str, span) -> int | None:
        if not self.enabled:
            return None
        text = render(Diagnostic(message, span, "WARNING"), self.diags.source, self.diags.filename)
        if text not in self.texts:
            self.texts.append(text)
        return self.texts.index(text)


class HelperChecks:
    def helper_error_buffer(self) -> ir.Value:
        """One 8-byte buffer per program for every failure path: the counter's index, then the
        warning record (its header alone). Failures of all its checks share it, so checks cost
        the stack 8 bytes once, not a key and a record per call."""
        if self.failure_buffer is None:
            self.failure_buffer = self.alloca(8, "helper_error", temporary=False)
        return self.failure_buffer

    def warn_at_run_time(self, failed: ir.Value, message: str, span) -> None:
        """Where `failed` (an i1) holds, a RUNTIME_WARNING record of `message` at `span`."""
        index = self.mod.runtime_warnings.index(message, span)
        if index is None:
            return
        warn, done = self.branch_if(failed, "runtime_warning", "runtime_warning_done")
        self.b.position_at_end(warn)
        self.emit_event(EventKind.RUNTIME_WARNING, index, (), self.helper_error_buffer())
        self.b.branch(done)
        self.b.position_at_end(done)

    def check_helper(self, func: BpfFunc, result: ir.Value, args, tolerated: int = 0) -> None:
        """After a call of a helper in CHECKED: on failure (a negative result other than
        -tolerated, which the caller handles), count it at its site and warn where asked."""
        sites = self.mod.helper_sites
        map_name = self.mod.map_names.get(id(args[0]), "") if args else ""
        site = sites.index(func, map_name, 0, self.span)
        failed, done = self.branch_if(self.b.icmp_signed("<", result, c64(0)), "helper_failed",
                                      "helper_done")
        self.b.position_at_end(failed)
        if tolerated:
            error = self.new_block("helper_error")
            self.b.cbranch(self.b.icmp_signed("==", result, c64(-tolerated)), done, error)
            self.b.position_at_end(error)
        counter = c64(site)
        if func == BpfFunc.map_update_elem:
            full = sites.index(func, map_name, errno.E2BIG, self.span)
            counter = self.b.select(self.b.icmp_signed("==", result, c64(-errno.E2BIG)), c64(full), counter)
        scratch = self.helper_error_buffer()
        self.with_array_element(HELPER_ERRORS_MAP, counter, "helper_error_count",
                                lambda count: self.store64(self.b.add(self.load64(count), c64(1)), count),
                                scratch)
        if sites.sites[site].warns:
            # the header's index: the site, and the errno above it (< 4096, the kernel's MAX_ERRNO)
            errno_bits = self.b.shl(self.b.and_(self.b.neg(result), c64(ERRNO_MASK)), c64(SITE_BITS))
            self.emit_event(EventKind.HELPER_ERROR, self.b.or_(c64(site), errno_bits), (), scratch)
        self.b.branch(done)
        self.b.position_at_end(done)

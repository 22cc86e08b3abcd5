"""Failed BPF helper calls at run time: the counts the program keeps per call site, bpftrace's
warning for one failure, and the line printed at exit.

    counts = read_counts(fd, compiled.helper_sites)   # [HelperErrorCount, ...], one per site
    by_helper(counts)                                 # {'map_update_elem': 6}
    map_full(counts)                                  # {'@m': 6}: inserts refused, the map full
    summary(counts)                                   # 'WARNING: ...' or None when nothing failed
    warning_text(site, -7)                            # what bpftrace prints for one failure

The program counts every failure of a checked helper (pybpf.backend.lower_helpers) in a per-CPU
array, HELPER_ERRORS_MAP, one element per HelperErrorSite: reading the counts is one syscall and
costs the probes nothing. Where bpftrace warns as failures happen (map updates and deletes by
default, memory reads with -k), the program also writes a HELPER_ERROR record, printed by
warning_text (text) or json_record (-f json).
"""

from __future__ import annotations

import errno
import os

from pybpf.program import HelperErrorCount, HelperErrorSite
from pybpf.runtime import maps

MAP_FULL = ("Map full; can't update element. Try increasing max_map_keys config")
DELETE_MISSING = "Can't delete map element because it does not exist."


def read_counts(fd: int, sites: tuple[HelperErrorSite, ...]) -> list[HelperErrorCount]:
    """The count of every site, in the order of CompiledProgram.helper_sites."""
    totals = maps.read_counters(fd)
    return [HelperErrorCount(site.helper, site.map, site.location, site.errno == errno.E2BIG,
                             totals.get(index, 0))
            for index, site in enumerate(sites)]


def by_helper(counts: list[HelperErrorCount]) -> dict[str, int]:
    """Failures by helper name, every checked helper of the program listed (0 when none failed)."""
    out: dict[str, int] = {}
    for c in counts:
        out[c.helper] = out.get(c.helper, 0) + c.count
    return out


def map_full(counts: list[HelperErrorCount]) -> dict[str, int]:
    """Inserts refused because the map was full, by map name, every map with inserts listed."""
    out: dict[str, int] = {}
    for c in counts:
        if c.map_full:
            out[c.map] = out.get(c.map, 0) + c.count
    return out


def summary(counts: list[HelperErrorCount]) -> str | None:
    """One line saying which helpers failed how often, and which maps were full; None when nothing
    failed: 'WARNING: 9 helper calls failed: map_update_elem 6 (map full: @m 6), probe_read_str 3'."""
    failed = {helper: n for helper, n in by_helper(counts).items() if n}
    if not failed:
        return None
    full = {name: n for name, n in map_full(counts).items() if n}
    parts = []
    for helper, n in failed.items():
        part = f"{helper} {n}"
        if helper == "map_update_elem" and full:
            part += " (map full: " + ", ".join(f"{name} {k}" for name, k in full.items()) + ")"
        parts.append(part)
    total = sum(failed.values())
    return f"WARNING: {total} helper call{'' if total == 1 else 's'} failed: {', '.join(parts)}"


def message(site: HelperErrorSite, retcode: int) -> str:
    """bpftrace's words for a failure: its own for a full map or a missing key, else strerror."""
    if site.helper == "map_update_elem" and retcode == -errno.E2BIG:
        return MAP_FULL
    if site.helper == "map_delete_elem" and retcode == -errno.ENOENT:
        return DELETE_MISSING
    return os.strerror(-retcode)


def warning_text(site: HelperErrorSite, retcode: int) -> str:
    """The warning bpftrace (>= 0.23) prints on stderr for one failure, without the last newline:

        stdin:1:31-43: WARNING: Map full; can't update element. Try increasing max_map_keys config
        Additional Info - helper: map_update_elem, retcode: -7
        BEGIN { $i = 0; while ($i < 9) { @m[$i] = 1; $i++; } }
                                         ~~~~~~~~~~~~
    """
    return "\n".join([f"{site.location}: WARNING: {message(site, retcode)}",
                      f"Additional Info - helper: {site.helper}, retcode: {retcode}", *site.context])


def json_record(site: HelperErrorSite, retcode: int) -> str:
    """bpftrace's -f json record of one failure (its "msg" is strerror, whatever the helper)."""
    import json         # here: only -f json needs it, and a cache hit imports no json

    filename = site.location.rsplit(":", 2)[0]
    return json.dumps({"type": "helper_error", "msg": os.strerror(-retcode), "helper": site.helper,
                       "retcode": retcode, "filename": filename, "line": site.line,
                       "col": site.column})

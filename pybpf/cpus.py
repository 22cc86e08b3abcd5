"""The machine's possible CPUs, from sysfs: one reader for the compiler and the runtime.

    possible_cpu_ids()    # (0, 1, 2, 3): the CPUs the kernel could ever bring online
    cpu_slots()           # 4: a per-CPU value has a slot for every id up to the highest

The two differ where the list has holes ('0-1,4-5': 4 CPUs, 6 slots). bpftrace's ncpus is the
count; per-CPU values (read by user space, merged by a for-loop over a map) need every slot.
"""

from __future__ import annotations

import functools

POSSIBLE_CPUS_FILE = "/sys/devices/system/cpu/possible"


def parse_cpu_list(text: str) -> tuple[int, ...]:
    """'0-3,6' -> (0, 1, 2, 3, 6): the CPUs of a sysfs CPU list."""
    ids: list[int] = []
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        ids.extend(range(int(first), int(last or first) + 1))
    return tuple(ids)


@functools.cache
def possible_cpu_ids() -> tuple[int, ...]:
    """OSError, ValueError if sysfs does not say (not os.cpu_count(): offline CPUs count too)."""
    with open(POSSIBLE_CPUS_FILE) as f:
        return parse_cpu_list(f.read())


@functools.cache
def cpu_slots() -> int:
    return max(possible_cpu_ids()) + 1

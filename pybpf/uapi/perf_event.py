"""Constants and the attr layout of perf_event_open(2) (include/uapi/linux/perf_event.h).

    attr = PerfEventAttr(type=PERF_TYPE_TRACEPOINT, config=tracepoint_id)
    # attr.size is filled in by the constructor: the kernel reads that many bytes
"""

import ctypes
import enum


class PerfType(enum.IntEnum):
    HARDWARE = 0
    SOFTWARE = 1
    TRACEPOINT = 2
    HW_CACHE = 3
    RAW = 4
    BREAKPOINT = 5


class PerfSwId(enum.IntEnum):
    """enum perf_sw_ids: the config of a PERF_TYPE_SOFTWARE event (kernel name minus PERF_COUNT_SW_)."""
    CPU_CLOCK = 0
    TASK_CLOCK = 1
    PAGE_FAULTS = 2
    CONTEXT_SWITCHES = 3
    CPU_MIGRATIONS = 4
    PAGE_FAULTS_MIN = 5
    PAGE_FAULTS_MAJ = 6
    ALIGNMENT_FAULTS = 7
    EMULATION_FAULTS = 8
    DUMMY = 9
    BPF_OUTPUT = 10
    CGROUP_SWITCHES = 11


class PerfHwId(enum.IntEnum):
    """enum perf_hw_id: the config of a PERF_TYPE_HARDWARE event (kernel name minus PERF_COUNT_HW_)."""
    CPU_CYCLES = 0
    INSTRUCTIONS = 1
    CACHE_REFERENCES = 2
    CACHE_MISSES = 3
    BRANCH_INSTRUCTIONS = 4
    BRANCH_MISSES = 5
    BUS_CYCLES = 6
    STALLED_CYCLES_FRONTEND = 7
    STALLED_CYCLES_BACKEND = 8
    REF_CPU_CYCLES = 9


PERF_COUNT_SW_CPU_CLOCK = PerfSwId.CPU_CLOCK


class HwBreakpoint(enum.IntFlag):
    """enum hw_breakpoint_type (include/uapi/linux/hw_breakpoint.h): perf_event_attr.bp_type."""
    R = 1
    W = 2
    RW = 3
    X = 4


# perf_event_attr.bp_len: 1, 2, 4 or 8 bytes (HW_BREAKPOINT_LEN_*).
HW_BREAKPOINT_LENS = (1, 2, 4, 8)

# Dynamic PMUs (kprobe, uprobe): the perf type is read from TYPE_FILE, and the bit of `config` that asks
# for a return probe from RETPROBE_FORMAT_FILE ('config:0'). config1 points at the function (or path)
# name, config2 is the offset in it.
PMU_DEVICES = "/sys/bus/event_source/devices"
KPROBE_PMU = "kprobe"
UPROBE_PMU = "uprobe"


def pmu_type_file(pmu: str) -> str:
    return f"{PMU_DEVICES}/{pmu}/type"


def pmu_retprobe_format_file(pmu: str) -> str:
    return f"{PMU_DEVICES}/{pmu}/format/retprobe"


# A uprobe's reference counter (a USDT semaphore): its FILE offset goes in config's high 32 bits
# (kernel/events/core.c PERF_UPROBE_REF_CTR_OFFSET_SHIFT; format/ref_ctr_offset says config:32-63).
# The kernel then increments the counter in every process that maps the file, started before or
# after, while the probe is registered, and decrements it when the probe goes.
PERF_UPROBE_REF_CTR_OFFSET_SHIFT = 32
UPROBE_REF_CTR_FORMAT_FILE = f"{PMU_DEVICES}/{UPROBE_PMU}/format/ref_ctr_offset"

# perf_event_attr.sample_type: the sample carries the raw bytes a BPF program output.
PERF_SAMPLE_RAW = 1 << 10
# perf_event_header.type of the records in a perf ring buffer.
PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
# struct perf_event_mmap_page: where the ring's producer and consumer positions are.
PERF_MMAP_DATA_HEAD = 1024
PERF_MMAP_DATA_TAIL = 1032

# Bits of the flags word (the bitfield after read_format).
PERF_ATTR_FLAG_DISABLED = 1 << 0
PERF_ATTR_FLAG_FREQ = 1 << 10

# perf_event_open flags.
PERF_FLAG_FD_CLOEXEC = 1 << 3

# ioctls on a perf event fd: _IO('$', 0), _IO('$', 1), _IOW('$', 8, __u32).
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_SET_BPF = 0x40042408


class PerfEventAttr(ctypes.Structure):
    """struct perf_event_attr up to config2 (PERF_ATTR_SIZE_VER1, 72 bytes): all a BPF attach needs.
    sample_period doubles as sample_freq when PERF_ATTR_FLAG_FREQ is set; config1/config2 carry the
    uprobe path pointer and file offset, the kprobe function name pointer and offset, or a
    breakpoint's bp_addr and bp_len (the same unions)."""
    _fields_ = [
        ("type", ctypes.c_uint32), ("size", ctypes.c_uint32), ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64), ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64), ("flags", ctypes.c_uint64),
        ("wakeup_events", ctypes.c_uint32), ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64), ("config2", ctypes.c_uint64),
    ]

    def __init__(self, **fields):
        super().__init__(size=ctypes.sizeof(PerfEventAttr), **fields)

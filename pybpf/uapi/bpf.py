"""Constants of include/uapi/linux/bpf.h, named as the kernel names them (prefix dropped).

Only this module states bpf(2) ABI numbers; the compiler and the runtime both import it.
"""

import ctypes as _c
import enum
import struct as _struct


class BpfCmd(enum.IntEnum):
    MAP_CREATE = 0
    MAP_LOOKUP_ELEM = 1
    MAP_UPDATE_ELEM = 2
    MAP_DELETE_ELEM = 3
    MAP_GET_NEXT_KEY = 4
    PROG_LOAD = 5
    OBJ_PIN = 6
    OBJ_GET = 7
    PROG_ATTACH = 8
    PROG_DETACH = 9
    PROG_TEST_RUN = 10
    PROG_GET_NEXT_ID = 11
    MAP_GET_NEXT_ID = 12
    PROG_GET_FD_BY_ID = 13
    MAP_GET_FD_BY_ID = 14
    OBJ_GET_INFO_BY_FD = 15
    PROG_QUERY = 16
    RAW_TRACEPOINT_OPEN = 17
    BTF_LOAD = 18
    BTF_GET_FD_BY_ID = 19
    TASK_FD_QUERY = 20
    MAP_LOOKUP_AND_DELETE_ELEM = 21
    MAP_FREEZE = 22
    BTF_GET_NEXT_ID = 23
    MAP_LOOKUP_BATCH = 24
    MAP_LOOKUP_AND_DELETE_BATCH = 25
    MAP_UPDATE_BATCH = 26
    MAP_DELETE_BATCH = 27
    LINK_CREATE = 28
    LINK_UPDATE = 29
    LINK_GET_FD_BY_ID = 30
    LINK_GET_NEXT_ID = 31
    ENABLE_STATS = 32
    ITER_CREATE = 33
    LINK_DETACH = 34
    PROG_BIND_MAP = 35


class BpfMapType(enum.IntEnum):
    UNSPEC = 0
    HASH = 1
    ARRAY = 2
    PROG_ARRAY = 3
    PERF_EVENT_ARRAY = 4
    PERCPU_HASH = 5
    PERCPU_ARRAY = 6
    STACK_TRACE = 7
    LRU_HASH = 9
    LRU_PERCPU_HASH = 10
    RINGBUF = 27


class BpfProgType(enum.IntEnum):
    UNSPEC = 0
    SOCKET_FILTER = 1
    KPROBE = 2          # also uprobes
    SCHED_CLS = 3
    SCHED_ACT = 4
    TRACEPOINT = 5
    XDP = 6
    PERF_EVENT = 7
    RAW_TRACEPOINT = 17
    TRACING = 26        # fentry/fexit, BTF tracepoints
    SYSCALL = 31        # run only by BPF_PROG_TEST_RUN; must be loaded sleepable


class BpfAttachType(enum.IntEnum):
    TRACE_RAW_TP = 23
    TRACE_FENTRY = 24
    TRACE_FEXIT = 25
    PERF_EVENT = 41
    TRACE_UPROBE_MULTI = 48


# BPF_LINK_CREATE's uprobe_multi.flags: return probes.
BPF_F_UPROBE_MULTI_RETURN = 1


# BPF_MAP_CREATE map_flags: an array whose values user space can mmap.
BPF_F_MMAPABLE = 1 << 10
# BPF_PROG_LOAD prog_flags: the program may sleep (what SYSCALL programs must be).
BPF_F_SLEEPABLE = 1 << 4

# Flags of BPF_MAP_UPDATE_ELEM.
BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2

# bpf_perf_event_output/bpf_skb_output flags: the current CPU's slot of the perf event array; the
# upper 32 bits (BPF_F_CTXLEN_MASK) say how many bytes of the skb to append to the sample.
BPF_F_CURRENT_CPU = 0xFFFFFFFF
BPF_F_CTXLEN_SHIFT = 32

# src_reg of a ld_imm64 whose imm is a map fd.
BPF_PSEUDO_MAP_FD = 1
# src_reg of a ld_imm64 whose imm is a vmlinux BTF id of a VAR: the kernel's variable's address (a
# ksym; of a per-CPU variable, what bpf_this_cpu_ptr/bpf_per_cpu_ptr take).
BPF_PSEUDO_BTF_ID = 3
# src_reg of a ld_imm64 whose imm is a subprogram's first instruction, relative to the next one
# (a callback's address: bpf_for_each_map_elem's second argument).
BPF_PSEUDO_FUNC = 4

# bpf_get_stackid flags: the user stack instead of the kernel's.
BPF_F_USER_STACK = 1 << 8
# The most frames the kernel records (its perf_event_max_stack default, PERF_MAX_STACK_DEPTH).
PERF_MAX_STACK_DEPTH = 127

# Ring buffer record header bits (kernel/bpf/ringbuf.c).
BPF_RINGBUF_BUSY_BIT = 1 << 31
BPF_RINGBUF_DISCARD_BIT = 1 << 30
BPF_RINGBUF_HDR_SZ = 8


class BpfFunc(enum.IntEnum):
    """enum bpf_func_id: helper numbers, called as `call inttoptr(ID)`."""
    map_lookup_elem = 1
    map_update_elem = 2
    map_delete_elem = 3
    probe_read = 4
    ktime_get_ns = 5
    trace_printk = 6
    get_prandom_u32 = 7
    get_smp_processor_id = 8
    get_current_pid_tgid = 14
    get_current_uid_gid = 15
    get_current_comm = 16
    get_current_task = 35
    get_stackid = 27
    get_numa_node_id = 42
    get_socket_cookie = 46
    override_return = 58
    probe_read_str = 45
    get_current_cgroup_id = 80
    send_signal = 109
    probe_read_user = 112
    probe_read_kernel = 113
    probe_read_user_str = 114
    probe_read_kernel_str = 115
    skb_output = 111
    d_path = 147
    jiffies64 = 118
    ringbuf_output = 130
    ringbuf_reserve = 131
    ringbuf_submit = 132
    ringbuf_discard = 133
    ktime_get_boot_ns = 125
    per_cpu_ptr = 153
    this_cpu_ptr = 154
    get_current_task_btf = 158
    ktime_get_tai_ns = 208
    task_pt_regs = 175
    for_each_map_elem = 164
    map_lookup_percpu_elem = 195
    trace_vprintk = 177
    get_attach_cookie = 174
    get_func_ip = 173
    loop = 181

# Verifier log levels of BPF_PROG_LOAD.
BPF_LOG_LEVEL1 = 1

BPF_OBJ_NAME_LEN = 16

# ---------------------------------------------------------------------------------------------------
# Members of union bpf_attr, one structure per command family. The kernel accepts an attr shorter than
# its own union (the rest is taken as zero), so each layout stops at the last field pybpf sets.
# Pointers are __aligned_u64: pass ctypes.addressof(buffer).

_u32, _u64 = _c.c_uint32, _c.c_uint64


class MapCreateAttr(_c.Structure):
    """BPF_MAP_CREATE."""
    _fields_ = [
        ("map_type", _u32), ("key_size", _u32), ("value_size", _u32), ("max_entries", _u32),
        ("map_flags", _u32), ("inner_map_fd", _u32), ("numa_node", _u32),
        ("map_name", _c.c_char * BPF_OBJ_NAME_LEN),
        ("map_ifindex", _u32), ("btf_fd", _u32), ("btf_key_type_id", _u32),
        ("btf_value_type_id", _u32), ("btf_vmlinux_value_type_id", _u32), ("map_extra", _u64),
    ]


class MapElemAttr(_c.Structure):
    """BPF_MAP_LOOKUP_ELEM, _UPDATE_ELEM, _DELETE_ELEM, _GET_NEXT_KEY (value doubles as next_key)."""
    _fields_ = [("map_fd", _u32), ("key", _u64), ("value", _u64), ("flags", _u64)]


class MapBatchAttr(_c.Structure):
    """BPF_MAP_*_BATCH. in_batch/out_batch point at an opaque position token."""
    _fields_ = [
        ("in_batch", _u64), ("out_batch", _u64), ("keys", _u64), ("values", _u64),
        ("count", _u32), ("map_fd", _u32), ("elem_flags", _u64), ("flags", _u64),
    ]


class ProgLoadAttr(_c.Structure):
    """BPF_PROG_LOAD, up to log_true_size (the log size the kernel wanted)."""
    _fields_ = [
        ("prog_type", _u32), ("insn_cnt", _u32), ("insns", _u64), ("license", _u64),
        ("log_level", _u32), ("log_size", _u32), ("log_buf", _u64),
        ("kern_version", _u32), ("prog_flags", _u32), ("prog_name", _c.c_char * BPF_OBJ_NAME_LEN),
        ("prog_ifindex", _u32), ("expected_attach_type", _u32), ("prog_btf_fd", _u32),
        ("func_info_rec_size", _u32), ("func_info", _u64), ("func_info_cnt", _u32),
        ("line_info_rec_size", _u32), ("line_info", _u64), ("line_info_cnt", _u32),
        ("attach_btf_id", _u32), ("attach_prog_fd", _u32), ("core_relo_cnt", _u32),
        ("fd_array", _u64), ("core_relos", _u64), ("core_relo_rec_size", _u32),
        ("log_true_size", _u32),
    ]


class BtfLoadAttr(_c.Structure):
    """BPF_BTF_LOAD: a program's own BTF (the FUNC types its func_info names)."""
    _fields_ = [
        ("btf", _u64), ("btf_log_buf", _u64), ("btf_size", _u32), ("btf_log_size", _u32),
        ("btf_log_level", _u32),
    ]


# struct bpf_func_info: a function's first instruction (in instructions) and its BTF FUNC id.
BPF_FUNC_INFO_SIZE = 8


class TestRunAttr(_c.Structure):
    """BPF_PROG_TEST_RUN."""
    __test__ = False   # not a pytest test class despite the name
    _fields_ = [
        ("prog_fd", _u32), ("retval", _u32), ("data_size_in", _u32), ("data_size_out", _u32),
        ("data_in", _u64), ("data_out", _u64), ("repeat", _u32), ("duration", _u32),
        ("ctx_size_in", _u32), ("ctx_size_out", _u32), ("ctx_in", _u64), ("ctx_out", _u64),
        ("flags", _u32), ("cpu", _u32), ("batch_size", _u32),
    ]


class GetIdAttr(_c.Structure):
    """BPF_PROG_GET_NEXT_ID, _MAP_GET_NEXT_ID (start_id) and _PROG_GET_FD_BY_ID (start_id = the id)."""
    _fields_ = [("start_id", _u32), ("next_id", _u32), ("open_flags", _u32)]


class ObjPinAttr(_c.Structure):
    """BPF_OBJ_PIN: the object behind bpf_fd gets the name pathname in a bpf file system."""
    _fields_ = [("pathname", _u64), ("bpf_fd", _u32), ("file_flags", _u32), ("path_fd", _c.c_int32)]


class ObjInfoAttr(_c.Structure):
    """BPF_OBJ_GET_INFO_BY_FD: the kernel fills at most info_len bytes of the info struct."""
    _fields_ = [("bpf_fd", _u32), ("info_len", _u32), ("info", _u64)]


class LinkCreateAttr(_c.Structure):
    """BPF_LINK_CREATE with the perf_event member of its trailing union (bpf_cookie)."""
    _fields_ = [
        ("prog_fd", _u32), ("target_fd", _u32), ("attach_type", _u32), ("flags", _u32),
        ("bpf_cookie", _u64),
    ]


class LinkCreateUprobeMultiAttr(_c.Structure):
    """BPF_LINK_CREATE with the uprobe_multi member of its trailing union (Linux 6.6): `cnt`
    uprobes on the file `path` points at, at the file offsets `offsets` points at, each with the
    bpf cookie at the same index of `cookies` (0: none); `pid` other than 0: that process only.
    The program is loaded with expected_attach_type TRACE_UPROBE_MULTI."""
    _fields_ = [
        ("prog_fd", _u32), ("target_fd", _u32), ("attach_type", _u32), ("flags", _u32),
        ("path", _u64), ("offsets", _u64), ("ref_ctr_offsets", _u64), ("cookies", _u64),
        ("cnt", _u32), ("uprobe_flags", _u32), ("pid", _u32),
    ]


class RawTracepointOpenAttr(_c.Structure):
    """BPF_RAW_TRACEPOINT_OPEN: name points at the tracepoint's name for a RAW_TRACEPOINT program; it is
    0 for a TRACING program (BTF tracepoint, fentry/fexit), whose target came with BPF_PROG_LOAD. The fd
    returned is a link: closing it detaches."""
    _fields_ = [("name", _u64), ("prog_fd", _u32), ("_pad", _u32), ("cookie", _u64)]


class LinkCreateTracingAttr(_c.Structure):
    """BPF_LINK_CREATE with the tracing member of its trailing union (fentry/fexit/BTF tracepoints):
    target_btf_id 0 takes the attach_btf_id the program was loaded with."""
    _fields_ = [
        ("prog_fd", _u32), ("target_fd", _u32), ("attach_type", _u32), ("flags", _u32),
        ("target_btf_id", _u32), ("_pad", _u32), ("cookie", _u64),
    ]


class ProgInfo(_c.Structure):
    """struct bpf_prog_info up to run_cnt (run_time_ns/run_cnt count only with kernel.bpf_stats_enabled)."""
    _fields_ = [
        ("type", _u32), ("id", _u32), ("tag", _c.c_uint8 * 8),
        ("jited_prog_len", _u32), ("xlated_prog_len", _u32),
        ("jited_prog_insns", _u64), ("xlated_prog_insns", _u64), ("load_time", _u64),
        ("created_by_uid", _u32), ("nr_map_ids", _u32), ("map_ids", _u64),
        ("name", _c.c_char * BPF_OBJ_NAME_LEN), ("ifindex", _u32), ("gpl_compatible", _u32),
        ("netns_dev", _u64), ("netns_ino", _u64),
        ("nr_jited_ksyms", _u32), ("nr_jited_func_lens", _u32),
        ("jited_ksyms", _u64), ("jited_func_lens", _u64),
        ("btf_id", _u32), ("func_info_rec_size", _u32), ("func_info", _u64),
        ("nr_func_info", _u32), ("nr_line_info", _u32), ("line_info", _u64),
        ("jited_line_info", _u64), ("nr_jited_line_info", _u32), ("line_info_rec_size", _u32),
        ("jited_line_info_rec_size", _u32), ("nr_prog_tags", _u32), ("prog_tags", _u64),
        ("run_time_ns", _u64), ("run_cnt", _u64),
    ]


# One BPF instruction (struct bpf_insn): opcode, dst:4|src:4 registers, off, imm.
BPF_INSN_SIZE = 8
BPF_LD_IMM64 = 0x18        # BPF_LD | BPF_DW | BPF_IMM: a two-slot instruction

# Opcode parts (include/uapi/linux/bpf_common.h, bpf.h) for the programs pybpf assembles itself
# (runtime.btf_walk): class | size | mode for loads and stores, class | op | source otherwise.
BPF_LDX, BPF_ST, BPF_STX, BPF_JMP, BPF_ALU64 = 0x01, 0x02, 0x03, 0x05, 0x07
BPF_W, BPF_B, BPF_DW = 0x00, 0x10, 0x18
BPF_MEM = 0x60
BPF_K, BPF_X = 0x00, 0x08
BPF_ADD, BPF_SUB, BPF_MUL, BPF_AND, BPF_LSH, BPF_RSH, BPF_XOR, BPF_MOV = (0x00, 0x10, 0x20, 0x50, 0x60, 0x70,
                                                                        0xA0, 0xB0)
BPF_JA, BPF_JEQ, BPF_JGT, BPF_JGE = 0x00, 0x10, 0x20, 0x30
BPF_CALL, BPF_EXIT = 0x80, 0x90
BPF_REG_FP = 10             # the read-only frame pointer


def bpf_insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One struct bpf_insn, as the kernel reads it (little-endian here)."""
    return _struct.pack("<BBhi", code, dst | src << 4, off, imm)


# r0 = 0; exit: the body of the programs pybpf loads only to ask the kernel what it takes.
RETURN_ZERO = bpf_insn(BPF_ALU64 | BPF_MOV | BPF_K) + bpf_insn(BPF_JMP | BPF_EXIT)

"""Byte offsets of every attr layout, as the kernel's BTF (this 6.18 kernel's vmlinux) states them: a
wrong offset can be accepted silently by the kernel."""

import ctypes
import os

import pytest

from pybpf.uapi import bpf as B
from pybpf.uapi import perf_event as P

LAYOUTS = [
    (B.MapCreateAttr, 72, {"map_type": 0, "max_entries": 12, "map_flags": 16, "map_name": 28,
                           "map_ifindex": 44, "btf_vmlinux_value_type_id": 60, "map_extra": 64}),
    (B.MapElemAttr, 32, {"map_fd": 0, "key": 8, "value": 16, "flags": 24}),
    (B.MapBatchAttr, 56, {"in_batch": 0, "out_batch": 8, "keys": 16, "values": 24, "count": 32,
                          "map_fd": 36, "elem_flags": 40, "flags": 48}),
    (B.ProgLoadAttr, 144, {"prog_type": 0, "insn_cnt": 4, "insns": 8, "license": 16, "log_level": 24,
                           "log_size": 28, "log_buf": 32, "kern_version": 40, "prog_flags": 44,
                           "prog_name": 48, "prog_ifindex": 64, "expected_attach_type": 68,
                           "prog_btf_fd": 72, "func_info": 80, "line_info": 96, "attach_btf_id": 108,
                           "attach_prog_fd": 112, "fd_array": 120, "core_relos": 128,
                           "log_true_size": 140}),
    (B.TestRunAttr, 80, {"prog_fd": 0, "retval": 4, "data_in": 16, "data_out": 24, "repeat": 32,
                         "duration": 36, "ctx_size_in": 40, "ctx_in": 48, "ctx_out": 56, "flags": 64,
                         "cpu": 68, "batch_size": 72}),
    (B.GetIdAttr, 12, {"start_id": 0, "next_id": 4, "open_flags": 8}),
    (B.ObjPinAttr, 24, {"pathname": 0, "bpf_fd": 8, "file_flags": 12, "path_fd": 16}),
    (B.ObjInfoAttr, 16, {"bpf_fd": 0, "info_len": 4, "info": 8}),
    (B.LinkCreateAttr, 24, {"prog_fd": 0, "target_fd": 4, "attach_type": 8, "flags": 12, "bpf_cookie": 16}),
    # include/uapi/linux/bpf.h link_create.uprobe_multi, after the four u32 of every link
    (B.LinkCreateUprobeMultiAttr, 64, {"prog_fd": 0, "target_fd": 4, "attach_type": 8,
                                       "flags": 12, "path": 16, "offsets": 24,
                                       "ref_ctr_offsets": 32, "cookies": 40, "cnt": 48,
                                       "uprobe_flags": 52, "pid": 56}),
    (B.RawTracepointOpenAttr, 24, {"name": 0, "prog_fd": 8, "cookie": 16}),
    (B.LinkCreateTracingAttr, 32, {"prog_fd": 0, "target_fd": 4, "attach_type": 8, "flags": 12,
                                   "target_btf_id": 16, "cookie": 24}),
    (B.ProgInfo, 208, {"type": 0, "id": 4, "tag": 8, "jited_prog_len": 16, "load_time": 40,
                       "map_ids": 56, "name": 64, "ifindex": 80, "gpl_compatible": 84, "netns_dev": 88,
                       "jited_ksyms": 112, "btf_id": 128, "func_info": 136, "line_info": 152,
                       "jited_line_info": 160, "prog_tags": 184, "run_time_ns": 192, "run_cnt": 200}),
    (P.PerfEventAttr, 72, {"type": 0, "size": 4, "config": 8, "sample_period": 16, "sample_type": 24,
                           "read_format": 32, "flags": 40, "wakeup_events": 48, "bp_type": 52,
                           "config1": 56, "config2": 64}),
]


@pytest.mark.parametrize("layout,size,offsets", LAYOUTS, ids=[layout.__name__ for layout, _, _ in LAYOUTS])
def test_layout(layout, size, offsets):
    assert ctypes.sizeof(layout) == size
    assert {name: getattr(layout, name).offset for name in offsets} == offsets


def test_perf_event_attr_states_its_size():
    # PERF_ATTR_SIZE_VER1: the kernel reads attr.size bytes, and rejects sizes it does not know.
    assert P.PerfEventAttr().size == 72


def test_perf_ioctl_numbers():
    # _IO('$', n) = 0x24 << 8 | n; _IOW adds direction 1 << 30 and the argument size (4) << 16.
    assert P.PERF_EVENT_IOC_ENABLE == (ord("$") << 8) | 0
    assert P.PERF_EVENT_IOC_DISABLE == (ord("$") << 8) | 1
    assert P.PERF_EVENT_IOC_SET_BPF == (1 << 30) | (4 << 16) | (ord("$") << 8) | 8


def test_pt_regs_offsets_match_the_kernel():
    # struct pt_regs from this kernel's BTF, field by field
    import os
    from pybpf import btf
    from pybpf.uapi.ptrace import PT_REGS_OFFSETS, PT_REGS_SIZE
    if not os.path.exists(btf.VMLINUX):
        pytest.skip("needs the kernel's BTF")
    kernel = btf.vmlinux()
    regs = kernel.find("pt_regs", "struct")
    assert regs.size == PT_REGS_SIZE
    for name, offset in PT_REGS_OFFSETS.items():
        member = kernel.member(regs, name)
        assert member is not None and member.offset == offset, name


def test_helper_ids_match_the_kernel():
    # enum bpf_func_id from this kernel's BTF: BPF_FUNC_<name> = the id pybpf calls.
    import os
    from pybpf import btf
    if not os.path.exists(btf.VMLINUX):
        pytest.skip("needs the kernel's BTF")
    kernel = {v.name: v.value for v in btf.vmlinux().find("bpf_func_id", "enum").values}
    assert {f.name: kernel.get("BPF_FUNC_" + f.name) for f in B.BpfFunc} == \
        {f.name: int(f) for f in B.BpfFunc}


@pytest.mark.parametrize("ids,kernel_enum,prefix", [(P.PerfSwId, "perf_sw_ids", "PERF_COUNT_SW_"),
                                                    (P.PerfHwId, "perf_hw_id", "PERF_COUNT_HW_")])
def test_perf_event_ids_match_the_kernel(ids, kernel_enum, prefix):
    import os
    from pybpf import btf
    if not os.path.exists(btf.VMLINUX):
        pytest.skip("needs the kernel's BTF")
    values = {v.name: v.value for v in btf.vmlinux().find(kernel_enum, "enum").values}
    assert {prefix + i.name: int(i) for i in ids} == {n: v for n, v in values.items() if not n.endswith("_MAX")}


HW_BREAKPOINT_HEADER = "/usr/include/linux/hw_breakpoint.h"


@pytest.mark.skipif(not os.path.exists(HW_BREAKPOINT_HEADER), reason="no kernel headers")
def test_breakpoint_constants_match_the_uapi_header():
    import re
    with open(HW_BREAKPOINT_HEADER) as f:
        text = f.read()
    assert {name: int(P.HwBreakpoint[name]) for name in ("R", "W", "X")} == \
        {m[1]: int(m[2]) for m in re.finditer(r"HW_BREAKPOINT_([RWX])\s*=\s*(\d+)", text)}
    assert P.HwBreakpoint.RW == P.HwBreakpoint.R | P.HwBreakpoint.W
    assert P.HW_BREAKPOINT_LENS == tuple(int(n) for n in re.findall(r"HW_BREAKPOINT_LEN_(\d)\s*=\s*\1,", text)
                                         if n in "1248")

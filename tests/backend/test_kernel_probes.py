"""Code for the probes typed by the kernel's BTF, checked in the ELF and the program metadata
without loading (fentry cannot load on every kernel; kprobes cannot attach on every kernel)."""

import struct

import pytest

from pybpf import btf
from pybpf.backend.objspec import parse_object
from pybpf.compiler import compile_source
from pybpf.uapi.bpf import BPF_PSEUDO_BTF_ID, BpfAttachType, BpfFunc, BpfProgType

pytestmark = pytest.mark.skipif(not __import__("os").path.exists(btf.VMLINUX),
                                reason="needs the kernel's BTF")


def context_loads(insns: bytes) -> list[tuple[int, int]]:
    """(offset, size) of every load through r1 before r1 is overwritten: the context reads."""
    sizes = {0x79: 8, 0x61: 4, 0x69: 2, 0x71: 1}
    loads = []
    for off in range(0, len(insns), 8):
        opcode, regs, offset, _ = struct.unpack_from("<BBhi", insns, off)
        dst, src = regs & 0xF, regs >> 4
        if opcode in sizes and src == 1:
            loads.append((offset, sizes[opcode]))
        if dst == 1 and opcode not in (0x7B, 0x63, 0x6B, 0x73):     # r1 reassigned
            break
    return loads


def only_program(source):
    compiled = compile_source(source)
    (program,) = compiled.programs
    section = parse_object(compiled.elf).programs[program.section]
    return program, section


def test_fentry_program_names_its_function():
    program, section = only_program("fentry:vfs_read { @ = sum(args.count); }")
    assert program.prog_type == BpfProgType.TRACING
    assert program.expected_attach_type == BpfAttachType.TRACE_FENTRY
    assert program.attach_btf_id == btf.vmlinux().func("vfs_read").id
    # vfs_read(file, buf, count, pos): count is the third u64 of the context
    assert (16, 8) in context_loads(section.insns)


def test_fexit_retval_follows_the_arguments():
    program, section = only_program("fexit:vfs_read { @ = hist(retval); }")
    assert program.expected_attach_type == BpfAttachType.TRACE_FEXIT
    assert (32, 8) in context_loads(section.insns)      # after the 4 arguments


def test_kprobe_reads_arguments_from_pt_regs():
    program, section = only_program("kprobe:vfs_read { @ = sum(arg2); }")
    assert program.prog_type == BpfProgType.KPROBE and program.attach_btf_id == 0
    assert (96, 8) in context_loads(section.insns)      # arg2 is rdx, pt_regs offset 96


def test_kretprobe_retval_is_rax():
    _, section = only_program("kretprobe:vfs_read { @ = hist(retval); }")
    assert (80, 8) in context_loads(section.insns)


def test_rawtracepoint_args_from_the_btf_trace_typedef():
    program, section = only_program(
        "rawtracepoint:sched_switch { @[args.next->comm] = count(); }")
    assert program.prog_type == BpfProgType.RAW_TRACEPOINT
    # sched_switch(preempt, prev, next, prev_state): next is the third u64
    assert (16, 8) in context_loads(section.insns)


def test_one_fentry_program_per_function():
    compiled = compile_source("fentry:vfs_read,fentry:vfs_write { @[func] = count(); }")
    ids = {p.attach_btf_id for p in compiled.programs}
    kernel = btf.vmlinux()
    assert ids == {kernel.func("vfs_read").id, kernel.func("vfs_write").id}


def helper_calls_and_wide_loads(insns: bytes) -> list[tuple]:
    """('call', helper id) and ('ld_imm64', src_reg, imm) in order: the calls and ksym loads."""
    found = []
    for off in range(0, len(insns), 8):
        opcode, regs, _, imm = struct.unpack_from("<BBhi", insns, off)
        if opcode == 0x85:
            found.append(("call", imm))
        elif opcode == 0x18 and regs >> 4:
            found.append(("ld_imm64", regs >> 4, imm))
    return found


def test_socket_cookie_and_path_call_their_helpers_in_fentry():
    _, section = only_program("fentry:tcp_rcv_established { @[socket_cookie(args.sk)] = count(); }")
    assert ("call", BpfFunc.get_socket_cookie) in helper_calls_and_wide_loads(section.insns)
    for source in ('fentry:vfs_open { printf("%s\\n", path(args.path)); }',
                   'fentry:filp_close { printf("%s\\n", path(args.filp->f_path, 32)); }'):
        _, section = only_program(source)
        assert ("call", BpfFunc.d_path) in helper_calls_and_wide_loads(section.insns)


def test_percpu_kaddr_loads_the_ksym_and_asks_for_a_cpus_copy(tmp_path, monkeypatch):
    from pybpf.builtins import stacks
    listing = tmp_path / "kallsyms"
    listing.write_text("ffffffff83a2c000 D runqueues\n")
    monkeypatch.setattr(stacks, "KALLSYMS", str(listing))
    runqueues = btf.vmlinux().find_id("runqueues", "var")
    _, section = only_program('i:s:1 { print(percpu_kaddr("runqueues")->nr_running); '
                              '$q = percpu_kaddr("runqueues", 1); if ($q != 0) { print($q->cpu); } }')
    found = helper_calls_and_wide_loads(section.insns)
    ksym = ("ld_imm64", BPF_PSEUDO_BTF_ID, runqueues)
    for helper in (BpfFunc.this_cpu_ptr, BpfFunc.per_cpu_ptr):
        assert found[found.index(("call", helper)) - 1] == ksym


def test_a_rawtracepoint_calling_a_tracing_helper_loads_as_a_btf_tracepoint():
    """socket_cookie's helper exists only in tracing programs: the block becomes a TRACING
    program loaded against the tracepoint's btf_trace_ typedef, one per tracepoint; a block that
    calls none stays a raw tracepoint program."""
    kernel = btf.vmlinux()
    compiled = compile_source("rawtracepoint:tcp_destroy_sock,rawtracepoint:tcp_rcv_space_adjust "
                              "{ @[socket_cookie(args.sk)] = count(); }")
    assert [(p.prog_type, p.expected_attach_type, p.attach_btf_id) for p in compiled.programs] == [
        (BpfProgType.TRACING, BpfAttachType.TRACE_RAW_TP, kernel.tracepoint_typedef(name).id)
        for name in ("tcp_destroy_sock", "tcp_rcv_space_adjust")]
    program, _ = only_program("rawtracepoint:inet_sock_set_state { @ = count(); }")
    assert (program.prog_type, program.attach_btf_id) == (BpfProgType.RAW_TRACEPOINT, 0)


def test_override_calls_bpf_override_return_with_the_registers():
    # kprobes cannot attach on this kernel: the code is checked, not run
    from pybpf.compiler import CompileOptions
    compiled = compile_source('kprobe:__x64_sys_getuid /comm == "id"/ { override(2 << 21); }',
                              options=CompileOptions(unsafe=True))
    (program,) = compiled.programs
    insns = parse_object(compiled.elf).programs[program.section].insns
    assert ("call", BpfFunc.override_return) in helper_calls_and_wide_loads(insns)


def test_skboutput_sends_the_skb_to_a_perf_event_array_from_a_btf_tracepoint():
    from pybpf.cpus import cpu_slots
    from pybpf.program import SKB_OUTPUT_MAP
    from pybpf.uapi.bpf import BpfMapType
    compiled = compile_source('rawtracepoint:netif_receive_skb { skboutput("a.pcap", args.skb, 64, 14); '
                              'skboutput("b.pcap", args.skb, 64, 0); skboutput("a.pcap", args.skb, 9, 0); }')
    assert compiled.pcap_files == ("a.pcap", "b.pcap")
    (program,) = compiled.programs
    assert program.prog_type == BpfProgType.TRACING
    spec = parse_object(compiled.elf)
    array = spec.maps[SKB_OUTPUT_MAP]
    assert (array.map_type, array.key_size, array.value_size, array.max_entries) == \
        (BpfMapType.PERF_EVENT_ARRAY, 4, 4, cpu_slots())
    calls = helper_calls_and_wide_loads(spec.programs[program.section].insns)
    assert calls.count(("call", BpfFunc.skb_output)) == 3

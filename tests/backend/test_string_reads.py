"""str(address) reads with the helper for the memory the address is in, as bpftrace's address
spaces decide: a syscall tracepoint's pointer argument is the process's (bpf_probe_read_user_str,
what hand-written C uses); where nothing says, the helper that tells by the address."""

import struct

import pytest

from pybpf.backend.objspec import parse_object
from pybpf.compiler import compile_source
from pybpf.uapi.bpf import BpfFunc

pytestmark = pytest.mark.skipif(not __import__("os").path.isdir("/sys/kernel/tracing/events/syscalls"),
                                reason="needs the syscall tracepoints")

STRING_READERS = {BpfFunc.probe_read_str, BpfFunc.probe_read_user_str, BpfFunc.probe_read_kernel_str}


def string_reads(source: str) -> list[int]:
    """The string-reading helpers the programs call, in order."""
    compiled = compile_source(source)
    calls = []
    for program in compiled.programs:
        insns = parse_object(compiled.elf).programs[program.section].insns
        for off in range(0, len(insns), 8):
            opcode, regs, _, imm = struct.unpack_from("<BBhi", insns, off)
            if opcode == 0x85 and regs >> 4 == 0 and imm in STRING_READERS:
                calls.append(imm)
    return calls


def test_a_syscall_argument_is_read_from_the_process():
    assert string_reads("tracepoint:syscalls:sys_enter_openat { @[str(args->filename)] = count(); }") \
        == [BpfFunc.probe_read_user_str]


def test_an_address_of_unknown_memory_is_read_by_the_helper_that_tells():
    assert string_reads("BEGIN { @ = str(0); exit(); }") == [BpfFunc.probe_read_str]

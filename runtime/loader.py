"""ObjectSpec + CompiledProgram -> LoadedObject: maps created, map references patched, programs loaded.

    with load(parse_object(compiled.elf), compiled) as loaded:
        loaded.map_fds['__pybpf_events']           # fd of each map, by ELF symbol
        loaded.prog_fds['tracepoint/syscalls/sys_enter_openat']   # fd of each program, by section

The first BPF_PROG_LOAD goes without a verifier log, which keeps the common case fast; only a failed
load is repeated with a log, to raise a VerifierError carrying it. A program with for-loop callbacks
is loaded with the object's BTF (one BPF_BTF_LOAD, its fd closed once the programs hold it) and its
func_info; the others exactly as before.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os

from pybpf.program import CompiledProgram, MapDef, ObjectFormatError, ObjectSpec, ElfProgramSection
from pybpf.runtime.errors import BpfError, BpfPermissionError, NotSupportedError, VerifierError
from pybpf.runtime.syscall import OUT_OF_FDS, bpf
from pybpf.uapi.bpf import (BPF_FUNC_INFO_SIZE, BPF_INSN_SIZE, BPF_LOG_LEVEL1, BPF_OBJ_NAME_LEN,
                            BPF_PSEUDO_MAP_FD, BpfAttachType, BpfCmd, BpfProgType, BtfLoadAttr,
                            GetIdAttr, MapCreateAttr, ObjInfoAttr, ProgInfo, ProgLoadAttr)



def object_name(text: str) -> bytes:
    """A kernel object name (map_name, prog_name): at most 15 of [A-Za-z0-9_], shown by bpftool."""
    return "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_"
                   for c in text[:BPF_OBJ_NAME_LEN - 1]).encode()


def create_map(name: str, mapdef: MapDef) -> int:
    return bpf(BpfCmd.MAP_CREATE, MapCreateAttr(
        map_type=mapdef.map_type, key_size=mapdef.key_size, value_size=mapdef.value_size,
        max_entries=mapdef.max_entries, map_flags=mapdef.map_flags, map_name=object_name(name)))


def patch_map_fds(program: ElfProgramSection, map_fds: dict[str, int]) -> bytearray:
    """The instructions with each relocated ld_imm64 loading a map fd (src_reg = BPF_PSEUDO_MAP_FD)."""
    insns = bytearray(program.insns)
    for offset, symbol in program.relocations.items():
        insns[offset + 1] = (insns[offset + 1] & 0x0F) | (BPF_PSEUDO_MAP_FD << 4)
        insns[offset + 4:offset + 8] = map_fds[symbol].to_bytes(4, "little")
        insns[offset + 12:offset + 16] = bytes(4)   # upper half of the 64-bit immediate
    return insns


class ProbeUnavailableError(NotSupportedError):
    """The kernel cannot run this kind of probe (kprobes compiled out, fentry refused): its message is
    the whole story, in one line for the user."""

    def __str__(self) -> str:
        return self.detail


# What a TRACING program is, by its expected attach type, for messages.
_TRACING_KINDS = {BpfAttachType.TRACE_RAW_TP: "BTF tracepoint (rawtracepoint)",
                  BpfAttachType.TRACE_FENTRY: "fentry/fexit", BpfAttachType.TRACE_FEXIT: "fentry/fexit"}
LOCKDOWN_FILE = "/sys/kernel/security/lockdown"


def lockdown_mode(path: str = LOCKDOWN_FILE) -> str | None:
    """The kernel lockdown mode ('none', 'integrity', 'confidentiality'), or None when securityfs does
    not tell (unmounted, or no lockdown LSM)."""
    import re       # here: a cache hit imports no re

    try:
        with open(path) as f:
            match = re.search(r"\[(\w+)\]", f.read())
    except OSError:
        return None
    return match[1] if match else None


def tracing_refused(probe: str, expected_attach_type: int, err: int) -> ProbeUnavailableError:
    """BPF_PROG_LOAD of a TRACING program refused with EPERM/EACCES although we hold CAP_BPF: a policy of
    this kernel (lockdown here), not missing privileges."""
    kind = _TRACING_KINDS.get(expected_attach_type, "BPF tracing")
    mode = lockdown_mode()
    why = f"kernel lockdown is in {mode} mode" if mode and mode != "none" else "kernel lockdown?"
    where = f"{probe}: " if probe else ""
    return ProbeUnavailableError("PROG_LOAD", err,
                                 f"{where}{kind} programs cannot be loaded on this kernel: BPF_PROG_LOAD "
                                 f"returned {errno.errorcode.get(err, err)} ({why})")


def load_btf(btf: bytes) -> int:
    """BPF_BTF_LOAD of a program's own BTF; a rejection is retried with the kernel's log, which
    the error then carries."""
    data = ctypes.create_string_buffer(btf, len(btf))
    attr = BtfLoadAttr(btf=ctypes.addressof(data), btf_size=len(btf))
    try:
        return bpf(BpfCmd.BTF_LOAD, attr)
    except BpfError as first:
        if first.errno in OUT_OF_FDS:
            raise
        log = ctypes.create_string_buffer(1 << 16)
        attr.btf_log_buf, attr.btf_log_size, attr.btf_log_level = ctypes.addressof(log), len(log), 1
        try:
            return bpf(BpfCmd.BTF_LOAD, attr)
        except BpfError as second:
            raise VerifierError("BTF_LOAD", second.errno, log.value.decode(errors="replace"),
                                "the program's BTF") from None


def load_program(name: str, prog_type: int, insns: bytes, license: str, probe: str = "",
                 expected_attach_type: int = 0, attach_btf_id: int = 0, btf_fd: int = 0,
                 func_info: tuple[tuple[int, int], ...] = (), log_size: int = 1000000,
                 on_log=None, prog_flags: int = 0) -> int:
    """probe: what the program is for (its attach points), named by a VerifierError.
    log_size: the verifier log's buffer (the log_size setting; the kernel keeps the log's end when
    it overflows). on_log(text), when given (-d verifier), takes the log of a load that succeeds:
    the program is then loaded with the log on from the first try.
    expected_attach_type and attach_btf_id (a vmlinux BTF id: attach_btf_obj_fd stays 0) are what a
    TRACING program (BTF tracepoint, fentry/fexit) needs; zero for the others. A program with
    callbacks comes with its functions' (first instruction, BTF FUNC id) and the BTF's fd."""
    code = ctypes.create_string_buffer(bytes(insns), len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    attr = ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // BPF_INSN_SIZE,
                        insns=ctypes.addressof(code), license=ctypes.addressof(lic),
                        prog_name=object_name(name), expected_attach_type=expected_attach_type,
                        attach_btf_id=attach_btf_id, prog_flags=prog_flags)
    if func_info:
        records = (ctypes.c_uint32 * (2 * len(func_info)))(*(n for record in func_info for n in record))
        attr.prog_btf_fd, attr.func_info_rec_size = btf_fd, BPF_FUNC_INFO_SIZE
        attr.func_info, attr.func_info_cnt = ctypes.addressof(records), len(func_info)
    first = None
    if on_log is None:      # the log only when the kernel refuses: it slows the load down
        try:
            return bpf(BpfCmd.PROG_LOAD, attr)
        except BpfError as e:
            if e.errno in OUT_OF_FDS:
                # The program verified; only its fd is missing. A retry's log would be the
                # verifier's success, mistaken for a rejection.
                raise
            first = e
    log = ctypes.create_string_buffer(log_size)
    attr.log_level, attr.log_size, attr.log_buf = BPF_LOG_LEVEL1, log_size, ctypes.addressof(log)
    try:
        fd = bpf(BpfCmd.PROG_LOAD, attr)
    except BpfError as second:
        first = first or second
        text = log.value.decode(errors="replace")
        if text.strip() and first.errno not in OUT_OF_FDS:
            raise VerifierError("PROG_LOAD", second.errno, text, probe or name) from None
        if (prog_type == BpfProgType.TRACING and first.errno in (errno.EPERM, errno.EACCES)
                and not isinstance(first, BpfPermissionError)):
            raise tracing_refused(probe, expected_attach_type, first.errno) from None
        if first.errno == errno.EINVAL or isinstance(first, NotSupportedError):
            # Rejected before verification: this kernel does not take this program type.
            raise NotSupportedError("PROG_LOAD", first.errno,
                                    f"{name}: program type {_prog_type_name(prog_type)}") from None
        raise first from None
    if on_log is not None:
        on_log(log.value.decode(errors="replace"))
    return fd


class LoadedObject:
    def __init__(self):
        self.map_fds: dict[str, int] = {}
        self.prog_fds: dict[str, int] = {}

    def close(self) -> None:
        for fds in (self.prog_fds, self.map_fds):
            while fds:
                os.close(fds.popitem()[1])

    def __enter__(self) -> "LoadedObject":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load(obj: ObjectSpec, compiled: CompiledProgram, on_verifier_log=None) -> LoadedObject:
    """Every map and program of the object; on_verifier_log(probe, log), when given, takes each
    program's verifier log (-d verifier)."""
    loaded = LoadedObject()
    btf_fd = 0
    try:
        for symbol, mapdef in obj.maps.items():
            loaded.map_fds[symbol] = create_map(symbol, mapdef)
        for spec in compiled.programs:
            section = obj.programs.get(spec.section)
            if section is None:
                raise ObjectFormatError(f"program section {spec.section!r} is not in the object")
            if section.func_info and not btf_fd:
                btf_fd = load_btf(obj.btf)
            try:
                loaded.prog_fds[spec.section] = load_program(
                    spec.section.rsplit("/", 1)[-1], spec.prog_type,
                    patch_map_fds(section, loaded.map_fds), obj.license,
                    _probe_label(spec.attach_points), spec.expected_attach_type, spec.attach_btf_id,
                    btf_fd, section.func_info, compiled.verifier_log_size,
                    on_verifier_log and functools.partial(on_verifier_log, _probe_label(spec.attach_points)))
            except VerifierError as e:
                if e.failed_insn is not None:
                    e.source = section.source_of(e.failed_insn)
                raise
    except BaseException:
        loaded.close()
        raise
    finally:
        if btf_fd:
            os.close(btf_fd)      # the programs loaded with it hold their own reference
    return loaded


def _probe_label(points) -> str:
    names = [p.name for p in points]
    if len(names) <= 3:
        return ", ".join(names)
    return f"{', '.join(names[:2])} and {len(names) - 2} more"


def _prog_type_name(prog_type: int) -> str:
    try:
        return BpfProgType(prog_type).name
    except ValueError:
        return str(prog_type)


def prog_info(prog_fd: int) -> ProgInfo:
    """The kernel's view of a loaded program: id, name and, with kernel.bpf_stats_enabled=1,
    run_cnt and run_time_ns (the in-kernel cost per event)."""
    info = ProgInfo()
    bpf(BpfCmd.OBJ_GET_INFO_BY_FD, ObjInfoAttr(bpf_fd=prog_fd, info_len=ctypes.sizeof(info),
                                               info=ctypes.addressof(info)))
    return info


def prog_ids() -> list[int]:
    """Ids of every program loaded in the kernel (anyone's)."""
    ids, attr = [], GetIdAttr(start_id=0)
    while True:
        try:
            bpf(BpfCmd.PROG_GET_NEXT_ID, attr)
        except BpfError as e:
            if e.errno == errno.ENOENT:
                return ids
            raise
        ids.append(attr.next_id)
        attr = GetIdAttr(start_id=attr.next_id)


def prog_fd_by_id(prog_id: int) -> int:
    return bpf(BpfCmd.PROG_GET_FD_BY_ID, GetIdAttr(start_id=prog_id))

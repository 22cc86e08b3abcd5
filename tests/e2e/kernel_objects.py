"""The pybpf programs in the kernel, and who holds them: the leak check that ends every kernel test
(conftest.py).

Other people's pybpf runs come and go meanwhile (another test run on the same machine): a program
of theirs can be loaded and held by no one while its process dies, and a killed process that had
attached hundreds of perf events takes seconds (~15 s for every sys_enter_* tracepoint) to close
them. So the check looks at the programs held by no one once our processes have all exited, and
waits for those to leave the kernel: 5 s (an RCU grace period, our own detach), and longer, up to
60 s, while some task is still in its exit, closing files. A program loaded later is not ours. A
program of ours that nobody holds and that stays is a leak whatever else runs."""

import os
import re
import time

OUR_PROG = re.compile(rb"^p\d+$")


def pybpf_programs_in_kernel() -> set[int]:
    """Ids of the loaded programs named like pybpf's."""
    from pybpf.runtime.errors import BpfError
    from pybpf.runtime.loader import prog_fd_by_id, prog_ids, prog_info
    ids = set()
    for prog_id in prog_ids():
        try:
            fd = prog_fd_by_id(prog_id)
        except BpfError:
            continue
        try:
            if OUR_PROG.match(prog_info(fd).name):
                ids.add(prog_id)
        finally:
            os.close(fd)
    return ids


def programs_held_by(pid: int | str) -> set[int]:
    """Ids of the programs process `pid` holds an fd of (none once it is gone)."""
    held = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-prog":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("prog_id:"):
                        held.add(int(line.split()[1]))
    except OSError:                # gone meanwhile, or not ours to read
        pass
    return held


def programs_held_by_processes() -> set[int]:
    """Ids of the programs some live process holds an fd of (other people's pybpf runs)."""
    return set().union(*map(programs_held_by, filter(str.isdigit, os.listdir("/proc"))))


def leaked_programs(before: set[int]) -> set[int]:
    """Programs loaded since `before` that no process holds: attached or pinned, nobody's."""
    new = pybpf_programs_in_kernel() - before
    return new - programs_held_by_processes() if new else set()


PF_EXITING = 0x4                # include/linux/sched.h: the task is in do_exit()


def exits_in_flight() -> bool:
    """Whether some task is in its exit and not yet a zombie: it may still be closing the files
    (perf events, links) that keep programs loaded."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:          # gone meanwhile
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            state, *_, flags = stat[stat.rindex(")") + 2:].split(maxsplit=7)[:7]
            if int(flags) & PF_EXITING and state not in "ZX":
                return True
    return False


def wait_for_release(before: set[int], settle: float = 5.0, cap: float = 60.0) -> set[int]:
    """The programs loaded since `before` that no process holds now, and that are still loaded
    and held by no one after `settle` seconds, or after up to `cap` while some task is in its exit
    (see the module's docstring)."""
    start = time.monotonic()
    suspects = leaked_programs(before)
    while suspects:
        waited = time.monotonic() - start
        if waited >= cap or (waited >= settle and not exits_in_flight()):
            break
        time.sleep(0.1)
        suspects &= pybpf_programs_in_kernel()      # a program loaded later is not ours
    return suspects & leaked_programs(before)

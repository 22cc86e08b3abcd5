"""Syscall tracepoints sharing one program on raw sys_enter/sys_exit count, name and read exactly
what one perf event per tracepoint does (--no-shared-syscalls), including the syscall numbers
pybpf's table gives, and skip 32-bit tasks' syscalls as the per-syscall tracepoints do."""

import os
import platform
import re
import signal
import struct
import subprocess

import pytest

from e2e_helpers import READY, Running, named_child

pytestmark = [pytest.mark.kernel,
              pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64's syscall table")]

COMM = f"pybpfs{os.getpid()}"
MODES = {"shared": [], "per-syscall": ["--no-shared-syscalls"]}


def run_traced(script: str, child: list[str], mode: str) -> tuple[dict[str, int], str]:
    """Run `script` (in `mode`) around one run of `child`; -> ({map line key: value}, child's stdout)."""
    run = Running(MODES[mode] + ["-e", READY + script])
    run.wait_for("ready")
    done = subprocess.run(child, capture_output=True, text=True, timeout=30)
    out, err, code = run.stop(signal.SIGINT)
    assert code == 0 and "Traceback" not in err, err
    assert done.returncode == 0, done.stderr
    return {k: int(v) for k, v in re.findall(r"^(@\S*): (-?\d+)$", out, re.M)}, done.stdout


@pytest.mark.parametrize("mode", MODES)
def test_each_syscall_is_counted_under_its_own_probe(mode):
    maps, _ = run_traced(
        f'tracepoint:syscalls:sys_enter_getppid,tracepoint:syscalls:sys_enter_getpgid '
        f'/comm == "{COMM}"/ {{ @[probe] = count(); @nr[args->__syscall_nr] = count(); }}',
        named_child(COMM, "import os\nfor _ in range(7): os.getppid()\n"
                          "for _ in range(5): os.getpgid(0)\n"), mode)
    assert maps == {"@[tracepoint:syscalls:sys_enter_getppid]": 7,
                    "@[tracepoint:syscalls:sys_enter_getpgid]": 5,
                    "@nr[110]": 7, "@nr[121]": 5}


@pytest.mark.parametrize("mode", MODES)
def test_exit_probes_read_the_return_value(mode):
    maps, printed = run_traced(
        f'tracepoint:syscalls:sys_exit_getpid,tracepoint:syscalls:sys_exit_getppid '
        f'/comm == "{COMM}"/ {{ @[probe] = sum(args->ret); }}',
        named_child(COMM, "import os\nfor _ in range(3): os.getpid()\n"
                          "for _ in range(2): os.getppid()\nprint(os.getpid(), os.getppid())\n"),
        mode)
    pid, ppid = map(int, printed.split())
    assert maps["@[tracepoint:syscalls:sys_exit_getpid]"] == 4 * pid
    assert maps["@[tracepoint:syscalls:sys_exit_getppid]"] == 3 * ppid


@pytest.mark.parametrize("mode", MODES)
def test_arguments_come_from_the_syscall_registers(mode):
    maps, _ = run_traced(
        f'tracepoint:syscalls:sys_enter_read,tracepoint:syscalls:sys_enter_pread64 '
        f'/comm == "{COMM}" && (args->count == 3 || args->count == 5)/ '
        f'{{ @[probe] = sum(args->count); @fd[probe] = max(args->fd); }}',
        named_child(COMM, "import os\nfd = os.open('/proc/self/stat', os.O_RDONLY)\n"
                          "for _ in range(4): os.read(fd, 3)\n"
                          "for _ in range(2): os.pread(fd, 5, 0)\nprint(fd)\n"), mode)
    assert maps["@[tracepoint:syscalls:sys_enter_read]"] == 12
    assert maps["@[tracepoint:syscalls:sys_enter_pread64]"] == 10
    assert maps["@fd[tracepoint:syscalls:sys_enter_read]"] >= 3


@pytest.mark.parametrize("mode", MODES)
def test_an_int_argument_is_read_as_its_declared_type(mode):
    maps, _ = run_traced(
        f'tracepoint:syscalls:sys_enter_kill /comm == "{COMM}"/ {{ @pid = min(args->pid); }} '
        f'tracepoint:syscalls:sys_enter_openat /comm == "{COMM}"/ {{ @dfd = min(args->dfd); }}',
        named_child(COMM, "import os\ntry:\n    os.kill(-999999, 0)\nexcept OSError:\n    pass\n"
                          "os.close(os.open('/proc/self/stat', os.O_RDONLY))\n"), mode)
    assert (maps["@pid"], maps["@dfd"]) == (-999999, -100)     # not 2**32 - 999999, 2**32 - 100


# The table against the kernel: each syscall here made by the child must be reported under the
# number the per-syscall tracepoint's own record carries.
TABLE_CHECK = ["getppid", "getpid", "gettid", "getuid", "getgid", "geteuid", "read", "write",
               "close", "openat", "newfstat", "newuname", "lseek", "dup", "dup2", "pipe2",
               "sched_yield", "getcwd", "umask", "newfstatat", "getrandom"]
TABLE_CHILD = """import os
fd = os.open('/proc/self/stat', os.O_RDONLY)
os.read(fd, 1); os.lseek(fd, 0, 0); os.fstat(fd); os.stat('/'); os.close(os.dup(fd))
os.dup2(fd, fd + 10); os.getppid(); os.getpid(); os.getuid(); os.getgid(); os.geteuid()
os.uname(); os.sched_yield(); os.getcwd(); os.umask(os.umask(0o22)); os.urandom(4)
r, w = os.pipe(); os.write(w, b'x'); os.close(r); os.close(w)
import ctypes; ctypes.CDLL(None).syscall(186)
"""


def test_syscall_numbers_match_the_kernels():
    from pybpf.uapi.unistd_64 import SYSCALL_NUMBERS
    points = ",".join(f"tracepoint:syscalls:sys_enter_{n}" for n in TABLE_CHECK)
    maps, _ = run_traced(f'{points} /comm == "{COMM}"/ {{ @[probe] = max(args->__syscall_nr); }}',
                         named_child(COMM, TABLE_CHILD), "per-syscall")
    seen = {k[len("@[tracepoint:syscalls:sys_enter_"):-1]: v for k, v in maps.items()}
    assert len(seen) >= len(TABLE_CHECK) - 2          # libc may pick a sibling call for one or two
    assert {n: SYSCALL_NUMBERS[n] for n in seen} == seen


def i386_program(calls: int, number: int) -> bytes:
    """A static 32-bit x86 ELF executable making syscall `number` `calls` times with int $0x80,
    then exit(0): a 32-bit task, without a 32-bit toolchain."""
    code = (b"\xb8" + struct.pack("<I", number) + b"\xcd\x80") * calls
    code += b"\xb8\x01\x00\x00\x00\x31\xdb\xcd\x80"          # mov eax, 1; xor ebx, ebx; int $0x80
    base, header_size = 0x08048000, 52 + 32
    size = header_size + len(code)
    elf_header = (b"\x7fELF\x01\x01\x01" + bytes(9)
                  + struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, base + header_size, 52, 0, 0, 52, 32, 1,
                                0, 0, 0))
    program_header = struct.pack("<IIIIIIII", 1, 0, base, base, size, size, 5, 0x1000)
    return elf_header + program_header + code


@pytest.mark.parametrize("mode", MODES)
def test_32_bit_tasks_syscalls_are_not_taken_for_their_64_bit_namesakes(mode, tmp_path):
    # i386 getpid is 20, which is writev on x86-64; the per-syscall tracepoints skip 32-bit calls
    name = f"pb32{os.getpid()}"[:15]
    exe = tmp_path / name
    exe.write_bytes(i386_program(5, 20))
    exe.chmod(0o755)
    try:
        subprocess.run([str(exe)], check=True, timeout=10)
    except OSError:
        pytest.skip("this kernel does not run 32-bit programs")
    maps, _ = run_traced(
        f'tracepoint:syscalls:sys_enter_writev,tracepoint:syscalls:sys_enter_getpid '
        f'/comm == "{name}"/ {{ @[probe] = count(); }} '
        f'tracepoint:raw_syscalls:sys_enter /comm == "{name}"/ {{ @raw = count(); }}',
        [str(exe)], mode)
    assert maps.get("@raw", 0) >= 6            # the calls happened: 5 getpid + exit
    assert not [k for k in maps if k.startswith("@[")]

"""Every tool in examples/ runs end to end against events the test causes, and prints the row
those events should give. Each case names the tool, the work a child process does (named with
prctl so that its rows can be told apart), and the rows expected, written with the child's pid
and comm."""

import os
import pty
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

import pytest

from e2e_helpers import Running, named_child

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
COMM = "pybpfexample"
# a file on a real disk (not tmpfs), for the block I/O tools
DISK_DIR = "/var/tmp"


@dataclass
class Case:
    tool: str
    body: str                    # the child's Python code (sys imported; argv[2:] from args)
    rows: list[str]              # regexes, each must match a line; {pid} {ppid} {comm} {dev} filled in
    args: tuple = ()
    script_args: tuple = ()      # the tool's own arguments, after its file on pybpf's command line
    needs: Callable[[], str | None] = lambda: None     # a reason to skip, or None


def _missing(path: str) -> Callable[[], str | None]:
    return lambda: None if os.path.exists(path) else f"{path} is not here"


DIRECT_WRITE = (
    "import mmap\n"
    "path = os.path.join(sys.argv[2], f'pybpf-bio-{os.getpid()}')\n"
    "fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT | os.O_SYNC, 0o600)\n"
    "buf = mmap.mmap(-1, 4096)\n"
    "buf.write(b'x' * 4096)\n"
    "for i in range(4):\n"
    "    os.pwrite(fd, buf, i * 4096)\n"
    "os.fsync(fd)\n"
    "os.close(fd)\n"
    "os.unlink(path)\n")

SPIN = "import time\nend = time.monotonic() + 0.4\nwhile time.monotonic() < end: pass\n"
# two seconds on a CPU: one of the tool's whole seconds has the spinning task in its load (0.9 and
# up: a task that moves between CPUs is counted a part on each, each part rounded down)
SPIN_2S = SPIN.replace("0.4", "2.0")

CASES = [
    Case("opensnoop", "open('/etc/hostname').close()\ntry: open('/pybpf-no-such-file')\n"
         "except OSError: pass\n",
         [r"^{pid} +{comm} +\d+ +0 /etc/hostname$", r"^{pid} +{comm} +-1 +2 /pybpf-no-such-file$"]),
    Case("execsnoop", "os.execv('/bin/true', ['true', 'pybpf-arg', '-x'])\n",
         [r"^\d+ +{pid} +{ppid} +true pybpf-arg -x$"]),
    Case("statsnoop", "try: os.stat('/pybpf-no-such-file')\nexcept OSError: pass\n"
         "os.stat('/etc/hostname')\n",
         [r"^{pid} +{comm} +2 +/pybpf-no-such-file$", r"^{pid} +{comm} +0 +/etc/hostname$"]),
    Case("killsnoop", "import signal\nos.kill(os.getpid(), 0)\nos.kill(0, 0)\n"
         "try: os.kill(2**22 + 1, signal.SIGTERM)\nexcept OSError: pass\n",
         [r"^\d\d:\d\d:\d\d {pid} +{comm} +0 +{pid} +0$",
          r"^\d\d:\d\d:\d\d {pid} +{comm} +0 +0 +0$",        # its process group
          r"^\d\d:\d\d:\d\d {pid} +{comm} +15 +4194305 +-3$"]),
    Case("syncsnoop", "import tempfile\nf = tempfile.TemporaryFile()\nos.fsync(f.fileno())\n"
         "os.fdatasync(f.fileno())\n",
         [r"^ +\d+\.\d{{3}} {pid} +{comm} +tracepoint:syscalls:sys_enter_fsync$",
          r"^ +\d+\.\d{{3}} {pid} +{comm} +tracepoint:syscalls:sys_enter_fdatasync$"]),
    Case("setuids", "os.setuid(0)\nos.setresuid(-1, 0, -1)\n",
         [r"^{pid} +{comm} +0 +setuid +0 +0 +0 +0$", r"^{pid} +{comm} +0 +setresuid +-1 +0 +-1 +0$"]),
    # every entry: on a busy machine ten other syscalls or processes may well make more calls
    Case("syscount", "for _ in range(300): os.getppid()\n",
         [r"^@syscall\[getppid\]: ([3-9]\d\d|\d{{4,}})$",
          r"^@process\[{comm}\]: ([3-9]\d\d|\d{{4,}})$"], script_args=("--top=0",)),
    Case("biolatency", DIRECT_WRITE, [r"^@usecs: ?$", r"^\[\d+K?, \d+K?\) +[1-9]\d* \|@+ *\|$"],
         args=(DISK_DIR,)),
    Case("biosnoop", DIRECT_WRITE, [r"^\d+ +{dev} +{comm} +{pid} +W\S* +\d+ +4096 +\d+$"],
         args=(DISK_DIR,)),
    Case("bitesize", DIRECT_WRITE, [r"^@kbytes\[{comm}\]: ?$", r"^\[4, 8\) +[1-9]\d* \|@+ *\|$"],
         args=(DISK_DIR,)),
    Case("runqlat", "import time\nfor _ in range(20): time.sleep(0.001)\n",
         [r"^@usecs: ?$", r"^\[\d+K?(, \d+K?)?\) +[1-9]\d* \|@+ *\|$"]),
    Case("runqlen", SPIN, [r"^@runqlen: ?$", r"^\[\d+, \d+\) +[1-9]\d* \|@+ *\|$"]),
    Case("cpuwalk", SPIN, [r"^@cpu: ?$", r"^\[\d+, \d+\) +[1-9]\d* \|@+ *\|$"]),
    # a relative sleep (libc's usleep), which lasts at least what it asks: time.sleep() sleeps to
    # a deadline taken before the call, so its call can be shorter when the child is preempted
    # first; the upper bound leaves room for a loaded machine's wait for a CPU after the wakeup
    Case("naptime", "import ctypes\nctypes.CDLL(None).usleep(50000)\n",
         [r"^\d\d:\d\d:\d\d {ppid} +\S+ +{pid} +{comm} +"
          r"(0\.0[5-9]\d|0\.[1-9]\d\d|[1-4]\.\d{{3}})$"]),
    Case("pidpersec", "for _ in range(5):\n    p = os.fork()\n    if p == 0: os._exit(0)\n"
         "    os.waitpid(p, 0)\n", [r"^(\d\d:\d\d:\d\d )?@forks: ([5-9]|\d\d+)$"]),
    Case("threadsnoop", "import threading\nt = threading.Thread(target=len, args=('',))\n"
         "t.start()\nt.join()\n", [r"^\d+ +{pid} +{comm} +0x[0-9a-f]+$"]),
    Case("gethostlatency", "import socket\nsocket.getaddrinfo('localhost', 80)\n",
         [r"^\d\d:\d\d:\d\d {pid} +{comm} +\d+ +localhost$"]),
    Case("ssllatency", "import ssl\nctx = ssl.create_default_context()\n"
         "tls = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname='pybpf.test')\n"
         "try: tls.do_handshake()\nexcept ssl.SSLWantReadError: pass\n",
         [r"^@failed\[SSL_do_handshake\]: [1-9]\d*$", r"^@usecs\[SSL_do_handshake\]: ?$"],
         needs=_missing("/lib/x86_64-linux-gnu/libssl.so.3")),
    # listeners (IPv4 and IPv6) whose socket filter drops every packet: each client's SYN goes
    # unanswered and is sent again after the initial RTO, one second
    Case("tcpretrans", "import ctypes, socket, struct, time\n"
         "drop_all = ctypes.create_string_buffer(struct.pack('HBBI', 0x06, 0, 0, 0))\n"
         "prog = struct.pack('HxxxxxxQ', 1, ctypes.addressof(drop_all))\n"
         "clients = []\n"
         "for family, host in ((socket.AF_INET, '127.0.0.1'), (socket.AF_INET6, '::1')):\n"
         "    srv = socket.socket(family)\n    srv.bind((host, 0))\n"
         "    srv.setsockopt(socket.SOL_SOCKET, 26, prog)\n    srv.listen()\n"  # SO_ATTACH_FILTER
         "    c = socket.socket(family)\n    c.setblocking(False)\n"
         "    c.connect_ex(srv.getsockname())\n    clients.append((srv, c))\n"
         "time.sleep(1.2)\n",
         [r"^\d\d:\d\d:\d\d \d+ +127\.0\.0\.1:\d+ +127\.0\.0\.1:\d+ +SYN_SENT$",
          r"^\d\d:\d\d:\d\d \d+ +::1:\d+ +::1:\d+ +SYN_SENT$"]),
    Case("tcpdrop", "import socket\ntry: socket.create_connection(('127.0.0.1', 1), timeout=1)\n"
         "except OSError: pass\n", [r"^\d\d:\d\d:\d\d \d+ +\S+ +0x0800 3$"]),
    Case("writeback", "import tempfile\nf = tempfile.NamedTemporaryFile(dir=sys.argv[2])\n"
         "f.write(b'x' * 65536)\nf.flush()\nos.sync()\n",
         [r"^\d\d:\d\d:\d\d \S+ +-?\d+ +sync +\d+$"], args=(DISK_DIR,)),
    Case("vfsstat", "f = open('/dev/zero', 'rb', buffering=0)\nfor _ in range(300): f.read(1)\n",
         [r"^@\[tracepoint:syscalls:sys_enter_read\]: ([3-9]\d\d|\d{{4,}})$"]),
    Case("profile", SPIN, [r"^@samples\[{comm}, {pid}, user\]: [1-9]\d*$"]),
    Case("readsize", "f = open('/dev/zero', 'rb', buffering=0)\nf.read(4096)\n"
         "fd = os.open('/dev/null', os.O_WRONLY)\ntry: os.read(fd, 1)\nexcept OSError: pass\n",
         [r"^@bytes\[{comm}\]: ?$", r"^\[4K, 8K\) +[1-9]\d* \|@+ *\|$",
          r"^@errors\[{comm}, Bad file descriptor\]: 1$"]),
    Case("loads", SPIN_2S,
         [r"^\d\d:\d\d:\d\d load ([1-9]\d*\.\d\d|0\.9\d), averages \d+\.\d\d \d+\.\d\d \d+\.\d\d$"]),
]


def test_every_example_has_a_case_or_a_reason():
    tools = {f[:-4] for f in os.listdir(EXAMPLES) if f.endswith(".pbt")}
    assert tools - {"bashreadline"} == {c.tool for c in CASES}


def test_every_example_says_what_it_shows_and_what_it_prints():
    for name in sorted(os.listdir(EXAMPLES)):
        if name.endswith(".pbt"):
            with open(os.path.join(EXAMPLES, name)) as f:
                header = f.read().split("\n\n")[0]
            assert header.startswith(f"// {name[:-4]}: "), name
            assert f"// # pybpf examples/{name}\n// Attaching " in header, name


@pytest.mark.kernel
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.tool)
def test_example_prints_the_rows_of_the_events_it_traces(case):
    reason = case.needs()
    if reason:
        pytest.skip(reason)
    run = Running([os.path.join(EXAMPLES, f"{case.tool}.pbt"), *case.script_args])
    run.wait_for("Attaching")
    run.wait_for("")             # the first line BEGIN prints: every probe is attached
    child = subprocess.Popen(named_child(COMM, "import os\n" + case.body, *case.args))
    assert child.wait(timeout=30) == 0
    out, err, code = run.stop()
    assert code == 0, err
    with open(os.path.join(EXAMPLES, f"{case.tool}.pbt")) as f:
        attaching = re.search(r"^// (Attaching \d+ probes?\.\.\.)$", f.read(), re.M)[1]
    assert out.startswith(attaching + "\n")        # the header's example says the truth
    st_dev = os.stat(DISK_DIR).st_dev
    fill = {"pid": child.pid, "ppid": os.getpid(), "comm": COMM,
            "dev": f"{os.major(st_dev):3d},{os.minor(st_dev):<3d}".strip()}
    for row in case.rows:
        assert re.search(row.format(**fill), out, re.M), (row.format(**fill), out)


@pytest.mark.kernel
@pytest.mark.skipif(not os.path.exists("/usr/bin/bash"), reason="no /usr/bin/bash")
def test_bashreadline_prints_the_command_typed_into_an_interactive_bash():
    run = Running([os.path.join(EXAMPLES, "bashreadline.pbt")])
    run.wait_for("COMMAND")
    pid, fd = pty.fork()
    if pid == 0:
        os.execve("/usr/bin/bash", ["bash", "--norc", "--noprofile", "-i"],
                  {"PATH": "/usr/bin:/bin", "TERM": "dumb", "HOME": "/"})
    try:
        os.write(fd, b"echo pybpf-readline-test\nexit\n")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:      # read the terminal until bash has gone
            try:
                if not os.read(fd, 4096):
                    break
            except OSError:                     # EIO: the terminal closed
                break
    finally:
        os.close(fd)
        os.waitpid(pid, 0)
    out, err, code = run.stop()
    assert code == 0, err
    assert re.search(rf"^\d\d:\d\d:\d\d {pid} +echo pybpf-readline-test$", out, re.M), out

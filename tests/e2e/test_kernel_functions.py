"""Functions of the kernel's BTF end to end (pybpf/builtins/kernel.py): socket_cookie against
the cookie the socket's owner reads with getsockopt(SO_COOKIE). (percpu_kaddr and path cannot
load on this kernel; their code is checked in tests/backend/test_kernel_probes.py.)"""

import socket
import struct

import pytest

from e2e_helpers import READY, Running, run_pybpf

SO_COOKIE = 57      # asm-generic/socket.h


@pytest.mark.kernel
def test_socket_cookie_is_the_cookie_so_cookie_reads():
    # bpftrace 0.26: socket_cookie(sk) is the kernel's cookie of the socket, stable for its life.
    # rawtracepoint runs it as a BTF tracepoint (the helper exists only in tracing programs).
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        run = Running(["-e", READY + "rawtracepoint:inet_sock_set_state "
                       f"/args.sk->__sk_common.skc_dport == {socket.htons(port)}/ "
                       '{ printf("cookie %d\\n", socket_cookie(args.sk)); }'])
        run.wait_for("ready")
        with socket.create_connection(("127.0.0.1", port)) as client:
            cookie = struct.unpack("Q", client.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0]
            seen = {run.wait_for("cookie "), run.wait_for("cookie ")}    # SYN_SENT, ESTABLISHED
        out, err, code = run.stop()
    assert code == 0, err
    assert seen == {f"cookie {cookie}\n"}


PAYLOAD = b"pybpf-skboutput-test"


def pcap_packets(path) -> tuple[int, list[bytes]]:
    """(link type, packets) of a pcap file."""
    data = path.read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack_from("<IHHiIII", data)
    assert magic == 0xA1B2C3D4
    packets, at = [], 24
    while at < len(data):
        _, _, kept, wire = struct.unpack_from("<IIII", data, at)
        packets.append(data[at + 16:at + 16 + kept])
        at += 16 + kept
    return linktype, packets


@pytest.mark.kernel
def test_skboutput_writes_the_received_packets_to_a_pcap_file(tmp_path):
    # bpftrace 0.26: skboutput(file, skb, length, offset) writes the skb's data to a RAW IP pcap.
    # netif_receive_skb sees the packet from its IP header on: offset 0; here only loopback's
    # packets to this test's port (its UDP header's destination port, 2 bytes at 22 of the IP).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        port = receiver.getsockname()[1]
        pcap = tmp_path / "in.pcap"
        run = Running(["-e", READY + "rawtracepoint:netif_receive_skb "
                       f"/args.skb->dev->ifindex == 1/ {{ @r[skboutput(\"{pcap}\", args.skb, "
                       "args.skb->len, 0)] = count(); }"])
        run.wait_for("ready")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(PAYLOAD, ("127.0.0.1", port))
        assert receiver.recv(100) == PAYLOAD
        out, err, code = run.stop()
    assert code == 0, err
    assert "@r[0]: " in out                       # the helper returned 0 each time
    linktype, packets = pcap_packets(pcap)
    assert linktype == 101                        # LINKTYPE_RAW
    ours = [p for p in packets if p[0] == 0x45 and p[9] == socket.IPPROTO_UDP and
            struct.unpack_from(">H", p, 22)[0] == port]
    assert len(ours) == 1 and ours[0].endswith(PAYLOAD)
    assert len(ours[0]) == 20 + 8 + len(PAYLOAD)     # IP and UDP headers, then the payload


def _in_kallsyms(name: str) -> bool:
    with open("/proc/kallsyms") as f:
        return any(line.split()[2] == name for line in f if len(line.split()) >= 3)


@pytest.mark.kernel
def test_percpu_kaddr_reads_a_per_cpu_variable_or_says_why_not():
    # bpftrace 0.26: percpu_kaddr(name[, cpu]) is the per-CPU variable's address on this (or that)
    # CPU. Its symbol comes from /proc/kallsyms, which lists data only with CONFIG_KALLSYMS_ALL.
    done = run_pybpf(["-q", "-e", 'rawtracepoint:sched_switch { $p = percpu_kaddr("process_counts", 0); '
                      'if ($p != 0) { printf("%d\\n", *$p); } exit(); }'])
    if _in_kallsyms("process_counts"):
        assert done.returncode == 0 and int(done.stdout) > 0, done
    else:
        assert done.returncode == 1
        assert done.stderr.splitlines()[0].endswith(
            "ERROR: percpu_kaddr: the kernel cannot resolve 'process_counts': it is not in "
            "/proc/kallsyms, which lists data symbols only with CONFIG_KALLSYMS_ALL"), done.stderr


PATH_PROBE = ('fentry:vfs_open { if (strcontains(path(args.path), "pybpf-path-test")) { '
              'printf("%s\\n", path(args.path)); exit(); } }')


@pytest.mark.kernel
def test_path_of_an_opened_file_or_why_fentry_cannot_load(tmp_path):
    # bpftrace 0.26: path(struct path *) is the file's full path (bpf_d_path, fentry/fexit only).
    # Where fentry programs cannot load (lockdown), pybpf says so in one line.
    loads = run_pybpf(["--verify-only", "-e", PATH_PROBE])
    if "cannot be loaded" in loads.stdout:
        assert loads.stdout == ("1 program compiled; not loaded: fentry:vfs_open: fentry/fexit "
                                "programs cannot be loaded on this kernel: BPF_PROG_LOAD returned "
                                "EPERM (kernel lockdown?)\n"), loads
        done = run_pybpf(["-q", "-e", PATH_PROBE])
        assert (done.returncode, done.stderr) == (1, "ERROR: " + loads.stdout.split(": ", 1)[1])
        return
    target = tmp_path / "pybpf-path-test"
    run = Running(["-q", "-e", READY + PATH_PROBE])
    run.wait_for("ready")
    target.write_text("x")
    out, err, code = run.stop(sig=None)
    assert code == 0 and out == f"ready\n{target}\n", err


@pytest.mark.kernel
def test_override_needs_kprobes_and_the_override_helper():
    # bpftrace 0.26: override(rc) (--unsafe, kprobes only) returns rc in place of the function.
    # Without CONFIG_BPF_KPROBE_OVERRIDE the verifier refuses the helper; without kprobes nothing
    # can attach: either is one clear error.
    done = run_pybpf(["-q", "--unsafe", "-e", "kprobe:__x64_sys_getuid { override(1); }"])
    assert done.returncode == 1
    assert ("program of this type cannot use helper bpf_override_return#58" in done.stderr or
            "kprobes are not available in this kernel" in done.stderr), done.stderr

"""Functions of the kernel's BTF end to end (pybpf/builtins/kernel.py): socket_cookie against
the cookie the socket's owner reads with getsockopt(SO_COOKIE). (percpu_kaddr and path cannot
load on this kernel; their code is checked in tests/backend/test_kernel_probes.py.)"""

import socket
import struct

import pytest

from e2e_helpers import READY, Running

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

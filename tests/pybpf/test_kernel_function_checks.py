"""The type rules of percpu_kaddr, socket_cookie and path (pybpf/builtins/kernel.py): what each
refuses, with the one line the user sees (no kernel needed: compile_to_ir stops before loading;
the kernel's BTF is)."""

import os

import pytest

from pybpf import btf
from pybpf.builtins import stacks
from pybpf.compiler import compile_to_ir
from pybpf.diagnostics import CompileError

pytestmark = pytest.mark.skipif(not os.path.exists(btf.VMLINUX), reason="needs the kernel's BTF")

REFUSED = [
    # bpf_d_path exists only in tracing programs: bpftrace's words, before the argument's type
    ('tracepoint:syscalls:sys_enter_openat { printf("%s", path(args.filename)); }',
     "The path function can only be used with 'fentry', 'fexit', 'iter' probes"),
    ('rawtracepoint:sched_switch { print(path(args.prev)); }',
     "The path function can only be used with 'fentry', 'fexit', 'iter' probes"),
    ("fentry:vfs_open { print(path(args.file)); }",
     "path() only supports 'struct path *' as the argument ('struct file *' provided)"),
    ("fentry:vfs_open { print(path(args.path, 9999)); }",
     "path: size must be between 1 and 64 (max_strlen)"),
    ("tracepoint:sock:inet_sock_set_state { @[socket_cookie(args.skaddr)] = count(); }",
     'socket_cookie can not be used with "tracepoint" probes'),
    ("fentry:vfs_open { @[socket_cookie(args.file)] = count(); }",
     "socket_cookie() only supports 'struct sock *' as the argument ('struct file *' provided)"),
    ('tracepoint:net:netif_receive_skb { skboutput("a.pcap", args.skbaddr, 64, 0); }',
     'skboutput can not be used with "tracepoint" probes'),
    ('rawtracepoint:netif_receive_skb { $f = "a.pcap"; skboutput($f, args.skb, 64, 0); }',
     "skboutput() expects a file name string literal"),
    ('rawtracepoint:netif_receive_skb { skboutput("a.pcap", args.skb->dev, 64, 0); }',
     "skboutput() only supports 'struct sk_buff *' as the argument ('struct net_device *' provided)"),
    ('rawtracepoint:netif_receive_skb { skboutput("a.pcap", args.skb, "x", 0); }',
     "skboutput() expects integer length and offset, got string[2]"),
    ('BEGIN { $n = "runqueues"; print(percpu_kaddr($n)); }',
     "percpu_kaddr() expects a string literal"),
    ('BEGIN { print(percpu_kaddr("no_such_percpu_variable")); }',
     "percpu_kaddr: no per-CPU kernel variable named 'no_such_percpu_variable'"),
    ('BEGIN { print(percpu_kaddr("runqueues", "0")); }',
     "percpu_kaddr() expects an integer CPU, got string[2]"),
]


@pytest.mark.parametrize("source,message", REFUSED)
def test_refused_with_a_message(source, message):
    with pytest.raises(CompileError) as raised:
        compile_to_ir(source)
    assert message in str(raised.value)
    assert str(raised.value).count("ERROR") == 1


def test_percpu_kaddr_needs_the_symbol_in_kallsyms(tmp_path, monkeypatch):
    """The verifier finds a ksym's address by name in kallsyms: a kernel that lists no data symbols
    there (no CONFIG_KALLSYMS_ALL) can never load the program, which the rule says at once."""
    listing = tmp_path / "kallsyms"
    listing.write_text("ffffffff81000000 T _stext\n")
    monkeypatch.setattr(stacks, "KALLSYMS", str(listing))
    with pytest.raises(CompileError, match="the kernel cannot resolve 'runqueues': it is not in "
                                           "/proc/kallsyms"):
        compile_to_ir('BEGIN { print(percpu_kaddr("runqueues")->nr_running); }')
    listing.write_text("ffffffff83a2c000 D runqueues\n")
    compile_to_ir('BEGIN { print(percpu_kaddr("runqueues")->nr_running); }')

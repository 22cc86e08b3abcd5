"""The type rules of issue #16's functions: what each refuses, with the message the user sees
(no kernel needed: compile_to_ir stops before loading)."""

import pytest

from pybpf import types as T
from pybpf.compiler import CompileOptions, compile_to_ir
from pybpf.diagnostics import CompileError

REFUSED = [
    ('BEGIN { $n = 2; strncmp("a", "b", $n); }', "Expected a constant integer"),
    ('BEGIN { strncmp("a", 1, 2); }', "strncmp() expects string arguments, got int64"),
    ("BEGIN { strcontains(1, \"x\"); }", "strcontains() expects string arguments, got int64"),
    ('BEGIN { bswap("x"); }', "bswap() expects an integer, got string[2]"),
    ("BEGIN { $p = \"/sys\"; cgroupid($p); }", "cgroupid() expects a string literal"),
    ("BEGIN { nsecs(wall); }", "nsecs() expects one of monotonic, boot, tai, sw_tai"),
    ('BEGIN { exit("no"); }', "exit() expects an integer exit code, got string[3]"),
    ("BEGIN { @m[1] = 1; has_key(@m[1], 1); }", "has_key() expects a map without a key"),
    ("BEGIN { @h[1] = hist(2); has_key(@h, 1); }", "has_key() cannot look into hist() map @h"),
    ('BEGIN { errorf(1); }', "printf() expects a format string literal"),
    ("BEGIN { sarg0; }", "The sarg0 builtin can only be used with kprobe and uprobe probes"),
    ('BEGIN { system("true"); }', "system() is an unsafe function being used in safe mode"),
    ("BEGIN { signal(9); }", "signal() is an unsafe function being used in safe mode"),
    ('BEGIN { syscall_name("read"); }', "syscall_name() expects an integer, got string[5]"),
    ("BEGIN { syscall_name(); }", "syscall_name() requires 1 argument (0 provided)"),
    ('BEGIN { strftime("%H", "x"); }', "strftime() expects an integer, got string[2]"),
    ("BEGIN { macaddr(\"abc\"); }", "macaddr() needs at least 6 bytes, got string[4]"),
    ("BEGIN { ntop(3, 1); }", "ntop(): address family 3 is neither AF_INET (2) nor AF_INET6 (10)"),
    ("BEGIN { ntop(10, 1); }", "ntop(): an integer holds no IPv6 address"),
    ('BEGIN { pton("1.2.3"); }', "pton(): '1.2.3' is not an IPv4 or IPv6 address"),
    ("BEGIN { buf(1); }", "buf() of an address needs a length: buf(x, n)"),
    ("BEGIN { buf(1, 1000); }", "buf() length must be between 0 and 256"),
    ('BEGIN { printf("%r", 1); }', "printf: %r specifier expects a value of type buffer (got int64)"),
    ('BEGIN { join(1, 2); }', "join() expects a string literal separator"),
    ('BEGIN { print(1, 2); }', "print() takes top and div arguments only after a map"),
    ('BEGIN { $f = "x"; print(cgroup_path(cgroup, $f)); }', "cgroup_path() expects a string literal filter"),
    ('BEGIN { print(cgroup_path("x")); }', "cgroup_path() expects an integer, got string[2]"),
    ('BEGIN { print(reg("ip")); }', "The reg function cannot be used with 'BEGIN' probes"),
    ('uprobe:libc:getpid { print(reg("xx")); }', "'xx' is not a valid register on this architecture"),
    ('uprobe:libc:getpid { $r = "ip"; print(reg($r)); }', "reg() expects a string literal"),
    ('BEGIN { @m[1] = 1; print(@m, "x"); }', "print(): top and div must be integers, got string[2]"),
    ('BEGIN { if (syscall_name(0) == "reed") { } }', "1:32-38: ERROR: No syscall is named 'reed' on x86_64"),
    ('BEGIN { if (syscall_name(0) != comm) { } }',
     "'syscall_name' is made into text only when printed, so it cannot be compared with a string: "
     'compare it with a string literal (syscall_name(nr) == "read"), or compare the number'),
    ('BEGIN { if (strerror(1) == "EPERM") { } }',
     "'strerror' is made into text only when printed, so it cannot be compared with a string\n"),
    ("BEGIN { if (syscall_name(0) == 0) { } }", "Type mismatch for '==': comparing 'syscall_name' with 'int64'"),
]


@pytest.mark.parametrize("source,message", REFUSED)
def test_refused_with_a_message(source, message):
    with pytest.raises(CompileError) as raised:
        compile_to_ir(source)
    assert message in str(raised.value)


def test_override_is_unsafe_and_for_kprobes_only():
    with pytest.raises(CompileError, match="override\\(\\) is an unsafe function being used in safe mode"):
        compile_to_ir("kprobe:vfs_read { override(1); }")
    with pytest.raises(CompileError, match="override can only be used with kprobes."):
        compile_to_ir("tracepoint:syscalls:sys_enter_getuid { override(1); }",
                      options=CompileOptions(unsafe=True))


def test_unsafe_allows_system_and_signal_where_bpftrace_does():
    compile_to_ir('BEGIN { system("true %d", 1); }', options=CompileOptions(unsafe=True))
    with pytest.raises(CompileError, match='signal can not be used with "BEGIN" probes'):
        compile_to_ir('BEGIN { signal("TERM"); }', options=CompileOptions(unsafe=True))
    with pytest.raises(CompileError, match="signal: invalid signal name 'SIGNOPE'"):
        compile_to_ir('uprobe:libc:getpid { signal("SIGNOPE"); }',
                      options=CompileOptions(unsafe=True))


def test_named_constants_fold_where_a_constant_is_expected():
    # tcplife.bt: ntop(AF_INET, addr), AF_INET from an included header
    compile_to_ir("#include <linux/socket.h>\nBEGIN { ntop(AF_INET, 1); ntop(AF_INET6, pton(\"::1\")); }")
    with pytest.raises(CompileError) as raised:
        compile_to_ir("BEGIN { ntop(NOT_A_CONSTANT, 1); }")
    message = str(raised.value)
    assert "Unknown identifier: 'NOT_A_CONSTANT'" in message
    assert "Expected a constant integer" not in message      # one error for one mistake


def test_byte_arrays_are_what_ntop_macaddr_and_buf_read():
    # tcpconnect.bt: ntop() of a kernel `__u8 u6_addr8[16]` (an array of bytes, not a string),
    # and of `(uint8[4])` casts, as bpftrace's ntop(int8[4|16]) takes them
    compile_to_ir("BEGIN { ntop((uint8[4])(uint32)1); macaddr((uint8[8])1); buf((uint8[2])(uint16)1); "
                  "$s = (struct sock *)0; ntop($s->__sk_common.skc_v6_daddr.in6_u.u6_addr8); }")
    with pytest.raises(CompileError, match=r"ntop\(\) expects an integer or a 4- or 16-byte array, "
                                           r"got uint16\[2\]"):
        compile_to_ir("BEGIN { ntop((uint16[2])(uint32)1); }")


def test_syscall_name_compared_with_a_literal_is_a_comparison_of_numbers():
    """syscall_name(nr) == "getppid" costs what nr == 110 does: no name is made in the kernel."""
    by_name = compile_to_ir('tracepoint:raw_syscalls:sys_enter /syscall_name(args.id) == "getppid"/ '
                            "{ @ = count(); }")
    assert list(by_name[1].syscall_comparisons.values()) == [110]
    assert "icmp eq i32" in by_name[0] and "110" in by_name[0]
    assert "getppid" not in by_name[0]         # the literal is not in the program


def test_syscall_name_keys_a_map_by_the_number_the_kernel_sees():
    """syscount.bt's @syscall[syscall_name(args.id)]: the key is the 8-byte number, named when
    printed (bpftrace copies a string[64] in the kernel instead)."""
    checked = compile_to_ir("tracepoint:raw_syscalls:sys_enter { "
                            "@syscall[syscall_name(args.id)] = count(); }")[1]
    assert checked.maps["@syscall"].key == (T.FormattedType("syscall_name"),)

"""Tracepoint format files: parsed from text (no kernel), and one real format read from tracefs."""

import pytest

from pybpf.tracefs import TracefsError, parse_format, read_format

# /sys/kernel/tracing/events/sched/sched_process_exec/format, with fields added for the other shapes
FORMAT = """\
name: sched_process_exec
ID: 365
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:char comm[16];\toffset:16;\tsize:16;\tsigned:0;
\tfield:const char * name;\toffset:32;\tsize:8;\tsigned:0;
\tfield:const struct sockaddr * uservaddr;\toffset:40;\tsize:8;\tsigned:0;
\tfield:unsigned long args[6];\toffset:48;\tsize:48;\tsigned:0;
\tfield:u64 flags;\toffset:96;\tsize:8;\tsigned:0;

print fmt: "filename=%s pid=%d", __get_str(filename), REC->pid
"""


@pytest.fixture(scope="module")
def fmt():
    return parse_format("sched", "sched_process_exec", FORMAT)


def test_id_and_names(fmt):
    assert (fmt.category, fmt.name, fmt.id) == ("sched", "sched_process_exec", 365)
    assert [f.name for f in fmt.fields] == [
        "common_type", "common_flags", "common_preempt_count", "common_pid",
        "filename", "pid", "comm", "name", "uservaddr", "args", "flags"]
    assert [f.name for f in fmt.args] == [
        "filename", "pid", "comm", "name", "uservaddr", "args", "flags"]


def test_common_fields(fmt):
    t = fmt.field("common_type")
    assert (t.ctype, t.offset, t.size, t.signed, t.is_common) == ("unsigned short", 0, 2, False, True)
    assert fmt.field("common_pid").signed


def test_data_loc_string(fmt):
    f = fmt.field("filename")
    assert (f.ctype, f.offset, f.size, f.data_loc, f.array_len) == ("char", 8, 4, True, None)
    assert f.is_string and not f.is_pointer
    assert f.declaration() == "__data_loc char[] filename"


def test_char_array(fmt):
    f = fmt.field("comm")
    assert (f.ctype, f.offset, f.size, f.array_len, f.data_loc) == ("char", 16, 16, 16, False)
    assert f.is_string and not f.is_pointer
    assert f.declaration() == "char comm[16]"


def test_pointers(fmt):
    name = fmt.field("name")
    assert (name.ctype, name.offset, name.size) == ("const char *", 32, 8)
    assert name.is_pointer and not name.is_string
    assert name.declaration() == "const char *name"
    addr = fmt.field("uservaddr")
    assert addr.ctype == "const struct sockaddr *" and addr.is_pointer


def test_integer_array_and_scalars(fmt):
    a = fmt.field("args")
    assert (a.ctype, a.array_len, a.size, a.is_string) == ("unsigned long", 6, 48, False)
    pid = fmt.field("pid")
    assert (pid.ctype, pid.size, pid.signed, pid.is_string) == ("pid_t", 4, True, False)
    assert fmt.field("flags").ctype == "u64"
    assert fmt.field("nope") is None


def test_missing_id_is_an_error():
    with pytest.raises(TracefsError, match="no ID"):
        parse_format("a", "b", "name: b\nformat:\n")


@pytest.mark.kernel
def test_real_format_sys_enter_openat():
    fmt = read_format("syscalls", "sys_enter_openat")
    assert fmt.id > 0
    names = [f.name for f in fmt.args]
    assert names == ["__syscall_nr", "dfd", "filename", "flags", "mode"]
    filename = fmt.field("filename")
    assert filename.is_pointer and filename.size == 8 and "char" in filename.ctype
    offsets = [f.offset for f in fmt.fields]
    assert offsets == sorted(offsets) and fmt.field("common_type").offset == 0


@pytest.mark.kernel
def test_real_format_with_data_loc():
    f = read_format("sched", "sched_process_exec").field("filename")
    assert f.data_loc and f.is_string


@pytest.mark.kernel
def test_unknown_tracepoint():
    with pytest.raises(TracefsError, match="tracepoint not found: nope:nothing"):
        read_format("nope", "nothing")


def test_a_syscall_argument_is_its_declared_integer_type():
    fmt = parse_format("syscalls", "sys_enter_openat", """name: sys_enter_openat
ID: 700
format:
\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;
\tfield:unsigned long count;\toffset:48;\tsize:8;\tsigned:0;
""")
    sizes = {f.name: (f.offset, f.size, f.signed) for f in fmt.args}
    assert sizes == {"__syscall_nr": (8, 4, True), "dfd": (16, 4, True), "filename": (24, 8, False),
                     "mode": (40, 2, False), "count": (48, 8, False)}

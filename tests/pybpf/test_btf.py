"""pybpf.btf: a synthetic blob with every kind (no kernel needed), then the running kernel's BTF,
cross-checked against bpftool's raw dump where bpftool is installed."""

import os
import re
import shutil
import struct
import subprocess

import pytest

from pybpf.btf import (
    Array, Btf, BtfError, Const, Datasec, DeclTag, Enum, Enum64, EnumValue, Float, Func, FuncProto, Fwd, Int,
    Member, Param, Ptr, Restrict, Struct, Typedef, TypeTag, Union, Var, VarSecInfo, Void, Volatile,
    module_names, strings_with_prefix, vmlinux,
)

KIND = {"int": 1, "ptr": 2, "array": 3, "struct": 4, "union": 5, "enum": 6, "fwd": 7, "typedef": 8,
        "volatile": 9, "const": 10, "restrict": 11, "func": 12, "func_proto": 13, "var": 14, "datasec": 15,
        "float": 16, "decl_tag": 17, "type_tag": 18, "enum64": 19}


class BlobBuilder:
    """Writes BTF by hand from the layout in the kernel's Documentation/bpf/btf.rst."""

    def __init__(self, endian="<", first_id=1, str_base=0):
        self.e, self.next_id, self.str_base = endian, first_id, str_base
        self.strs, self.types, self.offs = bytearray(b"\0"), bytearray(), {}

    def s(self, name):
        if not name:
            return 0
        if name not in self.offs:
            self.offs[name] = self.str_base + len(self.strs)
            self.strs += name.encode() + b"\0"
        return self.offs[name]

    def add(self, kind, name="", vlen=0, kflag=0, size_or_type=0, extra=()):
        info = (kflag << 31) | (KIND[kind] << 24) | vlen
        self.types += struct.pack(self.e + "III", self.s(name), info, size_or_type)
        for word in extra:
            self.types += struct.pack(self.e + "I", word & 0xFFFFFFFF)
        self.next_id += 1
        return self.next_id - 1

    def blob(self):
        hdr = struct.pack(self.e + "HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(self.types), len(self.types),
                          len(self.strs))
        return hdr + bytes(self.types) + bytes(self.strs)


def build_every_kind(endian="<"):
    b = BlobBuilder(endian)
    t_int = b.add("int", "int", size_or_type=4, extra=[(1 << 24) | 32])                    # 1
    t_char = b.add("int", "char", size_or_type=1, extra=[(3 << 24) | 8])                   # 2
    t_charp = b.add("ptr", size_or_type=t_char)                                             # 3
    t_cchar = b.add("const", size_or_type=t_char)                                           # 4
    t_ccharp = b.add("ptr", size_or_type=t_cchar)                                           # 5
    t_arr = b.add("array", extra=[t_int, t_int, 16])                                        # 6
    # struct rec { int a:3; int b:5; char *name; union { int x; enum color y; }; }  (kind_flag: bitfields)
    t_rec = b.add("struct", "rec", vlen=4, kflag=1, size_or_type=24,                        # 7
                  extra=[b.s("a"), t_int, (3 << 24) | 0, b.s("b"), t_int, (5 << 24) | 3,
                         b.s("name"), t_charp, 64, 0, 8, 128])
    b.add("union", vlen=2, size_or_type=8, extra=[b.s("x"), t_int, 0, b.s("y"), 9, 0])      # 8
    b.add("enum", "color", vlen=2, kflag=1, size_or_type=4,                                 # 9
          extra=[b.s("RED"), -1, b.s("BLUE"), 2])
    b.add("enum64", "big", vlen=2, size_or_type=8,                                          # 10
          extra=[b.s("HUGE"), 5, 1 << 8, b.s("MAX"), 0xFFFFFFFF, 0xFFFFFFFF])
    b.add("fwd", "later", kflag=1)                                                           # 11
    t_myint = b.add("typedef", "myint", size_or_type=t_int)                                 # 12
    b.add("volatile", size_or_type=t_myint)                                                  # 13
    b.add("restrict", size_or_type=t_charp)                                                  # 14
    t_proto = b.add("func_proto", vlen=3, size_or_type=t_int,                               # 15
                    extra=[b.s("a"), t_int, b.s("s"), t_ccharp, 0, 0])
    t_func = b.add("func", "myfunc", vlen=1, size_or_type=t_proto)                          # 16
    t_var = b.add("var", "gvar", size_or_type=t_int, extra=[1])                             # 17
    b.add("datasec", ".data", vlen=1, size_or_type=4, extra=[t_var, 0, 4])                  # 18
    b.add("float", "double", size_or_type=8)                                                 # 19
    b.add("decl_tag", "tag1", size_or_type=t_rec, extra=[1])                                # 20
    b.add("decl_tag", "tag2", size_or_type=t_func, extra=[-1])                              # 21
    t_utag = b.add("type_tag", "user", size_or_type=t_int)                                  # 22
    b.add("ptr", size_or_type=t_utag)                                                        # 23
    b.add("ptr", size_or_type=t_proto)                                                       # 24
    t_voidp = b.add("ptr", size_or_type=0)                                                   # 25
    t_tp = b.add("func_proto", vlen=3, extra=[0, t_voidp, 0, t_int, 0, t_charp])            # 26
    t_tpp = b.add("ptr", size_or_type=t_tp)                                                  # 27
    b.add("typedef", "btf_trace_demo", size_or_type=t_tpp)                                  # 28
    b.add("const", size_or_type=t_charp)                                                     # 29
    b.add("array", extra=[t_charp, t_int, 4])                                               # 30
    b.add("ptr", size_or_type=t_arr)                                                         # 31
    b.add("fwd", "rec")                                                                      # 32
    t_stub = b.add("func_proto", vlen=3, extra=[b.s("__data"), t_voidp, b.s("n"), t_int,    # 33
                                                b.s("s"), t_charp])
    b.add("func", "__probestub_demo", size_or_type=t_stub)                                  # 34
    return b


@pytest.fixture(scope="module")
def syn():
    return Btf.from_bytes(build_every_kind().blob(), name="syn")


def test_every_kind_decodes(syn):
    assert syn.type(0) == Void(0, "void")
    assert syn.type(1) == Int(1, "int", 4, 1, 32, 0) and syn.type(1).signed
    assert syn.type(2) == Int(2, "char", 1, 3, 8, 0)
    assert syn.type(3) == Ptr(3, "", 2)
    assert syn.type(4) == Const(4, "", 2)
    assert syn.type(6) == Array(6, "", 1, 1, 16)
    assert syn.type(7) == Struct(7, "rec", 24, (Member("a", 1, 0, 3), Member("b", 1, 3, 5),
                                                 Member("name", 3, 64), Member("", 8, 128)))
    assert syn.type(8) == Union(8, "", 8, (Member("x", 1, 0), Member("y", 9, 0)))
    assert syn.type(9) == Enum(9, "color", 4, (EnumValue("RED", -1), EnumValue("BLUE", 2)), True)
    assert syn.type(10) == Enum64(10, "big", 8, (EnumValue("HUGE", (1 << 40) | 5),
                                                 EnumValue("MAX", 2**64 - 1)), False)
    assert syn.type(11) == Fwd(11, "later", True)
    assert syn.type(12) == Typedef(12, "myint", 1)
    assert syn.type(13) == Volatile(13, "", 12)
    assert syn.type(14) == Restrict(14, "", 3)
    assert syn.type(15) == FuncProto(15, "", 1, (Param("a", 1), Param("s", 5), Param("", 0)))
    assert syn.type(15).variadic
    assert syn.type(16) == Func(16, "myfunc", 15, "global")
    assert syn.type(17) == Var(17, "gvar", 1, "global")
    assert syn.type(18) == Datasec(18, ".data", 4, (VarSecInfo(17, 0, 4),))
    assert syn.type(19) == Float(19, "double", 8)
    assert syn.type(20) == DeclTag(20, "tag1", 7, 1)
    assert syn.type(21) == DeclTag(21, "tag2", 16, -1)
    assert syn.type(22) == TypeTag(22, "user", 1)
    assert len(syn) == 35 and [t.id for t in syn] == list(range(1, 35))
    with pytest.raises(BtfError, match="no BTF type with id 35"):
        syn.type(35)


def test_big_endian_blob_decodes_the_same(syn):
    be = Btf.from_bytes(build_every_kind(">").blob())
    assert list(be) == list(syn)


def test_find_by_name_and_kind(syn):
    assert syn.find("rec").id == 7                      # the definition, not the forward declaration
    assert syn.find("rec", "fwd").id == 32
    assert syn.find("rec", "struct").id == 7
    assert syn.find_all("rec") == [7, 32]
    assert syn.find("myint", "typedef").id == 12
    assert syn.find("myint", "struct") is None
    assert syn.find("nosuch") is None
    with pytest.raises(BtfError, match="unknown BTF kind"):
        syn.find("rec", "structure")


def test_resolve_sizeof_members(syn):
    assert syn.resolve(13) == syn.type(1)                # volatile myint -> int
    assert syn.resolve(22).id == 1                       # type tags are transparent
    assert [syn.sizeof(i) for i in (1, 3, 6, 7, 8, 9, 10, 12, 13, 17, 19, 30)] == \
        [4, 8, 64, 24, 8, 4, 8, 4, 4, 4, 8, 32]
    for incomplete in (0, 11, 15, 16):
        with pytest.raises(BtfError, match="incomplete"):
            syn.sizeof(incomplete)
    assert syn.members(7)[1] == Member("b", 1, 3, 5)
    # 'y' lives in the anonymous union at bit 128: found through it, offsets summed
    assert syn.member(7, "y") == Member("y", 9, 128)
    fp = syn.field_path(7, "x")
    assert fp.path == ("", "x") and fp.member.offset == 16
    assert syn.member(7, "nosuch") is None
    assert syn.member_names(7) == ["a", "b", "name", "x", "y"]
    assert syn.offsetof(7, "name") == 8
    with pytest.raises(BtfError, match="not a struct or union"):
        syn.members(1)


@pytest.mark.parametrize("type_id, c_name", [
    (0, "void"), (1, "int"), (3, "char *"), (5, "const char *"), (6, "int[16]"), (7, "struct rec"),
    (8, "union (anonymous)"), (9, "enum color"), (10, "enum big"), (11, "union later"), (12, "myint"),
    (13, "volatile myint"), (14, "char *restrict"), (15, "int (int, const char *, ...)"),
    (16, "int myfunc(int, const char *, ...)"), (17, "int gvar"), (18, "SEC .data"), (19, "double"),
    (23, "int *"), (24, "int (*)(int, const char *, ...)"), (29, "char *const"), (30, "char *[4]"),
    (31, "int (*)[16]"), (32, "struct rec"),
])
def test_c_names(syn, type_id, c_name):
    assert syn.c_name(type_id) == c_name


def test_probe_helpers(syn):
    # names from __probestub_demo, types from the btf_trace_demo typedef, __data dropped
    assert syn.tracepoint_args("demo") == [Param("n", 1), Param("s", 3)]
    assert syn.func_args("myfunc") == [Param("a", 1), Param("s", 5)]
    assert syn.func_return("myfunc") == 1
    assert syn.list_names("rawtracepoint", "d*") == ["demo"]
    assert syn.list_names("fentry") == ["__probestub_demo", "myfunc"]
    assert syn.list_names("fentry", "my*") == ["myfunc"]
    assert syn.list_names("struct", "r?c") == ["rec"]
    with pytest.raises(BtfError, match="no BTF for function 'nosuch'"):
        syn.func_args("nosuch")
    with pytest.raises(BtfError, match="no btf_trace_nosuch typedef"):
        syn.tracepoint_args("nosuch")


def test_split_btf(syn):
    base_blob = build_every_kind().blob()
    base = Btf.from_bytes(base_blob)
    str_len = struct.unpack_from("<I", base_blob, 20)[0]
    b = BlobBuilder(first_id=base.end_id, str_base=str_len)
    # member 'name' reuses the base's string offset; 'own' is the module's
    base_name = next(off for off in range(str_len) if base._str_bytes(off) == b"name")
    t_mod = b.add("struct", "modstruct", vlen=2, size_or_type=32,
                  extra=[base_name, 7, 0, b.s("own"), 3, 192])
    b.add("ptr", size_or_type=t_mod)
    b.add("typedef", "myint", size_or_type=1)
    base_rec = next(off for off in range(str_len) if base._str_bytes(off) == b"rec")
    b.types += struct.pack("<III", base_rec, 7 << 24, 0)                 # struct rec; (a fwd)
    b.next_id += 1
    mod = Btf.from_bytes(b.blob(), base=base, name="mod")
    assert mod.start_id == 35 and len(mod) == 39
    assert mod.type(35).members == (Member("name", 7, 0), Member("own", 3, 192))
    assert mod.c_name(36) == "struct modstruct *"
    assert mod.type(7) is base.type(7)                   # base ids come from the base
    assert mod.sizeof(35) == 32 and mod.c_name(mod.members(35)[0].type_id) == "struct rec"
    assert mod.find_all("myint") == [12, 37]
    assert mod.find("modstruct", "struct").id == 35
    assert mod.find_all("rec") == [7, 32, 38]         # the last named by the base's string
    assert mod.find("rec", "fwd").id == 32
    assert [t.id for t in mod] == [35, 36, 37, 38]


def test_errors(tmp_path):
    with pytest.raises(BtfError, match=r"^BTF is not available: /nonexistent/vmlinux not found$"):
        Btf.load("/nonexistent/vmlinux")
    with pytest.raises(BtfError, match="not BTF data"):
        Btf.from_bytes(b"\0" * 64)
    blob = bytearray(build_every_kind().blob())
    with pytest.raises(BtfError, match="outside the data"):
        Btf.from_bytes(blob[:-10])
    struct.pack_into("<I", blob, 24 + 4, 25 << 24)       # type 1 gets kind 25
    with pytest.raises(BtfError, match="unknown type kind 25 at type id 1"):
        Btf.from_bytes(blob)


def test_disk_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "blob.btf"
    path.write_bytes(build_every_kind().blob())
    first = Btf.load(str(path))
    assert not first.cache_hit and os.path.exists(first.cache_file)
    second = Btf.load(str(path))
    assert second.cache_hit and second.cache_file == first.cache_file
    assert list(second) == list(first)
    assert second.find("rec").id == 7 and second.list_names("fentry") == first.list_names("fentry")
    assert [f for f in os.listdir(os.path.dirname(first.cache_file)) if f.startswith(".tmp")] == []

    # a corrupt file (flipped byte, truncated, garbage) is ignored and rewritten
    good = open(first.cache_file, "rb").read()
    for bad in (good[:170] + bytes([good[170] ^ 0xFF]) + good[171:], good[:-4], b"garbage"):
        open(first.cache_file, "wb").write(bad)
        again = Btf.load(str(path))
        assert not again.cache_hit and list(again) == list(first)
        assert open(first.cache_file, "rb").read() == good
        assert Btf.load(str(path)).cache_hit

    # a changed file gets a new key
    path.write_bytes(build_every_kind(">").blob())
    assert not Btf.load(str(path)).cache_hit
    assert not Btf.load(str(path), cache=False).cache_hit


# ---------------------------------------------------------------------------------------------------
# The running kernel.

VMLINUX = "/sys/kernel/btf/vmlinux"
needs_vmlinux = pytest.mark.skipif(not os.path.exists(VMLINUX), reason=f"{VMLINUX} is missing")


@pytest.fixture(scope="module")
def kernel():
    return vmlinux()


@pytest.fixture(scope="module")
def bpftool_raw():
    """`bpftool btf dump file /sys/kernel/btf/vmlinux format raw`, parsed: {id: (kind, name, [members])}."""
    tool = shutil.which("bpftool")
    if not tool:
        pytest.skip("bpftool is not installed")
    out = subprocess.run([tool, "btf", "dump", "file", VMLINUX, "format", "raw"], capture_output=True,
                         text=True, check=True).stdout
    types, cur = {}, None
    head = re.compile(r"^\[(\d+)\] (\w+) '([^']*)'")
    member = re.compile(r"^\t'([^']*)' type_id=(\d+) bits_offset=(\d+)(?: bitfield_size=(\d+))?")
    for line in out.splitlines():
        if m := head.match(line):
            cur = types[int(m[1])] = (m[2].lower(), "" if m[3] == "(anon)" else m[3], [])
        elif m := member.match(line):
            cur[2].append(Member("" if m[1] == "(anon)" else m[1], int(m[2]), int(m[3]), int(m[4] or 0)))
    return types


@needs_vmlinux
def test_task_struct(kernel):
    task = kernel.find("task_struct", "struct")
    assert isinstance(task, Struct) and task.size > 1000
    pid, comm = kernel.member(task, "pid"), kernel.member(task, "comm")
    assert kernel.c_name(pid.type_id) == "pid_t" and kernel.c_name(kernel.resolve(pid.type_id).id) == "int"
    assert kernel.sizeof(pid.type_id) == 4 and kernel.resolve(pid.type_id).signed
    assert kernel.c_name(comm.type_id) == "char[16]" and kernel.sizeof(comm.type_id) == 16
    assert kernel.c_name(kernel.member(task, "parent").type_id) == "struct task_struct *"
    # pahole-like reasoning: pid_t pid; pid_t tgid; sit next to each other, comm is 8-aligned
    assert kernel.member(task, "tgid").bit_offset == pid.bit_offset + 32
    assert comm.bit_offset % 64 == 0 and comm.bit_offset + 128 <= task.size * 8


@needs_vmlinux
def test_offsets_match_bpftool(kernel, bpftool_raw):
    task = kernel.find("task_struct", "struct")
    kind, name, members = bpftool_raw[task.id]
    assert (kind, name) == ("struct", "task_struct")
    assert kernel.members(task) == tuple(members)
    by_name = {m.name: m for m in members}
    assert kernel.member(task, "pid") == by_name["pid"] and kernel.member(task, "comm") == by_name["comm"]


@needs_vmlinux
def test_every_type_matches_bpftool(kernel, bpftool_raw):
    assert len(kernel) - 1 == max(bpftool_raw)
    for t in kernel:
        kind, name, members = bpftool_raw[t.id]
        assert (t.kind, t.name) == (kind, name), t.id
        if isinstance(t, Struct):
            assert t.members == tuple(members), t.id


@needs_vmlinux
def test_sock_dport_through_anonymous_members(kernel):
    sock = kernel.find("sock", "struct")
    common = kernel.member(sock, "__sk_common")
    assert kernel.c_name(common.type_id) == "struct sock_common"
    fp = kernel.field_path(common.type_id, "skc_dport")
    assert fp.path[0] == "" and fp.path[-1] == "skc_dport"    # inside an anonymous member
    assert kernel.c_name(fp.member.type_id) == "__be16" and kernel.sizeof(fp.member.type_id) == 2
    # skc_dport shares the 32-bit skc_portpair with skc_num, after skc_daddr and skc_rcv_saddr (or the
    # 64-bit skc_addrpair): offset 12 on every kernel since 3.x
    assert kernel.offsetof(sock, "__sk_common.skc_dport") == 12
    assert kernel.offsetof(sock, "__sk_common.skc_num") == 14
    assert "skc_dport" in kernel.member_names(common.type_id)


@needs_vmlinux
def test_sched_switch_and_vfs_read(kernel):
    args = kernel.tracepoint_args("sched_switch")
    assert [p.name for p in args] == ["preempt", "prev", "next", "prev_state"]
    assert [kernel.c_name(p.type_id) for p in args][1:3] == ["struct task_struct *"] * 2
    typedef = kernel.tracepoint_typedef("sched_switch")
    assert kernel.c_name(typedef.type_id).startswith("void (*)(void *, bool, struct task_struct *")
    params = kernel.func_args("vfs_read")
    assert [(p.name, kernel.c_name(p.type_id)) for p in params] == [
        ("file", "struct file *"), ("buf", "char *"), ("count", "size_t"), ("pos", "loff_t *")]
    assert kernel.c_name(kernel.func_return("vfs_read")) == "ssize_t"
    assert kernel.c_name(kernel.find("vfs_read", "func")).startswith("ssize_t vfs_read(struct file *, char *")


@needs_vmlinux
def test_list_names(kernel):
    sched = kernel.list_names("rawtracepoint", "sched_*")
    assert "sched_switch" in sched and "sched_wakeup" in sched and sched == sorted(set(sched))
    assert all(n.startswith("sched_") for n in sched)
    vfs = kernel.list_names("fentry", "vfs_*")
    assert "vfs_read" in vfs and "vfs_write" in vfs and all(n.startswith("vfs_") for n in vfs)
    assert kernel.list_names("fentry", "*_read") and "vfs_read" in kernel.list_names("fentry", "*_read")


@needs_vmlinux
def test_the_raw_tracepoints_found_in_the_strings_are_the_typedefs(kernel):
    # what raw_tracepoint_points reads instead of building the type index: the same names here
    assert strings_with_prefix("btf_trace_", VMLINUX) == set(kernel.list_names("rawtracepoint"))


@needs_vmlinux
def test_c_names_of_kernel_types(kernel):
    def named(name, kind):
        return kernel.c_name(kernel.find(name, kind))
    assert named("unsigned long", "int") == "unsigned long"
    assert named("u64", "typedef") == "u64"
    ops = kernel.find("file_operations", "struct")
    read = kernel.member(ops, "read")
    assert kernel.c_name(read.type_id) == "ssize_t (*)(struct file *, char *, size_t, loff_t *)"


@needs_vmlinux
def test_vmlinux_python_walk_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(Btf, "_walk_in_kernel", lambda self, hash_names: None)      # no BPF: Python walks
    cold = Btf.load(VMLINUX)
    warm = Btf.load(VMLINUX)
    assert not cold.cache_hit and warm.cache_hit
    assert (cold._offsets, cold._names, cold._enum_records, cold._names_at_starts) == \
        (warm._offsets, warm._names, warm._enum_records, warm._names_at_starts)
    t1, t2 = cold.find("task_struct", "struct"), warm.find("task_struct", "struct")
    assert t1 == t2 and cold.list_names("fentry", "vfs_*") == warm.list_names("fentry", "vfs_*")
    assert warm._name_index() == cold._name_index()                      # the sorted index, cached
    assert [e for e in os.listdir(os.path.dirname(cold.cache_file)) if e.endswith(".names")]


def _sorted_index_ids(btf, name):
    """What find_all answered before exact lookups searched names: the sorted index's range."""
    import bisect
    key = name.encode()
    index = btf._name_index()
    lo = bisect.bisect_left(index, key, key=btf._name_key)
    hi = bisect.bisect_right(index, key, lo, key=btf._name_key)
    return sorted(btf.start_id + i for i in index[lo:hi])


@pytest.fixture(params=["python walk", "kernel walk"])
def fresh_vmlinux(request, monkeypatch):
    """vmlinux's BTF walked in Python (its names searched), or by the kernel (a hash table)."""
    from pybpf import btf as B
    from pybpf.compiler import _walk_btf_in_kernel
    monkeypatch.setattr(B, "kernel_walk", _walk_btf_in_kernel if request.param == "kernel walk" else None)
    btf = Btf.load(VMLINUX, cache=False)
    if request.param == "kernel walk" and btf._name_table is None:
        pytest.skip("the kernel does not walk BTF here (needs root and BPF)")
    return btf


@needs_vmlinux
def test_exact_lookups_answer_as_the_sorted_index(fresh_vmlinux):
    fresh = fresh_vmlinux
    names = [fresh.string(fresh._names[i]) for i in fresh._name_index()]
    counts = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    kinds = {i: fresh._kind_at(i) for i in range(fresh.start_id, fresh.end_id)}
    records = sorted({fresh.string(fresh._names[i - fresh.start_id]) for i, k in kinds.items()
                      if k in ("struct", "union", "fwd")})
    # searched: every 5th struct, union and forward name, every name defined more than once, every
    # 20th name
    chosen = sorted(set(records[::5]) | {n for n, c in counts.items() if c > 1} | set(sorted(counts)[::20]))
    if fresh._name_table:          # a hash table's lookup takes microseconds: every name
        chosen = sorted(counts)
    for name in chosen + ["nosuch_type_name", "sock"[1:], "unsigned long"]:
        assert fresh.find_all(name) == _sorted_index_ids(fresh, name), name
    assert fresh.find("sock", "struct").kind == "struct" and fresh.find("sock").kind == "struct"


@needs_vmlinux
def test_enumerators_answer_as_the_first_enum_defining_them(kernel):
    fresh = Btf.load(VMLINUX, cache=False)
    first = {}
    for i in fresh._enum_records:
        enum = fresh.type(fresh.start_id + i)
        for v in enum.values:
            first.setdefault(v.name, (enum, v))
    chosen = sorted(first)[::5] + ["TCP_CLOSE", "TASK_RUNNING", "AF_INET", "pid", "CLOSE", "nosuch_enumerator"]
    for name in chosen:
        assert fresh.enumerator(name) == first.get(name), name


@needs_vmlinux
def test_lookups_are_kept_for_the_next_run(tmp_path, monkeypatch):
    from pybpf import btf as B
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cold = Btf.load(VMLINUX)
    answers = cold.find_all("task_struct"), cold.enumerator("TCP_CLOSE"), cold.enumerator("nosuch_enumerator")
    B.save_lookups()
    warm = Btf.load(VMLINUX)
    monkeypatch.setattr(Btf, "_string_offsets", lambda *a: pytest.fail("searched again"))
    assert (warm.find_all("task_struct"), warm.enumerator("TCP_CLOSE"), warm.enumerator("nosuch_enumerator")) \
        == answers


@pytest.mark.skipif(not module_names(), reason="no module BTF in /sys/kernel/btf (modules built in?)")
def test_module_btf():
    from pybpf.btf import find_in_modules, module
    name = module_names()[0]
    mod = module(name)
    base = vmlinux()
    assert mod.start_id == base.end_id and len(mod) > mod.start_id
    # some type of the module refers to a base type id, which resolves through the base
    for t in mod:
        ref = getattr(t, "type_id", None)
        if ref and ref < mod.start_id:
            assert mod.type(ref) is base.type(ref)
            break
    own = next(t for t in mod if t.name)
    assert any(m == name for m, _ in find_in_modules(own.name, own.kind))


def test_enumerators_by_name(syn):
    enum, value = syn.enumerator("RED")
    assert (enum.name, value.value) == ("color", -1)
    assert syn.enumerator("MAX")[1].value == 0xFFFFFFFFFFFFFFFF and syn.enumerator("MAX")[0].name == "big"
    assert syn.enumerator("GREEN") is None and syn.enumerator("color") is None


def test_enumerators_and_lookups_cached(tmp_path, monkeypatch):
    from pybpf import btf as B
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "blob.btf"
    path.write_bytes(build_every_kind().blob())
    assert Btf.load(str(path)).enumerator("BLUE")[1].value == 2
    B.save_lookups()
    entries = os.listdir(os.path.dirname(Btf.load(str(path)).cache_file))
    assert [e for e in entries if e.endswith(".lookups")]
    warm = Btf.load(str(path))
    monkeypatch.setattr(Btf, "_string_offsets", lambda *a: pytest.fail("searched again"))
    assert warm.enumerator("BLUE")[1].value == 2


def test_lookups_entry_that_does_not_fit_is_ignored(tmp_path, monkeypatch):
    from pybpf import diskcache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "blob.btf"
    path.write_bytes(build_every_kind().blob())
    btf = Btf.load(str(path))
    entry = btf._lookups_entry()
    for bad in (b"garbage", b'{"identity": "x", "ids": {}, "enumerators": {}}',
                ('{"identity": "%s", "ids": {"rec": [999]}, "enumerators": {}}' % btf.identity).encode(),
                ('{"identity": "%s", "ids": {"rec": "7"}, "enumerators": {}}' % btf.identity).encode()):
        diskcache.write("btf", entry, bad)
        again = Btf.load(str(path))
        assert again.find_all("rec") == [7, 32] and again.enumerator("RED")[1].value == -1


def test_names_inside_longer_strings_are_found():
    # BTF may name a type by an offset inside another string (a suffix): exact lookups still find it
    b = BlobBuilder()
    t_int = b.add("int", "int", size_or_type=4, extra=[(1 << 24) | 32])
    long_name = b.s("tcp_sock")
    b.add("struct", "sock", size_or_type=4, vlen=0)                     # 'sock' at its own offset
    b.types += struct.pack("<III", long_name + 4, 4 << 24, 8)          # struct named 'sock' by suffix
    b.next_id += 1
    b.types += struct.pack("<III", b.s("e"), (6 << 24) | 1, 4) + struct.pack("<Ii", long_name + 4, 3)
    b.next_id += 1                                                      # enum e { sock = 3 } by suffix
    btf = Btf.from_bytes(b.blob())
    assert not btf._names_at_starts
    assert btf.find_all("sock") == [2, 3] == _sorted_index_ids(btf, "sock")
    assert btf.find_all("tcp_sock") == [] == _sorted_index_ids(btf, "tcp_sock")
    assert btf.enumerator("sock")[1].value == 3 and btf.enumerator("ock") is None
    assert btf.find("int").id == t_int



"""C definitions of a script and its headers (pybpf.cdefs, pybpf.clayout, pybpf.include): layouts
as GCC computes them, the script's names before BTF's, errors pointing into the definition, and
headers read only when no other user could have written them."""

import os
import shutil
import subprocess
import sys

import pytest

from pybpf import ast, cdefs
from pybpf.compiler import CompileOptions, compile_to_ir
from pybpf.diagnostics import CompileError, Span
from pybpf.include import IncludeError
from pybpf.include import read_headers as read_with
from pybpf.preprocessor import Conditionals, predefined

def read_headers(source: str, include_dirs=(), include_files=()):
    """The headers of `source`, their conditionals over BPFTRACE_HAVE_BTF as the CLI reads them."""
    return read_with(source, Conditionals(predefined()), include_dirs, include_files)


needs_btf = pytest.mark.skipif(not os.path.exists("/sys/kernel/btf/vmlinux"),
                               reason="needs the kernel's BTF")

# Records that exercise each layout rule: padding, arrays of any dimension, nested and anonymous
# records, unions, bitfields (across units, unnamed, zero-width), packed and aligned, pointers to
# functions, enums, typedefs of anonymous records.
DEFINITIONS = """
struct a { char c; int i; short s; };
struct b { char c; long l[3]; struct a inner; unsigned int f1:3, f2:7; unsigned char z; };
union u { int i; char c[7]; long long q; };
struct bits { unsigned int lo:4; unsigned int hi:4; char next; int :0; char after;
              unsigned long long wide:40; unsigned short s:9, :3, t:5; };
typedef struct { int x; int y; } point_t;
struct withptr { struct withptr *next; void (*fn)(int); point_t p[2][3]; unsigned char t; };
struct packed { char c; int i; } __attribute__((packed));
struct aligned { char c; } __attribute__((aligned(16)));
struct anon { int a; union { int b; char c; }; struct { short d; short e; }; };
enum color { RED, GREEN = 5, BLUE };
struct tail { enum color c; long unsigned int n; signed char d[BLUE]; char flex[]; };
"""
RECORDS = {"a": "struct", "b": "struct", "u": "union", "bits": "struct", "withptr": "struct",
           "packed": "struct", "aligned": "struct", "anon": "struct", "tail": "struct"}


def types_of(text: str, defines=(), headers=()):
    definition = ast.CDefinition("struct", "", text, Span(1, 1, 1, 2))
    return cdefs.script_types((definition,), tuple(defines), tuple(headers))


def layout(btf, kind, name):
    t = btf.find(name, kind)
    return t.size, [(m.name, m.bit_offset, m.bitfield_size) for m in t.members if m.name]


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to compare with")
def test_layouts_are_the_ones_gcc_computes(tmp_path):
    types = types_of(DEFINITIONS)
    assert types.errors == []
    ours = {name: layout(types.btf, kind, name) for name, kind in RECORDS.items()}
    # The C program prints each record's size, then for each member its offset, or for a bitfield
    # the bits it sets when all of them are set (as the first and the last bit set).
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <string.h>", DEFINITIONS,
             "static void bits(const unsigned char *p, size_t n) { int lo = -1, hi = -1;"
             " for (size_t i = 0; i < n * 8; i++) if (p[i / 8] >> (i % 8) & 1) { if (lo < 0) lo = i;"
             " hi = i; } printf(\" %d-%d\", lo, hi); }", "int main(void) {"]
    for name, (_, members) in ours.items():
        kind = RECORDS[name]
        lines.append(f'printf("%zu", sizeof({kind} {name}));')
        for member, _, width in members:
            if width:
                lines.append(f"{{ {kind} {name} s; memset(&s, 0, sizeof s); s.{member} = -1;"
                             f" bits((const unsigned char *)&s, sizeof s); }}")
            else:
                lines.append(f'printf(" %zu", offsetof({kind} {name}, {member}));')
        lines.append('printf("\\n");')
    lines.append("return 0; }")
    (tmp_path / "t.c").write_text("\n".join(lines))
    subprocess.run(["gcc", "-w", "-o", str(tmp_path / "t"), str(tmp_path / "t.c")], check=True)
    printed = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    for (name, (size, members)), line in zip(ours.items(), printed):
        expected = [str(size)] + [f"{bit}-{bit + width - 1}" if width else str(bit // 8)
                                  for _, bit, width in members]
        assert line.split() == expected, name


def test_types_sizes_enumerators_and_defines():
    types = types_of("struct s { char name[LEN * 2]; enum e { A = 1, B = A << 3, C } k; };",
                     defines=[("LEN", "(4)")])
    btf = types.btf
    assert btf.sizeof(btf.find_id("s", "struct")) == 12
    assert [(v.name, v.value) for v in btf.find("e", "enum").values] == [("A", 1), ("B", 8),
                                                                         ("C", 9)]
    assert btf.enumerator("C")[1].value == 9 and types.constants["LEN"] == 4
    assert btf.c_name(btf.member(btf.find_id("s", "struct"), "name").type_id) == "char[8]"


@needs_btf
def test_the_scripts_definition_wins_over_btf_and_uses_kernel_types():
    # dcsnoop.bt's struct nameidata: two kernel structs, laid out by the script's definition
    types = types_of("struct nameidata { struct path path; struct qstr last; };")
    btf = types.btf
    nd = btf.find("nameidata", "struct")
    assert nd.id >= btf.start_id and nd.size == 32
    assert btf.offsetof(nd, "last.name") == 16 + btf.offsetof(btf.find_id("qstr", "struct"), "name")
    _, checked, _ = compile_to_ir("struct task_struct { int only; };\n"
                                  "BEGIN { @ = sizeof(struct task_struct); }")
    assert 4 in checked.constants.values()          # the script's task_struct, not the kernel's


def test_errors_point_into_the_definition():
    source = "struct ok { int a; };\nstruct bad {\n  int a;\n  mystery_t b;\n};\nBEGIN { }"
    with pytest.raises(CompileError) as e:
        compile_to_ir(source)
    assert str(e.value).split("\n")[:3] == [
        "stdin:4:3-12: ERROR: struct bad: expected a type, found 'mystery_t'",
        "  mystery_t b;", "  ~~~~~~~~~"]
    for text, message in [("struct r { int x:40; };", "width of bitfield x (40) exceeds its type"),
                          ("struct r { int x; }; struct r { int y; };", "redefinition of struct r"),
                          ("struct r { struct nope n; };", "incomplete type struct nope"),
                          ("struct r { int a[N]; };", "unknown name 'N' in a constant")]:
        assert message in types_of(text).errors[0][0], text


def test_headers_skip_what_defines_no_type_and_give_their_constants():
    header = cdefs.Header("defs.h", "#ifndef X\n#define X\n#define LEN 3\n"
                          "static inline int f(int a) { return a; }\nextern int counter;\n"
                          "int g(struct h *p, ...);\nstruct h { char c[LEN]; };\n#endif\n")
    types = types_of("struct s { struct h h; int n; };", headers=[header])
    assert types.errors == []
    assert types.btf.sizeof(types.btf.find_id("s", "struct")) == 8
    assert types.constants["LEN"] == 3


def test_include_dirs_and_files_are_read_in_include_order(tmp_path):
    (tmp_path / "inner.h").write_text("struct inner { int x; };\n")
    (tmp_path / "outer.h").write_text('#include "inner.h"\nstruct outer { struct inner i; };\n')
    (tmp_path / "first.h").write_text("#define FIRST 1\n")
    headers = read_headers("#include <outer.h>\n#include <linux/sched.h>\nBEGIN { }",
                           (str(tmp_path),), (str(tmp_path / "first.h"),))
    assert [h.name for h in headers] == [str(tmp_path / "first.h"), "inner.h", "outer.h"]
    assert read_headers("#include <outer.h>\nBEGIN { }") == ()       # without -I: BTF's


def test_headers_conditionals_are_evaluated_as_they_are_read_in_order(tmp_path):
    os.chmod(tmp_path, 0o755)
    (tmp_path / "h.h").write_text(
        "#ifndef H\n#define H\n#if defined(WIDE) && WIDE > 1\n#define N 2\nstruct s { long a; };\n"
        "#else\n#define N 1\nstruct s { char c; };\n#include <never.h>\n#endif\n"
        "#include <inner.h>\n#endif\n")
    (tmp_path / "inner.h").write_text("#if N == 2\n#define INNER 7\n#endif\n")
    (tmp_path / "never.h").write_text("#define NEVER 1\n")
    headers = read_headers("#define WIDE 2\n#include <h.h>\n#include <h.h>\n#ifdef NOPE\n"
                           "#include <never.h>\n#endif\nBEGIN { }", (str(tmp_path),))
    assert [h.name for h in headers] == ["inner.h", "h.h"]
    types = types_of("", headers=headers)
    assert types.errors == [] and (types.constants["N"], types.constants["INNER"]) == (2, 7)
    assert types.btf.sizeof(types.btf.find_id("s", "struct")) == 8
    narrow = read_headers("#include <h.h>\nBEGIN { }", (str(tmp_path),))
    assert [h.name for h in narrow] == ["never.h", "inner.h", "h.h"]
    assert types_of("", headers=narrow).constants["N"] == 1
    assert "INNER" not in types_of("", headers=narrow).constants


def test_a_headers_conditional_error_points_into_the_header(tmp_path):
    os.chmod(tmp_path, 0o755)
    (tmp_path / "bad.h").write_text("#define X 1\n#endif\n")
    with pytest.raises(CompileError) as e:
        read_headers("#include <bad.h>\nBEGIN { }", (str(tmp_path),))
    assert str(e.value) == f"{tmp_path}/bad.h:2:1-7: ERROR: #endif without #if\n#endif\n~~~~~~"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_a_header_another_user_could_write_is_refused(tmp_path):
    os.chmod(tmp_path, 0o755)
    header = tmp_path / "h.h"
    header.write_text("struct h { int x; };\n")
    os.chown(header, 65534, 65534)
    with pytest.raises(IncludeError, match=r"is owned by uid 65534, not by uid 0 or root"):
        read_headers("BEGIN { }", (), (str(header),))
    os.chown(header, 0, 0)
    os.chmod(header, 0o664)
    with pytest.raises(IncludeError, match="is writable by its group or by others"):
        read_headers("#include <h.h>\nBEGIN { }", (str(tmp_path),))
    os.chmod(header, 0o644)
    os.chmod(tmp_path, 0o777)
    with pytest.raises(IncludeError, match="writable by its group or by others and not sticky"):
        read_headers("#include <h.h>\nBEGIN { }", (str(tmp_path),))
    os.chmod(tmp_path, 0o755)
    assert read_headers("#include <h.h>\nBEGIN { }", (str(tmp_path),))[0].name == "h.h"


def test_the_cli_says_so_in_one_error_line(tmp_path):
    run = subprocess.run([sys.executable, "-c", "import sys; from pybpf.cli import main; "
                          "sys.exit(main(sys.argv[1:]))", "--include", str(tmp_path / "absent.h"),
                          "-e", "BEGIN { }"], capture_output=True, text=True)
    assert (run.returncode, run.stdout) == (1, "")
    assert run.stderr == (f"ERROR: --include: cannot read {tmp_path}/absent.h: "
                          "No such file or directory\n")


def test_headers_are_part_of_the_cache_key():
    from pybpf.cache import cache_key
    one = CompileOptions(headers=(cdefs.Header("h.h", "struct h { int x; };"),))
    two = CompileOptions(headers=(cdefs.Header("h.h", "struct h { long x; };"),))
    assert cache_key("BEGIN { }", one) != cache_key("BEGIN { }", two)


def test_a_struct_copied_whole_keeps_its_bitfields():
    from pybpf import types as T
    from pybpf.ktypes import KernelTypes
    from pybpf.runtime.values import decode, text_of
    types = types_of("struct r { char c; unsigned int flags:3, mode:5; int neg:4; "
                     "unsigned short last:9; };")
    layout = KernelTypes(types.btf).struct_layout(types.btf.find_id("r", "struct"))
    # as gcc: c, then flags, mode and neg in the int unit from bit 8; last (a short) at bit 20
    assert layout.size == 4 and [f for f in layout.fields if f[0] == "last"] == [
        ("last", 2, T.BitfieldType(2, 4, 9, False))]
    assert T.from_json(T.to_json(layout)) == layout
    raw = (65 | 5 << 8 | 17 << 11 | 0b1010 << 16 | 300 << 20).to_bytes(4, "little")
    assert text_of(decode(layout, raw)) == "{ .c = 65, .flags = 5, .mode = 17, .neg = -6, .last = 300 }"


@pytest.mark.skipif(os.geteuid() != 0, reason="listing kernel probes needs root")
def test_listing_a_programs_probes_reads_its_headers_too(tmp_path):
    os.chmod(tmp_path, 0o755)
    (tmp_path / "r.h").write_text("struct r { int x[3]; };\n")
    run = subprocess.run([sys.executable, "-c", "import sys; from pybpf.cli import main; "
                          "sys.exit(main(sys.argv[1:]))", "-l", "-I", str(tmp_path), "-e",
                          "#include <r.h>\nBEGIN { @ = sizeof(struct r); }"],
                         capture_output=True, text=True)
    assert (run.returncode, run.stdout, run.stderr) == (0, "BEGIN\n", "")


def test_function_like_defines_expand_inside_definitions_and_a_lone_forward_declaration():
    types = types_of("struct fwd;\nstruct S { char name[SIZE(LEN)]; PAIR(int, x, y); struct fwd *next; };",
                     defines=(("SIZE(n)", "((n) * 2)"), ("PAIR(t, a, b)", "t a; t b"), ("LEN", "3")))
    assert not types.errors
    assert layout(types.btf, "struct", "S") == (24, [("name", 0, 0), ("x", 64, 0), ("y", 96, 0),
                                                     ("next", 128, 0)])


def test_a_macro_called_with_the_wrong_number_of_arguments_is_an_error():
    with pytest.raises(CompileError) as e:
        compile_to_ir("#define TWICE(n) ((n) * 2)\nstruct S { char c[TWICE(1, 2)]; };\nBEGIN { }")
    assert str(e.value).split("\n")[0] == \
        "stdin:2:19-24: ERROR: struct S: macro TWICE takes 1 argument, 2 given"

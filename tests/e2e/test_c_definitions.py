"""A script's C definitions and headers end to end: a header found with -I and one given with
--include describe a record that a child process writes; the trace reads it from the process's
memory through the header's layout, and prints it whole, bitfields included (bpftrace
docs/language.md, "Structs" and "Preamble")."""

import shlex
import struct
import sys

import pytest

from e2e_helpers import run_pybpf

RECORD_H = """\
#ifndef RECORD_H
#define RECORD_H
#include "name.h"
struct rec {
  int a;
  unsigned short b;
  long long c;
  char name[NAME_LEN];
  unsigned int flags:3, mode:5;
};
int unrelated(struct rec *r);    /* a declaration that defines no type: skipped */
#endif
"""
# struct rec as gcc lays it out on x86-64: a@0, b@4, c@8, name@16, the bitfields' int@24; 32 bytes
RECORD = struct.pack("<iH2xq8sI4x", 7, 9, -5, b"record", 5 | 17 << 3)
WRITER = (f"import os; os.write(os.open('/dev/null', os.O_WRONLY), {RECORD!r})")
SCRIPT = """\
#include <record.h>
tracepoint:syscalls:sys_enter_write /pid == cpid && args->count == sizeof(struct rec)/ {
  $r = (struct rec *)args->buf;
  printf("%d %d %d %d %d\\n", $r->a, $r->b, $r->c, $r->flags, $r->mode);
  printf("%s %d %d %d\\n", $r->name, offsetof(struct rec, name), NAME_LEN, MAGIC);
  print(*$r);
  exit();
}
"""


@pytest.mark.kernel
def test_headers_describe_a_record_read_from_the_process(tmp_path):
    include = tmp_path / "include"
    include.mkdir()
    (include / "record.h").write_text(RECORD_H)
    (include / "name.h").write_text("#define NAME_LEN 8\n")
    (tmp_path / "magic.h").write_text("#define MAGIC (0x10 << 2)\n")
    for folder in (tmp_path, include):
        folder.chmod(0o755)
    script = tmp_path / "record.bt"
    script.write_text(SCRIPT)
    command = shlex.join([sys.executable, "-c", WRITER])
    result = run_pybpf(["-I", str(include), "--include", str(tmp_path / "magic.h"), "-c", command,
                        str(script)], timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[1:4] == [
        "7 9 -5 5 17", "record 16 8 64",
        "{ .a = 7, .b = 9, .c = -5, .name = record, .flags = 5, .mode = 17 }"]


@pytest.mark.kernel
def test_arrays_of_arrays_index_and_print():
    # bpftrace's documentation reads one-dimensional arrays ("Arrays"); pybpf indexes and prints
    # arrays of arrays too. The memory is the task's comm, which starts "py" (112, 121).
    script = ("union grid { unsigned char m[2][1]; short pair[1][1]; };\n"
              "BEGIN { $g = (union grid *)((uint64)curtask + offsetof(struct task_struct, comm));"
              " print($g->m); printf(\"%d %d %d\\n\", $g->m[1][0], $g->pair[0][0], sizeof(*$g));"
              " @[$g->m[0]] = $g->m; exit(); }")
    result = run_pybpf(["-e", script])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[1:3] == ["[[112],[121]]", "121 31088 2"]
    assert "@[[112]]: [[112],[121]]" in result.stdout

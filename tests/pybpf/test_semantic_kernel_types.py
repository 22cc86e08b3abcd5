"""The type checker against the kernel's BTF: member access through pointers and records, casts,
sizeof/offsetof, dereference, and the errors for what the kernel's types do not have."""

import os

import pytest

from pybpf import btf
from pybpf import types as T
from pybpf.compiler import compile_to_ir
from pybpf.diagnostics import CompileError

pytestmark = pytest.mark.skipif(not os.path.exists(btf.VMLINUX), reason="needs the kernel's BTF")


def error_of(source):
    with pytest.raises(CompileError) as e:
        compile_to_ir(source)
    return str(e.value)


def type_of_map(source, name):
    _, checked, _ = compile_to_ir(source)
    return checked.maps[name].value


@pytest.mark.parametrize("source, rendered", [
    ("BEGIN { @ = curtask->pidd; }",
     "stdin:1:13-26: ERROR: Struct/union of type 'struct task_struct' does not contain a field "
     "named 'pidd'; did you mean 'pid'?\n"
     "BEGIN { @ = curtask->pidd; }\n"
     "            ~~~~~~~~~~~~~"),
    ("BEGIN { @ = (struct task_structt *)0; }",
     "stdin:1:13-37: ERROR: Unknown struct: struct task_structt; did you mean 'struct "
     "task_struct'?\n"
     "BEGIN { @ = (struct task_structt *)0; }\n"
     "            ~~~~~~~~~~~~~~~~~~~~~~~~"),
    ("BEGIN { @ = pid->x; }",
     "stdin:1:13-19: ERROR: Can not access field 'x' on type 'uint64'\n"
     "BEGIN { @ = pid->x; }\n"
     "            ~~~~~~"),
    ("BEGIN { @ = *pid; }",
     "stdin:1:13-17: ERROR: Can not dereference type 'uint64': only typed kernel pointers\n"
     "BEGIN { @ = *pid; }\n"
     "            ~~~~"),
    ("BEGIN { @ = *curtask; }",
     "stdin:1:13-21: ERROR: struct task_struct takes 3264 bytes, more than the 256 a value copied "
     "onto the BPF stack can have: read its members instead\n"
     "BEGIN { @ = *curtask; }\n"
     "            ~~~~~~~~"),
    ("BEGIN { $l = curtask->se.load; @ = $l.wieght; }",
     "stdin:1:36-45: ERROR: Struct/union of type 'struct load_weight' does not contain a field "
     "named 'wieght'\n"
     "BEGIN { $l = curtask->se.load; @ = $l.wieght; }\n"
     "                                   ~~~~~~~~~"),
    ('BEGIN { $p = curtask; $x = $p["a"]; }',
     "stdin:1:31-34: ERROR: The index must be an integer, not 'string[2]'\n"
     'BEGIN { $p = curtask; $x = $p["a"]; }\n'
     "                              ~~~"),
    ("BEGIN { @ = (struct nosuch_struct_xyz *)0; }",
     "stdin:1:13-42: ERROR: Unknown struct: struct nosuch_struct_xyz\n"
     "BEGIN { @ = (struct nosuch_struct_xyz *)0; }\n"
     "            ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~"),
    ("rawtracepoint:sched_switch { @ = args.nope; }",
     "stdin:1:34-43: ERROR: rawtracepoint:sched_switch has no argument named 'nope' (its "
     "arguments: preempt, prev, next, prev_state)\n"
     "rawtracepoint:sched_switch { @ = args.nope; }\n"
     "                                 ~~~~~~~~~"),
    ("BEGIN { @ = retval; }",
     "stdin:1:13-19: ERROR: The retval builtin can only be used with kretprobe, uretprobe and fexit "
     "probes\n"
     "BEGIN { @ = retval; }\n"
     "            ~~~~~~"),
])
def test_kernel_type_errors(source, rendered):
    assert error_of(source) == rendered


def test_member_types():
    assert type_of_map("BEGIN { @ = curtask->comm; }", "@") == T.StringType(16)
    assert type_of_map("BEGIN { @ = curtask->pid; }", "@") == T.IntType(8, True)
    # a pointer is stored in a map as its address, and keeps its type: printed in hex, -> works
    stored = type_of_map("BEGIN { @ = curtask->parent; }", "@")
    assert isinstance(stored, T.PointerType) and stored.name == "struct task_struct *"
    assert type_of_map("BEGIN { @p = curtask; @ = @p->pid; }", "@") == T.IntType(8, True)


def test_variables_keep_pointer_types():
    _, checked, _ = compile_to_ir("BEGIN { $t = curtask->parent; @ = $t->pid; }")
    (var_type,) = {b.type for b in checked.variables.values()}
    assert isinstance(var_type, T.PointerType) and var_type.name == "struct task_struct *"


def test_sizeof_and_offsetof_are_the_kernels():
    kernel = btf.vmlinux()
    task = kernel.find("task_struct", "struct")
    _, checked, _ = compile_to_ir("BEGIN { @s = sizeof(struct task_struct); "
                                  "@o = offsetof(struct task_struct, pid); @i = sizeof(uint16); }")
    assert sorted(checked.constants.values()) == sorted(
        [task.size, kernel.member(task, "pid").offset, 2])


def test_pointer_arithmetic_scales_by_the_pointee():
    _, checked, _ = compile_to_ir("BEGIN { @ = curtask + 2; }")
    (scale,) = checked.pointer_scale.values()
    assert scale == btf.vmlinux().find("task_struct", "struct").size


def test_anonymous_members_are_searched():
    # struct sock's skc_dport lives in the anonymous unions of __sk_common
    _, checked, _ = compile_to_ir("BEGIN { @ = ((struct sock *)0)->__sk_common.skc_dport; }")
    (field,) = [f for f in checked.kernel_fields.values() if f.read.size == 2]
    assert field.offset == 12


def test_address_of_a_member_is_a_typed_pointer():
    _, checked, _ = compile_to_ir("BEGIN { $p = &curtask->pid; @ = *$p; }")
    (var_type,) = {b.type for b in checked.variables.values()}
    assert isinstance(var_type, T.PointerType) and var_type.name == "pid_t *"


def test_address_of_needs_kernel_memory():
    assert error_of("BEGIN { @ = &pid; }").splitlines()[0] == (
        "stdin:1:13-17: ERROR: Can only take the address of a kernel structure's member "
        "(&p->field) or of *p (a bitfield has none)")


def test_structs_copied_whole_keep_the_kernel_layout():
    _, checked, _ = compile_to_ir("BEGIN { $l = curtask->se.load; @m[$l] = 1; }")
    (load,) = {b.type for b in checked.variables.values()}
    assert isinstance(load, T.StructType) and load.name == "struct load_weight"
    assert [(name, offset) for name, offset, _ in load.fields] == [("weight", 0), ("inv_weight", 8)]
    assert checked.maps["@m"].key == (load,)

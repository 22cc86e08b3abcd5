"""Constants of include/uapi/linux/btf.h, named as the kernel names them, for the BTF pybpf
writes itself (a program's functions: pybpf.backend.progbtf; a script's C types: pybpf.clayout;
user functions' DWARF types: pybpf.dwarf_args)."""

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1
BTF_HEADER_SIZE = 24        # struct btf_header

BTF_KIND_INT = 1
BTF_KIND_PTR = 2
BTF_KIND_ARRAY = 3
BTF_KIND_STRUCT = 4
BTF_KIND_UNION = 5
BTF_KIND_ENUM = 6
BTF_KIND_FWD = 7
BTF_KIND_TYPEDEF = 8
BTF_KIND_VOLATILE = 9
BTF_KIND_CONST = 10
BTF_KIND_RESTRICT = 11
BTF_KIND_FUNC = 12
BTF_KIND_FUNC_PROTO = 13
BTF_KIND_FLOAT = 16
BTF_KIND_ENUM64 = 19

BTF_INT_SIGNED = 1 << 0     # encoding bits of a BTF_KIND_INT's extra word
BTF_INT_CHAR = 1 << 1
BTF_INT_BOOL = 1 << 2

# A BTF_KIND_FUNC's vlen: its linkage. The verifier takes a callback only from a static function.
BTF_FUNC_STATIC = 0
BTF_FUNC_GLOBAL = 1

# The u32 words that follow a type record's 12-byte header, by kind: fixed ones (None: no such
# kind) and ones per vlen entry (a member, an enumerator, a parameter, a section's variable).
BTF_KIND_FIXED_WORDS = (None, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0) + (None,) * 12
BTF_KIND_VLEN_WORDS = (0, 0, 0, 0, 3, 3, 2, 0, 0, 0, 0, 0, 0, 2, 0, 3, 0, 0, 0, 3) + (0,) * 12

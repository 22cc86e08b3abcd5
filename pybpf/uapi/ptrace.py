"""struct pt_regs of x86-64 (arch/x86/include/uapi/asm/ptrace.h): what a kprobe program's context
is, and where a system call's arguments are. Offsets in bytes, by the kernel's field names."""

PT_REGS_OFFSETS = {
    "r15": 0, "r14": 8, "r13": 16, "r12": 24, "bp": 32, "bx": 40, "r11": 48, "r10": 56,
    "r9": 64, "r8": 72, "ax": 80, "cx": 88, "dx": 96, "si": 104, "di": 112, "orig_ax": 120,
    "ip": 128, "cs": 136, "flags": 144, "sp": 152, "ss": 160,
}
PT_REGS_SIZE = 168

# The System V calling convention's first six integer arguments, and the return value.
ARGUMENT_REGISTERS = tuple(PT_REGS_OFFSETS[r] for r in ("di", "si", "dx", "cx", "r8", "r9"))
RETURN_REGISTER = PT_REGS_OFFSETS["ax"]

# A system call's six arguments (the syscall ABI passes the fourth in r10), its number.
SYSCALL_ARGUMENT_REGISTERS = tuple(PT_REGS_OFFSETS[r] for r in ("di", "si", "dx", "r10", "r8", "r9"))
SYSCALL_NUMBER_REGISTER = PT_REGS_OFFSETS["orig_ax"]
CODE_SEGMENT = PT_REGS_OFFSETS["cs"]
# The code segment of 64-bit user code (asm/segment.h __USER_CS); a 32-bit task's is __USER32_CS.
USER_CS = 0x33

"""USDT probes of an ELF file: the `.note.stapsdt` notes <sys/sdt.h> leaves, and their argument
specs. Pure (bytes in, records out) apart from `read_sites`, which opens the file.

    sites = read_sites("/usr/bin/prog")            # [UsdtSite('myapp', 'start', pc=0x1139, ...)]
    sites[0].args                                   # (UsdtArg('-4@%edi'), UsdtArg('8@-8(%rbp)'))
    parse_arg("-4@%edi")                            # 4-byte signed, in register di (low 32 bits)
    parse_arg("8@16(%rsp,%rax,4)")                  # 8 bytes at sp + 16 + ax * 4
    parse_arg("-4@$5")                              # the constant 5
    parse_arg("-8@g+8(%rip)")                       # 8 bytes at global g + 8

A note (SystemTap's "UserSpaceProbeImplementation"): name "stapsdt", type 3, its descriptor three
addresses (the probe's pc, the link-time address of `.stapsdt.base`, the semaphore, 0 for none),
then provider, name and argument string, each NUL-terminated. A prelinked file moved
`.stapsdt.base` after the notes were written: pc and semaphore move by the same difference.
An argument is `[-]SIZE@OPERAND` in AT&T syntax: a register, `$CONSTANT` or a memory operand
`DISP(%BASE[,%INDEX[,SCALE]])` or `SYMBOL[+DISP](%rip)` (a global: at run time the uprobe's
ip is the probe's pc, so the symbol is at ip + (symbol - pc)); a negative size is a signed value.
"""

from __future__ import annotations

import re
import struct

from pybpf.records import record

NOTE_SECTION = ".note.stapsdt"
BASE_SECTION = ".stapsdt.base"
NOTE_NAME = b"stapsdt"
NOTE_TYPE = 3

# x86-64 register names -> (pt_regs field, byte width, bit shift within the field).
_REG64 = {"rax": "ax", "rbx": "bx", "rcx": "cx", "rdx": "dx", "rsi": "si", "rdi": "di", "rbp": "bp",
          "rsp": "sp", "rip": "ip", **{f"r{n}": f"r{n}" for n in range(8, 16)}}
REGISTERS: dict[str, tuple[str, int, int]] = {}
for _name, _field in _REG64.items():
    REGISTERS[_name] = (_field, 8, 0)
    if _name.startswith("r") and _name[1:].isdigit():
        REGISTERS.update({_name + "d": (_field, 4, 0), _name + "w": (_field, 2, 0),
                          _name + "b": (_field, 1, 0)})
    elif _name != "rip":
        short = _name[1:]                           # ax, si, bp ...
        REGISTERS.update({"e" + short: (_field, 4, 0), short: (_field, 2, 0)})
        REGISTERS[short[0] + "l" if short.endswith("x") else short + "l"] = (_field, 1, 0)
        if short.endswith("x"):
            REGISTERS[short[0] + "h"] = (_field, 1, 8)   # ah: bits 8..15 of ax
REGISTERS["eip"] = ("ip", 4, 0)


class UsdtError(Exception):
    """A note or argument spec pybpf cannot read: the message is for the user, as it is."""


@record(frozen=True)
class UsdtArg:
    """One argument: `size` bytes (`signed` when the spec's size was negative), read from
    `kind` 'register' (pt_regs field `register`, `reg_size` bytes of it from bit `reg_shift`),
    'constant' (`value`) or 'memory' (at register + value + index * scale)."""
    text: str
    size: int
    signed: bool
    kind: str
    register: str = ""
    reg_size: int = 8
    reg_shift: int = 0
    value: int = 0
    index: str = ""
    scale: int = 1
    symbol: str = ""        # `sym+4(%rip)`: value is the 4, the symbol's address comes per site


@record(frozen=True)
class UsdtSite:
    """One place a probe is: its virtual address (`pc`), its semaphore's (0: none)."""
    provider: str
    name: str
    pc: int
    semaphore: int
    arg_text: str

    @property
    def args(self) -> tuple[UsdtArg, ...]:
        """Parsed when asked (listing does not need them): UsdtError for a form pybpf cannot read."""
        return parse_args(self.arg_text)


def _register(name: str, spec: str) -> tuple[str, int, int]:
    found = REGISTERS.get(name.lstrip("%"))
    if found is None:
        raise UsdtError(f"unknown register {name!r} in USDT argument {spec!r}")
    return found


_MEMORY = re.compile(r"^(?P<symbol>[A-Za-z_.$][\w.$@]*)?(?P<disp>[-+]?(?:0x[0-9a-fA-F]+|\d+))?"
                     r"\((?P<base>%\w+)?(?:,(?P<index>%\w+)(?:,(?P<scale>[1248]))?)?\)$")


def parse_arg(spec: str) -> UsdtArg:
    """One argument spec, `-4@%edi` and the like (a spec without `SIZE@`, from old notes, is 8
    bytes unsigned)."""
    size_text, at, operand = spec.partition("@")
    if not at:
        size_text, operand = "8", spec
    try:
        size = int(size_text)
    except ValueError:
        raise UsdtError(f"bad size in USDT argument {spec!r}") from None
    if abs(size) not in (1, 2, 4, 8):
        raise UsdtError(f"bad size in USDT argument {spec!r}")
    common = dict(text=spec, size=abs(size), signed=size < 0)
    if operand.startswith("$"):
        try:
            return UsdtArg(kind="constant", value=int(operand[1:], 0), **common)
        except ValueError:
            raise UsdtError(f"USDT argument {spec!r}: a symbolic constant is not supported") \
                from None
    if operand.startswith("%"):
        register, reg_size, reg_shift = _register(operand, spec)
        return UsdtArg(kind="register", register=register, reg_size=reg_size, reg_shift=reg_shift,
                       **common)
    match = _MEMORY.match(operand)
    if match is None or not match["base"]:
        raise UsdtError(f"USDT argument {spec!r}: this operand form is not supported (a register, "
                        "$constant or DISP(%base[,%index[,scale]]) is)")
    base = _register(match["base"], spec)
    index = _register(match["index"], spec) if match["index"] else None
    if base[1] != 8 or (index and index[1] != 8):
        raise UsdtError(f"USDT argument {spec!r}: only 64-bit base and index registers are "
                        "supported")
    if (base[0] == "ip") != bool(match["symbol"]) or (match["symbol"] and index):
        raise UsdtError(f"USDT argument {spec!r}: a symbol is only supported as SYMBOL(%rip)")
    return UsdtArg(kind="memory", register=base[0], value=int(match["disp"] or "0", 0),
                   index=index[0] if index else "", scale=int(match["scale"] or "1"),
                   symbol=match["symbol"] or "", **common)


def parse_args(text: str) -> tuple[UsdtArg, ...]:
    return tuple(parse_arg(part) for part in text.split())


def _align4(n: int) -> int:
    return (n + 3) & ~3


def parse_notes(data: bytes, base_section_addr: int | None = None) -> list[UsdtSite]:
    """The stapsdt notes of a 64-bit little-endian note section's bytes; `base_section_addr` is
    where `.stapsdt.base` is in the file as it is now (None when it has none)."""
    sites = []
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, note_type = struct.unpack_from("<III", data, pos)
        name_start = pos + 12
        desc_start = name_start + _align4(namesz)
        end = desc_start + _align4(descsz)
        if end > len(data):
            raise UsdtError("truncated .note.stapsdt")
        pos = end
        if note_type != NOTE_TYPE or data[name_start:name_start + namesz].rstrip(b"\0") != NOTE_NAME:
            continue
        desc = data[desc_start:desc_start + descsz]
        if len(desc) < 24:
            raise UsdtError("truncated stapsdt note")
        pc, base, semaphore = struct.unpack_from("<QQQ", desc, 0)
        strings = desc[24:].split(b"\0")
        if len(strings) < 3:
            raise UsdtError("truncated stapsdt note")
        provider, name, arg_text = (s.decode(errors="replace") for s in strings[:3])
        if base_section_addr is not None and base:
            pc += base_section_addr - base
            if semaphore:
                semaphore += base_section_addr - base
        sites.append(UsdtSite(provider, name, pc, semaphore, arg_text))
    return sites


def read_sites(path: str) -> list[UsdtSite]:
    """The USDT sites of ELF file `path` (none when it has no .note.stapsdt); UsdtError when the
    file cannot be read."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            notes = elf.get_section_by_name(NOTE_SECTION)
            if notes is None:
                return []
            base = elf.get_section_by_name(BASE_SECTION)
            return parse_notes(notes.data(), base["sh_addr"] if base is not None else None)
    except OSError as e:
        raise UsdtError(f"cannot read {path}: {e.strerror}") from None
    except ELFError:
        raise UsdtError(f"not an ELF binary: {path}") from None

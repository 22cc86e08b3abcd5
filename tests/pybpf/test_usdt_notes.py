"""USDT notes and argument specs, pure: hand-built note bytes and the operand forms compilers emit."""

import re
import struct

import pytest

from pybpf.usdt_notes import UsdtArg, UsdtError, parse_arg, parse_notes


@pytest.mark.parametrize("spec,arg", [
    ("-4@%edi", UsdtArg("-4@%edi", 4, True, "register", "di", 4)),
    ("8@%rax", UsdtArg("8@%rax", 8, False, "register", "ax", 8)),
    ("-2@%r10w", UsdtArg("-2@%r10w", 2, True, "register", "r10", 2)),
    ("1@%sil", UsdtArg("1@%sil", 1, False, "register", "si", 1)),
    ("1@%ah", UsdtArg("1@%ah", 1, False, "register", "ax", 1, 8)),
    ("-1@%r8b", UsdtArg("-1@%r8b", 1, True, "register", "r8", 1)),
    ("-4@$5", UsdtArg("-4@$5", 4, True, "constant", value=5)),
    ("4@$-294967296", UsdtArg("4@$-294967296", 4, False, "constant", value=-294967296)),
    ("8@-8(%rbp)", UsdtArg("8@-8(%rbp)", 8, False, "memory", "bp", value=-8)),
    ("4@16(%rsp)", UsdtArg("4@16(%rsp)", 4, False, "memory", "sp", value=16)),
    ("-8@(%rdx)", UsdtArg("-8@(%rdx)", 8, True, "memory", "dx")),
    ("-4@8(%rdx,%rax,4)", UsdtArg("-4@8(%rdx,%rax,4)", 4, True, "memory", "dx", value=8, index="ax",
                                  scale=4)),
    ("-8@g(%rip)", UsdtArg("-8@g(%rip)", 8, True, "memory", "ip", symbol="g")),
    ("2@buf+6(%rip)", UsdtArg("2@buf+6(%rip)", 2, False, "memory", "ip", value=6, symbol="buf")),
    ("%rdi", UsdtArg("%rdi", 8, False, "register", "di")),       # old notes: no SIZE@
])
def test_argument_specs(spec, arg):
    assert parse_arg(spec) == arg


@pytest.mark.parametrize("spec,message", [
    ("3@%eax", "bad size"),
    ("x@%eax", "bad size"),
    ("4@%xmm0", "unknown register"),
    ("4@$sym", "symbolic constant"),
    ("4@8(%eax)", "64-bit base"),
    ("4@sym(%rax)", "SYMBOL(%rip)"),
    ("4@*%rax", "not supported"),
])
def test_argument_specs_pybpf_cannot_read(spec, message):
    with pytest.raises(UsdtError, match=re.escape(message)):
        parse_arg(spec)


def note(name: bytes, note_type: int, desc: bytes) -> bytes:
    def pad(b: bytes) -> bytes:
        return b + b"\0" * (-len(b) % 4)
    return struct.pack("<III", len(name), len(desc), note_type) + pad(name) + pad(desc)


def stapsdt(pc: int, base: int, semaphore: int, provider: str, name: str, args: str) -> bytes:
    strings = b"\0".join(s.encode() for s in (provider, name, args)) + b"\0"
    return note(b"stapsdt\0", 3, struct.pack("<QQQ", pc, base, semaphore) + strings)


def test_notes_in_order_other_notes_skipped():
    data = (stapsdt(0x1139, 0x2004, 0, "app", "start", "-4@%edi 8@%rsi")
            + note(b"GNU\0", 3, b"\1\2\3\4")
            + stapsdt(0x1200, 0x2004, 0x4020, "app", "stop", ""))
    sites = parse_notes(data, 0x2004)
    assert [(s.provider, s.name, s.pc, s.semaphore, s.arg_text) for s in sites] == [
        ("app", "start", 0x1139, 0, "-4@%edi 8@%rsi"), ("app", "stop", 0x1200, 0x4020, "")]
    assert [a.text for a in sites[0].args] == ["-4@%edi", "8@%rsi"] and sites[1].args == ()


def test_prelinked_file_moves_pc_and_semaphore_with_stapsdt_base():
    (site,) = parse_notes(stapsdt(0x1139, 0x2004, 0x4020, "app", "p", ""), 0x3004)
    assert (site.pc, site.semaphore) == (0x2139, 0x5020)
    (site,) = parse_notes(stapsdt(0x1139, 0x2004, 0, "app", "p", ""), 0x3004)
    assert (site.pc, site.semaphore) == (0x2139, 0)        # no semaphore stays none


def test_truncated_note():
    with pytest.raises(UsdtError, match="truncated"):
        parse_notes(stapsdt(0x1139, 0x2004, 0, "app", "p", "")[:-8])

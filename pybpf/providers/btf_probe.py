"""What the probes typed from the kernel's BTF share (rawtracepoint, kprobe, fentry): NAME[+OFFSET]
with wildcards in NAME, each name looked up in vmlinux's BTF, its arguments recorded for
`args.NAME`, and `-lv` lines spelled as C (`struct file * file`).
"""

from __future__ import annotations

from pybpf.program import AttachPoint
from pybpf.providers.base import (Args, ListingError, ProbeGroup, ProbeNotFound, Provider,
                                  has_wildcard)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pybpf.btf import Btf

# pybpf.btf is imported where a probe first needs it: programs without BTF probes never pay for it.


def btf_for(target: str) -> tuple[Btf, str]:
    """The BTF holding `FUNC` (vmlinux) or `MODULE:FUNC` (the module's split BTF), and the bare name."""
    from pybpf import btf as B
    module, sep, func = target.rpartition(":")
    if not sep or module == "vmlinux":
        return B.vmlinux(), func
    return B.module(module), func


def arg_lines(btf: Btf, params) -> list[str]:
    return [f"    {btf.c_name(p.type_id)} {p.name}" for p in params]


class BtfProvider(Provider):
    args = Args.BTF
    btf_kind = "func"              # what a wildcard expands over (Btf.list_names)
    offsets = False                # NAME+OFFSET (kprobes only)

    def resolve(self, text: str, target: str, group: ProbeGroup) -> None:
        if ":" in target:
            raise ValueError(f"{self.name}:MODULE:NAME (module probes) is not supported yet: {text}")
        name, plus, offset = target.partition("+")
        if plus:
            try:
                if not self.offsets or int(offset, 0) < 0:
                    raise ValueError
            except ValueError:
                raise ValueError(f"an offset (+N, N >= 0) is only valid on kprobe: {text}") from None
        from pybpf import btf as B
        try:
            kernel = B.vmlinux()
            names = kernel.list_names(self.btf_kind, name) if has_wildcard(name) else [name]
            for n in names:
                point = self.point(n + (f"+{offset}" if plus else ""))
                self.type_point(kernel, n, point, group)
                group.add(point)
        except B.BtfError as e:
            raise ValueError(str(e)) from None
        if not names:
            raise ProbeNotFound(f"{self.name} not found: {target}")

    def type_point(self, kernel: Btf, name: str, point: AttachPoint, group: ProbeGroup) -> None:
        """Record what the kernel's BTF says of `name` in the group, or raise ValueError."""
        raise NotImplementedError

    def list_probes(self, pattern: str) -> list[str]:
        from pybpf import btf as B
        return [f"{self.name}:{n}" for n in B.vmlinux().list_names(self.btf_kind, pattern)]


def type_function(kernel: Btf, name: str, point: AttachPoint, group: ProbeGroup) -> bool:
    """A kernel function's arguments, return type and BTF id into the group; False when the
    kernel has no BTF for it."""
    func = kernel.func(name)
    if func is None:
        return False
    group.btf_args[point.name] = [(a.name, a.type_id) for a in kernel.func_proto_params(func)]
    group.btf_target[point.name] = func.id
    group.btf_return[point.name] = kernel.func_return(name)
    return True


def describe_function(target: str, with_retval: bool) -> list[str]:
    btf, func = btf_for(target)
    lines = arg_lines(btf, btf.func_args(func))
    ret = btf.func_return(func) if with_retval else 0
    if ret:                    # a void function has no retval
        lines.append(f"    {btf.c_name(ret)} retval")
    return lines


def describing(name: str, describe):
    """describe(), with the BTF reader's errors as ListingError."""
    from pybpf import btf as B
    try:
        return describe()
    except B.BtfError as e:
        raise ListingError(f"{name}: {e}") from None

"""The probe kinds, one module each behind pybpf.providers.base.Provider, and their registry.

    provider = find("t")            # TRACEPOINT: every spelling a user may write finds its provider
    provider = named("fexit")       # by canonical name

A new probe kind is a module here (its Provider), its tests, and one line in PROVIDERS; a new way
to attach is a module in runtime/attach/ and one line in its ATTACHERS, keyed by the provider's
attach_kind.
"""

from __future__ import annotations

from pybpf.providers.base import Provider
from pybpf.providers.begin_end import BEGIN, END
from pybpf.providers.fentry import FENTRY, FEXIT
from pybpf.providers.hardware import HARDWARE
from pybpf.providers.interval import INTERVAL
from pybpf.providers.kprobe import KPROBE, KRETPROBE
from pybpf.providers.profile import PROFILE
from pybpf.providers.rawtracepoint import RAWTRACEPOINT
from pybpf.providers.software import SOFTWARE
from pybpf.providers.tracepoint import TRACEPOINT
from pybpf.providers.uprobe import UPROBE, URETPROBE
from pybpf.providers.usdt import USDT
from pybpf.providers.watchpoint import ASYNCWATCHPOINT, WATCHPOINT

PROVIDERS: tuple[Provider, ...] = (
    BEGIN, END,
    TRACEPOINT,
    RAWTRACEPOINT,
    KPROBE, KRETPROBE,
    FENTRY, FEXIT,
    UPROBE, URETPROBE,
    INTERVAL,
    PROFILE,
    SOFTWARE,
    HARDWARE,
    WATCHPOINT, ASYNCWATCHPOINT,
    USDT,
)

_BY_SPELLING = {spelling: p for p in PROVIDERS for spelling in p.spellings}
_BY_NAME = {p.name: p for p in PROVIDERS}


def find(spelling: str) -> Provider | None:
    return _BY_SPELLING.get(spelling)


def named(name: str) -> Provider:
    return _BY_NAME[name]

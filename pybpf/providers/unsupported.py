"""Probe kinds pybpf recognises but cannot compile yet: one line each, so a user who writes one
hears "not supported yet" rather than "invalid probe type".
"""

from __future__ import annotations

from pybpf.providers.base import ProbeGroup, Provider


class Unsupported(Provider):
    def __init__(self, name: str, spellings: tuple[str, ...]):
        self.name, self.spellings = name, spellings

    def resolve(self, text: str, target: str, group: ProbeGroup) -> None:
        raise ValueError(f"{self.name} probes are not supported by pybpf yet")


USDT = Unsupported("usdt", ("usdt", "U"))

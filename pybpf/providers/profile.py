"""profile:UNIT:N: interval's cpu-clock perf event on every online CPU (`hz`: the kernel spreads N
samples a second).

    profile:hz:99 { @[comm] = count(); }
"""

from __future__ import annotations

from pybpf.providers.interval import Timer

PROFILE = Timer("profile", ("profile", "p"), spread_hz=True)

"""profile: interval's cpu-clock perf event on every online CPU, with interval's spellings of the
period (`hz`: the kernel spreads N samples a second).

    profile:hz:99 { @[comm] = count(); }
    profile:99hz { @[comm] = count(); }
    profile:10ms { @[comm] = count(); }
"""

from __future__ import annotations

from pybpf.providers.interval import Timer

PROFILE = Timer("profile", ("profile", "p"), spread_hz=True)

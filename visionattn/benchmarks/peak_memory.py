"""Peak resident-set growth of this process over a block of code (Linux)."""
from __future__ import annotations


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class PeakRSS:
    """``with PeakRSS() as m: ...`` then ``m.mib``: how far the peak resident set (VmHWM) rose
    above the resident set at entry. Entry resets the peak, so earlier work does not count;
    run one measurement per fresh process so freed memory of another run cannot hide growth."""

    def __enter__(self) -> "PeakRSS":
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current resident set
        self._before = _status_kib("VmRSS")
        self.mib = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.mib = (_status_kib("VmHWM") - self._before) / 1024

"""Run the real `pybpf` command: start it, wait until it has attached, stop it with a signal."""

import selectors
import signal
import subprocess
import sys
import time

PYBPF = [sys.executable, "-m", "pybpf.cli"]
STARTED: list[subprocess.Popen] = []     # every process started, for the leak check in conftest


class Running:
    """A pybpf process: its stdout read line by line with deadlines."""

    def __init__(self, args, **kwargs):
        self.proc = subprocess.Popen(PYBPF + list(args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, **kwargs)
        STARTED.append(self.proc)
        self.lines: list[str] = []

    def wait_for(self, text: str, timeout: float = 20.0) -> str:
        """Read stdout until a line containing `text`; returns that line."""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not sel.select(timeout=deadline - time.monotonic()):
                    break
                line = self.proc.stdout.readline()
                if not line:
                    break
                self.lines.append(line)
                if text in line:
                    return line
        finally:
            sel.unregister(self.proc.stdout)
        self.proc.kill()
        out, err = self.proc.communicate(timeout=10)
        raise AssertionError(f"no {text!r} from pybpf within {timeout}s; stdout "
                             f"{''.join(self.lines) + out!r} stderr {err!r}")

    def stop(self, sig=signal.SIGINT, timeout: float = 20.0) -> tuple[str, str, int]:
        """Send `sig` (None: just wait for it to exit); -> (all stdout, stderr, exit code)."""
        if sig is not None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=10)
            raise AssertionError(f"pybpf did not exit within {timeout}s: {out!r} {err!r}")
        return "".join(self.lines) + out, err, self.proc.returncode


def run_pybpf(args, timeout=30.0, **kwargs) -> subprocess.CompletedProcess:
    """Run pybpf to completion (programs that exit() by themselves, or no-kernel options)."""
    return subprocess.run(PYBPF + list(args), capture_output=True, text=True, timeout=timeout,
                          **kwargs)

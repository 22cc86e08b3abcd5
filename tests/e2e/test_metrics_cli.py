"""`pybpf --metrics` end to end: the real command serves a tracepoint count to an HTTP scrape from
127.0.0.1, then stops cleanly on SIGINT; a busy port fails before anything is loaded; without
prometheus_client the command says what to install."""

import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from e2e_helpers import Running, named_child, run_pybpf

pytest.importorskip("prometheus_client", reason="needs prometheus_client (pip install 'pybpf[metrics]')")

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

COMM = f"pybpfm{os.getpid()}"
GETPPID_N_TIMES = "import os\nfor _ in range(int(sys.argv[2])):\n    os.getppid()\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict:
    """{(sample name, sorted label items): value} of one scrape of 127.0.0.1:port."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.kernel
def test_metrics_maps_and_prefix_choose_what_is_served_and_its_name():
    port = free_port()
    run = Running(["--metrics", f"127.0.0.1:{port}", "--metrics-maps", "@calls",
                   "--metrics-prefix", "trace_", "-e", 'BEGIN { @other = 7; printf("ready\\n"); } '
                   f'tracepoint:syscalls:sys_enter_getppid /comm == "{COMM}"/ {{ @calls[comm] = count(); }}'])
    run.wait_for("ready")
    child = subprocess.run(named_child(COMM, GETPPID_N_TIMES, 5), timeout=30)
    assert child.returncode == 0
    served = scrape(port)
    out, err, code = run.stop(signal.SIGINT)
    assert code == 0, err
    assert served[("trace_calls", (("key", COMM),))] == 5
    assert not any(name.startswith(("trace_other", "pybpf_")) for name, _ in served), served


@pytest.mark.kernel
def test_scrape_counts_a_named_process_then_sigint():
    port = free_port()
    run = Running(["--metrics", f"127.0.0.1:{port}", "-e",
                   'BEGIN { printf("ready\\n"); } '
                   f'tracepoint:syscalls:sys_enter_getppid /comm == "{COMM}"/ {{ @calls[comm] = count(); }}'])
    run.wait_for("ready")
    before = scrape(port)
    assert ("pybpf_calls", (("key", COMM),)) not in before
    assert any(name == "process_cpu_seconds_total" for name, _ in before)
    child = subprocess.run(named_child(COMM, GETPPID_N_TIMES, 23), timeout=30)
    assert child.returncode == 0
    # the events are in the map once the child has exited: no wait for the ring buffer
    assert scrape(port)[("pybpf_calls", (("key", COMM),))] == 23
    out, err, code = run.stop(signal.SIGINT)
    assert code == 0, err
    assert "Traceback" not in err
    assert f"serving metrics on http://127.0.0.1:{port}/metrics" in err
    assert f"@calls[{COMM}]: 23" in out
    with pytest.raises(OSError):           # the endpoint went away with the script
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.kernel
def test_a_busy_port_fails_before_loading():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_pybpf(["--metrics", str(port), "-e", 'BEGIN { printf("began\\n"); }'])
    assert result.returncode == 1
    assert result.stdout == ""            # nothing attached, BEGIN never ran
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ERROR: --metrics: cannot serve on 127.0.0.1:{port}: ")


def test_a_bad_address_is_one_line():
    result = run_pybpf(["--metrics", "127.0.0.1:http", "-e", "BEGIN { exit(); }"])
    assert result.returncode == 1
    assert result.stderr.startswith("ERROR: --metrics: not a port number") and result.stderr.count("\n") == 1


def test_without_prometheus_client_says_what_to_install():
    hide = ("import sys; sys.modules['prometheus_client'] = None; from pybpf.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", hide, "--metrics", "9100", "-e", "BEGIN { exit(); }"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "install pybpf[metrics]" in result.stderr and result.stderr.count("\n") == 1

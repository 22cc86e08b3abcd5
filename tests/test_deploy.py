"""The deployment files of docs/deploy/ (docs/deploy.md) are what they say: the systemd unit
verifies and runs pybpf with options pybpf has; the Kubernetes manifest mounts what pybpf needs
and serves the ConfigMap's script on the port Prometheus scrapes; the Prometheus configuration,
the alerts (with their unit tests) and the dashboard's queries are valid PromQL and name only
metrics pybpf exports for the script."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pybpf.cli import _parser

DEPLOY = Path(__file__).resolve().parents[1] / "docs" / "deploy"
SCRIPT = DEPLOY / "biolatency.pbt"
needs_promtool = pytest.mark.skipif(not shutil.which("promtool"),
                                    reason="needs promtool (Debian: apt-get install prometheus)")


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (DEPLOY / "pybpf.service").read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            name, _, value = line.partition("=")
            settings.setdefault(name, []).append(value)
    return settings


def pybpf_options(argv: list[str]):
    """argv as pybpf parses it: every option exists and takes its value (SystemExit otherwise)."""
    opts = _parser().parse_args(argv)
    assert opts.args, "a script to run"
    return opts


def test_the_unit_runs_the_script_with_the_capabilities_tracing_needs():
    settings = unit_settings()
    (command,) = settings["ExecStart"]
    binary, *argv = shlex.split(command.replace("${PYBPF_METRICS}", "127.0.0.1:9100"))
    assert binary.endswith("/pybpf")
    opts = pybpf_options(argv)
    assert opts.metrics == "127.0.0.1:9100" and opts.metrics_maps == "@usecs"
    assert opts.args == ["/etc/pybpf/biolatency.pbt"]
    caps = set(settings["CapabilityBoundingSet"][0].split())
    # pybpf's own check (runtime.syscall.has_tracing_capabilities): CAP_BPF with CAP_PERFMON
    assert {"CAP_BPF", "CAP_PERFMON"} <= caps and "CAP_SYS_ADMIN" not in caps
    assert set(settings["AmbientCapabilities"][0].split()) == caps
    assert settings["KillSignal"] == ["SIGINT"]       # END runs and the maps print
    assert "sys-kernel-tracing.mount" in settings["Requires"][0]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze (systemd)")
def test_systemd_analyze_verifies_the_unit(tmp_path):
    pybpf = shutil.which("pybpf", path=str(Path(sys.executable).parent)) or shutil.which("pybpf")
    if pybpf is None:
        pytest.skip("pybpf is not installed as a command")
    unit = tmp_path / "pybpf.service"          # the ExecStart binary must exist: this install's
    unit.write_text((DEPLOY / "pybpf.service").read_text().replace("/usr/local/bin/pybpf", pybpf))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                            timeout=60, env={"SYSTEMD_LOG_LEVEL": "warning", "PATH": "/usr/bin:/bin"})
    problems = [line for line in result.stderr.splitlines() if "pybpf.service" in line]
    assert result.returncode == 0 and not problems, result.stderr


def manifest() -> dict[str, dict]:
    yaml = pytest.importorskip("yaml", reason="needs PyYAML (the test extra)")
    documents = list(yaml.safe_load_all((DEPLOY / "daemonset.yaml").read_text()))
    kinds = {doc["kind"]: doc for doc in documents}
    assert len(kinds) == len(documents)
    return kinds


def test_the_daemonset_runs_the_configmap_script_on_every_node():
    kinds = manifest()
    assert set(kinds) == {"Namespace", "ConfigMap", "DaemonSet", "Service", "NetworkPolicy"}
    namespace = kinds["Namespace"]["metadata"]["name"]
    assert all(doc["metadata"].get("namespace") == namespace for kind, doc in kinds.items() if kind != "Namespace")
    daemonset = kinds["DaemonSet"]
    pod = daemonset["spec"]["template"]
    assert daemonset["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    spec = pod["spec"]
    assert spec["hostPID"] is True
    assert {"operator": "Exists"} in spec["tolerations"]
    (container,) = spec["containers"]
    security = container["securityContext"]
    assert security["privileged"] is False and security["allowPrivilegeEscalation"] is False
    assert {"BPF", "PERFMON"} <= set(security["capabilities"]["add"])
    assert security["capabilities"]["drop"] == ["ALL"]

    opts = pybpf_options(container["args"])
    host, _, port = opts.metrics.rpartition(":")
    assert host == "0.0.0.0"
    (metrics_port,) = container["ports"]
    assert metrics_port == {"name": "metrics", "containerPort": int(port), "protocol": "TCP"}
    assert opts.metrics_maps == "@usecs"

    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert set(mounts) == set(volumes)
    tracefs = next(name for name, v in volumes.items() if v.get("hostPath", {}).get("path") == "/sys/kernel/tracing")
    assert mounts[tracefs]["mountPath"] == "/sys/kernel/tracing"
    scripts = next(name for name, v in volumes.items() if "configMap" in v)
    assert volumes[scripts]["configMap"]["name"] == kinds["ConfigMap"]["metadata"]["name"]
    (script_path,) = opts.args
    folder, _, file = script_path.rpartition("/")
    assert mounts[scripts]["mountPath"] == folder and mounts[scripts]["readOnly"] is True
    assert kinds["ConfigMap"]["data"][file] == SCRIPT.read_text()
    cache = {e["name"]: e["value"] for e in container["env"]}["XDG_CACHE_HOME"]
    assert any(m["mountPath"] == cache for m in mounts.values())    # the root filesystem is read-only

    service = kinds["Service"]["spec"]
    assert service["clusterIP"] == "None" and service["selector"] == pod["metadata"]["labels"]
    assert service["ports"][0]["port"] == int(port)
    policy = kinds["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"] == pod["metadata"]["labels"]
    assert policy["ingress"][0]["ports"] == [{"port": "metrics", "protocol": "TCP"}]


def test_prometheus_scrapes_the_service_the_manifest_makes():
    yaml = pytest.importorskip("yaml", reason="needs PyYAML (the test extra)")
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    kinds = manifest()
    service = kinds["Service"]["metadata"]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "pybpf"]
    (dns,) = job["dns_sd_configs"]
    assert dns["names"] == [f"{service['name']}.{service['namespace']}.svc.cluster.local"]
    assert dns["port"] == kinds["Service"]["spec"]["ports"][0]["port"]
    assert config["rule_files"] == ["pybpf-alerts.yml"]


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    queries.append(dashboard["templating"]["list"][0]["query"]["query"])
    return queries


def alert_expressions() -> list[str]:
    yaml = pytest.importorskip("yaml", reason="needs PyYAML (the test extra)")
    rules = yaml.safe_load((DEPLOY / "pybpf-alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_the_dashboard_shows_the_latency_histogram_across_hosts():
    queries = dashboard_queries()
    assert "histogram_quantile(0.99, sum by (le) (rate(pybpf_usecs_bucket{" in "\n".join(queries)
    assert any("pybpf_events_lost_total" in q for q in queries)


def metric_names(expressions: list[str]) -> set[str]:
    return {name for e in expressions for name in re.findall(r"\bpybpf_[a-zA-Z0-9_]+", e)}


@pytest.mark.kernel
def test_every_query_names_a_metric_pybpf_exports(bpf_run_stats):
    """The script's own scrape, with the kernel counting run time (as with bpf_stats_enabled=1),
    has every metric the dashboard and the alerts read."""
    import io

    pytest.importorskip("prometheus_client", reason="needs prometheus_client (pip install 'pybpf[metrics]')")
    from prometheus_client.exposition import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from pybpf.compiler import compile_source
    from pybpf.runtime.metrics import SessionCollector, make_registry
    from pybpf.runtime.output import make_output
    from pybpf.runtime.session import Session

    def exported_now() -> set[str]:
        text = generate_latest(registry).decode()
        return {s.name for family in text_string_to_metric_families(text) for s in family.samples}

    compiled = compile_source(SCRIPT.read_text(), str(SCRIPT))
    with Session(compiled, make_output("text", io.StringIO())) as session:
        registry = make_registry(SessionCollector(session, maps=["@usecs"]))
        session.start()
        # block I/O of our own, written through to the disk, until the hist has a request
        scratch = Path(__file__).parent / f".deploy-io-{os.getpid()}"
        try:
            deadline = time.monotonic() + 10
            while "pybpf_usecs_bucket" not in (exported := exported_now()) and time.monotonic() < deadline:
                with open(scratch, "wb") as f:
                    f.write(os.urandom(1 << 16))
                    f.flush()
                    os.fsync(f.fileno())
        finally:
            scratch.unlink(missing_ok=True)
        session.stop()
    wanted = metric_names(dashboard_queries() + alert_expressions())
    assert "pybpf_usecs_bucket" in wanted and "pybpf_program_runs_total" in wanted
    assert wanted <= exported, wanted - exported


@needs_promtool
def test_promtool_checks_the_configuration_the_alerts_and_the_dashboard(tmp_path):
    def promtool(*args: str) -> None:
        result = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr

    promtool("check", "config", str(DEPLOY / "prometheus.yml"))     # and the rule file it names
    promtool("check", "rules", str(DEPLOY / "pybpf-alerts.yml"))
    promtool("test", "rules", str(DEPLOY / "pybpf-alerts.test.yml"))
    # the dashboard's queries as recording rules: promtool parses them as Prometheus would
    grafana = {"$__rate_interval": "5m", "$instance": ".*"}
    exprs = []
    for query in dashboard_queries():
        for variable, value in grafana.items():
            query = query.replace(variable, value)
        exprs.append(query)
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)
        if not e.startswith("label_values(")]}]}
    (tmp_path / "dashboard-rules.yml").write_text(json.dumps(rules))     # JSON is YAML
    promtool("check", "rules", str(tmp_path / "dashboard-rules.yml"))

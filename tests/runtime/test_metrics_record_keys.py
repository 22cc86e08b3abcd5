"""Record keys name their labels by field (`pybpf_opens{comm="bash",path="/etc/passwd"}`), unnamed
tuples keep key0, key1, ...; field names Prometheus or pybpf reserve are renamed (docs/metrics.md)."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest

pytest.importorskip("prometheus_client", reason="needs prometheus_client (pip install 'pybpf[metrics]')")

from prometheus_client import CollectorRegistry  # noqa: E402
from prometheus_client.exposition import generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from pybpf import types as T  # noqa: E402
from pybpf.mapkinds.base import key_labels  # noqa: E402
from pybpf.program import MapKind, MapSpec  # noqa: E402
from pybpf.runtime.metrics import SessionCollector, make_registry, map_families  # noqa: E402
from pybpf.runtime.output import make_output  # noqa: E402

INT, COMM = T.IntType(), T.StringType(16)


def record(names: str, *elements: T.Type) -> T.TupleType:
    return T.TupleType(elements, tuple(names.split()))


@pytest.mark.parametrize("key,labels", [
    ((record("comm path", COMM, COMM),), ["comm", "path"]),
    ((record("pid", INT),), ["pid"]),
    ((COMM, INT), ["key0", "key1"]),                       # no record: as before
    ((T.TupleType((INT, COMM)),), ["key0", "key1"]),
    ((COMM,), ["key"]),
    ((INT, record("dev op", INT, COMM)), ["key0", "dev", "op"]),
    # nested: a record's record as outer_inner, a tuple inside a record by position
    ((record("a d e", INT, T.TupleType((INT, INT)), record("x y", INT, INT)),),
     ["a", "d0", "d1", "e_x", "e_y"]),
    # reserved by Prometheus (le, quantile, __*) or by pybpf's value labels, or taken: key_ first
    ((record("le quantile __x value value3", INT, INT, INT, INT, INT),),
     ["key_le", "key_quantile", "key___x", "key_value", "key_value3"]),
    ((INT, record("key0 key_key0", INT, INT)), ["key0", "key_key0", "key_key_key0"]),
])
def test_key_labels(key, labels):
    assert key_labels(key) == labels


class _Families:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


def samples_of(spec: MapSpec, entries) -> dict:
    registry = CollectorRegistry()
    registry.register(_Families(map_families(spec, entries)))
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_count_by_record_key():
    spec = MapSpec("@opens", "AT_opens", MapKind.COUNT, (record("comm path", COMM, T.StringType(64)),), INT)
    assert samples_of(spec, [((("bash", "/etc/passwd"),), 3)]) == \
        {("pybpf_opens", (("comm", "bash"), ("path", "/etc/passwd"))): 3}


def test_a_bool_key_part_is_true_or_false():
    spec = MapSpec("@b", "AT_b", MapKind.COUNT, (record("ok", T.IntType(8, False, True)),), INT)
    assert samples_of(spec, [(((True,),), 2)]) == {("pybpf_b", (("ok", "true"),)): 2}


def test_a_histogram_by_a_record_key_with_a_field_named_le():
    spec = MapSpec("@lat", "AT_lat", MapKind.HIST, (record("le op", INT, COMM),), INT)
    samples = samples_of(spec, [(((1, "read"),), {5: 2})])
    assert samples[("pybpf_lat_bucket", (("key_le", "1"), ("le", "+Inf"), ("op", "read")))] == 2
    assert samples[("pybpf_lat_count", (("key_le", "1"), ("op", "read")))] == 2


@pytest.mark.kernel
@pytest.mark.skipif(not shutil.which("promtool"), reason="needs promtool (Debian: apt-get install prometheus)")
def test_record_keys_from_the_kernel_pass_promtool():
    from pybpf.compiler import compile_source
    from pybpf.runtime.session import Session

    compiled = compile_source('BEGIN { @opens[(comm=comm, path="/etc/passwd")] = count(); '
                              '@latency[(le=1, op="read")] = hist(5); @names[(k=1)] = (v="x", n=2); }')
    with Session(compiled, make_output("text", io.StringIO())) as session:
        registry = make_registry(SessionCollector(session))
        session.start()
        text = generate_latest(registry)
        session.stop()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text.decode()) for s in family.samples}
    comm = next(dict(labels)["comm"] for name, labels in samples if name == "pybpf_opens")
    assert samples[("pybpf_opens", (("comm", comm), ("path", "/etc/passwd")))] == 1
    assert samples[("pybpf_latency_count", (("key_le", "1"), ("op", "read")))] == 1
    assert samples[("pybpf_names_info", (("k", "1"), ("value0", "x"), ("value1", "2")))] == 1
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), lint

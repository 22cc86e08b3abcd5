"""pybpf.records: the @dataclass subset the cache-hit path's modules use, without its import cost."""

import os
import subprocess
import sys

import pytest

from pybpf.records import FrozenInstanceError, NamedTuple, factory, record

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@record(frozen=True)
class Point:
    x: int
    y: int = 0


@record
class Bag:
    name: str
    items: list = factory(list)


def test_fields_positional_keyword_and_defaults():
    assert (Point(1).x, Point(1).y) == (1, 0)
    assert Point(1, 2) == Point(y=2, x=1)
    assert repr(Point(1, 2)) == "Point(x=1, y=2)"
    assert Point.__match_args__ == ("x", "y")
    match Point(3, 4):
        case Point(a, b):
            assert (a, b) == (3, 4)


def test_frozen_records_compare_and_hash_by_value_and_refuse_changes():
    assert Point(1, 2) != Point(2, 1) and hash(Point(1, 2)) == hash(Point(1, 2))
    assert {Point(1): "a"}[Point(1, 0)] == "a"
    with pytest.raises(FrozenInstanceError):
        Point(1).x = 5
    with pytest.raises(AttributeError):
        del Point(1).y


def test_a_record_equals_only_its_own_class():
    @record(frozen=True)
    class Other:
        x: int
        y: int = 0
    assert Point(1) != Other(1)


def test_mutable_records_get_a_fresh_factory_default_and_no_hash():
    a, b = Bag("a"), Bag("b")
    a.items.append(1)
    assert b.items == [] and Bag("a", [1]) == a
    with pytest.raises(TypeError):
        hash(a)


@pytest.mark.parametrize("call", [lambda: Point(), lambda: Point(1, 2, 3), lambda: Point(1, x=2),
                                  lambda: Point(1, z=2)])
def test_wrong_arguments_are_type_errors(call):
    with pytest.raises(TypeError):
        call()


class Pair(NamedTuple):
    """A pair."""
    first: int
    second: str = "b"

    def both(self) -> str:
        return f"{self.first}{self.second}"


def test_named_tuple_is_typings_without_importing_typing():
    pair = Pair(1)
    assert pair == (1, "b") and pair.both() == "1b" and Pair.__doc__ == "A pair."
    assert Pair._fields == ("first", "second") and Pair._field_defaults == {"second": "b"}
    assert pair._replace(second="c") == Pair(1, "c") and repr(pair) == "Pair(first=1, second='b')"
    assert Pair.__qualname__ == "Pair" and Pair.__module__ == __name__
    code = "import sys; from pybpf.records import NamedTuple; print('typing' in sys.modules)"
    assert subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                          cwd=ROOT).stdout == "False\n"


def test_named_tuple_refuses_a_field_without_default_after_one_with():
    with pytest.raises(TypeError, match="follows one with a default"):
        class Bad(NamedTuple):
            a: int = 0
            b: int


@record(frozen=True, slots=True, eq=False)
class Leaf:
    name: str
    count: int = 1


def test_slotted_records_compare_by_identity_and_have_no_dict():
    a, b = Leaf("x"), Leaf("x")
    assert a != b and a == a and len({a, b}) == 2
    assert Leaf.__slots__ == ("name", "count") and not hasattr(a, "__dict__")
    assert (a.count, Leaf("y", count=3).count) == (1, 3)
    with pytest.raises(FrozenInstanceError):
        a.name = "z"

"""pybpf.records: the @dataclass subset the cache-hit path's modules use, without its import cost."""

import pytest

from pybpf.records import FrozenInstanceError, factory, record


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

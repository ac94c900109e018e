from dataclasses import dataclass

import pytest

from probgen.config import (
    build_config,
    check_choice,
    choice,
    config_to_dict,
    parse_set_options,
    read_config_file,
)
from probgen.errors import ConfigError


@dataclass
class Example:
    steps: int = 1
    rate: float | None = None
    sizes: tuple[int, ...] = (8, 8)
    flag: bool = False
    kind: str = choice("a", ("a", "b"))


def test_set_strings_are_converted_by_type():
    c = build_config(
        Example, parse_set_options(["steps=3", "rate=none", "sizes=4,5", "flag=yes", "kind=b"])
    )
    assert c == Example(3, None, (4, 5), True, "b")


def test_json_values_and_order_of_sources():
    c = build_config(Example, {"steps": 2, "sizes": [1]}, {"steps": "7"})
    assert c.steps == 7 and c.sizes == (1,)
    assert config_to_dict(c)["sizes"] == [1]


@pytest.mark.parametrize(
    "source, message",
    [
        ({"nope": 1}, "unknown option 'nope'.*valid options: flag, kind, rate, sizes, steps"),
        ({"steps": "2.5"}, "steps expects an integer"),
        ({"rate": "fast"}, "rate expects a number"),
        ({"flag": "maybe"}, "flag expects true or false"),
        ({"kind": "c"}, "unknown kind 'c'; choose from a, b"),
        ({"sizes": "1,x"}, "sizes expects an integer"),
    ],
)
def test_bad_values_are_clear(source, message):
    with pytest.raises(ConfigError, match=message):
        build_config(Example, source)


def test_set_needs_equals_sign():
    with pytest.raises(ConfigError, match="key=value"):
        parse_set_options(["steps"])


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_config_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_config_file(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ConfigError, match="JSON object"):
        read_config_file(tmp_path / "list.json")


def test_check_choice_names_the_option_and_lists_the_choices():
    check_choice("schedule", "cosine", ("linear", "cosine"))
    with pytest.raises(ConfigError, match=r"unknown schedule 'cosin'; choose from linear, cosine$"):
        check_choice("schedule", "cosin", ("linear", "cosine"))


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400"])
def test_non_finite_numbers_are_refused(value):
    with pytest.raises(ConfigError, match="rate expects a finite number"):
        build_config(Example, {"rate": value})


def test_integers_too_large_for_any_size_are_refused():
    with pytest.raises(ConfigError, match=r"steps=100000000000 is too large"):
        build_config(Example, {"steps": "100000000000"})
    assert build_config(Example, {"steps": "1e3"}).steps == 1000


def test_a_config_file_that_is_a_fifo_is_refused(tmp_path):
    import os

    os.mkfifo(tmp_path / "cfg.json")
    with pytest.raises(ConfigError, match="is a FIFO"):
        read_config_file(tmp_path / "cfg.json")

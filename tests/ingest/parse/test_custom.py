import pytest

from drainpipe.ingest.parse import parse_message
from drainpipe.ingest.parse.custom import parse_custom
from drainpipe.model import CustomMetrics, Skipped

TS = 1_795_000_000_000


@pytest.mark.parametrize(
    ("text", "items"),
    [
        # one measure with a unit that is not kept
        ("measure#db.query=12.5ms", (("db.query", "measure", 12.5),)),
        # several kinds on one line, between ordinary words
        (
            "at=info count#signups=1 user=42 sample#queue.depth=4 measure#render=3s",
            (("signups", "count", 1.0), ("queue.depth", "sample", 4.0), ("render", "measure", 3.0)),
        ),
        # l2met's older syntax, a dot for the hash, alone or beside the new one
        ("measure.db.query=12ms", (("db.query", "measure", 12.0),)),
        (
            "count.orders=2 measure#render=3ms",
            (("orders", "count", 2.0), ("render", "measure", 3.0)),
        ),
        ("sample.queue.depth=4", (("queue.depth", "sample", 4.0),)),
        # an empty value counts as 1
        ("count#hits=", (("hits", "count", 1.0),)),
        # signs, exponents, leading dots
        (
            "sample#delta=-3.5 measure#tiny=.25 count#big=1e3",
            (
                ("delta", "sample", -3.5),
                ("tiny", "measure", 0.25),
                ("big", "count", 1000.0),
            ),
        ),
    ],
)
def test_custom_metrics_are_read_from_app_lines(
    text: str, items: tuple[tuple[str, str, float], ...]
) -> None:
    got = parse_custom(TS, "web.1", text)
    assert got == CustomMetrics(TS, "web", items)


def test_source_names_the_process_type_before_the_procid() -> None:
    got = parse_custom(TS, "web.1", "source=worker.3 count#jobs=2")
    assert isinstance(got, CustomMetrics) and got.process_type == "worker"


@pytest.mark.parametrize(
    "text",
    [
        "Completed 200 OK in 12ms",  # ordinary output
        "see issue #42",  # a hash that is no metric
        "count #x=1",  # not glued to its kind
        'at=info msg="v1.2 released"',  # dots that are no metric
        "recount.x=1",  # a kind inside a longer word
    ],
)
def test_lines_without_metrics_are_none(text: str) -> None:
    assert parse_custom(TS, "web.1", text) is None


@pytest.mark.parametrize("text", ["measure#x=abc", "count#x=1e308", "sample#x=-2e15"])
def test_a_line_whose_metrics_are_all_unreadable_is_skipped(text: str) -> None:
    """1e308 twice would sum to infinity, which a JSON answer cannot carry."""
    assert parse_custom(TS, "web.1", text) == Skipped("custom_metric")


def test_a_value_out_of_range_is_left_out_and_the_rest_of_the_line_is_read() -> None:
    got = parse_custom(TS, "web.1", "count#big=1e308 count#ok=2 measure#edge=1e15")
    assert got == CustomMetrics(TS, "web", (("ok", "count", 2.0), ("edge", "measure", 1e15)))


def test_app_lines_reach_the_custom_parser_and_api_lines_do_not() -> None:
    line = b"<190>1 2026-11-21T10:00:00+00:00 host app web.2 - measure#db=4ms\n"
    got = parse_message(line)
    assert isinstance(got, CustomMetrics)
    assert (got.process_type, got.items) == ("web", (("db", "measure", 4.0),))
    api = b"<190>1 2026-11-21T10:00:00+00:00 host app api - count#x=1 Release v3 created\n"
    assert not isinstance(parse_message(api), CustomMetrics)

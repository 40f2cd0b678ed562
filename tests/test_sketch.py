import math
from fractions import Fraction

import numpy as np
import pytest
from ddsketch import DDSketch
from hypothesis import given, settings
from hypothesis import strategies as st

from drainpipe import sketch

QS = (0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0)
values = st.lists(
    st.floats(min_value=0.001, max_value=1e7, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=400,
)


def exact(data: list[float], q: float) -> float:
    """The nearest-rank q-quantile, by exact arithmetic: the ceil(q * n)-th smallest."""
    rank = math.ceil(Fraction(str(q)) * len(data))
    return sorted(data)[max(rank, 1) - 1]


def within(estimate: float | None, truth: float) -> bool:
    assert estimate is not None
    return abs(estimate - truth) <= sketch.RELATIVE_ACCURACY * abs(truth) * (1 + 1e-9)


@given(values)
def test_quantiles_are_within_the_stated_relative_error(data: list[float]) -> None:
    s = sketch.from_values(np.array(data))
    for q, est in zip(QS, sketch.quantiles(s, QS), strict=True):
        assert within(est, exact(data, q)), (q, est, exact(data, q))


@given(values, values, values)
def test_merge_is_associative_and_commutative(
    a: list[float], b: list[float], c: list[float]
) -> None:
    sa, sb, sc = (sketch.from_values(np.array(x)) for x in (a, b, c))
    left = sketch.merge([sketch.merge([sa, sb]), sc])
    right = sketch.merge([sa, sketch.merge([sb, sc])])
    swapped = sketch.merge([sc, sb, sa])
    assert left == right == swapped


@given(values, st.integers(min_value=1, max_value=20))
def test_splitting_data_across_sketches_changes_nothing(data: list[float], parts: int) -> None:
    whole = sketch.from_values(np.array(data))
    pieces = [sketch.from_values(np.array(data[i::parts])) for i in range(parts) if data[i::parts]]
    assert sketch.merge(pieces) == whole
    assert whole.count == len(data)


@settings(max_examples=50)
@given(values)
def test_agrees_with_the_ddsketch_library_within_both_bounds(data: list[float]) -> None:
    ref = DDSketch(relative_accuracy=0.01)
    for v in data:
        ref.add(v)
    ours = sketch.from_values(np.array(data))
    n = len(data)
    for q in (0.5, 0.95, 0.99):
        # The library answers rank q' * (n - 1); ask it for the rank that ours reads.
        rank = max(math.ceil(Fraction(str(q)) * n), 1) - 1
        theirs = ref.get_quantile_value(rank / (n - 1) if n > 1 else 0.0)
        mine = sketch.quantiles(ours, (q,))[0]
        assert mine is not None and theirs is not None
        assert math.isclose(mine, theirs, rel_tol=0.01 + sketch.RELATIVE_ACCURACY + 1e-9)


def test_zero_and_negative_values_share_the_zero_bucket() -> None:
    s = sketch.from_values(np.array([0.0, -1.0, 0.0, 5.0]))
    assert s.zeros == 3 and s.count == 4
    assert sketch.quantiles(s, (0.0, 0.5, 1.0)) == [0.0, 0.0, pytest.approx(5.0, rel=0.005)]


def test_nan_is_ignored_and_an_empty_sketch_answers_none() -> None:
    assert sketch.from_values(np.array([math.nan])).count == 0
    assert sketch.quantiles(sketch.EMPTY, (0.5,)) == [None]


def test_quantiles_are_clamped_to_the_known_min_and_max() -> None:
    s = sketch.from_values(np.array([100.0] * 10))
    assert sketch.quantiles(s, (0.5,), lo=100.0, hi=100.0) == [100.0]


def test_a_quantile_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        sketch.quantiles(sketch.from_values(np.array([1.0])), (1.5,))


grouped_values = st.lists(
    st.tuples(
        st.integers(0, 5),
        st.one_of(
            st.floats(min_value=1e-3, max_value=1e7),
            st.sampled_from([0.0, -2.0, math.nan, math.inf]),
        ),
    ),
    max_size=200,
)


@given(grouped_values, st.lists(st.one_of(st.none(), values), min_size=7, max_size=7))
def test_from_groups_equals_merging_each_groups_prior_with_from_values(
    rows: list[tuple[int, float]], priors: list[list[float] | None]
) -> None:
    groups = np.array([g for g, _ in rows], dtype=np.int64)
    data = np.array([v for _, v in rows], dtype=np.float64)
    prior = [None if p is None else sketch.from_values(np.array(p)) for p in priors]
    for with_prior in (prior, []):
        got = sketch.from_groups(data, groups, 7, with_prior)
        for g in range(7):
            fresh = sketch.from_values(data[groups == g])
            have = with_prior[g] if with_prior else None
            assert got[g] == (fresh if have is None else sketch.merge([have, fresh]))


def test_from_groups_counts_densely_and_by_sorting_alike() -> None:
    rng = np.random.default_rng(3)
    data = rng.lognormal(3.0, 2.0, 3000)
    few = rng.integers(0, 2, data.size)  # 2 groups x the bucket range: dense counting
    many = rng.integers(0, 500, data.size)  # 500 groups: sorting
    for groups, n in ((few, 2), (many, 500)):
        got = sketch.from_groups(data, groups, n)
        assert got == [sketch.from_values(data[groups == g]) for g in range(n)]


# Wide-layout sketches with counts that need each packed width (1 to 8 bytes).
wide_sketches = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=5),
        st.dictionaries(
            st.integers(min_value=-(2**31), max_value=2**31 - 1),
            st.sampled_from([1, 2, 255, 256, 70_000, 2**33]),
            max_size=30,
        ),
    ).map(
        lambda zk: sketch.Sketch(
            zk[0],
            np.array(sorted(zk[1]), dtype=sketch.KEY_DTYPE).tobytes(),
            np.array([zk[1][k] for k in sorted(zk[1])], dtype=sketch.COUNT_DTYPE).tobytes(),
        )
    ),
    max_size=12,
)


@given(wide_sketches)
def test_packing_keeps_every_bucket_and_count(wides: list[sketch.Sketch]) -> None:
    packed = sketch.pack(wides)
    assert len(packed) == len(wides)
    for w, p in zip(wides, packed, strict=True):
        assert p.wide() == w
        assert p.count == w.count and p.buckets == w.buckets
        for a, b in zip(p.arrays(), w.arrays(), strict=True):
            np.testing.assert_array_equal(a, b)
        assert sketch.pack([p]) == [p]  # packing a packed sketch changes nothing


@given(wide_sketches, st.integers(min_value=1, max_value=40))
def test_packing_in_groups_gives_what_packing_all_at_once_gives(
    wides: list[sketch.Sketch], group: int
) -> None:
    whole = sketch.pack(wides)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sketch, "PACK_GROUP_BUCKETS", group)
        assert sketch.pack(wides) == whole


@given(values, values)
def test_packed_sketches_merge_and_answer_like_wide_ones(a: list[float], b: list[float]) -> None:
    sa, sb = sketch.from_values(np.array(a)), sketch.from_values(np.array(b))
    pa, pb = sketch.pack([sa, sb])
    assert sketch.merge([pa, sb]) == sketch.merge([sa, pb]) == sketch.merge([sa, sb])
    assert sketch.quantiles(pa, QS) == sketch.quantiles(sa, QS)
    groups = np.zeros(len(b), dtype=np.int64)
    assert sketch.from_groups(np.array(b), groups, 1, [pa]) == [sketch.merge([sa, sb])]


def test_a_packed_sketch_is_far_smaller_on_the_wire_than_a_wide_one() -> None:
    import msgspec

    data = np.random.default_rng(3).lognormal(3.5, 1.0, 100)
    wide = sketch.from_values(data)
    (packed,) = sketch.pack([wide])
    assert packed.kw == 1 and packed.cw == 1
    assert len(msgspec.msgpack.encode(packed)) * 4 < len(msgspec.msgpack.encode(wide))
    # Sketches stored before packing existed, [zeros, keys, counts], read as wide ones.
    old = msgspec.msgpack.encode([wide.zeros, wide.keys, wide.counts])
    assert msgspec.msgpack.decode(old, type=sketch.Sketch) == wide


@pytest.mark.parametrize(
    ("data", "q", "want"),
    [
        # nine fast requests and one slow one: the slow one is the p95 and the p99
        ([10, 20, 30, 40, 50, 60, 70, 80, 90, 1000], 0.95, 1000),
        ([10, 20, 30, 40, 50, 60, 70, 80, 90, 1000], 0.99, 1000),
        ([10, 20, 30, 40, 50, 60, 70, 80, 90, 1000], 0.5, 50),  # the 5th of 10
        ([10, 20, 30, 40, 50, 60, 70, 80, 90, 1000], 0.9, 90),  # the 9th of 10
        ([7], 0.5, 7),
        ([7], 0.0, 7),
        # 0.95 * 20 is 19 but for float error: the 19th, not the 20th
        (list(range(1, 21)), 0.95, 19),
    ],
)
def test_quantiles_are_read_at_the_nearest_rank(data: list[int], q: float, want: int) -> None:
    (got,) = sketch.quantiles(sketch.from_values(np.array(data, dtype=float)), (q,))
    assert within(got, want)

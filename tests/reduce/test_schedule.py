import pytest

from tdm_edge.errors import UsageError
from tdm_edge.reduce.schedule import (ScheduleError, Settings, _cost, build_schedule, check_knn, check_options,
                                      check_tome_r, default_prune_blocks, lowest_keep_rate)


def test_deit_small_keep_0_7_counts():
    s = build_schedule(197, 12, "bat", 0.7)
    assert s.stage_tokens == [197, 139, 98, 69]
    assert [st.block for st in s.stages] == [3, 6, 9]
    assert s.block_tokens == [197] * 4 + [139] * 3 + [98] * 3 + [69] * 2
    first = s.stages[0]  # 196 patches: K = 138 attentive, L = 58 inattentive -> 15 clusters, 15 pairs
    assert (first.keep, first.pairs, first.clusters) == (138, 15, 15)
    assert first.n_out == 1 + first.keep - first.pairs + first.clusters


@pytest.mark.parametrize("rho,expected", [(0.5, [197, 99, 50, 26]), (0.9, [197, 178, 161, 145]),
                                          (0.6, [197, 119, 72, 44])])
def test_other_keep_rates(rho, expected):
    assert build_schedule(197, 12, "bat", rho).stage_tokens == expected


def test_ceil_is_not_fooled_by_float_error():
    # 0.7 * 10 = 7.000000000000001 in floating point; the stage must keep 7, not 8
    assert build_schedule(11, 4, "bat", 0.7, prune_blocks=(1,)).stage_tokens == [11, 8]


def test_keep_rate_one_and_none_have_no_stages():
    assert build_schedule(197, 12, "bat", 1.0).stages == ()
    assert build_schedule(197, 12, "none", 0.5).stages == ()


def test_evit_and_random_share_bats_counts():
    bat = build_schedule(197, 12, "bat", 0.6)
    for method in ("evit", "random"):
        assert build_schedule(197, 12, method, 0.6).stage_tokens == bat.stage_tokens


def test_tome_r_is_the_closest_cost_to_bat():
    bat = build_schedule(197, 12, "bat", 0.7)
    tome = build_schedule(197, 12, "tome", 0.7)
    r = tome.stages[0].pairs
    assert all(st.pairs == r for st in tome.stages) and len(tome.stages) == 12
    target = _cost(list(bat.stages), 197, 12)
    costs = {rr: _cost(list(build_schedule(197, 12, "tome", 0.7, tome_r=rr).stages), 197, 12) for rr in range(40)}
    assert abs(costs[r] - target) == min(abs(c - target) for c in costs.values())


def test_default_prune_blocks_scale_with_depth():
    assert default_prune_blocks(12) == (3, 6, 9)
    assert default_prune_blocks(24) == (6, 12, 18)


@pytest.mark.parametrize("kwargs,message", [
    (dict(keep_rate=0.0), "keep rate must be in (0, 1]"),
    (dict(keep_rate=1.5), "keep rate must be in (0, 1]"),
    (dict(prune_blocks=(3, 12)), "out of range"),
    (dict(prune_blocks=(-1,)), "out of range"),
    (dict(method="fastest"), "unknown method"),
    (dict(cluster_ratio=1.5), "cluster ratio"),
    (dict(keep_rate=0.001), "too few to merge"),
])
def test_bad_settings_raise_one_line(kwargs, message):
    with pytest.raises(ScheduleError, match=message.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")) as info:
        build_schedule(197, 12, **{"method": "bat", **kwargs})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("method", ["bat", "evit"])
def test_too_low_a_keep_rate_names_the_lowest_that_works_for_the_method(method):
    with pytest.raises(ScheduleError) as info:
        build_schedule(197, 12, method, 0.01)
    text = str(info.value)
    assert text.startswith(f"{method} at keep rate 0.01: block ")
    lowest = float(text.split(f"works for {method} here is ")[1].split()[0])
    assert lowest == lowest_keep_rate(method, 197, (3, 6, 9))
    build_schedule(197, 12, method, lowest)  # the named rate works ...
    with pytest.raises(ScheduleError):
        build_schedule(197, 12, method, round(lowest - 0.01, 2))  # ... and is the lowest on the 0.01 grid
    if method == "evit":
        assert "pairs" not in text and "cluster" not in text  # EViT's own reason, not BAT's


def test_methods_without_a_floor_build_at_any_keep_rate():
    assert build_schedule(197, 12, "random", 0.01).stage_tokens == [197, 3, 2]
    assert build_schedule(197, 12, "tome", 0.01).stages[0].pairs > 0


def test_a_keep_rate_that_removes_nothing_is_refused_not_labelled():
    with pytest.raises(ScheduleError, match=r"bat at keep rate 0.7 removes no token from 1 patch token"):
        build_schedule(2, 12, "bat", 0.7)
    assert build_schedule(2, 12, "bat", 1.0).stages == ()  # 1.0 says: no reduction


def test_tome_r_beyond_half_the_patches_is_an_error_when_given_not_clamped():
    assert build_schedule(197, 12, "tome", tome_r=98).stages[0].pairs == 98
    check_tome_r(197, 98)
    with pytest.raises(ScheduleError, match=r"ToMe r must be in 0..98 for 197 tokens .* got 99"):
        check_tome_r(197, 99)  # create_model and the command line check what the user gave ...
    assert build_schedule(197, 12, "tome", tome_r=99).stages[0].pairs == 98  # ... the schedule clamps like ToMe


def test_knn_beyond_the_inattentive_tokens_is_an_error():
    s = build_schedule(197, 12, "bat", 0.7, knn=29)
    check_knn(s, 29)  # block 9: 97 patches, 68 attentive, 29 inattentive
    with pytest.raises(ScheduleError, match=r"--knn 30 out of range: block 9 clusters only 29 .* 1..29"):
        check_knn(s, 30)
    check_knn(s, None)  # not given: the default 5 is left to each stage


@pytest.mark.parametrize("method, given, message", [
    ("evit", {"cluster_ratio": 0.5}, "--cluster-ratio does not apply to method evit"),
    ("random", {"knn": 3}, "--knn does not apply to method random"),
    ("bat", {"tome_r": 4}, "--tome-r does not apply to method bat (it uses --keep-rate, --prune-blocks, "
                           "--cluster-ratio, --knn)"),
    ("tome", {"prune_blocks": (3,)}, "--prune-blocks does not apply to method tome"),
    ("none", {"keep_rate": 0.5}, "--keep-rate does not apply to method none (it uses no reduction option)"),
    ("tome", {"keep_rate": 0.5, "tome_r": 3}, "not both"),
    ("bat", {"prune_blocks": ()}, "--prune-blocks is empty"),
])
def test_options_the_method_would_ignore_are_errors(method, given, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_options(method, given)
    check_options(method, {k: None for k in given})  # the same options, not given


def test_the_settings_that_built_a_schedule_are_recorded():
    assert build_schedule(197, 12, "bat", 0.7, prune_blocks=(9, 3), knn=7).settings == Settings((3, 9), 0.25, 7, None)
    assert build_schedule(197, 12, "evit", 0.7).settings == Settings((3, 6, 9), None, None, None)
    tome = build_schedule(197, 12, "tome", 0.7)
    assert tome.settings == Settings(None, None, None, tome.stages[0].pairs)

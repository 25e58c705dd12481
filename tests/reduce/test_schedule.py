import pytest

from tdm_edge.reduce.schedule import ScheduleError, _cost, build_schedule, default_prune_blocks


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

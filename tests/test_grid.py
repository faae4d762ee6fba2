import numpy as np
import pytest

from aees_gym import CandidateGrid, candidate_name


def test_index_roundtrip_matches_reference_mode_ids():
    grid = CandidateGrid((0.5, 1.0, 2.0), (0.0, 0.005, 0.01))
    assert grid.size == 9
    for lr_idx in range(3):
        for noise_idx in range(3):
            action = grid.index(lr_idx, noise_idx)
            assert action == lr_idx * 3 + noise_idx
            assert grid.split(action) == (lr_idx, noise_idx)
            assert grid.values(action) == (grid.lr_multipliers[lr_idx], grid.noise_stds[noise_idx])
    assert grid.name(5) == "lr1_n0p01"
    assert grid.names[0] == "lr0p5_n0"
    assert grid.index_of(2.0, 0.005) == 7


def test_candidate_names_follow_reference_tokens():
    assert candidate_name(0.5, 0.005) == "lr0p5_n0p005"
    assert candidate_name(1.0, 0.0) == "lr1_n0"


def test_nearest_uses_log_distance_for_lr():
    grid = CandidateGrid((0.5, 1.0, 2.0), (0.0, 0.01))
    assert grid.split(grid.nearest(1.02, 0.0)) == (1, 0)
    assert grid.split(grid.nearest(0.8, 0.009)) == (1, 1)
    assert grid.split(grid.nearest(0.6, 0.0)) == (0, 0)


@pytest.mark.parametrize(
    "lrs, noises, message",
    [
        ((), (0.0,), "at least one"),
        ((1.0,), (), "at least one"),
        ((0.0, 1.0), (0.0,), "positive"),
        ((-1.0,), (0.0,), "positive"),
        ((1.0,), (-0.1,), "non-negative"),
        ((1.0, 1.0), (0.0,), "duplicate"),
        ((1.0,), (0.0, 0.0), "duplicate"),
        ((float("nan"),), (0.0,), "finite"),
    ],
)
def test_invalid_grids_are_rejected_clearly(lrs, noises, message):
    with pytest.raises(ValueError, match=message):
        CandidateGrid(lrs, noises)


def test_grid_values_given_as_strings_are_a_type_error():
    with pytest.raises(TypeError, match=r"grid.lr_multipliers\[0\] must be a number, got the string 'a'"):
        CandidateGrid(("a",), (0.0,))


@pytest.mark.parametrize("bad", [9, -1, 1.5, "3", None, True, np.array([1, 2])])
def test_invalid_actions_name_the_valid_range(bad):
    grid = CandidateGrid()
    with pytest.raises(ValueError, match="mode id|out of range"):
        grid.validate_action(bad)


def test_numpy_scalars_are_valid_actions():
    grid = CandidateGrid()
    assert grid.validate_action(np.int64(4)) == 4
    assert grid.validate_action(np.array(8)) == 8


def test_dict_roundtrip_and_unknown_keys():
    grid = CandidateGrid((0.25, 4.0), (0.0,))
    assert CandidateGrid.from_dict(grid.to_dict()) == grid
    with pytest.raises(KeyError, match="lr_multipliers"):
        CandidateGrid.from_dict({"lr": [1.0]})

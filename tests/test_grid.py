import numpy as np
import pytest

from aees_gym import Candidate, CandidateGrid, candidate_name


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


def test_momentum_axis_extends_mode_ids_row_major_and_names():
    grid = CandidateGrid((0.5, 1.0), (0.0, 0.01), momenta=(0.0, 0.5, 0.9))
    assert grid.size == 12 and grid.shape == (2, 2, 3)
    for action in range(grid.size):
        lr_idx, noise_idx, m_idx = grid.indices(action)
        assert action == (lr_idx * 2 + noise_idx) * 3 + m_idx == grid.index(lr_idx, noise_idx, m_idx)
        assert grid.split(action) == (lr_idx, noise_idx)
        assert grid.values(action) == (grid.lr_multipliers[lr_idx], grid.noise_stds[noise_idx])
        assert grid.candidate(action) == Candidate(grid.lr_multipliers[lr_idx], grid.noise_stds[noise_idx], grid.momenta[m_idx])
    assert grid.name(5) == "lr0p5_n0p01_m0p9" and grid.index_of(1.0, 0.0, 0.5) == 7
    assert grid.nearest(0.9, 0.001, 0.8) == grid.index(1, 0, 2)
    assert CandidateGrid.from_dict(grid.to_dict()) == grid
    # Without momenta the ids, names and dict are those of the two-axis grid.
    plain = CandidateGrid((0.5, 1.0), (0.0, 0.01))
    assert plain.to_dict() == {"lr_multipliers": [0.5, 1.0], "noise_stds": [0.0, 0.01]}
    assert plain.candidate(3) == Candidate(1.0, 0.01) and plain.indices(3) == (1, 1, 0)


def test_positions_are_indices_at_cells_and_interpolate_between():
    grid = CandidateGrid((0.5, 1.0, 2.0), (0.0, 0.005, 0.01), momenta=(0.0, 0.9))
    for action in range(grid.size):
        assert grid.positions(grid.candidate(action)) == tuple(float(i) for i in grid.indices(action))
    lr_pos, noise_pos, m_pos = grid.positions(Candidate(2**0.5, 0.0025, 0.45))
    assert (lr_pos, noise_pos, m_pos) == pytest.approx((1.5, 0.5, 0.5))


def test_check_candidate_names_the_valid_range():
    grid = CandidateGrid(momenta=(0.0, 0.9))
    assert grid.ranges == {"lr_multiplier": (0.5, 2.0), "noise_std": (0.0, 0.01), "momentum": (0.0, 0.9)}
    assert grid.check_candidate(Candidate(1.3, 0.004, 0.3)) == Candidate(1.3, 0.004, 0.3)
    with pytest.raises(ValueError, match=r"momentum 0.95 is outside the grid's range \[0.0, 0.9\]; widen the grid's momenta"):
        grid.check_candidate(Candidate(1.0, 0.0, 0.95))
    with pytest.raises(ValueError, match=r"needs a momentum in \[0.0, 0.9\]"):
        grid.check_candidate(Candidate(1.0, 0.0))
    with pytest.raises(ValueError, match="Expected a Candidate"):
        grid.check_candidate((1.0, 0.0))
    for bad, message in (((0.0, 0.0), "lr_multiplier must be a finite positive number"), ((1.0, -1e-3), "noise_std must be a finite non-negative")):
        with pytest.raises(ValueError, match=message):
            Candidate(*bad)
    with pytest.raises(ValueError, match=r"momenta values must be a finite fraction in \[0, 1\)"):
        CandidateGrid(momenta=(0.0, 1.0))
    with pytest.raises(ValueError, match="duplicate"):
        CandidateGrid(momenta=(0.5, 0.5))

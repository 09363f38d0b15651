"""Loss-dynamics tables and the Figure 1 plot."""

import numpy as np
import pytest

from ece_lightning.analysis.dynamics import (
    ema,
    plot_loss_dynamics,
    read_dynamics,
    resmooth,
    runs_with_dynamics,
    summarize,
)


def test_runs_of_a_sweep_are_found_and_labelled(example_sweep):
    tables = runs_with_dynamics(example_sweep)
    assert sorted(tables) == ["ce @ 0.5", "ce @ 1", "ece @ 0.5", "ece @ 1"]
    steps = {len(t) for t in tables.values()}
    assert steps == {6}  # 3 epochs x 2 batches
    summary = summarize(tables)
    assert len(summary) == 8 and summary["mean_abs_d2"].notna().all()
    figure = plot_loss_dynamics({k: tables[k] for k in ("ce @ 0.5", "ece @ 0.5")})
    assert len(figure.axes) == 6 and figure.axes[2].get_title() == "ce @ 0.5: second derivative / step²"
    assert len(figure.axes[0].get_lines()) == 2
    background = plot_loss_dynamics(tables, components=("background",))
    assert len(background.axes) == 12 and len(background.axes[0].get_lines()) == 1
    with pytest.raises(ValueError, match="unknown component 'bg'"):
        plot_loss_dynamics(tables, components=("bg",))


def test_resmooth_reproduces_the_callback_columns(example_sweep):
    table = runs_with_dynamics(example_sweep)["ece @ 0.5"]
    again = resmooth(table, span=3)  # the sweep's span
    np.testing.assert_allclose(again["background_d2"], table["background_d2"], rtol=1e-5, atol=1e-7)
    assert not np.allclose(resmooth(table, span=1)["obj_smooth"], table["obj_smooth"])


def test_ema_skips_nan_and_starts_at_the_first_value():
    assert ema(np.array([np.nan, 2.0, np.nan, 4.0]), span=3).tolist()[1:] == [2.0, 2.0, 3.0]


def test_missing_or_foreign_tables_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="callbacks=loss_dynamics"):
        read_dynamics(tmp_path)
    (tmp_path / "loss_dynamics.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing columns step"):
        read_dynamics(tmp_path)
    with pytest.raises(FileNotFoundError, match="no loss_dynamics.csv"):
        runs_with_dynamics(tmp_path / "elsewhere")

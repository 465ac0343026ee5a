"""The fleet-scoring library and the batch job's entry script: reading, scoring, ranking, writing."""

from __future__ import annotations

import json
import tarfile

import batch_score
import numpy as np
import pandas as pd
import pytest

from pipeline_steps import batch_names as bnames
from rul.data import COLUMNS, write_trajectories
from rul.errors import ConfigurationError, DataFormatError, ModelArtifactError
from rul.fleet import (
    check_units_unique,
    fleet_table,
    maintenance_list,
    read_fleet,
    score_fleet,
)
from rul.inference import load_model
from rul.synthetic import SyntheticSpec, generate


@pytest.fixture(scope="module")
def fleet_frame() -> pd.DataFrame:
    return generate(SyntheticSpec(n_train_units=1, n_test_units=12, seed=5)).test


def fleet_folder(tmp_path, frame: pd.DataFrame, split: int = 6):
    """Two files: the first `split` units space-separated, the rest comma-separated with a header."""
    folder = tmp_path / "fleet"
    units = sorted(frame["unit"].unique())
    write_trajectories(frame[frame["unit"].isin(units[:split])], folder / "site-a.txt")
    rest = frame[frame["unit"].isin(units[split:])][COLUMNS]
    (folder / "site-b.csv").write_text(rest.to_csv(index=False))
    return folder


class StubPredictor:
    """predict_last with fixed predictions per unit; bounds only when `intervals`."""

    def __init__(self, predicted: dict[int, float], lower: dict[int, float] | None = None):
        self.predicted, self.lower = predicted, lower
        self.calls = 0

    def predict_last(self, frame: pd.DataFrame) -> pd.DataFrame:
        self.calls += 1
        units = sorted(frame["unit"].unique())
        result = pd.DataFrame(
            {
                "unit": units,
                "predicted_rul": [self.predicted[u] for u in units],
                "cycles_used": 30,
                "padded": False,
            }
        )
        if self.lower is not None:
            result["rul_lower"] = [self.lower[u] for u in units]
            result["rul_upper"] = result["predicted_rul"] + 10.0
        return result


def fleet_of(units: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"unit": units, "cycle": [1] * len(units)})


# --- reading -------------------------------------------------------------------------------------------


def test_read_fleet_reads_every_file_in_either_layout_and_versions_them(tmp_path, fleet_frame):
    folder = fleet_folder(tmp_path, fleet_frame)
    fleet = read_fleet(folder)
    assert fleet.units == 12 and len(fleet.frame) == len(fleet_frame)
    assert fleet.unit_files[1] == "site-a.txt" and fleet.unit_files[12] == "site-b.csv"
    assert [f["name"] for f in fleet.files] == ["site-a.txt", "site-b.csv"]
    assert all(f["bytes"] > 0 and len(f["sha256"]) == 64 for f in fleet.files)
    before = fleet.data_version
    (folder / "site-b.csv").write_text((folder / "site-b.csv").read_text())
    assert read_fleet(folder).data_version == before  # the same bytes rewritten: the same version
    with (folder / "site-b.csv").open("a") as handle:
        handle.write("\n")
    assert read_fleet(folder).data_version != before  # any change of content changes it


def test_a_bad_row_is_named_by_file_and_line(tmp_path, fleet_frame):
    folder = fleet_folder(tmp_path, fleet_frame)
    lines = (folder / "site-a.txt").read_text().splitlines()
    fields = lines[4].split()
    fields[7] = "n/a"
    lines[4] = " ".join(fields)
    (folder / "site-a.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as caught:
        read_fleet(folder)
    assert (caught.value.path, caught.value.line) == ("site-a.txt", 5)
    assert "column 8 (sensor_3) is not a number" in caught.value.problem


def test_a_unit_in_two_files_is_an_error_naming_both(tmp_path, fleet_frame):
    folder = fleet_folder(tmp_path, fleet_frame)
    write_trajectories(fleet_frame[fleet_frame["unit"] == 3], folder / "site-c.txt")
    with pytest.raises(DataFormatError, match=r"site-c.txt: unit 3 also appears in site-a.txt"):
        read_fleet(folder)
    with pytest.raises(DataFormatError, match="unit 2 also appears in a"):
        check_units_unique([("a", fleet_of([1, 2])), ("b", fleet_of([2]))])


def test_an_empty_fleet_is_a_clear_error(tmp_path):
    folder = tmp_path / "fleet"
    folder.mkdir()
    (folder / ".keep").write_text("")
    with pytest.raises(DataFormatError, match="the fleet is empty"):
        read_fleet(folder)
    (folder / "empty.txt").write_text("\n")
    with pytest.raises(DataFormatError, match=r"empty\.txt: the file holds no rows"):
        read_fleet(folder)
    with pytest.raises(DataFormatError, match="does not exist"):
        read_fleet(tmp_path / "nowhere")


# --- scoring and ranking --------------------------------------------------------------------------------


def test_ranking_uses_the_predicted_rul_without_intervals():
    stub = StubPredictor({1: 80.0, 2: 12.0, 3: 40.0, 4: 12.0})
    table = fleet_table(score_fleet(stub, fleet_of([4, 3, 2, 1])), "7", "abc")
    assert list(table.columns) == [
        "unit", "predicted_rul", "cycles_used", "padded", "model_version", "data_version",
    ]  # fmt: skip
    ranked = maintenance_list(table, threshold_cycles=40)
    assert ranked["unit"].tolist() == [2, 4, 3, 1]  # ascending; a tie goes to the lower unit
    assert ranked["rank"].tolist() == [1, 2, 3, 4]
    assert ranked["due_within_cycles"].tolist() == [True, True, True, False]
    assert "rul_lower" not in ranked.columns


def test_ranking_uses_the_lower_bound_when_the_model_returns_intervals():
    stub = StubPredictor({1: 20.0, 2: 30.0, 3: 50.0}, lower={1: 15.0, 2: 5.0, 3: 31.0})
    table = fleet_table(score_fleet(stub, fleet_of([1, 2, 3])), "7", "abc")
    assert list(table.columns)[:4] == ["unit", "predicted_rul", "rul_lower", "rul_upper"]
    ranked = maintenance_list(table, threshold_cycles=30)
    assert ranked["unit"].tolist() == [2, 1, 3]  # unit 2's lower bound comes first despite its RUL
    assert ranked["due_within_cycles"].tolist() == [True, True, False]


def test_scoring_in_blocks_equals_one_call(model_dir, fleet_frame):
    predictor = load_model(model_dir).predictor
    whole = predictor.predict_last(fleet_frame).sort_values("unit").reset_index(drop=True)
    blocks = score_fleet(predictor, fleet_frame, chunk_units=5)
    pd.testing.assert_frame_equal(blocks, whole)
    stub = StubPredictor({u: 1.0 for u in range(1, 13)})
    score_fleet(stub, fleet_frame, chunk_units=5)
    assert stub.calls == 3


# --- the entry script ------------------------------------------------------------------------------------


def champion_folder(tmp_path, model_dir, version=4):
    folder = tmp_path / "champion"
    folder.mkdir()
    with tarfile.open(folder / "model.tar.gz", "w:gz") as bundle:
        for path in sorted(model_dir.iterdir()):
            bundle.add(path, arcname=path.name)
    (folder / "champion.json").write_text(json.dumps({"version": version, "model_package_arn": "arn"}))
    return folder


def test_entry_script_writes_the_three_files(tmp_path, model_dir, fleet_frame):
    fleet, champion, output = (
        fleet_folder(tmp_path, fleet_frame),
        champion_folder(tmp_path, model_dir),
        tmp_path / "out",
    )
    argv = ["--fleet-dir", str(fleet), "--champion-dir", str(champion), "--output-dir", str(output)]
    assert batch_score.main([*argv, "--threshold-cycles", "60", "--execution-id", "e-1"]) == 0
    assert sorted(p.name for p in output.iterdir()) == sorted(bnames.OUTPUT_FILES)  # no temporary left
    table = pd.read_csv(output / bnames.PREDICTIONS_FILE)
    assert table["unit"].tolist() == list(range(1, 13))
    assert set(table["model_version"]) == {4} and table["data_version"].nunique() == 1
    ranked = pd.read_csv(output / bnames.MAINTENANCE_FILE)
    assert np.all(np.diff(ranked["predicted_rul"]) >= 0)
    assert ranked["due_within_cycles"].tolist() == (ranked["predicted_rul"] <= 60).tolist()
    summary = json.loads((output / bnames.SUMMARY_FILE).read_text())
    assert (
        summary["units"] == 12
        and summary["execution_id"] == "e-1"
        and summary["ranked_by"] == "predicted_rul"
    )
    assert summary["data_version"] == table["data_version"].iloc[0]


def test_entry_script_refuses_a_champion_placeholder_and_a_bad_threshold(tmp_path, fleet_frame):
    champion = tmp_path / "champion"
    champion.mkdir()
    (champion / "NO_CHAMPION_YET.txt").write_text("No model has been approved yet.\n")
    with pytest.raises(ModelArtifactError, match="no model version has been approved yet"):
        batch_score.main(["--champion-dir", str(champion), "--threshold-cycles", "30"])
    with pytest.raises(ConfigurationError, match="--threshold-cycles must be 0-1000"):
        batch_score.main(["--threshold-cycles", "5000"])


def test_entry_script_spells_the_shared_names():
    assert batch_score.PREDICTIONS_FILE == bnames.PREDICTIONS_FILE
    assert batch_score.MAINTENANCE_FILE == bnames.MAINTENANCE_FILE
    assert batch_score.SUMMARY_FILE == bnames.SUMMARY_FILE
    assert batch_score.MAX_THRESHOLD_CYCLES == bnames.MAX_THRESHOLD_CYCLES

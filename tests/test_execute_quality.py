"""`execute` parity: a QualityCheck step (data-quality baseline) rendered with the SageMaker SDK, run by the
project's stand-in for the Model Monitor analyzer."""

from __future__ import annotations

import json

from sagemaker.model_monitor.dataset_format import DatasetFormat
from sagemaker.workflow.check_job_config import CheckJobConfig
from sagemaker.workflow.quality_check_step import DataQualityCheckConfig, QualityCheckStep
from test_execute_support import BUCKET, ROLE, execute, render, steps_of


def _baseline(session) -> list:
    check = DataQualityCheckConfig(
        baseline_dataset=f"{BUCKET}/data/rows.csv",
        dataset_format=DatasetFormat.csv(header=True),
        output_s3_uri=f"{BUCKET}/baseline",
    )
    job = CheckJobConfig(role=ROLE, instance_count=1, instance_type="ml.m5.large", sagemaker_session=session)
    step = QualityCheckStep(
        "Baseline",
        quality_check_config=check,
        check_job_config=job,
        skip_check=True,
        register_new_baseline=True,
        model_package_group_name="parity-models",
    )
    return [step]


def test_a_quality_check_step_writes_the_baseline_and_its_properties(tmp_path):
    rows = ["a,b", *(f"{i},{i * 0.5}" for i in range(20))]
    (tmp_path / "rows.csv").write_text("\n".join(rows) + "\n")
    definition = render(_baseline)
    assert definition["Steps"][0]["Type"] == "QualityCheck"

    code, record = execute(
        tmp_path, definition, "--object", f"{BUCKET}/data/rows.csv={tmp_path / 'rows.csv'}"
    )

    assert code == 0, record["failure_reason"]
    properties = steps_of(record)["Baseline"]["properties"]
    statistics_uri = properties["CalculatedBaselineStatistics"]
    assert statistics_uri.startswith(f"{BUCKET}/baseline") and statistics_uri.endswith("/statistics.json")
    statistics = json.loads((tmp_path / "work" / "s3" / statistics_uri.removeprefix("s3://")).read_text())
    assert {feature["name"] for feature in statistics["features"]} == {"a", "b"}
    assert properties["BaselineUsedForDriftCheckConstraints"].endswith("/constraints.json")

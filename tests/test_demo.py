"""The lifecycle demo (`local_runner.demo`): its pure parts, and a smaller run that asserts each transition.

The slow test runs the whole story on a small fleet with one tuning trial: real pipeline runs, registry
changes, HTTP requests to the local endpoint and monitoring runs. Each transition is asserted on what the
demo read back (the facts) and again on the registry, the champion pointer and the written page.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from local_runner.ab_split import CHALLENGER, CHAMPION, AbPaths, history
from local_runner.champion import current_champion
from local_runner.demo import prepare_work_dir, run_demo
from local_runner.demo_ab import ab_section_html, pick_winner, split_check
from local_runner.demo_report import DemoFacts, Timeline, event_line, render_page, summary_cards
from local_runner.demo_state import DemoError, DemoOptions
from local_runner.demo_traffic import capture_sizes, cut_window
from local_runner.main_job import prepare_workspace


def test_a_window_holds_only_the_records_appended_since_its_start(tmp_path):
    root = tmp_path / "captures"
    old = root / "ep" / "AllTraffic" / "2026" / "01" / "01" / "10" / "a.jsonl"
    old.parent.mkdir(parents=True)
    old.write_text('{"n": 1}\n')
    before = capture_sizes(root)
    with old.open("a") as handle:
        handle.write('{"n": 2}\n')
    new = old.with_name("b.jsonl")
    new.write_text('{"n": 3}\n')

    window = cut_window(root, before, tmp_path / "window")

    assert (window / old.relative_to(root)).read_text() == '{"n": 2}\n'
    assert (window / new.relative_to(root)).read_text() == '{"n": 3}\n'
    assert not any(cut_window(root, capture_sizes(root), tmp_path / "empty").rglob("*.jsonl"))


def test_only_a_demo_work_dir_is_wiped(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious")
    with pytest.raises(DemoError, match="is not a demo work dir"):
        prepare_work_dir(foreign)
    assert (foreign / "keep.txt").is_file()

    own = tmp_path / "demo"
    prepare_work_dir(own)
    (own / "old.txt").write_text("from the last run")
    prepare_work_dir(own)
    assert not (own / "old.txt").exists()


def test_events_carry_their_numbers_and_the_page_escapes_them():
    lines = []
    timeline = Timeline(lines.append)
    with timeline.stage("monitor"):
        event = timeline.add("monitor", "drift <b>DETECTED</b>", False, MaxPSI=2.5, features=["sensor_4"])
    assert lines == [event_line(event)]
    assert "MaxPSI=2.500" in lines[0] and "features=sensor_4" in lines[0]
    assert "monitor" in timeline.stages
    page = render_page(timeline, "t", {"served": "1 → 2"})
    assert "drift &lt;b&gt;DETECTED&lt;/b&gt;" in page and "<b>DETECTED</b>" not in page
    assert "default-src 'none'" in page


def _row(labelled: int, rmse: float | None, requests: int = 50) -> dict:
    return {"requests": requests, "predictions": requests, "labelled": labelled, "rmse": rmse,
            "mae": rmse, "phm08_score": None if rmse is None else 10 * rmse}  # fmt: skip


def test_the_challenger_wins_only_with_enough_labels_and_a_lower_rmse():
    winner, reason = pick_winner({CHAMPION: _row(40, 30.0), CHALLENGER: _row(35, 22.5)}, 10)
    assert winner == "challenger" and "22.50" in reason and "30.00" in reason
    assert pick_winner({CHAMPION: _row(40, 22.5), CHALLENGER: _row(35, 30.0)}, 10)[0] == "champion"
    assert pick_winner({CHAMPION: _row(40, 22.5), CHALLENGER: _row(35, 22.5)}, 10)[0] == "champion"
    winner, reason = pick_winner({CHAMPION: _row(40, 30.0), CHALLENGER: _row(3, 1.0)}, 10)
    assert winner == "champion" and "Challenger has 3 labelled" in reason
    winner, reason = pick_winner({CHAMPION: _row(40, 30.0)}, 10)
    assert winner == "champion" and "Challenger has 0 labelled" in reason


def test_the_split_check_measures_the_challengers_share_against_a_binomial_tolerance():
    split = split_check({CHAMPION: 60, CHALLENGER: 40}, 50)
    assert split["challenger_share"] == pytest.approx(0.4)
    assert split["tolerance"] == pytest.approx(3 * (0.25 / 100) ** 0.5)
    assert split_check({CHALLENGER: 30}, 30)["challenger_share"] == 1.0
    with pytest.raises(DemoError, match="answered no requests"):
        split_check({}, 50)


def test_the_page_shows_the_ab_table_and_card_only_after_an_ab_phase():
    facts = DemoFacts()
    assert ab_section_html(facts) == "" and not any("A/B" in key for key in summary_cards(facts, 1.0))
    facts.ab = {"versions": [1, 2], "percent": 50, "winner": "challenger", "reason": "lower <RMSE>",
                "comparison": {CHAMPION: _row(40, 30.0, 44), CHALLENGER: _row(35, 22.5, 52)}}  # fmt: skip
    section = ab_section_html(facts)
    assert "A/B variants" in section and "22.50" in section and "lower &lt;RMSE&gt;" in section
    card = summary_cards(facts, 1.0)["A/B test: requests, RMSE"]
    assert card == "Champion v1: 44, 30.0 · Challenger v2: 52, 22.5 → challenger promoted"


SMALL = DemoOptions(
    training_units=40,
    fleet_units=48,
    new_units=30,
    tuning_max_jobs=1,
    budget=(("ensemble_size", "1"), ("max_iter", "80")),
    canary_requests=4,
    ab_requests=60,
)


def _run(tmp_path_factory, options: DemoOptions, name: str):
    work = tmp_path_factory.mktemp(name) / "work"
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")  # as `demo` sets it: the jobs share two cores with the endpoint
        demo, paths = run_demo(replace(options, work_dir=work), lines.append)
    return demo, paths, lines


@pytest.fixture(scope="module")
def release_run(tmp_path_factory):
    """The story without the A/B phase: v2 is approved, swapped in whatever its accuracy, rolled back."""
    return _run(tmp_path_factory, replace(SMALL, ab_requests=0), "release")


@pytest.fixture(scope="module")
def ab_run(tmp_path_factory):
    """The story with the A/B phase: whether v2 is swapped in depends on the variants' measured RMSE."""
    return _run(tmp_path_factory, SMALL, "ab")


@pytest.mark.slow
@pytest.mark.long
def test_every_transition_of_the_lifecycle_happens(release_run):
    demo, _, lines = release_run
    facts = demo.facts
    assert not demo.failed, "\n".join(lines)
    assert facts.registered == [1, 2], "\n".join(lines)  # v2 passed the gate on the new data
    assert facts.drift_flags == [False, True]  # clean window: no alarm; drifted window: alarm
    assert facts.data_versions[0] != facts.data_versions[1]
    assert facts.fresh_steps[1] == facts.fresh_steps[0] >= 3  # retraining reused no cached job
    # served at start, before the approval of v2, after its swap, after the rollback
    assert facts.served == ["1", "1", "2", "1"]
    assert facts.champion == [1, 2, 1]
    assert facts.statuses == {1: "Approved", 2: "Rejected"}
    assert facts.ab == {}


@pytest.mark.slow
@pytest.mark.long
def test_the_registry_champion_and_page_agree_with_the_timeline(release_run):
    demo, paths, _ = release_run
    workspace = prepare_workspace(demo.work_dir, render=False)
    packages = workspace.registry.list(workspace.config.model_package_group_name)
    assert [(p.version, p.approval_status) for p in packages] == [(2, "Rejected"), (1, "Approved")]
    assert current_champion(workspace.store, workspace.config.champion_uri)["version"] == 1
    document = json.loads(paths["json"].read_text())
    stages = [event["stage"] for event in document["events"]]
    for stage in ("train v1", "approve v1", "serve", "clean window", "drifted window", "retrain",
                  "train v2", "approve v2", "canary", "reject v2", "rollback"):  # fmt: skip
        assert stage in stages
    page = paths["html"].read_text()
    assert "ALARM" in page and "timeline" in page
    assert demo.endpoint is not None and demo.endpoint.process.poll() is not None  # stopped


@pytest.mark.slow
@pytest.mark.long
def test_the_ab_phase_splits_measures_each_variant_and_records_the_promotion(ab_run):
    demo, paths, lines = ab_run
    ab = demo.facts.ab
    assert ab["versions"] == [1, 2], "\n".join(lines)
    assert sum(ab["counts"].values()) == SMALL.ab_requests
    assert abs(ab["challenger_share"] - ab["expected_share"]) <= ab["tolerance"]
    for variant in (CHAMPION, CHALLENGER):
        row = ab["comparison"][variant]
        assert row["requests"] == ab["counts"][variant] == row["predictions"]
        assert row["labelled"] == row["predictions"] >= SMALL.ab_min_labelled
        assert row["rmse"] > 0 and row["mae"] > 0 and row["phm08_score"] > 0
    rmse = {variant: ab["comparison"][variant]["rmse"] for variant in (CHAMPION, CHALLENGER)}
    assert ab["winner"] == ("challenger" if rmse[CHALLENGER] < rmse[CHAMPION] else "champion")
    assert f"{rmse[CHALLENGER]:.2f}" in ab["reason"] and f"{rmse[CHAMPION]:.2f}" in ab["reason"]
    trail = history(AbPaths.of(demo.work_dir))
    assert [entry["action"] for entry in trail] == ["start", "promote"]
    assert trail[1]["reason"] == ab["reason"] and trail[1]["winner"] == ab["winner"].capitalize()
    assert trail[0]["versions"] == {CHAMPION: 1, CHALLENGER: 2}
    page = paths["html"].read_text()
    assert 'id="variants"' in page and "A/B test: requests, RMSE" in page
    assert "A/B test" in [event["stage"] for event in json.loads(paths["json"].read_text())["events"]]


@pytest.mark.slow
@pytest.mark.long
def test_after_the_ab_phase_only_a_winning_challenger_is_swapped_in_and_rolled_back(ab_run):
    demo, _, lines = ab_run
    facts = demo.facts
    assert not demo.failed, "\n".join(lines)
    if facts.ab["winner"] == "challenger":
        assert facts.served == ["1", "1", "2", "1"] and facts.champion == [1, 2, 1]
        assert facts.statuses == {1: "Approved", 2: "Rejected"}
    else:  # the champion stayed: nothing was swapped, so nothing is rolled back
        assert facts.served == ["1", "1"] and facts.champion == [1, 1]
        assert "v2 lost the A/B test" in "\n".join(lines)

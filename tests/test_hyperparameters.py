"""Tests of rul.hyperparameters: defaults, conversion from SageMaker strings, bounds and errors."""

from __future__ import annotations

import json

import pytest

from rul.contract import decode_hyperparameter
from rul.errors import ConfigurationError
from rul.hyperparameters import AUTO, AUTO_CAP, BOUNDS, MODEL_FAMILIES, Hyperparameters


def test_defaults():
    """The defaults a training job gets when SageMaker passes nothing; caps and features left to the fit."""
    hp = Hyperparameters()
    assert hp.model_family == "gbm"
    assert (hp.feature_set, hp.rul_cap, hp.inner_cap) == (AUTO, AUTO_CAP, AUTO_CAP)  # chosen by the fit
    assert not hp.resolved
    assert hp.window == 30
    assert hp.n_conditions == 0
    assert hp.validation_draws == 5
    assert hp.seed == 0
    assert hp.learning_rate is None
    assert hp.effective_learning_rate == 0.05
    assert hp.max_iter == 400
    assert hp.epochs == 60
    assert hp.batch_size == 256
    assert hp.dropout == 0.5
    assert hp.patience == 10
    assert (hp.interval_level, hp.cut_max_rul, hp.row_stride, hp.max_train_rows) == (0.9, 150, 5, 100_000)
    assert MODEL_FAMILIES == ("gbm", "cnn", "lstm")
    assert set(BOUNDS) <= set(hp.as_dict())


def test_from_empty_dict_is_default():
    assert Hyperparameters.from_dict({}) == Hyperparameters()


def test_from_dict_converts_strings():
    """SageMaker passes every hyperparameter as a string; each field gets its declared type back."""
    hp = Hyperparameters.from_dict(
        {"window": "30", "learning_rate": "0.1", "model_family": "cnn", "rul_cap": "130", "dropout": "0.35"}
    )
    assert hp.window == 30 and type(hp.window) is int
    assert hp.learning_rate == 0.1 and type(hp.learning_rate) is float
    assert hp.rul_cap == 130.0 and type(hp.rul_cap) is float
    assert hp.model_family == "cnn"
    assert hp.dropout == 0.35
    assert hp.effective_learning_rate == 0.1


def test_from_dict_accepts_integer_valued_float_strings():
    hp = Hyperparameters.from_dict({"window": "40.0", "max_iter": 250.0, "seed": "1e3"})
    assert (hp.window, hp.max_iter, hp.seed) == (40, 250, 1000)
    assert type(hp.window) is int and type(hp.max_iter) is int and type(hp.seed) is int


def test_from_dict_json_decoded_values():
    """Values decoded from SageMaker's JSON-quoted strings build the same hyperparameters as typed ones."""
    raw = {"window": "50", "model_family": '"lstm"', "learning_rate": "0.002", "units": "128"}
    decoded = {key: decode_hyperparameter(value) for key, value in raw.items()}
    assert decoded == {"window": 50, "model_family": "lstm", "learning_rate": 0.002, "units": 128}
    hp = Hyperparameters.from_dict(decoded)
    assert (hp.window, hp.model_family, hp.learning_rate, hp.units) == (50, "lstm", 0.002, 128)
    assert Hyperparameters.from_dict(json.loads('{"epochs": 12, "dropout": 0.1}')).epochs == 12


@pytest.mark.parametrize("none", ["none", "None", "NULL", "", None])
def test_learning_rate_none(none):
    """Any spelling of 'no value' leaves the learning rate to the family default (gbm 0.05, deep 1e-3)."""
    gbm = Hyperparameters.from_dict({"learning_rate": none})
    assert gbm.learning_rate is None
    assert gbm.effective_learning_rate == 0.05
    cnn = Hyperparameters.from_dict({"learning_rate": none, "model_family": "cnn"})
    assert cnn.effective_learning_rate == 1e-3
    lstm = Hyperparameters.from_dict({"learning_rate": none, "model_family": "lstm"})
    assert lstm.effective_learning_rate == 1e-3


@pytest.mark.parametrize("name", ["window", "model_family", "dropout"])
def test_none_for_other_fields_is_an_error(name):
    with pytest.raises(ConfigurationError, match=f"^hyperparameter {name} must have a value$"):
        Hyperparameters.from_dict({name: "none"})


def test_unknown_key_is_named():
    """A misspelt hyperparameter is refused by name, not silently ignored."""
    with pytest.raises(ConfigurationError) as caught:
        Hyperparameters.from_dict({"window": "30", "windw": "20", "alpha": "1"})
    assert str(caught.value) == "unknown hyperparameter(s): alpha, windw"


@pytest.mark.parametrize(
    ("name", "value", "shown", "bounds"),
    [
        ("window", "3", "3", "[5, 200]"),
        ("window", "201", "201", "[5, 200]"),
        ("learning_rate", "2", "2.0", "[1e-05, 1.0]"),
        ("learning_rate", "0", "0.0", "[1e-05, 1.0]"),
        ("dropout", 0.95, "0.95", "[0.0, 0.9]"),
        ("seed", "-1", "-1", "[0, 2147483647]"),
        ("rul_cap", "10", "10.0", "[50, 400]"),
        ("batch_size", 5000, "5000", "[8, 4096]"),
        ("learning_rate", "nan", "nan", "[1e-05, 1.0]"),
        ("interval_level", "0.999", "0.999", "[0.5, 0.99]"),
        ("interval_level", "0.4", "0.4", "[0.5, 0.99]"),
        ("row_stride", "0", "0", "[1, 100]"),
        ("max_train_rows", "-1", "-1", "[0, 10000000]"),
        ("cut_max_rul", "5", "5", "[10, 400]"),
    ],
)
def test_out_of_bounds_names_field_and_value(name, value, shown, bounds):
    """A value outside its bounds is refused with the field, the value and the bounds in the message."""
    with pytest.raises(ConfigurationError) as caught:
        Hyperparameters.from_dict({name: value})
    assert str(caught.value) == f"hyperparameter {name}={shown} is outside {bounds}"


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_bounds_are_inclusive(name):
    """Both ends of every declared range are accepted, so the tuner's ranges can reach them."""
    low, high = BOUNDS[name]
    assert getattr(Hyperparameters.from_dict({name: str(low)}), name) == low
    assert getattr(Hyperparameters.from_dict({name: str(high)}), name) == high


@pytest.mark.parametrize("family", ["xgb", "GBM", " ", "transformer", '"gbm"'])
def test_bad_model_family(family):
    """Only the three families are accepted, spelt exactly (no case folding, no JSON quotes)."""
    with pytest.raises(ConfigurationError, match="hyperparameter model_family must be one of"):
        Hyperparameters.from_dict({"model_family": family})


def test_bad_model_family_message_names_value():
    with pytest.raises(ConfigurationError) as caught:
        Hyperparameters(model_family="xgb")
    assert "('gbm', 'cnn', 'lstm')" in str(caught.value)
    assert "got 'xgb'" in str(caught.value)


def test_bad_feature_set():
    """An unknown feature set is refused with the allowed ones listed."""
    message = "feature_set must be one of rich, stats, regime or auto, got 'raw'"
    with pytest.raises(ConfigurationError, match=message):
        Hyperparameters.from_dict({"feature_set": "raw"})
    assert Hyperparameters.from_dict({"feature_set": "stats"}).feature_set == "stats"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("window", "2.5", "hyperparameter window='2.5' is not a valid int"),
        ("window", 2.5, "hyperparameter window=2.5 is not a valid int"),
        ("epochs", "ten", "hyperparameter epochs='ten' is not a valid int"),
        ("window", "nan", "hyperparameter window='nan' is not a valid int"),
        ("dropout", "high", "hyperparameter dropout='high' is not a valid float"),
        ("learning_rate", "fast", "hyperparameter learning_rate='fast' is not a valid float"),
        ("batch_size", [256], "hyperparameter batch_size=[256] is not a valid int"),
    ],
)
def test_invalid_values(name, value, message):
    """A value that is not of the field's type is refused with the field and the value as given."""
    with pytest.raises(ConfigurationError) as caught:
        Hyperparameters.from_dict({name: value})
    assert str(caught.value).startswith(message)


def test_as_dict_round_trip():
    """as_dict and from_dict round-trip, also through the string form the tuner passes to SageMaker."""
    hp = Hyperparameters.from_dict(
        {"model_family": "cnn", "window": "45", "learning_rate": "0.003", "filters": "64", "seed": "17"}
    )
    values = hp.as_dict()
    assert values["model_family"] == "cnn"
    assert values["window"] == 45
    assert values["learning_rate"] == 0.003
    assert len(values) == 26
    assert Hyperparameters.from_dict(values) == hp
    # Through SageMaker's string form, as the tuner would pass it.
    as_strings = {key: str(value) for key, value in Hyperparameters().as_dict().items()}
    assert as_strings["learning_rate"] == "None"
    assert Hyperparameters.from_dict(as_strings) == Hyperparameters()
    assert Hyperparameters.from_dict({key: str(value) for key, value in values.items()}) == hp


def test_one_calibration_fold_is_refused():
    message = r"calibration_folds must be 0 \(split\) or at least 2, got 1"
    with pytest.raises(ConfigurationError, match=message):
        Hyperparameters.from_dict({"calibration_folds": "1"})
    assert Hyperparameters.from_dict({"calibration_folds": "5"}).calibration_folds == 5


def test_hyperparameters_are_frozen():
    hp = Hyperparameters()
    with pytest.raises(AttributeError):
        hp.window = 10  # type: ignore[misc]


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", float("inf")])
def test_infinite_value_for_int_field_is_a_configuration_error(value):
    """An infinite value for an integer field is a configuration error, not an OverflowError."""
    with pytest.raises(ConfigurationError, match="hyperparameter window="):
        Hyperparameters.from_dict({"window": value})


def test_auto_caps_read_from_strings_and_concrete_values_resolve():
    hp = Hyperparameters.from_dict({"rul_cap": "auto", "inner_cap": "AUTO", "feature_set": "auto"})
    assert hp == Hyperparameters() and not hp.resolved
    concrete = Hyperparameters.from_dict({"feature_set": "rich", "rul_cap": "150", "inner_cap": "125"})
    assert concrete.resolved and (concrete.rul_cap, concrete.inner_cap) == (150.0, 125.0)
    assert not Hyperparameters(feature_set="rich", rul_cap=125.0).resolved  # the inner cap is still auto


def test_an_inner_cap_above_the_cap_is_refused():
    with pytest.raises(ConfigurationError, match=r"inner_cap=160\.0 must not exceed rul_cap=150\.0"):
        Hyperparameters.from_dict({"rul_cap": "150", "inner_cap": "160"})
    with pytest.raises(ConfigurationError, match=r"hyperparameter inner_cap=40\.0 is outside"):
        Hyperparameters.from_dict({"inner_cap": "40"})

"""The boundary rule branch by branch, without a Trainer: the exact ``(ended, reason)`` of every case."""

from __future__ import annotations

import math
import pickle

import pytest

from lit_early_phase import EnlightenmentCallback
from lit_early_phase.callbacks import Duration
from lit_early_phase.callbacks.boundary import COMPARATORS, DEFAULT_MAX_DURATION, BoundaryRule
from lit_early_phase.keys import RUNNING_ACC as ACC


def d(spec: str | float) -> Duration:
    return Duration.parse(spec, name="test")


CASES = [
    # (id, rule arguments, decide arguments, (ended, reason))
    ("max mode reaches at equality", {}, {"value": 0.5}, (True, f"{ACC} = 0.5000 >= threshold 0.5")),
    ("max mode below", {}, {"value": 0.4999}, (False, "")),
    ("min mode reaches", {"threshold": 0.3, "mode": "min", "monitor_name": "val/loss"}, {"value": 0.25},
     (True, "val/loss = 0.2500 <= threshold 0.3")),
    ("min mode above", {"threshold": 0.3, "mode": "min", "monitor_name": "val/loss"}, {"value": 0.35}, (False, "")),
    ("no check now", {}, {"value": None}, (False, "")),
    ("min guard holds it", {"min_duration": d("75st")}, {"value": 0.9, "step": 70}, (False, "")),
    ("min guard passed", {"min_duration": d("75st")}, {"value": 0.9, "step": 75},
     (True, f"{ACC} = 0.9000 >= threshold 0.5")),
    ("min guard in epochs holds it", {"min_duration": d("1ep")}, {"value": 0.9, "step": 500, "epochs_done": 0},
     (False, "")),
    ("max guard ends it", {"max_duration": d("20st")}, {"value": None, "step": 20, "last_value": 0.31},
     (True, f"max_duration guard 20st reached before {ACC} got to 0.5 (last 0.3100)")),
    ("max guard, never checked", {"max_duration": d("20st")}, {"value": None, "step": 20},
     (True, f"max_duration guard 20st reached before {ACC} got to 0.5 (never checked)")),
    ("max guard before the monitor", {"max_duration": d("20st")}, {"value": 0.9, "step": 20, "last_value": 0.9},
     (True, f"max_duration guard 20st reached before {ACC} got to 0.5 (last 0.9000)")),
    ("max guard as a share", {"max_duration": d("0.05dur")}, {"value": None, "step": 10, "total_steps": 200},
     (True, f"max_duration guard 0.05dur reached before {ACC} got to 0.5 (never checked)")),
    ("max guard not yet", {"max_duration": d("0.05dur")}, {"value": 0.1, "step": 9, "total_steps": 200}, (False, "")),
    ("duration only: the monitor is ignored", {"duration": d("30st")}, {"value": 0.99, "step": 29}, (False, "")),
    ("duration only: reached", {"duration": d("30st")}, {"value": None, "step": 30},
     (True, "fixed duration 30st reached")),
    ("duration before the guard", {"duration": d("30st"), "max_duration": d("20st")}, {"value": None, "step": 20},
     (False, "")),
    ("duration in epochs", {"duration": d("1ep")}, {"value": None, "step": 100, "epochs_done": 1},
     (True, "fixed duration 1ep reached")),
    ("chance-adjusted reaches", {"chance": 0.25}, {"value": 0.625},
     (True, f"chance-adjusted {ACC} = 0.5000 >= threshold 0.5")),
    ("chance-adjusted below", {"chance": 0.25}, {"value": 0.62}, (False, "")),
    ("chance-adjusted guard shows the adjusted value", {"chance": 0.25, "max_duration": d("20st")},
     {"value": None, "step": 20, "last_value": 0.4},
     (True, f"max_duration guard 20st reached before {ACC} got to 0.5 (last 0.2000)")),
    ("NaN never reaches (max)", {}, {"value": math.nan}, (False, "")),
    ("NaN never reaches (min)", {"mode": "min"}, {"value": math.nan}, (False, "")),
    ("resumed past the guard: >=", {"max_duration": d("20st")}, {"value": None, "step": 37, "last_value": 0.2},
     (True, f"max_duration guard 20st reached before {ACC} got to 0.5 (last 0.2000)")),
    ("resumed past the duration: >=", {"duration": d("30st")}, {"value": None, "step": 45},
     (True, "fixed duration 30st reached")),
    ("resumed past a duration in epochs: >=", {"duration": d("1ep")}, {"value": None, "step": 450, "epochs_done": 3},
     (True, "fixed duration 1ep reached")),
]  # fmt: skip


@pytest.mark.parametrize(("rule_args", "at", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_rule_branch_by_branch(rule_args, at, expected):
    rule = BoundaryRule(**({"threshold": 0.5} | rule_args))
    decision = rule.decide(**({"step": 10, "epochs_done": 0, "total_steps": 1000.0} | at))
    assert (decision.ended, decision.reason) == expected


def test_the_causes():
    rule = BoundaryRule(threshold=0.5, max_duration=d("20st"))
    assert rule.decide(value=0.6, step=10, epochs_done=0).cause == "monitor"
    assert rule.decide(value=None, step=20, epochs_done=0).cause == "max_duration"
    assert BoundaryRule(threshold=0.5, duration=d("5st")).decide(value=None, step=5, epochs_done=0).cause == "duration"
    assert rule.decide(value=0.1, step=10, epochs_done=0).cause is None


def test_one_comparator_per_mode():
    assert set(COMPARATORS) == {"max", "min"}
    assert BoundaryRule(threshold=0.5).reached(0.5) and not BoundaryRule(threshold=0.5).reached(0.49)
    assert BoundaryRule(threshold=0.5, mode="min").reached(0.5) and not BoundaryRule(threshold=0.5, mode="min").reached(
        0.51
    )
    with pytest.raises(ValueError, match="`mode` must be one of"):
        BoundaryRule(threshold=0.5, mode="mean")  # type: ignore[arg-type]


def test_a_share_of_a_run_of_unknown_length_is_refused():
    rule = BoundaryRule(threshold=0.5, duration=d("0.1dur"))
    with pytest.raises(ValueError, match="is a share of the run, but the run has no known length"):
        rule.decide(value=None, step=10, epochs_done=0, total_steps=math.inf)
    with pytest.raises(ValueError, match="no known length"):
        rule.for_run(math.inf)


def test_the_default_guard_is_off_on_a_run_of_unknown_length_a_user_guard_is_refused():
    default = BoundaryRule(threshold=0.5, max_duration=d("0.2dur"), default_guard=True)
    assert default.for_run(1000.0) == (default, False)
    open_ended, dropped = default.for_run(math.inf)
    assert dropped and open_ended.max_duration is None
    assert open_ended.decide(value=0.1, step=10**6, epochs_done=99, total_steps=math.inf) == (None, "")
    user = BoundaryRule(threshold=0.5, max_duration=d("0.2dur"))  # the same text, given by the user
    assert user.for_run(1000.0) == (user, False)
    with pytest.raises(ValueError, match=r"`0\.2dur` is a share of the run"):
        user.for_run(math.inf)
    steps = BoundaryRule(threshold=0.5, max_duration=d("20st"))  # a guard in steps needs no length
    assert steps.for_run(math.inf) == (steps, False)


def test_the_callback_recognises_its_default_guard_by_the_sentinel_not_the_text():
    assert EnlightenmentCallback().rule.default_guard
    assert EnlightenmentCallback(max_duration=DEFAULT_MAX_DURATION).rule.default_guard
    assert not EnlightenmentCallback(max_duration="0.2dur").rule.default_guard  # equal text, another object
    assert not EnlightenmentCallback(max_duration=None).rule.default_guard
    assert DEFAULT_MAX_DURATION == "0.2dur"  # what --help and a saved config show
    assert pickle.loads(pickle.dumps(EnlightenmentCallback())).rule.default_guard  # ddp_spawn pickles callbacks


def test_the_callback_hands_its_configuration_to_the_rule():
    cb = EnlightenmentCallback(monitor="val/loss", threshold=0.3, mode="min", min_duration="2st", max_duration="9st")
    rule = cb.rule
    assert (rule.threshold, rule.mode, rule.monitor_name, rule.chance) == (0.3, "min", "val/loss", None)
    assert (rule.min_duration, rule.max_duration, rule.duration) == (d("2st"), d("9st"), None)
    assert cb.rule.decide(value=0.2, step=2, epochs_done=0) == ("monitor", "val/loss = 0.2000 <= threshold 0.3")

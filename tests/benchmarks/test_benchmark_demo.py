"""``benchmarks/demo.py`` reads its figures from the lines the demo prints: check the reading on real lines."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import demo  # the benchmark scripts are files, not a package

PRINTED = """\
Epoch 3: 100%|##########| 430/430 [00:30<00:00, 14.1it/s, v_num=0, train/loss=0.412, val/acc=0.893]
Enlightenment period ended at step 20 (epoch 0): enlightenment/running_acc = 0.5188 >= threshold 0.5. MixupPause \
switched to the configured settings.
`Trainer.fit` stopped: `max_epochs=4` reached.
Enlightenment period: ended at step 20 (epoch 0); enlightenment/running_acc = 0.5188 >= threshold 0.5. Final: \
train/acc_epoch=0.8236, val/acc=0.8928, val/loss=0.3262
"""


def test_parse_reads_boundary_reason_and_final_metrics():
    found = demo.parse(PRINTED)
    assert found["boundary_step"] == 20 and found["boundary_epoch"] == 0
    assert found["reason"] == "enlightenment/running_acc = 0.5188 >= threshold 0.5"
    assert found["final"] == {"train/acc_epoch": 0.8236, "val/acc": 0.8928, "val/loss": 0.3262}


def test_parse_of_a_run_whose_period_never_ended():
    found = demo.parse("Enlightenment period: still running at the end of fit (step 30). Final: val/acc=0.5000\n")
    assert found["boundary_step"] is None and found["final"] == {"val/acc": 0.5}

"""`lit-early-phase dashboard`: the W&B workspace names every key the callback writes and no key nobody writes."""

from __future__ import annotations

import json

import lightning as L
import pytest
from helpers import read_metrics, trainer_kwargs
from lightning.pytorch.loggers import CSVLogger

from lit_early_phase import EnlightenmentCallback, EnlightenmentDiagnostics, ImageClassifier, ObjectDetector
from lit_early_phase import keys as K
from lit_early_phase.__main__ import main as cli_main
from lit_early_phase.datamodules import MNIST5kDataModule, TreeCrownDataModule
from lit_early_phase.keys import APPLIED_KEYS, FIGURE_KEY, LOGGED_KEYS, MONITOR_KEY, SUMMARY_KEYS
from lit_early_phase.reporting import dashboard

pytest.importorskip("wandb_workspaces")


def _logged_keys(tmp_path, model, dm, **kw) -> set[str]:
    args = trainer_kwargs(tmp_path, max_steps=2, log_every_n_steps=1, limit_val_batches=1, val_check_interval=2)
    args.update(kw, logger=CSVLogger(tmp_path))
    diagnostics = EnlightenmentDiagnostics(every_n_steps=1, probe_size=2)
    L.Trainer(callbacks=[EnlightenmentCallback(duration="1st"), diagnostics], **args).fit(model, dm)
    return {k for row in read_metrics(tmp_path) for k, v in row.items() if v not in ("", None)}


def test_the_panels_name_only_keys_that_are_written(tmp_path):
    ws = dashboard.build_workspace("team", "project")
    keys = dashboard.panel_keys(ws)
    # every key the callback writes per step has a panel
    assert {*APPLIED_KEYS, MONITOR_KEY} <= keys and FIGURE_KEY in keys
    assert set(K.DIAGNOSTICS_LOGGED_KEYS) <= keys
    # ... and nothing else but the summary keys and what the shipped modules log in real runs
    classifier = _logged_keys(
        tmp_path / "cls",
        ImageClassifier("test_resnet", num_classes=10, in_chans=1, mixup_alpha=0.4),
        MNIST5kDataModule(batch_size=8, train_subset=32, val_size=8),
    )
    detector = _logged_keys(
        tmp_path / "det",
        ObjectDetector(min_size=64, max_size=64, mixup_alpha=0.2),
        TreeCrownDataModule(batch_size=2, augment=False),
        limit_train_batches=2,
    )
    written = set(LOGGED_KEYS) | set(SUMMARY_KEYS) | {FIGURE_KEY} | classifier | detector
    assert keys - written == set()
    assert {"val/acc", "train/loss"} <= classifier and {"val/map_50", "train/fg_acc"} <= detector
    assert set(K.DIAGNOSTICS_CHECK_KEYS) - {K.ATD} <= classifier  # one check per step; ATD from the second on
    assert K.ATD in classifier


def test_print_writes_the_workspace_json_offline(capsys, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    with pytest.raises(SystemExit) as exit_:
        cli_main(["dashboard", "--entity", "team", "--project", "runs", "--print"])
    assert exit_.value.code == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["entity"] == "team" and spec["project"] == "runs" and spec["displayName"] == "Enlightenment period"
    text = json.dumps(spec)
    for key in (*APPLIED_KEYS, MONITOR_KEY, FIGURE_KEY, "enlightenment/boundary_step"):
        assert key in text, key
    sections = spec["spec"]["section"]["panelBankConfig"]["sections"]
    assert [s["name"] for s in sections] == [s.name for s in dashboard.build_workspace("t", "p").sections]


def test_saving_without_network_or_login_says_to_use_print(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path))  # no stored login
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.raises(SystemExit) as exit_:
        dashboard.main(["--entity", "team", "--project", "runs"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "could not save the workspace to W&B" in err and "--print" in err

import os
import warnings

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")
warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")


@pytest.fixture(autouse=True)
def _seed():
    import lightning as L

    L.seed_everything(0, verbose=False)

import os
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("WANDB_MODE", "disabled")
warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")


@pytest.fixture(autouse=True)
def _seed():
    import lightning as L

    L.seed_everything(0, verbose=False)

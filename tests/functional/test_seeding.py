"""The one keyed seed: the data's augmentation and the mixin's draws hash their keys the same way, in one place."""

from pathlib import Path

import pytest
import torch

from lit_early_phase.datamodules import ImageTensorDataset, SampleKey
from lit_early_phase.functional import keyed_device_rng, keyed_generator, keyed_global_rng, keyed_seed

SRC = Path(__file__).resolve().parents[2] / "src" / "lit_early_phase"


def test_keyed_seed_is_fixed_by_the_key_and_spread_over_neighbours():
    assert keyed_seed(0, 1, 2) == keyed_seed(0, 1, 2)
    seeds = {keyed_seed(0, 0, i) for i in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**63 for s in seeds)
    assert keyed_seed(0, 1, 2) != keyed_seed(0, 2, 1) != keyed_seed(1, 0, 2)
    assert keyed_seed(-1) == keyed_seed(2**64 - 1)  # integers are taken modulo 2**64
    with pytest.raises(ValueError, match="at least one integer"):
        keyed_seed()


def test_keyed_global_rng_puts_the_global_state_back():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with keyed_global_rng(4, 5, 6):
        inside = torch.rand(2)
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(inside, torch.rand(2, generator=keyed_generator(4, 5, 6)))


def test_keyed_device_rng_keys_dropout_and_puts_the_global_state_back():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with keyed_device_rng("cpu", 4, 5, 6):
        mask = torch.nn.functional.dropout(torch.ones(64), 0.5)
    assert torch.equal(torch.rand(3), expected)  # the global stream goes on as if the block had not run
    with keyed_global_rng(4, 5, 6):  # on a CPU: the same seed as keyed_global_rng
        assert torch.equal(mask, torch.nn.functional.dropout(torch.ones(64), 0.5))
    assert 10 < int((mask == 0).sum()) < 54
    with keyed_device_rng(torch.device("cpu"), 4, 5, 7):
        other = torch.nn.functional.dropout(torch.ones(64), 0.5)
    assert not torch.equal(mask, other)


def test_a_sample_s_augmentation_draws_from_the_keyed_seed():
    def noise(image):
        return image + torch.randint(0, 100, image.shape, dtype=torch.uint8)

    data = ImageTensorDataset(torch.zeros(1, 4, 4, dtype=torch.uint8), torch.zeros(1), mean=0.0, std=1.0, augment=noise)
    key = SampleKey(index=0, epoch=2, seed=7)
    with keyed_global_rng(7, 2, 0):  # (seed, epoch, index)
        expected = torch.randint(0, 100, (1, 4, 4), dtype=torch.uint8).float().div(255.0)
    assert torch.equal(data[key][0], expected)


def test_no_other_hashing_scheme_under_src():
    hashing = ("SeedSequence", "blake2b", "hashlib")
    found = sorted(
        str(p.relative_to(SRC))
        for p in SRC.rglob("*.py")
        if any(word in p.read_text() for word in hashing) and p.name != "seeding.py"
    )
    assert found == []

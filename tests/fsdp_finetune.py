"""CausalLMFineTune under FSDPStrategy on 2 CPU processes (gloo), run as a script by tests/integration/test_fsdp.py.

Lightning's subprocess launcher starts rank 1 by running this same script again. High-Loss Removal is active with
the metric boundary (running response-token accuracy, pooled over the ranks, which see different data), the run
is checkpointed, resumed from that checkpoint in the same processes, and each rank writes what it saw to
``<out>/rank<r>.json``.

Usage: ``python tests/fsdp_finetune.py OUT_DIR TOKENIZER_DIR``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.strategies import FSDPStrategy

RECORDS = [
    {"prompt": f"What is {a} plus {b}?", "response": f"{a} plus {b} is {a + b}."} for a in range(6) for b in range(4)
]


THRESHOLD, WINDOW = 0.02, 2


class CPUFSDPStrategy(FSDPStrategy):
    """Lightning 2.6.6's FSDPStrategy with its three CPU gaps filled (all fixed or open upstream):

    * the Trainer refuses ``FSDPStrategy`` with ``accelerator="cpu"`` unless it is a subclass (Lightning #19781,
      #21812): this class is one;
    * it hands torch ``device_id=None`` on CPU, and torch >= 2.5 then raises "FSDP needs a non-CPU accelerator
      device" (Lightning #21778, fixed by #21774 after 2.6.6): the model is wrapped here with
      ``device_id=torch.device("cpu")`` and Lightning sees it already wrapped;
    * full state dicts are gathered with ``offload_to_cpu=True``, which on CPU aliases and frees the unsharded
      storage (Lightning #21804): the gathering here uses ``offload_to_cpu=False`` on CPU.
    """

    def _setup_model(self, model: torch.nn.Module) -> torch.nn.Module:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        if self.root_device.type == "cpu" and not any(isinstance(m, FSDP) for m in model.modules()):
            model = FSDP(
                module=model,
                cpu_offload=self.cpu_offload,
                mixed_precision=self.mixed_precision_config,
                sharding_strategy=self.sharding_strategy,
                device_id=self.root_device,
                **self.kwargs,
            )
        return super()._setup_model(model)

    def _full_context(self) -> Any:
        from torch.distributed.fsdp import FullOptimStateDictConfig, FullStateDictConfig, StateDictType
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        return FSDP.state_dict_type(
            module=self.model,
            state_dict_type=StateDictType.FULL_STATE_DICT,
            state_dict_config=FullStateDictConfig(offload_to_cpu=False, rank0_only=True),
            optim_state_dict_config=FullOptimStateDictConfig(offload_to_cpu=False, rank0_only=True),
        )

    def lightning_module_state_dict(self) -> dict[str, Any]:
        with self._full_context():
            return self.model.state_dict()

    def optimizer_state(self, optimizer: Any) -> dict[str, Any]:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp import OptimStateKeyType

        optimizer = getattr(optimizer, "_optimizer", optimizer)
        with self._full_context():
            state = FSDP.optim_state_dict(self.model, optimizer)
            if self.global_rank == 0:
                state = FSDP.rekey_optim_state_dict(state, OptimStateKeyType.PARAM_ID, self.model)
            return state


class Record(L.Callback):
    """Per step: this rank's response-token accuracy counts and the knobs in force; the weights at train start."""

    def __init__(self) -> None:
        self.steps: list[dict] = []
        self.start_state: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer, pl_module):
        full = trainer.strategy.lightning_module_state_dict()  # a collective: every rank calls it, rank 0 gets it
        self.start_state = {k: v.clone() for k, v in full.items() if "lora_" in k}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        rec = pl_module.enlightenment_record
        self.steps.append(
            {
                "step": trainer.global_step,
                "correct": int(rec.correct),
                "total": int(rec.total),
                "removed": float(rec.removed_fraction),
            }
        )


def main(out: Path, tokenizer_dir: str) -> None:
    from llm_helpers import tiny_llama
    from transformers import AutoTokenizer

    from lit_early_phase import EnlightenmentCallback, HighLossRemoval
    from lit_early_phase.datamodules import InstructionDataModule
    from lit_early_phase.modules.causal_lm import CausalLMFineTune

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)

    def run(max_steps: int, ckpt_path: Path | None = None):
        lm = CausalLMFineTune(
            tiny_llama(), tokenizer=tokenizer, lora_r=4, lora_target_modules="all-linear", lr=3e-2, warmup=0,
            save_dir=str(out / "adapter") if ckpt_path is None else None,
        )  # fmt: skip
        dm = InstructionDataModule(RECORDS, tokenizer=tokenizer, batch_size=4, max_length=48, val_fraction=0.0)
        cb = EnlightenmentCallback(
            strategy=HighLossRemoval(count=1),
            threshold=THRESHOLD,
            window=WINDOW,
            check_every_n_steps=1,
            max_duration=None,
        )
        record = Record()
        trainer = L.Trainer(
            accelerator="cpu",
            devices=2,
            # LoRA leaves most parameters frozen: FSDP then needs the original parameters, not one flat one
            strategy=CPUFSDPStrategy(use_orig_params=True, state_dict_type="full"),
            max_steps=max_steps,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[cb, record],
        )
        trainer.fit(lm, dm, ckpt_path=ckpt_path)
        return trainer, cb, record

    L.seed_everything(0, verbose=False)
    trainer, cb, record = run(max_steps=8)
    ckpt = out / "fsdp.ckpt"
    trainer.save_checkpoint(ckpt)  # every rank takes part; rank 0 writes one full file
    first = {"boundary_step": cb.boundary_step, "reason": cb.reason, "value": cb.last_value, "steps": record.steps}
    final_state = trainer.strategy.lightning_module_state_dict()
    final_lora = {k: v.clone() for k, v in final_state.items() if "lora_" in k}

    trainer, cb, record = run(max_steps=10, ckpt_path=ckpt)
    result = {
        "rank": trainer.global_rank,
        "world_size": trainer.world_size,
        "first": first,
        "resumed": {
            "start_step": record.steps[0]["step"] - 1 if record.steps else None,
            "global_step": trainer.global_step,
            "boundary_step": cb.boundary_step,
            "in_period": cb.in_period,
            "steps": record.steps,
        },
    }
    if trainer.global_rank == 0:
        saved = torch.load(ckpt, weights_only=True)["state_dict"]
        result["checkpoint_keys"] = sorted(saved)
        result["checkpoint_bytes"] = ckpt.stat().st_size
        result["checkpoint_equals_trained"] = saved.keys() == final_lora.keys() and all(
            torch.equal(saved[k], v) for k, v in final_lora.items()
        )
        result["restored_equals_checkpoint"] = saved.keys() == record.start_state.keys() and all(
            torch.equal(saved[k], v) for k, v in record.start_state.items()
        )
        result["trained_nonzero_lora_B"] = any(v.abs().sum() > 0 for k, v in saved.items() if "lora_B" in k)
        from lit_early_phase.hf import load_finetuned

        adapter, _ = load_finetuned(out / "adapter", base_model=tiny_llama())
        adapter_state = {f"model.{k}": v for k, v in adapter.state_dict().items() if "lora_" in k}
        result["adapter_equals_trained"] = adapter_state.keys() == final_lora.keys() and all(
            torch.equal(adapter_state[k], v) for k, v in final_lora.items()
        )
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])

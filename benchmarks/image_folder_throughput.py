"""Images/s of ImageFolderDataModule's training loader vs a plain torchvision ImageFolder, same timm transform.

Both sides read the same image folder with the same timm training pipeline (``ImageTransforms.train()``: random-
resized crop, flip, RandAugment, random erasing, normalisation), the same batch size and the same number of
(persistent) workers, shuffled. The plain side is ``torchvision.datasets.ImageFolder(root, transform=...)`` in a
``torch.utils.data.DataLoader``; the DataModule side is ``ImageFolderDataModule.train_dataloader()`` (torchdata's
``StatefulDataLoader`` over the resumable sampler, ``load_rgb``'s full decode and colour conversion, every draw
keyed by (seed, epoch, index)). One repeat = one full epoch of each side, timed from the first ``next`` to the last
batch; repeats are interleaved (plain, DataModule, plain, ...) after one warm-up epoch of each (workers started,
files in the page cache). The ratio is DataModule/plain images/s per repeat pair: mean ± std, 95 % t-interval;
the goal is >= 0.95. Run it on a quiet machine at a clean commit.

The folder: ``--data-dir`` (any image folder), else one built in a temporary folder from foolbox's 20 real ImageNet
JPEGs (``pip install --no-deps foolbox==3.3.4``), each copied ``--copies`` times into 4 class folders.

    python benchmarks/image_folder_throughput.py           # full: 7 repeats, 4 workers -> results/image_folder_*
    python benchmarks/image_folder_throughput.py --quick   # 2 repeats, no workers, 64 px (smoke test)
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # the scripts run as files, not as a package

# The repo paths whose change would change what this script measures (tests/benchmarks/test_stale_results.py).
# _common.py is left out: its statistics and reports change no measurement (test_benchmark_provenance regenerates
# the tables); its quiet_trainer sets the step budget and turns output off. List it if it starts shaping training.
MEASURES = (
    "src/lit_early_phase/datamodules/vision/folder.py",
    "src/lit_early_phase/datamodules/vision/transforms.py",
    "src/lit_early_phase/datamodules/loaders.py",
    "benchmarks/image_folder_throughput.py",
)

STEM = C.ROOT / "benchmarks" / "results" / "image_folder_throughput"
GOAL = 0.95


def build_folder(root: Path, *, copies: int, classes: int = 4) -> Path:
    """foolbox's ImageNet JPEGs, each copied ``copies`` times, spread over ``classes`` class folders."""
    spec = importlib.util.find_spec("foolbox")
    if spec is None:
        raise SystemExit(
            "No image folder: pass --data-dir, or install foolbox for its 20 ImageNet JPEGs "
            "(`pip install --no-deps foolbox==3.3.4`)."
        )
    jpegs = sorted((Path(spec.submodule_search_locations[0]) / "data").glob("imagenet_*.jpg"))
    for i, path in enumerate(jpegs):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        for c in range(copies):
            shutil.copy(path, folder / f"{path.stem}_{c:03d}.jpg")
    return root


def _epoch(loader: Any) -> tuple[int, float]:
    """Images and seconds of one full pass over ``loader``."""
    images = 0
    t0 = time.perf_counter()
    for x, _ in loader:
        images += x.shape[0]
    return images, time.perf_counter() - t0


def measure(
    data_dir: Path, *, repeats: int, workers: int, batch_size: int, transform_args: dict[str, Any]
) -> dict[str, Any]:
    """Interleaved epochs of the plain ``ImageFolder`` loader and the DataModule's, after one warm-up of each."""
    import torch
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    from lit_early_phase.datamodules import ImageFolderDataModule

    dm = ImageFolderDataModule(
        data_dir,
        val_fraction=0.0,
        batch_size=batch_size,
        num_workers=workers,
        persistent_workers=workers > 0,
        verify_images=0,
        seed=0,
        **transform_args,
    )
    dm.setup("fit")
    ours = dm.train_dataloader()
    plain_set = ImageFolder(str(data_dir), transform=dm.transforms.train())
    if len(plain_set) != len(dm.train_set):
        raise SystemExit(f"The two sides list different files: {len(plain_set)} vs {len(dm.train_set)} in {data_dir}.")
    plain = DataLoader(
        plain_set,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(0),
    )
    epoch = 0

    def ours_epoch() -> tuple[int, float]:
        nonlocal epoch
        ours.sampler.set_epoch(epoch)  # what Lightning does at each epoch
        epoch += 1
        return _epoch(ours)

    _epoch(plain), ours_epoch()  # warm-up: workers started, files cached
    plain_ips, ours_ips = [], []
    for _ in range(repeats):
        n, s = _epoch(plain)
        plain_ips.append(n / s)
        n, s = ours_epoch()
        ours_ips.append(n / s)
    ratio = C.ratio_stats(ours_ips, plain_ips)
    return {
        "images": len(dm.train_set),
        "classes": dm.num_classes,
        "plain_images_per_s": plain_ips,
        "datamodule_images_per_s": ours_ips,
        "plain": C.mean_std(plain_ips),
        "datamodule": C.mean_std(ours_ips),
        "ratio": ratio,
        "goal": GOAL,
        "goal_met": bool(ratio["mean"] >= GOAL),
    }


def markdown(result: dict[str, Any]) -> str:
    """The two loaders' images/s (mean ± std) and the ratio (mean ± std, 95 % interval) against the goal."""
    r, cfg = result["measurement"], result["header"]["config"]
    lines = ["# ImageFolderDataModule's training loader vs torchvision's ImageFolder", ""]
    lines += [*C.header_markdown(result["header"]), ""]
    lines += [
        f"{r['images']} images in {r['classes']} classes, {cfg['workers']} workers, batch {cfg['batch_size']}, "
        f"transform {cfg['transform']}; {cfg['repeats']} interleaved epoch pairs after one warm-up epoch each.",
        "",
        "| loader | images/s |",
        "|---|---|",
        f"| torchvision ImageFolder + DataLoader | {r['plain'][0]:.1f} ± {r['plain'][1]:.1f} |",
        f"| ImageFolderDataModule | {r['datamodule'][0]:.1f} ± {r['datamodule'][1]:.1f} |",
        "",
        f"Ratio (DataModule / plain, per pair): {r['ratio']['mean']:.3f} ± {r['ratio']['std']:.3f}, 95 % interval "
        f"[{r['ratio']['ci95'][0]:.3f}, {r['ratio']['ci95'][1]:.3f}]; goal >= {r['goal']}: "
        f"{'met' if r['goal_met'] else 'not met'} (by the mean).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = C.arg_parser(__doc__, quick="2 repeats, no workers, 64 px, 40 files (smoke test)", out="output stem")
    parser.add_argument("--data-dir", type=Path, default=None, help="an image folder (default: built from foolbox)")
    parser.add_argument("--copies", type=int, default=50, help="copies of each foolbox JPEG (default folder)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--auto-augment", default="rand-m9-mstd0.5")
    parser.add_argument("--re-prob", type=float, default=0.25)
    args = parser.parse_args()
    stem = args.out or (Path(tempfile.mkdtemp()) / "image_folder_throughput" if args.quick else STEM)
    if args.report_only:
        C.report_only(stem, markdown)
        return
    mode = "quick" if args.quick else "full"
    git = C.require_committed_code(mode, allow_dirty=args.allow_dirty)
    C.quiet()
    if args.quick:
        repeats, workers, batch_size, image_size, copies = 2, 0, 8, 64, 2
    else:
        repeats, workers, batch_size, image_size, copies = (
            args.repeats, args.workers, args.batch_size, args.image_size, args.copies,
        )  # fmt: skip
    transform = {"image_size": image_size, "auto_augment": args.auto_augment, "re_prob": args.re_prob}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or build_folder(Path(tmp) / "images", copies=copies)
        config = {
            "data_dir": str(args.data_dir) if args.data_dir else f"foolbox's 20 ImageNet JPEGs x {copies}",
            "repeats": repeats,
            "workers": workers,
            "batch_size": batch_size,
            "transform": transform,
        }
        header = C.header("benchmarks/image_folder_throughput.py", mode=mode, seeds=[0], config=config, git=git)
        measurement = measure(
            data_dir, repeats=repeats, workers=workers, batch_size=batch_size, transform_args=transform
        )
    result = {"header": header, "measurement": measurement}
    C.write_results(stem, result, markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()

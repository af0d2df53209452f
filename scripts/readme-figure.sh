#!/usr/bin/env bash
# The boundary figure in the README (docs/images/enlightenment_period_demo.png): the demo recipe for one epoch,
# every second step written, and the figure the callback saved at the end of fit copied here.
#   bash scripts/readme-figure.sh        (about 3 minutes on 2 CPU cores)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
.venv/bin/lit-early-phase fit --config demo_fashion_mnist --trainer.max_epochs 1 \
  --trainer.log_every_n_steps 2 --trainer.logger.init_args.save_dir "$out" --trainer.enable_progress_bar false
mkdir -p docs/images
cp "$(find "$out" -name enlightenment_period.png | head -1)" docs/images/enlightenment_period_demo.png
echo "wrote docs/images/enlightenment_period_demo.png (commit $(git rev-parse --short HEAD))"

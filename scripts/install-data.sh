#!/usr/bin/env bash
# Install the Debian data packages the demo and tests read offline (currently: dataset-fashion-mnist).
# Idempotent; needs root (or sudo) for apt-get. Prints what to run when it cannot install.
set -euo pipefail
need=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need+=(dataset-fashion-mnist)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo"
else
  echo "Missing Debian data packages: ${need[*]}" >&2
  echo "Run as root:  apt-get update && apt-get install -y ${need[*]}" >&2
  echo "(or point FASHION_MNIST_DIR at a folder with the four Fashion-MNIST IDX files)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}"

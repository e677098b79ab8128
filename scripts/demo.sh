#!/usr/bin/env bash
# The main job: set up and build decayc, then compile and run every bundled example spec on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build
build/bin/decay-demo examples/specs/*.mlir

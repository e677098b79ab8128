#!/usr/bin/env bash
# Reruns the benchmarks recorded in bench/RESULTS.md (build first: scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
DECAYC=build/bin/decayc
SHAPE=B=4,T=4096,H=8,K=128,V=128
for spec in mamba2 gla; do
  "$DECAYC" bench "examples/specs/$spec.mlir" --entry forward --shape "$SHAPE" --device cpu --runs 9 --json
  "$DECAYC" bench "examples/specs/$spec.mlir" --entry both --shape "$SHAPE" --device cpu --runs 3 --json
done

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
# Decoding steps (issue 6): mamba2 at B = 64 and B = 1, the attention state
# cached in f32 and in bf16 (decayc compile --state-dtype bf16), each with a
# triad measured in the same run.
STEP_DIR=$(mktemp -d)
trap 'rm -rf "$STEP_DIR"' EXIT
"$DECAYC" compile examples/specs/mamba2.mlir -o "$STEP_DIR/f32.so"
"$DECAYC" compile examples/specs/mamba2.mlir -o "$STEP_DIR/bf16.so" --state-dtype bf16
for batch in 64 1; do
  for state in f32 bf16; do
    "$DECAYC" bench "$STEP_DIR/$state.so" --entry step --shape "B=$batch,H=16,K=128,V=128" --runs 11 --json
  done
done

// One warp's m16n8k8 tf32 tensor-core products (nvgpu.mma.sync), with fp32 accuracy by the 3xTF32 split.
#ifndef DECAY_CONVERSION_DECAYTOGPU_WARPMMA_H
#define DECAY_CONVERSION_DECAYTOGPU_WARPMMA_H

#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace decay {

/// An operand fragment split as x = hi + lo, both exact in tf32 (10-bit
/// mantissa): the tensor cores see hi and lo, and hi*hi + hi*lo + lo*hi
/// reproduces an fp32 product to about 2^-21 (3xTF32).
struct Fragment {
  mlir::Value hi, lo;
};

/// The lane-level view of `mma.sync.m16n8k8.row.col.f32.tf32.tf32.f32`
/// (PTX ISA, "Matrix Fragments for mma.m16n8k8"), with g = lane / 4 and
/// q = lane % 4:
///   A (16 x 8):  a0 (g, q), a1 (g + 8, q), a2 (g, q + 4), a3 (g + 8, q + 4)
///   B (8 x 8):   b0 (q, g), b1 (q + 4, g)
///   C (16 x 8):  c[0][0] (g, 2q), c[0][1] (g, 2q + 1), c[1][0] (g + 8, 2q), c[1][1] (g + 8, 2q + 1)
class WarpMma {
public:
  WarpMma(mlir::ImplicitLocOpBuilder &b, mlir::Value lane);

  /// The A fragment of a 16 x 8 tile whose element (r, k) is `a(r, k)`.
  Fragment loadA(llvm::function_ref<mlir::Value(mlir::Value r, mlir::Value k)> a);
  /// The B fragment of an 8 x 8 tile whose element (k, n) is `bElement(k, n)`.
  Fragment loadB(llvm::function_ref<mlir::Value(mlir::Value k, mlir::Value n)> bElement);
  /// acc + A B in fp32 accuracy (three tf32 mma.sync).
  mlir::Value multiplyAccumulate(mlir::Value acc, const Fragment &a, const Fragment &bFragment);
  /// A zero accumulator (vector<2x2xf32>).
  mlir::Value zero();
  /// Row and column of accumulator element `i` (0..3: [i / 2][i % 2]) in its 16 x 8 tile.
  mlir::Value row(int i);
  mlir::Value column(int i);
  mlir::Value element(mlir::Value acc, int i);
  mlir::Value withElement(mlir::Value acc, int i, mlir::Value value);

private:
  Fragment split(llvm::ArrayRef<mlir::Value> values, int64_t rows);
  mlir::Value index(int64_t value);
  mlir::Value plus(mlir::Value x, int64_t y);

  mlir::ImplicitLocOpBuilder &b;
  mlir::Value group, quad; ///< lane / 4 and lane % 4
};

} // namespace decay

#endif

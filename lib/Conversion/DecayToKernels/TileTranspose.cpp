// Transposes f32 matrices between memref views in square register blocks (one vector register per row), for the chunk kernels.
#include "TileTranspose.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/TypeUtilities.h"

using namespace mlir;
using namespace decay;

namespace {
/// Emits body(i) for i in [from, to) by `step`.
void forRange(ImplicitLocOpBuilder &b, Value from, Value to, int64_t step, function_ref<void(Value)> body) {
  auto loop = scf::ForOp::create(b, from, to, arith::ConstantIndexOp::create(b, step));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(loop.getBody());
  body(loop.getInductionVar());
}

/// `value` (scalar or vector, as loaded) widened to f32 when stored narrower (bf16).
Value widened(ImplicitLocOpBuilder &b, Value value) {
  Type f32 = b.getF32Type();
  if (getElementTypeOrSelf(value.getType()) == f32)
    return value;
  auto vector = dyn_cast<VectorType>(value.getType());
  return arith::ExtFOp::create(b, vector ? Type(vector.clone(f32)) : f32, value);
}
/// f32 `value` rounded to nearest even to `memref`'s element type when narrower (bf16).
Value narrowed(ImplicitLocOpBuilder &b, Value value, Value memref) {
  Type stored = cast<MemRefType>(memref.getType()).getElementType();
  if (stored == b.getF32Type())
    return value;
  auto vector = dyn_cast<VectorType>(value.getType());
  return arith::TruncFOp::create(b, vector ? Type(vector.clone(stored)) : stored, value);
}

/// One `block` x `block` square: source rows [i, i + block), columns [j, j + block).
void transposeBlock(ImplicitLocOpBuilder &b, int64_t block, const MatrixView &dest,
                    const MatrixView &source, Value i, Value j, bool stream) {
  auto rowType = VectorType::get({block}, b.getF32Type());
  auto blockType = VectorType::get({block, block}, b.getF32Type());
  auto offset = [&](Value base, int64_t r) {
    return arith::AddIOp::create(b, base, arith::ConstantIndexOp::create(b, r)).getResult();
  };
  Value square = arith::ConstantOp::create(b, DenseElementsAttr::get(blockType, 0.0f));
  auto sourceRowType = rowType.clone(cast<MemRefType>(source.memref.getType()).getElementType());
  for (int64_t r = 0; r < block; ++r) {
    Value row = widened(b, vector::LoadOp::create(b, sourceRowType, source.memref,
                                                  source.indices(offset(i, r), j)));
    square = vector::InsertOp::create(b, row, square, ArrayRef<int64_t>{r});
  }
  Value transposed = vector::TransposeOp::create(b, square, ArrayRef<int64_t>{1, 0});
  for (int64_t r = 0; r < block; ++r) {
    Value row = narrowed(b, vector::ExtractOp::create(b, transposed, ArrayRef<int64_t>{r}), dest.memref);
    if (stream)
      storeStreaming(b, row, dest.memref, dest.indices(offset(j, r), i));
    else
      vector::StoreOp::create(b, row, dest.memref, dest.indices(offset(j, r), i));
  }
}

/// dest[j, i] = source[i, j] element by element over rows [i0, i1), columns [j0, j1).
void transposeElements(ImplicitLocOpBuilder &b, const MatrixView &dest, const MatrixView &source, Value i0,
                       Value i1, Value j0, Value j1) {
  forRange(b, j0, j1, 1, [&](Value j) {
    forRange(b, i0, i1, 1, [&](Value i) {
      Value element = widened(b, memref::LoadOp::create(b, source.memref, source.indices(i, j)));
      memref::StoreOp::create(b, narrowed(b, element, dest.memref), dest.memref, dest.indices(j, i));
    });
  });
}
} // namespace

void decay::emitTranspose(ImplicitLocOpBuilder &b, const RegisterTiling &tiling, const MatrixView &dest,
                          const MatrixView &source, Value rows, Value cols, Value streaming) {
  int64_t block = tiling.lanes;
  Value zero = arith::ConstantIndexOp::create(b, 0);
  Value fullRows = floorToMultiple(b, rows, block), fullCols = floorToMultiple(b, cols, block);
  auto fullBlocks = [&](bool stream) {
    forRange(b, zero, fullRows, block, [&](Value i) {
      forRange(b, zero, fullCols, block, [&](Value j) { transposeBlock(b, block, dest, source, i, j, stream); });
    });
  };
  if (streaming) {
    auto choice = scf::IfOp::create(b, streaming, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(choice.thenBlock());
    fullBlocks(/*stream=*/true);
    b.setInsertionPointToStart(choice.elseBlock());
    fullBlocks(/*stream=*/false);
  } else {
    fullBlocks(/*stream=*/false);
  }
  transposeElements(b, dest, source, zero, fullRows, fullCols, cols); // columns left over
  transposeElements(b, dest, source, fullRows, rows, zero, cols);     // rows left over
}

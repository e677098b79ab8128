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

/// Lane indices of a two-input shuffle of `lanes`-wide rows a and b (b's
/// lanes numbered from `lanes`), within each 128-bit group g of 4 lanes:
/// x86's unpack patterns.
SmallVector<int64_t> interleaveSingles(int64_t lanes, bool high) {
  SmallVector<int64_t> mask;
  for (int64_t g = 0; g < lanes / 4; ++g)
    for (int64_t k : {0, 1})
      mask.append({4 * g + 2 * high + k, lanes + 4 * g + 2 * high + k});
  return mask; // unpck{l,h}ps: a0 b0 a1 b1 (low), a2 b2 a3 b3 (high)
}
SmallVector<int64_t> interleavePairs(int64_t lanes, bool high) {
  SmallVector<int64_t> mask;
  for (int64_t g = 0; g < lanes / 4; ++g)
    mask.append({4 * g + 2 * high, 4 * g + 2 * high + 1, lanes + 4 * g + 2 * high, lanes + 4 * g + 2 * high + 1});
  return mask; // unpck{l,h}pd: a0 a1 b0 b1 (low), a2 a3 b2 b3 (high)
}
/// The even (or odd) 128-bit groups of a, then those of b (vshuff32x4).
SmallVector<int64_t> alternateGroups(int64_t lanes, bool odd) {
  SmallVector<int64_t> mask;
  for (int64_t source : {int64_t(0), lanes})
    for (int64_t g = odd; g < lanes / 4; g += 2)
      for (int64_t k = 0; k < 4; ++k)
        mask.push_back(source + 4 * g + k);
  return mask;
}

/// The transpose of `rows` (`lanes` rows of `lanes` f32, lanes 8 or 16) by
/// x86's classic shuffle network, 4 shuffles per row at 16 lanes (3 at 8):
/// interleave singles of row pairs, then pairs of those, then swap 128-bit
/// groups between rows 4, then 8, apart. As explicit shuffles of rows (not a
/// vector.transpose of a 2-D vector, which the canonicalizer turns into 256
/// element moves).
SmallVector<Value> transposeRows(ImplicitLocOpBuilder &b, ArrayRef<Value> rows) {
  int64_t lanes = static_cast<int64_t>(rows.size());
  auto shuffle = [&](Value x, Value y, ArrayRef<int64_t> mask) {
    return vector::ShuffleOp::create(b, x, y, mask).getResult();
  };
  SmallVector<Value> singles(lanes), pairs(lanes);
  for (int64_t r = 0; r < lanes; r += 2) {
    singles[r] = shuffle(rows[r], rows[r + 1], interleaveSingles(lanes, false));
    singles[r + 1] = shuffle(rows[r], rows[r + 1], interleaveSingles(lanes, true));
  }
  for (int64_t r = 0; r < lanes; r += 4)
    for (int64_t k : {0, 1}) {
      pairs[r + 2 * k] = shuffle(singles[r + k], singles[r + k + 2], interleavePairs(lanes, false));
      pairs[r + 2 * k + 1] = shuffle(singles[r + k], singles[r + k + 2], interleavePairs(lanes, true));
    }
  SmallVector<Value> columns = pairs;
  for (int64_t distance = 4; distance < lanes; distance *= 2) {
    SmallVector<Value> next(lanes);
    for (int64_t r = 0; r < lanes; ++r)
      if ((r & distance) == 0) {
        next[r] = shuffle(columns[r], columns[r + distance], alternateGroups(lanes, false));
        next[r + distance] = shuffle(columns[r], columns[r + distance], alternateGroups(lanes, true));
      }
    columns = next;
  }
  return columns; // columns[c] = column c of the rows
}

/// One `block` x `block` square: source rows [i, i + block), columns [j, j + block).
void transposeBlock(ImplicitLocOpBuilder &b, int64_t block, const MatrixView &dest,
                    const MatrixView &source, Value i, Value j, bool stream) {
  auto rowType = VectorType::get({block}, b.getF32Type());
  auto offset = [&](Value base, int64_t r) {
    return arith::AddIOp::create(b, base, arith::ConstantIndexOp::create(b, r)).getResult();
  };
  auto sourceRowType = rowType.clone(cast<MemRefType>(source.memref.getType()).getElementType());
  SmallVector<Value> rows;
  for (int64_t r = 0; r < block; ++r)
    rows.push_back(widened(b, vector::LoadOp::create(b, sourceRowType, source.memref,
                                                     source.indices(offset(i, r), j))));
  SmallVector<Value> columns = transposeRows(b, rows);
  for (int64_t r = 0; r < block; ++r) {
    Value row = narrowed(b, columns[r], dest.memref);
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
  emitStreamingChoice(b, streaming, fullBlocks);
  transposeElements(b, dest, source, zero, fullRows, fullCols, cols); // columns left over
  transposeElements(b, dest, source, fullRows, rows, zero, cols);     // rows left over
}

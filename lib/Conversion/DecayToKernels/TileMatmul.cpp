// A register-tiled f32 matrix multiply on memref views (tiles sized to the target's vector registers), for the chunk kernels.
#include "TileMatmul.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "llvm/Support/MathExtras.h"

using namespace mlir;
using namespace decay;

std::optional<RegisterTiling> RegisterTiling::forVectorBits(int64_t vectorBits) {
  if (vectorBits == 512)
    return RegisterTiling{/*lanes=*/16, /*tileRows=*/12, /*tileVectors=*/2};
  if (vectorBits == 256)
    return RegisterTiling{/*lanes=*/8, /*tileRows=*/6, /*tileVectors=*/2};
  return std::nullopt;
}

namespace {
/// Rows of the tiles that take the rows left over by full tiles.
constexpr int64_t kLeftoverRows = 4;

class TileMatmulEmitter {
public:
  TileMatmulEmitter(ImplicitLocOpBuilder &b, const RegisterTiling &tiling, const MatrixView &c,
                    function_ref<Value(Value, Value)> a, const MatrixView &bMatrix, Value k,
                    bool accumulate, Triangle triangle, MatmulFusion fusion)
      : b(b), tiling(tiling), c(c), a(a), bMatrix(bMatrix), k(k), accumulate(accumulate),
        triangle(triangle), fusion(fusion),
        vectorType(VectorType::get({tiling.lanes}, b.getF32Type())) {}

  /// Tiles of `rows` x tileColumns over rows [i0, i1) (a multiple of `rows`
  /// long) and columns [0, nTiles).
  void vectorTiles(Value i0, Value i1, int64_t rows, Value nTiles);
  /// Scalar dot products over rows [i0, i1) and columns [j0, j1).
  void scalarBlock(Value i0, Value i1, Value j0, Value j1);

private:
  Value index(int64_t value) { return arith::ConstantIndexOp::create(b, value); }
  void tile(Value i, Value j, int64_t rows);
  /// The reduction range of rows [i, rowsEnd) and columns from j: [0, k)
  /// cut by the triangle.
  std::pair<Value, Value> reductionRange(Value i, Value rowsEnd, Value j);
  /// The end of the columns rows [i, rowsEnd) need, below `n`.
  Value columnsEnd(Value rowsEnd, Value n);
  /// C's value at (i, j) as loaded (`loaded`), through fusion.onLoad.
  Value initialValue(Value i, Value j, Value loaded) {
    return fusion.onLoad ? fusion.onLoad(i, j, loaded) : loaded;
  }
  /// The value stored at (i, j) for the result `acc`, through fusion.onStore.
  Value storedValue(Value i, Value j, Value acc) { return fusion.onStore ? fusion.onStore(i, j, acc) : acc; }

  ImplicitLocOpBuilder &b;
  const RegisterTiling &tiling;
  const MatrixView &c;
  function_ref<Value(Value, Value)> a;
  const MatrixView &bMatrix;
  Value k;
  bool accumulate;
  Triangle triangle;
  MatmulFusion fusion;
  VectorType vectorType;
};

std::pair<Value, Value> TileMatmulEmitter::reductionRange(Value i, Value rowsEnd, Value j) {
  Value zero = index(0);
  switch (triangle) {
  case Triangle::LowerA:
    return {zero, arith::MinSIOp::create(b, k, rowsEnd)};
  case Triangle::UpperA:
    return {arith::MinSIOp::create(b, k, i), k};
  case Triangle::LowerB:
    return {arith::MinSIOp::create(b, k, j), k};
  case Triangle::None:
  case Triangle::LowerC:
    break;
  }
  return {zero, k};
}

Value TileMatmulEmitter::columnsEnd(Value rowsEnd, Value n) {
  return triangle == Triangle::LowerC ? arith::MinSIOp::create(b, n, rowsEnd).getResult() : n;
}

void TileMatmulEmitter::tile(Value i, Value j, int64_t rows) {
  SmallVector<Value> columns, rowIndices, initial;
  for (int64_t v = 0; v < tiling.tileVectors; ++v)
    columns.push_back(arith::AddIOp::create(b, j, index(v * tiling.lanes)));
  for (int64_t r = 0; r < rows; ++r)
    rowIndices.push_back(arith::AddIOp::create(b, i, index(r)));
  Value zero = arith::ConstantOp::create(b, DenseElementsAttr::get(vectorType, 0.0f));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t v = 0; v < tiling.tileVectors; ++v)
      initial.push_back(accumulate ? initialValue(rowIndices[r], columns[v],
                                                  vector::LoadOp::create(b, vectorType, c.memref,
                                                                         c.indices(rowIndices[r], columns[v])))
                                   : zero);
  auto [kBegin, kEnd] = reductionRange(i, arith::AddIOp::create(b, i, index(rows)), j);
  kEnd = arith::MaxSIOp::create(b, kEnd, kBegin);
  auto reduction = scf::ForOp::create(b, kBegin, kEnd, index(1), initial);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(reduction.getBody());
    Value kk = reduction.getInductionVar();
    SmallVector<Value> bRow;
    for (int64_t v = 0; v < tiling.tileVectors; ++v)
      bRow.push_back(vector::LoadOp::create(b, vectorType, bMatrix.memref,
                                            bMatrix.indices(kk, columns[v])));
    SmallVector<Value> next;
    for (int64_t r = 0; r < rows; ++r) {
      Value broadcast = vector::BroadcastOp::create(b, vectorType, a(rowIndices[r], kk));
      for (int64_t v = 0; v < tiling.tileVectors; ++v)
        next.push_back(vector::FMAOp::create(b, broadcast, bRow[v],
                                             reduction.getRegionIterArgs()[r * tiling.tileVectors + v]));
    }
    scf::YieldOp::create(b, next);
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t v = 0; v < tiling.tileVectors; ++v)
      vector::StoreOp::create(b, storedValue(rowIndices[r], columns[v], reduction.getResult(r * tiling.tileVectors + v)),
                              c.memref, c.indices(rowIndices[r], columns[v]));
}

void TileMatmulEmitter::vectorTiles(Value i0, Value i1, int64_t rows, Value nTiles) {
  auto rowLoop = scf::ForOp::create(b, i0, i1, index(rows));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(rowLoop.getBody());
  Value i = rowLoop.getInductionVar();
  Value columns = columnsEnd(arith::AddIOp::create(b, i, index(rows)), nTiles);
  auto columnLoop = scf::ForOp::create(b, index(0), columns, index(tiling.tileColumns()));
  b.setInsertionPointToStart(columnLoop.getBody());
  tile(i, columnLoop.getInductionVar(), rows);
}

void TileMatmulEmitter::scalarBlock(Value i0, Value i1, Value j0, Value j1) {
  auto rowLoop = scf::ForOp::create(b, i0, i1, index(1));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(rowLoop.getBody());
  Value i = rowLoop.getInductionVar();
  Value next = arith::AddIOp::create(b, i, index(1));
  Value columns = arith::MaxSIOp::create(b, columnsEnd(next, j1), j0);
  auto columnLoop = scf::ForOp::create(b, j0, columns, index(1));
  b.setInsertionPointToStart(columnLoop.getBody());
  Value j = columnLoop.getInductionVar();
  auto [kBegin, kEnd] = reductionRange(i, next, j);
  kEnd = arith::MaxSIOp::create(b, kEnd, kBegin);
  Value start = accumulate ? initialValue(i, j, memref::LoadOp::create(b, c.memref, c.indices(i, j)))
                           : arith::ConstantOp::create(b, b.getF32FloatAttr(0.0f)).getResult();
  auto reduction = scf::ForOp::create(b, kBegin, kEnd, index(1), ValueRange{start});
  {
    OpBuilder::InsertionGuard inner(b);
    b.setInsertionPointToStart(reduction.getBody());
    Value kk = reduction.getInductionVar();
    Value product = arith::MulFOp::create(b, a(i, kk),
                                          memref::LoadOp::create(b, bMatrix.memref, bMatrix.indices(kk, j)));
    scf::YieldOp::create(b, ValueRange{arith::AddFOp::create(b, reduction.getRegionIterArgs()[0], product)});
  }
  memref::StoreOp::create(b, storedValue(i, j, reduction.getResult(0)), c.memref, c.indices(i, j));
}
} // namespace

Value decay::loadMatching(ImplicitLocOpBuilder &b, Value like, Value memref, ValueRange indices) {
  if (auto vectorType = dyn_cast<VectorType>(like.getType()))
    return vector::LoadOp::create(b, vectorType, memref, indices);
  return memref::LoadOp::create(b, memref, indices);
}

void decay::storeMatching(ImplicitLocOpBuilder &b, Value value, Value memref, ValueRange indices) {
  if (isa<VectorType>(value.getType()))
    vector::StoreOp::create(b, value, memref, indices);
  else
    memref::StoreOp::create(b, value, memref, indices);
}

void decay::storeStreaming(ImplicitLocOpBuilder &b, Value value, Value memref, ValueRange indices) {
  auto vectorType = dyn_cast<VectorType>(value.getType());
  if (!vectorType) {
    memref::StoreOp::create(b, value, memref, indices);
    return;
  }
  int64_t bytes = vectorType.getNumElements() * vectorType.getElementTypeBitWidth() / 8;
  vector::StoreOp::create(b, value, memref, indices, /*nontemporal=*/true, llvm::MaybeAlign(bytes));
}

Value decay::rowsAlignedToVectors(ImplicitLocOpBuilder &b, Value memref, int64_t lanes) {
  auto type = cast<MemRefType>(memref.getType());
  int64_t bytes = lanes * type.getElementTypeBitWidth() / 8;
  assert(llvm::isPowerOf2_64(bytes) && llvm::isPowerOf2_64(lanes) && "vectors of 2^n bytes and lanes");
  Value zero = arith::ConstantIndexOp::create(b, 0);
  // The first element's address: the aligned pointer plus the offset.
  Value pointer = memref::ExtractAlignedPointerAsIndexOp::create(b, memref);
  Value offset = memref::ExtractStridedMetadataOp::create(b, memref).getOffset();
  int64_t elementBytes = type.getElementTypeBitWidth() / 8;
  Value base = arith::AddIOp::create(b, pointer,
                                     arith::MulIOp::create(b, offset, arith::ConstantIndexOp::create(b, elementBytes)));
  Value baseOffset = arith::AndIOp::create(b, base, arith::ConstantIndexOp::create(b, bytes - 1));
  Value rowLength = memref::DimOp::create(b, memref, type.getRank() - 1);
  Value rowRemainder = arith::AndIOp::create(b, rowLength, arith::ConstantIndexOp::create(b, lanes - 1));
  return arith::AndIOp::create(b, arith::CmpIOp::create(b, arith::CmpIPredicate::eq, baseOffset, zero),
                               arith::CmpIOp::create(b, arith::CmpIPredicate::eq, rowRemainder, zero));
}

void decay::emitStreamingChoice(ImplicitLocOpBuilder &b, Value streaming, function_ref<void(bool)> body) {
  if (!streaming) {
    body(/*stream=*/false);
    return;
  }
  auto choice = scf::IfOp::create(b, streaming, /*withElseRegion=*/true);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(choice.thenBlock());
  body(/*stream=*/true);
  b.setInsertionPointToStart(choice.elseBlock());
  body(/*stream=*/false);
}

void decay::fenceStreamingStores(ImplicitLocOpBuilder &b) {
  LLVM::CallIntrinsicOp::create(b, b.getStringAttr("llvm.x86.sse.sfence"), ValueRange{});
}

Value decay::splatMatching(ImplicitLocOpBuilder &b, Value like, Value scalar) {
  if (auto vectorType = dyn_cast<VectorType>(like.getType()))
    return vector::BroadcastOp::create(b, vectorType, scalar);
  return scalar;
}

Value decay::floorToMultiple(ImplicitLocOpBuilder &b, Value x, int64_t multiple) {
  Value step = arith::ConstantIndexOp::create(b, multiple);
  return arith::MulIOp::create(b, arith::DivUIOp::create(b, x, step), step).getResult();
}

void decay::emitTileMatmul(ImplicitLocOpBuilder &b, const RegisterTiling &tiling, const MatrixView &c,
                           function_ref<Value(Value, Value)> a, const MatrixView &bMatrix, Value m,
                           Value n, Value k, bool accumulate, Triangle triangle, MatmulFusion fusion) {
  TileMatmulEmitter emitter(b, tiling, c, a, bMatrix, k, accumulate, triangle, fusion);
  Value zero = arith::ConstantIndexOp::create(b, 0);
  Value fullRows = floorToMultiple(b, m, tiling.tileRows);
  Value nTiles = floorToMultiple(b, n, tiling.tileColumns());
  emitter.vectorTiles(zero, fullRows, tiling.tileRows, nTiles); // full tiles
  Value leftover = arith::SubIOp::create(b, m, fullRows);
  Value shortRows = arith::AddIOp::create(b, fullRows, floorToMultiple(b, leftover, kLeftoverRows));
  emitter.vectorTiles(fullRows, shortRows, kLeftoverRows, nTiles); // leftover rows, 4 at a time
  emitter.vectorTiles(shortRows, m, 1, nTiles);                    // then one at a time
  emitter.scalarBlock(zero, m, nTiles, n);                         // leftover columns
}

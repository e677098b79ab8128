// One warp's m16n8k8 tf32 tensor-core products (nvgpu.mma.sync), with fp32 accuracy by the 3xTF32 split.
#include "WarpMma.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;
using namespace decay;

WarpMma::WarpMma(ImplicitLocOpBuilder &b, Value lane) : b(b) {
  group = arith::DivUIOp::create(b, lane, index(4));
  quad = arith::RemUIOp::create(b, lane, index(4));
}

Value WarpMma::index(int64_t value) { return arith::ConstantIndexOp::create(b, value); }
Value WarpMma::plus(Value x, int64_t y) { return y ? arith::AddIOp::create(b, x, index(y)).getResult() : x; }

Fragment WarpMma::split(ArrayRef<Value> values, int64_t rows) {
  auto type = VectorType::get({rows, 1}, b.getF32Type());
  Value mask = arith::ConstantOp::create(b, b.getI32IntegerAttr(static_cast<int32_t>(0xffffe000u)));
  Value hi = arith::ConstantOp::create(b, DenseElementsAttr::get(type, 0.0f));
  Value lo = hi;
  for (auto [i, x] : llvm::enumerate(values)) {
    // hi keeps the 10 mantissa bits tf32 has; lo = x - hi is exact in f32.
    Value bits = arith::BitcastOp::create(b, b.getI32Type(), x);
    Value high = arith::BitcastOp::create(b, b.getF32Type(), arith::AndIOp::create(b, bits, mask));
    Value low = arith::SubFOp::create(b, x, high);
    SmallVector<int64_t> position = {static_cast<int64_t>(i), 0};
    hi = vector::InsertOp::create(b, high, hi, position);
    lo = vector::InsertOp::create(b, low, lo, position);
  }
  return {hi, lo};
}

Fragment WarpMma::loadA(function_ref<Value(Value, Value)> a) {
  Value g8 = plus(group, 8), q4 = plus(quad, 4);
  return split({a(group, quad), a(g8, quad), a(group, q4), a(g8, q4)}, 4);
}

Fragment WarpMma::loadB(function_ref<Value(Value, Value)> bElement) {
  return split({bElement(quad, group), bElement(plus(quad, 4), group)}, 2);
}

Value WarpMma::multiplyAccumulate(Value acc, const Fragment &a, const Fragment &bFragment) {
  // The small terms first, then the leading one.
  auto mma = [&](Value x, Value y, Value c) {
    return nvgpu::MmaSyncOp::create(b, x, y, c, ArrayRef<int64_t>{16, 8, 8}, /*tf32Enabled=*/true)
        .getResult();
  };
  acc = mma(a.lo, bFragment.hi, acc);
  acc = mma(a.hi, bFragment.lo, acc);
  return mma(a.hi, bFragment.hi, acc);
}

Value WarpMma::zero() {
  return arith::ConstantOp::create(b, DenseElementsAttr::get(VectorType::get({2, 2}, b.getF32Type()), 0.0f));
}

Value WarpMma::row(int i) { return plus(group, 8 * (i / 2)); }

Value WarpMma::column(int i) {
  return plus(arith::MulIOp::create(b, quad, index(2)), i % 2);
}

Value WarpMma::element(Value acc, int i) {
  return vector::ExtractOp::create(b, acc, ArrayRef<int64_t>{i / 2, i % 2});
}

Value WarpMma::withElement(Value acc, int i, Value value) {
  return vector::InsertOp::create(b, value, acc, ArrayRef<int64_t>{i / 2, i % 2});
}

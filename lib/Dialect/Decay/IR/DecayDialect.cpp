// The `decay` dialect: registration, constant materialization and the folders of its math ops.
#include "decay/Dialect/Decay/IR/DecayDialect.h"

#include <cmath>

using namespace mlir;
using namespace decay;

#include "decay/Dialect/Decay/IR/DecayDialect.cpp.inc"
#include "decay/Dialect/Decay/IR/DecayEnums.cpp.inc"

void DecayDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "decay/Dialect/Decay/IR/DecayOps.cpp.inc"
      >();
}

Operation *DecayDialect::materializeConstant(OpBuilder &builder,
                                             Attribute value, Type type,
                                             Location loc) {
  return arith::ConstantOp::materialize(builder, value, type, loc);
}

namespace {
/// log(1 + exp(x)) without overflow, in double precision.
double softplus(double x) { return std::max(x, 0.0) + std::log1p(std::exp(-std::fabs(x))); }

/// Folds a unary float function applied to a constant.
OpFoldResult foldUnary(Attribute operand, Type type, double (*fn)(double)) {
  auto constant = llvm::dyn_cast_if_present<FloatAttr>(operand);
  if (!constant)
    return {};
  return FloatAttr::get(type, fn(constant.getValueAsDouble()));
}
} // namespace

OpFoldResult SoftplusOp::fold(FoldAdaptor adaptor) {
  return foldUnary(adaptor.getX(), getType(), softplus);
}

OpFoldResult LogSigmoidOp::fold(FoldAdaptor adaptor) {
  return foldUnary(adaptor.getX(), getType(),
                   [](double x) { return -softplus(-x); });
}

OpFoldResult LogAddExpOp::fold(FoldAdaptor adaptor) {
  auto lhs = llvm::dyn_cast_if_present<FloatAttr>(adaptor.getLhs());
  auto rhs = llvm::dyn_cast_if_present<FloatAttr>(adaptor.getRhs());
  auto isNegativeInfinity = [](FloatAttr value) {
    return value && value.getValue().isInfinity() && value.getValue().isNegative();
  };
  // log(exp(x) + 0) = x
  if (isNegativeInfinity(rhs))
    return getLhs();
  if (isNegativeInfinity(lhs))
    return getRhs();
  if (!lhs || !rhs)
    return {};
  double a = lhs.getValueAsDouble(), b = rhs.getValueAsDouble();
  double hi = std::max(a, b), lo = std::min(a, b);
  if (std::isinf(hi))
    return FloatAttr::get(getType(), hi);
  return FloatAttr::get(getType(), hi + std::log1p(std::exp(lo - hi)));
}

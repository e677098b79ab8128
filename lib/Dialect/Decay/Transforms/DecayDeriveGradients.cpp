// The decay-derive-gradients pass: reverse-mode differentiation of a recurrence's decay region.
#include "decay/Dialect/Decay/IR/DecayDialect.h"
#include "decay/Dialect/Decay/Transforms/Passes.h"

#include "mlir/IR/IRMapping.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include "llvm/ADT/TypeSwitch.h"

#include <cmath>

namespace decay {
#define GEN_PASS_DEF_DECAYDERIVEGRADIENTSPASS
#include "decay/Dialect/Decay/Transforms/Passes.h.inc"
} // namespace decay

using namespace mlir;
using namespace decay;

namespace {

/// Builds the body of one decay.adjoint: the forward computation, then the
/// reverse sweep accumulating adjoints.
class AdjointBuilder {
public:
  AdjointBuilder(ImplicitLocOpBuilder &b) : b(b), f32(b.getF32Type()) {}

  /// Emits the adjoint of `recurrence` into `block`; fails (with a located
  /// diagnostic) on an operation without an adjoint rule.
  LogicalResult build(RecurrenceOp recurrence, Block &block);

private:
  Value constant(double value) {
    return arith::ConstantOp::create(b, FloatAttr::get(f32, value));
  }
  Value add(Value x, Value y) { return arith::AddFOp::create(b, x, y); }
  Value mul(Value x, Value y) { return arith::MulFOp::create(b, x, y); }
  Value div(Value x, Value y) { return arith::DivFOp::create(b, x, y); }
  Value neg(Value x) { return arith::NegFOp::create(b, x); }
  Value exp(Value x) { return math::ExpOp::create(b, x); }
  /// sigmoid(x) with one exponential that never overflows: e = exp(-|x|),
  /// then 1 / (1 + e) for x >= 0 and e / (1 + e) below (one division, where
  /// exp(logsigmoid(x)) costs two exponentials and a logarithm).
  Value sigmoid(Value x) {
    Value e = exp(neg(math::AbsFOp::create(b, x)));
    Value nonNegative = arith::CmpFOp::create(b, arith::CmpFPredicate::OGE, x, constant(0.0));
    return div(arith::SelectOp::create(b, nonNegative, constant(1.0), e), add(constant(1.0), e));
  }
  /// Adds `contribution` to the adjoint of `value` (float values only).
  void accumulate(Value value, Value contribution);
  /// Chooses `adjoint` where `condition` holds, else 0.
  Value where(Value condition, Value adjoint) {
    return arith::SelectOp::create(b, condition, adjoint, constant(0.0));
  }
  /// Propagates the adjoint of `op`'s result to its operands.
  LogicalResult reverse(Operation *op);

  ImplicitLocOpBuilder &b;
  Type f32;
  DenseMap<Value, Value> adjoints;
};

void AdjointBuilder::accumulate(Value value, Value contribution) {
  if (!value.getType().isF32())
    return;
  auto [it, inserted] = adjoints.try_emplace(value, contribution);
  if (!inserted)
    it->second = add(it->second, contribution);
}

LogicalResult AdjointBuilder::reverse(Operation *op) {
  if (llvm::none_of(op->getResults(), [&](Value result) { return adjoints.count(result); }))
    return success(); // nothing flows back through this op
  if (op->getNumResults() != 1)
    return op->emitOpError()
           << "has no adjoint rule (it has several results), so decay-derive-gradients "
              "cannot differentiate this decay region";
  Value r = op->getResult(0);
  Value g = adjoints.lookup(r);
  b.setLoc(op->getLoc());
  auto x = [&](unsigned i) { return op->getOperand(i); };
  return TypeSwitch<Operation *, LogicalResult>(op)
      .Case<arith::ConstantOp, arith::SIToFPOp, arith::UIToFPOp, HeadIndexOp, NumHeadsOp>(
          [](Operation *) { return success(); })
      .Case([&](arith::AddFOp) {
        accumulate(x(0), g), accumulate(x(1), g);
        return success();
      })
      .Case([&](arith::SubFOp) {
        accumulate(x(0), g), accumulate(x(1), neg(g));
        return success();
      })
      .Case([&](arith::MulFOp) {
        accumulate(x(0), mul(g, x(1))), accumulate(x(1), mul(g, x(0)));
        return success();
      })
      .Case([&](arith::DivFOp) {
        accumulate(x(0), div(g, x(1)));
        accumulate(x(1), neg(div(mul(g, r), x(1))));
        return success();
      })
      .Case([&](arith::NegFOp) {
        accumulate(x(0), neg(g));
        return success();
      })
      .Case([&](arith::SelectOp) {
        Value zero = constant(0.0);
        accumulate(x(1), arith::SelectOp::create(b, x(0), g, zero));
        accumulate(x(2), arith::SelectOp::create(b, x(0), zero, g));
        return success();
      })
      .Case<arith::MaximumFOp, arith::MinimumFOp, arith::MaxNumFOp, arith::MinNumFOp>(
          [&](Operation *) {
            // The gradient goes to the operand that was chosen (the first on ties).
            Value firstChosen = arith::CmpFOp::create(b, arith::CmpFPredicate::OEQ, r, x(0));
            Value zero = constant(0.0);
            accumulate(x(0), arith::SelectOp::create(b, firstChosen, g, zero));
            accumulate(x(1), arith::SelectOp::create(b, firstChosen, zero, g));
            return success();
          })
      .Case([&](math::AbsFOp) {
        Value negative = arith::CmpFOp::create(b, arith::CmpFPredicate::OLT, x(0), constant(0.0));
        accumulate(x(0), arith::SelectOp::create(b, negative, neg(g), g));
        return success();
      })
      .Case([&](math::ExpOp) {
        accumulate(x(0), mul(g, r));
        return success();
      })
      .Case([&](math::Exp2Op) {
        accumulate(x(0), mul(g, mul(r, constant(std::log(2.0)))));
        return success();
      })
      .Case([&](math::ExpM1Op) {
        accumulate(x(0), mul(g, add(r, constant(1.0))));
        return success();
      })
      .Case([&](math::LogOp) {
        accumulate(x(0), div(g, x(0)));
        return success();
      })
      .Case([&](math::Log2Op) {
        accumulate(x(0), div(g, mul(x(0), constant(std::log(2.0)))));
        return success();
      })
      .Case([&](math::Log1pOp) {
        accumulate(x(0), div(g, add(x(0), constant(1.0))));
        return success();
      })
      .Case([&](math::SqrtOp) {
        accumulate(x(0), div(mul(g, constant(0.5)), r));
        return success();
      })
      .Case([&](math::RsqrtOp) {
        accumulate(x(0), mul(g, mul(constant(-0.5), mul(r, mul(r, r)))));
        return success();
      })
      .Case([&](math::TanhOp) {
        accumulate(x(0), mul(g, arith::SubFOp::create(b, constant(1.0), mul(r, r))));
        return success();
      })
      .Case([&](math::SinOp) {
        accumulate(x(0), mul(g, math::CosOp::create(b, x(0))));
        return success();
      })
      .Case([&](math::CosOp) {
        accumulate(x(0), neg(mul(g, math::SinOp::create(b, x(0)))));
        return success();
      })
      .Case([&](math::PowFOp) {
        Value exponentMinusOne = arith::SubFOp::create(b, x(1), constant(1.0));
        accumulate(x(0), mul(g, mul(x(1), math::PowFOp::create(b, x(0), exponentMinusOne))));
        accumulate(x(1), mul(g, mul(r, math::LogOp::create(b, x(0)))));
        return success();
      })
      .Case([&](math::FmaOp) {
        accumulate(x(0), mul(g, x(1))), accumulate(x(1), mul(g, x(0)));
        accumulate(x(2), g);
        return success();
      })
      .Case([&](SoftplusOp) {
        // d softplus(x) = sigmoid(x)
        accumulate(x(0), mul(g, sigmoid(x(0))));
        return success();
      })
      .Case([&](LogSigmoidOp) {
        // d logsigmoid(x) = sigmoid(-x)
        accumulate(x(0), mul(g, sigmoid(neg(x(0)))));
        return success();
      })
      .Case([&](LogAddExpOp) {
        // d/da log(e^a + e^b) = e^(a - r): both factors are <= 1.
        accumulate(x(0), mul(g, exp(arith::SubFOp::create(b, x(0), r))));
        accumulate(x(1), mul(g, exp(arith::SubFOp::create(b, x(1), r))));
        return success();
      })
      .Default([&](Operation *unknown) {
        return unknown->emitOpError()
               << "has no adjoint rule, so decay-derive-gradients cannot differentiate "
                  "this decay region";
      });
}

LogicalResult AdjointBuilder::build(RecurrenceOp recurrence, Block &block) {
  Block &forward = recurrence.getBody().front();
  SmallVector<Operation *> scans = recurrence.getScans();
  unsigned numInputs = forward.getNumArguments();
  bool derivedKey = recurrence.hasDerivedKey();
  Location loc = recurrence.getLoc();
  for (unsigned i = 0; i < numInputs + 2 * scans.size() + 1 + (derivedKey ? 1 : 0); ++i)
    block.addArgument(f32, loc);
  auto scanPrev = [&](unsigned i) { return block.getArgument(numInputs + i); };
  Value dG = block.getArgument(numInputs + scans.size());
  Value dKey = derivedKey ? block.getArgument(numInputs + scans.size() + 1) : Value();
  auto dScanCur = [&](unsigned i) {
    return block.getArgument(block.getNumArguments() - scans.size() + i);
  };

  // The forward computation, each scan replaced by its update from `prev`.
  b.setInsertionPointToStart(&block);
  IRMapping mapping;
  for (unsigned i = 0; i < numInputs; ++i)
    mapping.map(forward.getArgument(i), block.getArgument(i));
  SmallVector<Operation *> recomputed;
  for (Operation &op : forward.without_terminator()) {
    b.setLoc(op.getLoc());
    auto scan = llvm::find(scans, &op);
    if (scan == scans.end()) {
      recomputed.push_back(b.clone(op, mapping));
      continue;
    }
    Value prev = scanPrev(scan - scans.begin());
    Value x = mapping.lookup(op.getOperand(0));
    Operation *update = isa<CumSumOp>(op) ? arith::AddFOp::create(b, prev, x).getOperation()
                                          : LogAddExpOp::create(b, prev, x).getOperation();
    recomputed.push_back(update);
    mapping.map(op.getResult(0), prev);
    mapping.map(op.getResult(1), update->getResult(0));
  }

  // Seeds: the gradients of what the region yields and of the scans' states.
  Operation *yield = forward.getTerminator();
  accumulate(mapping.lookup(yield->getOperand(0)), dG);
  if (derivedKey)
    accumulate(mapping.lookup(yield->getOperand(1)), dKey);
  for (auto [i, scan] : llvm::enumerate(scans))
    accumulate(mapping.lookup(scan->getResult(1)), dScanCur(i));

  for (Operation *op : llvm::reverse(recomputed))
    if (failed(reverse(op)))
      return failure();

  b.setLoc(loc);
  SmallVector<Value> gradients;
  auto gradientOf = [&](Value value) {
    Value adjoint = adjoints.lookup(value);
    return adjoint ? adjoint : constant(0.0);
  };
  for (unsigned i = 0; i < numInputs; ++i)
    gradients.push_back(gradientOf(block.getArgument(i)));
  for (unsigned i = 0; i < scans.size(); ++i)
    gradients.push_back(gradientOf(scanPrev(i)));
  YieldOp::create(b, gradients);
  return success();
}

struct DecayDeriveGradientsPass
    : public decay::impl::DecayDeriveGradientsPassBase<DecayDeriveGradientsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    DenseSet<StringRef> done;
    for (AdjointOp existing : module.getOps<AdjointOp>())
      done.insert(existing.getRecurrence());
    for (RecurrenceOp recurrence : llvm::make_early_inc_range(module.getOps<RecurrenceOp>())) {
      if (recurrence.getGranularity() == Granularity::none ||
          done.contains(recurrence.getSymName()))
        continue;
      ImplicitLocOpBuilder builder(recurrence.getLoc(), recurrence);
      builder.setInsertionPointAfter(recurrence);
      auto adjoint = AdjointOp::create(
          builder, FlatSymbolRefAttr::get(&getContext(), recurrence.getSymName()));
      Block &block = adjoint.getBody().emplaceBlock();
      AdjointBuilder adjointBuilder(builder);
      if (failed(adjointBuilder.build(recurrence, block))) {
        adjoint.erase();
        return signalPassFailure();
      }
    }
  }
};
} // namespace

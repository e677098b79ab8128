// The `decay.recurrence` op: its hand-writable syntax and the verifier that locates every malformed spec.
#include "decay/Dialect/Decay/IR/DecayDialect.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"

#include <cmath>

using namespace mlir;
using namespace decay;

#define GET_OP_CLASSES
#include "decay/Dialect/Decay/IR/DecayOps.cpp.inc"

//===----------------------------------------------------------------------===//
// Helpers shared by the parser, the printer and the verifier
//===----------------------------------------------------------------------===//

namespace {
/// Tensor names the runtime and `decayc run` reserve; spec names must differ.
constexpr llvm::StringLiteral kReservedNames[] = {
    "q", "k", "v", "o", "h0", "ht", "cu_seqlens", "do", "dht", "norm_h0", "norm_ht"};

/// The structural attributes that the custom syntax prints outside the dictionary.
SmallVector<StringRef> structuralAttrNames(RecurrenceOp op) {
  return {op.getSymNameAttrName(),    op.getGranularityAttrName(),
          op.getInputNamesAttrName(), op.getInputDimsAttrName(),
          op.getParamNamesAttrName(), op.getParamDimsAttrName()};
}

/// Whether `name` is [A-Za-z_][A-Za-z0-9_]*.
bool isIdentifier(StringRef name) {
  return !name.empty() && (llvm::isAlpha(name[0]) || name[0] == '_') &&
         llvm::all_of(name, [](char c) { return llvm::isAlnum(c) || c == '_'; });
}

/// Whether `dims` is a subsequence of `order` (every letter in order, once).
bool isOrderedSubset(StringRef dims, StringRef order) {
  size_t pos = 0;
  for (char c : dims) {
    size_t found = order.find(c, pos);
    if (found == StringRef::npos)
      return false;
    pos = found + 1;
  }
  return true;
}
} // namespace

ArrayRef<llvm::StringLiteral> RecurrenceOp::getOptionNames() {
  static constexpr llvm::StringLiteral names[] = {
      "key_dim", "value_dim",  "scale", "feature_map", "normalizer",
      "eps",     "rope_theta", "dtype", "state_dtype", "chunk_size"};
  return names;
}

bool RecurrenceOp::isPerToken() {
  return getGranularity() == Granularity::scalar ||
         getGranularity() == Granularity::vector;
}

bool RecurrenceOp::isPerChannel() {
  return getGranularity() == Granularity::vector ||
         getGranularity() == Granularity::constant_vector;
}

Operation *RecurrenceOp::getYield() {
  if (getBody().empty())
    return nullptr;
  Block &block = getBody().front();
  if (block.empty())
    return nullptr;
  Operation *last = &block.back();
  return isa<YieldOp>(last) ? last : nullptr;
}

bool RecurrenceOp::hasDerivedKey() {
  Operation *yield = getYield();
  return yield && yield->getNumOperands() == 2;
}

double RecurrenceOp::getEffectiveEps() {
  return getEps() ? getEps()->convertToDouble() : 1e-6;
}

FeatureMap RecurrenceOp::getEffectiveFeatureMap() {
  if (auto name = getFeatureMap())
    if (auto map = symbolizeFeatureMap(*name))
      return *map;
  return FeatureMap::identity;
}

namespace {
/// f32 or bf16 by name; null for any other name.
Type floatTypeNamed(MLIRContext *context, StringRef name) {
  return name == "f32"    ? Type(Float32Type::get(context))
         : name == "bf16" ? Type(BFloat16Type::get(context))
                          : Type();
}

/// bf16 when `option` says so, else f32.
FloatType storageOf(std::optional<Type> option, MLIRContext *context) {
  if (option && option->isBF16())
    return BFloat16Type::get(context);
  return Float32Type::get(context);
}
} // namespace

FloatType RecurrenceOp::getEffectiveDtype() { return storageOf(getDtype(), getContext()); }

LogicalResult RecurrenceOp::setDtypeByName(StringRef name) {
  Type type = floatTypeNamed(getContext(), name);
  if (!type)
    return failure();
  setDtype(type);
  return success();
}

FloatType RecurrenceOp::getEffectiveStateDtype() { return storageOf(getStateDtype(), getContext()); }

LogicalResult RecurrenceOp::setStateDtypeByName(StringRef name) {
  Type type = floatTypeNamed(getContext(), name);
  if (!type)
    return failure();
  setStateDtype(type);
  return success();
}

void RecurrenceOp::getAsmBlockArgumentNames(Region &region,
                                            OpAsmSetValueNameFn setNameFn) {
  if (region.empty())
    return;
  SmallVector<Attribute> names(getInputNames().getValue());
  llvm::append_range(names, getParamNames().getValue());
  for (auto [arg, name] : llvm::zip(region.getArguments(), names))
    setNameFn(arg, cast<StringAttr>(name).getValue());
}

//===----------------------------------------------------------------------===//
// Syntax
//===----------------------------------------------------------------------===//

namespace {
/// Parses `[B, T, H]` into the letters "BTH".
ParseResult parseDims(OpAsmParser &parser, std::string &dims) {
  return parser.parseCommaSeparatedList(
      OpAsmParser::Delimiter::Square, [&]() -> ParseResult {
        SMLoc loc = parser.getCurrentLocation();
        StringRef dim;
        if (parser.parseKeyword(&dim))
          return failure();
        if (dim.size() != 1 || StringRef("BTHK").find(dim[0]) == StringRef::npos)
          return parser.emitError(loc, "unknown dim '")
                 << dim << "': expected one of B, T, H, K";
        if (StringRef(dims).contains(dim[0]))
          return parser.emitError(loc, "dim '") << dim << "' appears twice";
        dims += dim[0];
        return success();
      });
}

/// Parses `keyword(%name : [dims], ...)` when present, appending one region
/// argument per entry.
ParseResult parseNamedList(OpAsmParser &parser, StringRef keyword,
                           SmallVectorImpl<OpAsmParser::Argument> &args,
                           SmallVectorImpl<Attribute> &names,
                           SmallVectorImpl<Attribute> &dims) {
  if (failed(parser.parseOptionalKeyword(keyword)))
    return success();
  MLIRContext *ctx = parser.getContext();
  return parser.parseCommaSeparatedList(
      OpAsmParser::Delimiter::Paren, [&]() -> ParseResult {
        OpAsmParser::Argument arg;
        std::string dimLetters;
        if (parser.parseArgument(arg) || parser.parseColon() ||
            parseDims(parser, dimLetters))
          return failure();
        arg.type = Float32Type::get(ctx);
        names.push_back(StringAttr::get(ctx, arg.ssaName.name.drop_front()));
        dims.push_back(StringAttr::get(ctx, dimLetters));
        args.push_back(arg);
        return success();
      });
}

/// Prints `keyword(%name : [dims], ...)`, naming the region's arguments.
void printNamedList(OpAsmPrinter &p, RecurrenceOp op, StringRef keyword,
                    ArrayAttr names, ArrayAttr dims, unsigned firstArg) {
  if (names.empty())
    return;
  p << ' ' << keyword << '(';
  for (auto [i, name, dimAttr] : llvm::enumerate(names, dims)) {
    if (i)
      p << ", ";
    if (!op.getBody().empty() && firstArg + i < op.getBody().getNumArguments())
      p.printOperand(op.getBody().getArgument(firstArg + i));
    else
      p << '%' << cast<StringAttr>(name).getValue();
    p << " : [";
    llvm::interleaveComma(cast<StringAttr>(dimAttr).getValue(), p,
                          [&](char c) { p << c; });
    p << ']';
  }
  p << ')';
}
} // namespace

ParseResult RecurrenceOp::parse(OpAsmParser &parser, OperationState &result) {
  MLIRContext *ctx = parser.getContext();
  Builder &builder = parser.getBuilder();
  StringAttr symName;
  if (parser.parseSymbolName(symName, getSymNameAttrName(result.name),
                             result.attributes))
    return failure();

  SMLoc granularityLoc = parser.getCurrentLocation();
  StringRef granularityName;
  if (parser.parseKeyword(&granularityName))
    return failure();
  std::optional<Granularity> granularity = symbolizeGranularity(granularityName);
  if (!granularity)
    return parser.emitError(granularityLoc, "unknown granularity '")
           << granularityName
           << "': expected none, constant_scalar, constant_vector, scalar or vector";
  result.addAttribute(getGranularityAttrName(result.name),
                      GranularityAttr::get(ctx, *granularity));

  SmallVector<OpAsmParser::Argument> args;
  SmallVector<Attribute> inputNames, inputDims, paramNames, paramDims;
  if (parseNamedList(parser, "inputs", args, inputNames, inputDims) ||
      parseNamedList(parser, "params", args, paramNames, paramDims))
    return failure();
  result.addAttribute(getInputNamesAttrName(result.name), builder.getArrayAttr(inputNames));
  result.addAttribute(getInputDimsAttrName(result.name), builder.getArrayAttr(inputDims));
  result.addAttribute(getParamNamesAttrName(result.name), builder.getArrayAttr(paramNames));
  result.addAttribute(getParamDimsAttrName(result.name), builder.getArrayAttr(paramDims));

  if (parser.parseOptionalAttrDictWithKeyword(result.attributes))
    return failure();
  Region *body = result.addRegion();
  OptionalParseResult parsed = parser.parseOptionalRegion(*body, args);
  if (parsed.has_value() && failed(*parsed))
    return failure();
  return success();
}

void RecurrenceOp::print(OpAsmPrinter &p) {
  p << ' ';
  p.printSymbolName(getSymName());
  p << ' ' << stringifyGranularity(getGranularity());
  printNamedList(p, *this, "inputs", getInputNames(), getInputDims(), 0);
  printNamedList(p, *this, "params", getParamNames(), getParamDims(),
                 getInputNames().size());
  p.printOptionalAttrDictWithKeyword((*this)->getAttrs(),
                                     structuralAttrNames(*this));
  if (!getBody().empty()) {
    p << ' ';
    p.printRegion(getBody(), /*printEntryBlockArgs=*/false,
                  /*printBlockTerminators=*/true);
  }
}

//===----------------------------------------------------------------------===//
// Verification
//===----------------------------------------------------------------------===//

namespace {
/// Checks one list of named tensors (inputs or params) and their dims.
LogicalResult verifyNamedList(RecurrenceOp op, StringRef kind, ArrayAttr names,
                              ArrayAttr dims, llvm::StringSet<> &seen) {
  if (names.size() != dims.size())
    return op.emitOpError() << "has " << names.size() << " " << kind
                            << " names but " << dims.size() << " dim lists";
  bool perToken = op.isPerToken();
  bool perChannel = op.isPerChannel();
  for (auto [nameAttr, dimAttr] : llvm::zip(names, dims)) {
    StringRef name = cast<StringAttr>(nameAttr).getValue();
    StringRef dimLetters = cast<StringAttr>(dimAttr).getValue();
    if (!isIdentifier(name))
      return op.emitOpError() << kind << " name '" << name
                              << "' must be an identifier ([A-Za-z_][A-Za-z0-9_]*): "
                                 "it names a tensor file";
    if (llvm::is_contained(kReservedNames, name) || name.starts_with("scan_"))
      return op.emitOpError() << kind << " name '" << name
                              << "' is reserved for a built-in tensor";
    if (!seen.insert(name).second)
      return op.emitOpError() << "declares '" << name << "' twice";
    if (kind == "input") {
      if (!perToken)
        return op.emitOpError()
               << "declares per-token input '" << name << "' but granularity '"
               << stringifyGranularity(op.getGranularity())
               << "' does not depend on the token"
               << (op.getGranularity() == Granularity::none ? "" : " (use a param)");
      if (!dimLetters.starts_with("BT") ||
          !isOrderedSubset(dimLetters.drop_front(2), "HK"))
        return op.emitOpError() << "input '" << name << "' must have dims [B, T], "
                                   "[B, T, H], [B, T, K] or [B, T, H, K]";
    } else {
      if (op.getGranularity() == Granularity::none)
        return op.emitOpError() << "declares param '" << name
                                << "' but granularity 'none' has no decay";
      if (dimLetters.empty() || !isOrderedSubset(dimLetters, "HK"))
        return op.emitOpError() << "param '" << name
                                << "' must have dims [H], [K] or [H, K]";
    }
    if (!perChannel && dimLetters.contains('K'))
      return op.emitOpError()
             << kind << " '" << name << "' has a K dim, but a "
             << stringifyGranularity(op.getGranularity())
             << " decay is shared by all key channels";
  }
  return success();
}

/// Checks the option dictionary: only known names, each with a sensible value.
LogicalResult verifyOptions(RecurrenceOp op) {
  SmallVector<StringRef> structural = structuralAttrNames(op);
  for (NamedAttribute attr : op->getAttrs()) {
    StringRef name = attr.getName().getValue();
    if (!llvm::is_contained(structural, name) &&
        !llvm::is_contained(RecurrenceOp::getOptionNames(), name))
      return op.emitOpError() << "has unknown option '" << name
                              << "'; known options: key_dim, value_dim, scale, "
                                 "feature_map, normalizer, eps, rope_theta, dtype, "
                                 "state_dtype, chunk_size";
  }
  for (auto [name, value] : {std::pair{"key_dim", op.getKeyDim()},
                             std::pair{"value_dim", op.getValueDim()}})
    if (value && (*value < 1 || *value > 4096))
      return op.emitOpError() << name << " must be in [1, 4096], got " << *value;
  if (auto chunk = op.getChunkSize())
    if (*chunk < 16 || *chunk > 256 || !llvm::isPowerOf2_64(*chunk))
      return op.emitOpError() << "chunk_size must be a power of two in [16, 256], got "
                              << *chunk;
  if (auto scale = op.getScale()) {
    double s = scale->convertToDouble();
    if (!std::isfinite(s) || s == 0.0)
      return op.emitOpError() << "scale must be finite and non-zero";
    if (op.getNormalizer())
      return op.emitOpError() << "scale does not apply with the normalizer (it cancels)";
  }
  if (auto eps = op.getEps()) {
    if (!(eps->convertToDouble() > 0.0) || !std::isfinite(eps->convertToDouble()))
      return op.emitOpError() << "eps must be positive and finite";
    if (!op.getNormalizer())
      return op.emitOpError() << "eps only applies with the normalizer";
  }
  if (auto theta = op.getRopeTheta()) {
    if (!(theta->convertToDouble() > 0.0) || !std::isfinite(theta->convertToDouble()))
      return op.emitOpError() << "rope_theta must be positive and finite";
    if (auto k = op.getKeyDim(); k && *k % 2)
      return op.emitOpError() << "RoPE needs an even key_dim, got " << *k;
  }
  if (auto name = op.getFeatureMap(); name && !symbolizeFeatureMap(*name))
    return op.emitOpError() << "has unknown feature_map '" << *name
                            << "': expected identity, elu1, exp, silu or relu";
  if (auto dtype = op.getDtype(); dtype && !dtype->isF32() && !dtype->isBF16())
    return op.emitOpError() << "dtype must be f32 or bf16, got " << *dtype;
  if (auto dtype = op.getStateDtype(); dtype && !dtype->isF32() && !dtype->isBF16())
    return op.emitOpError() << "state_dtype must be f32 or bf16, got " << *dtype;
  return success();
}

/// Checks that the region's operations are scalar arith, math and decay ops.
LogicalResult verifyRegionOps(RecurrenceOp op) {
  Block &block = op.getBody().front();
  Type f32 = Float32Type::get(op.getContext());
  auto isScalar = [&](Type type) {
    return type == f32 || type.isSignlessInteger() || type.isIndex();
  };
  for (BlockArgument arg : block.getArguments())
    if (arg.getType() != f32)
      return op.emitOpError() << "region argument #" << arg.getArgNumber()
                              << " must be f32, got " << arg.getType();
  for (Operation &inner : block) {
    StringRef dialect = inner.getName().getDialectNamespace();
    if (dialect != "arith" && dialect != "math" && dialect != "decay")
      return inner.emitOpError()
             << "is not allowed in a decay region: use arith, math and decay ops";
    if (isa<arith::BitcastOp>(inner))
      return inner.emitOpError()
             << "reinterprets bits, which a decay region must not do: the region is "
                "also evaluated in f64 (reference) and other precisions";
    if (inner.getNumRegions())
      return inner.emitOpError() << "must not have regions inside a decay region";
    for (Type type : llvm::concat<const Type>(inner.getOperandTypes(),
                                              inner.getResultTypes()))
      if (!isScalar(type))
        return inner.emitOpError()
               << "uses type " << type
               << "; a decay region computes on f32 scalars (and integers)";
  }
  return success();
}

/// Checks what the region yields: a log-decay and, for vector decays, an
/// optional derived key.
LogicalResult verifyYield(RecurrenceOp op) {
  Block &block = op.getBody().front();
  auto yield = block.empty() ? YieldOp() : dyn_cast<YieldOp>(block.back());
  if (!yield)
    return op.emitOpError()
           << "region must end with 'decay.yield' of the log-decay";
  if (yield.getNumOperands() == 0)
    return yield.emitOpError() << "yields no log-decay";
  if (yield.getNumOperands() > 2)
    return yield.emitOpError() << "yields " << yield.getNumOperands()
                               << " values; expected the log-decay and "
                                  "optionally a derived key";
  for (Value value : yield.getOperands())
    if (!value.getType().isF32())
      return yield.emitOpError() << "must yield f32 values, got " << value.getType();
  if (yield.getNumOperands() == 2) {
    if (!op.isPerToken())
      return yield.emitOpError() << "yields a derived key, but a "
                                 << stringifyGranularity(op.getGranularity())
                                 << " decay is not computed per token";
    if (!op.isPerChannel())
      return yield.emitOpError()
             << "yields a derived key of shape [B, T, H], but a key must have "
                "shape [B, T, H, K]: use vector granularity";
  }
  return success();
}
} // namespace

LogicalResult RecurrenceOp::verify() {
  if (failed(verifyOptions(*this)))
    return failure();
  llvm::StringSet<> seen;
  if (failed(verifyNamedList(*this, "input", getInputNames(), getInputDims(), seen)) ||
      failed(verifyNamedList(*this, "param", getParamNames(), getParamDims(), seen)))
    return failure();
  if (getGranularity() == Granularity::none) {
    if (!getBody().empty())
      return emitOpError() << "with granularity 'none' has no decay and takes no region";
    return success();
  }
  if (getBody().empty())
    return emitOpError() << "needs a region computing the log-decay";
  Block &block = getBody().front();
  unsigned expected = getInputNames().size() + getParamNames().size();
  if (block.getNumArguments() != expected)
    return emitOpError() << "region has " << block.getNumArguments()
                         << " arguments but the spec declares " << expected
                         << " inputs and params";
  if (failed(verifyRegionOps(*this)))
    return failure();
  return verifyYield(*this);
}

LogicalResult RecurrenceOp::verifyRegions() {
  llvm::StringSet<> scanNames;
  WalkResult result = getBody().walk([&](Operation *inner) {
    if (!isa<CumSumOp, LogCumSumExpOp>(inner))
      return WalkResult::advance();
    StringRef name = inner->getAttrOfType<StringAttr>("name").getValue();
    if (!scanNames.insert(name).second) {
      inner->emitOpError() << "reuses scan name '" << name
                           << "'; every scan names its own carried state";
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return failure(result.wasInterrupted());
}

namespace {
/// Checks a scan's name and that its recurrence has a per-token decay.
LogicalResult verifyScan(Operation *scan, StringRef name) {
  if (!isIdentifier(name))
    return scan->emitOpError()
           << "name must be an identifier ([A-Za-z_][A-Za-z0-9_]*), got '" << name << "'";
  auto recurrence = scan->getParentOfType<RecurrenceOp>();
  if (!recurrence)
    return scan->emitOpError() << "must be inside a decay.recurrence";
  if (!recurrence.isPerToken())
    return scan->emitOpError()
           << "scans over time, but granularity '"
           << stringifyGranularity(recurrence.getGranularity())
           << "' does not depend on the token";
  return success();
}
} // namespace

LogicalResult CumSumOp::verify() { return verifyScan(*this, getName()); }
LogicalResult LogCumSumExpOp::verify() { return verifyScan(*this, getName()); }

SmallVector<Operation *> RecurrenceOp::getScans() {
  SmallVector<Operation *> scans;
  getBody().walk([&](Operation *op) {
    if (isa<CumSumOp, LogCumSumExpOp>(op))
      scans.push_back(op);
  });
  return scans;
}

//===----------------------------------------------------------------------===//
// AdjointOp
//===----------------------------------------------------------------------===//

LogicalResult AdjointOp::verifySymbolUses(SymbolTableCollection &symbolTable) {
  auto recurrence = symbolTable.lookupNearestSymbolFrom<RecurrenceOp>(*this, getRecurrenceAttr());
  if (!recurrence)
    return emitOpError() << "refers to " << getRecurrenceAttr()
                         << ", which is not a decay.recurrence";
  if (recurrence.getGranularity() == Granularity::none)
    return emitOpError() << "refers to a recurrence without decay (granularity 'none')";
  size_t numInputs = recurrence.getInputNames().size() + recurrence.getParamNames().size();
  size_t numScans = recurrence.getScans().size();
  size_t numArgs = numInputs + 2 * numScans + 1 + (recurrence.hasDerivedKey() ? 1 : 0);
  Block &block = getBody().front();
  if (block.getNumArguments() != numArgs)
    return emitOpError() << "has " << block.getNumArguments() << " arguments; @"
                         << recurrence.getSymName() << " needs " << numArgs
                         << " (inputs and params, scan states, d_g"
                         << (recurrence.hasDerivedKey() ? ", d_key" : "")
                         << ", scan gradients)";
  auto yield = dyn_cast<YieldOp>(block.getTerminator());
  if (!yield || yield.getNumOperands() != numInputs + numScans)
    return emitOpError() << "must yield " << numInputs + numScans
                         << " gradients (inputs and params, then scan states)";
  return success();
}

LogicalResult AdjointOp::verifyRegions() {
  Block &block = getBody().front();
  for (Type type : block.getArgumentTypes())
    if (!type.isF32())
      return emitOpError() << "arguments must be f32, got " << type;
  if (auto yield = dyn_cast<YieldOp>(block.getTerminator()))
    for (Type type : yield.getOperandTypes())
      if (!type.isF32())
        return emitOpError() << "must yield f32 gradients, got " << type;
  return success();
}

void AdjointOp::getAsmBlockArgumentNames(Region &region, OpAsmSetValueNameFn setNameFn) {
  auto recurrence =
      SymbolTable::lookupNearestSymbolFrom<RecurrenceOp>(*this, getRecurrenceAttr());
  if (!recurrence || region.empty())
    return;
  SmallVector<std::string> names;
  for (Attribute name : llvm::concat<const Attribute>(recurrence.getInputNames().getValue(),
                                                      recurrence.getParamNames().getValue()))
    names.push_back(cast<StringAttr>(name).str());
  SmallVector<Operation *> scans = recurrence.getScans();
  for (Operation *scan : scans)
    names.push_back(scan->getAttrOfType<StringAttr>("name").str() + "_prev");
  names.push_back("d_g");
  if (recurrence.hasDerivedKey())
    names.push_back("d_key");
  for (Operation *scan : scans)
    names.push_back("d_" + scan->getAttrOfType<StringAttr>("name").str());
  for (auto [arg, name] : llvm::zip(region.getArguments(), names))
    setNameFn(arg, name);
}

// The decay-gpu-to-simt pass: NVVM GPU kernels become host functions that call decayrt's SIMT emulator (decayrt/simt_abi.h).
#include "decay/Conversion/Passes.h"

#include "decayrt/simt_abi.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/Interfaces/DataLayoutInterfaces.h"

#include "llvm/ADT/StringSet.h"

#include <limits>

namespace decay {
#define GEN_PASS_DEF_DECAYGPUTOSIMTPASS
#include "decay/Conversion/Passes.h.inc"
} // namespace decay

using namespace mlir;

namespace {
/// NVVM's address space of shared memory.
constexpr unsigned kSharedSpace = static_cast<unsigned>(NVVM::NVVMMemorySpace::Shared);

/// libdevice functions that the C library has under the same name without
/// the `__nv_` prefix and with the same meaning (f32 and f64 forms).
const llvm::StringSet<> &hostMathFunctions() {
  static const llvm::StringSet<> names = [] {
    llvm::StringSet<> set;
    for (llvm::StringRef base : {"exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "fabs",
                                 "sqrt", "cbrt", "pow", "sin", "cos", "tan", "asin", "acos", "atan",
                                 "atan2", "sinh", "cosh", "tanh", "erf", "erfc", "floor", "ceil",
                                 "trunc", "round", "fmin", "fmax", "fma", "fmod", "hypot"}) {
      set.insert(base);
      set.insert((base + "f").str());
    }
    return set;
  }();
  return names;
}

bool isSharedPointer(Type type) {
  auto pointer = dyn_cast<LLVM::LLVMPointerType>(type);
  return pointer && pointer.getAddressSpace() == kSharedSpace;
}

/// The LLVM types of the ABI's structs and calls.
struct AbiTypes {
  explicit AbiTypes(MLIRContext *context)
      : ptr(LLVM::LLVMPointerType::get(context)), i8(IntegerType::get(context, 8)),
        i32(IntegerType::get(context, 32)), f32(Float32Type::get(context)),
        voidType(LLVM::LLVMVoidType::get(context)) {
    Type triple = LLVM::LLVMArrayType::get(i32, 3);
    // decay_simt_thread, field by field (DECAY_SIMT_FIELD_*).
    thread = LLVM::LLVMStructType::getLiteral(
        context, {triple, triple, triple, triple, i32, i32, ptr, ptr, ptr});
  }
  Type ptr, i8, i32, f32, voidType;
  LLVM::LLVMStructType thread;
};

/// Rewrites the body of one kernel: NVVM operations into reads of the
/// thread's record and calls through its table of operations.
class KernelRewriter {
public:
  KernelRewriter(LLVM::LLVMFuncOp kernel, Value thread, const AbiTypes &types)
      : kernel(kernel), thread(thread), types(types), layout(DataLayout::closest(kernel)) {}

  /// Rewrites every operation; fails (with a diagnostic at the operation) on
  /// one the emulator does not support.
  LogicalResult run() {
    SmallVector<Operation *> operations;
    kernel.walk([&](Operation *op) { operations.push_back(op); });
    for (Operation *op : operations)
      if (failed(rewrite(op)))
        return failure();
    return success();
  }

private:
  LogicalResult rewrite(Operation *op) {
    if (auto load = dyn_cast<LLVM::LoadOp>(op))
      return reportSharedAccess(op, load.getAddr(), load.getType(), DECAY_SIMT_READ);
    if (auto store = dyn_cast<LLVM::StoreOp>(op))
      return reportSharedAccess(op, store.getAddr(), store.getValue().getType(), DECAY_SIMT_WRITE);
    if (auto atomic = dyn_cast<LLVM::AtomicRMWOp>(op))
      return reportSharedAccess(op, atomic.getPtr(), atomic.getVal().getType(), DECAY_SIMT_ATOMIC);
    if (auto exchange = dyn_cast<LLVM::AtomicCmpXchgOp>(op))
      return reportSharedAccess(op, exchange.getPtr(), exchange.getVal().getType(),
                                DECAY_SIMT_ATOMIC);
    if (auto cast = dyn_cast<LLVM::AddrSpaceCastOp>(op))
      return checkAddressSpaceCast(cast);
    if (auto address = dyn_cast<LLVM::AddressOfOp>(op))
      return replaceSharedAddress(address);
    if (op->getDialect() && isa<NVVM::NVVMDialect>(op->getDialect()))
      return rewriteNvvm(op);
    if (isa<LLVM::InlineAsmOp>(op))
      return op->emitError("the SIMT emulator does not support inline assembly");
    return checkSharedOperands(op);
  }

  LogicalResult rewriteNvvm(Operation *op) {
    OpBuilder b(op);
    Location loc = op->getLoc();
    auto replaceWithField = [&](int field, int element) {
      op->getResult(0).replaceAllUsesWith(readField(b, loc, field, element));
      op->erase();
      return success();
    };
    // Special registers: the thread's record.
    if (isa<NVVM::ThreadIdXOp, NVVM::ThreadIdYOp, NVVM::ThreadIdZOp>(op))
      return replaceWithField(DECAY_SIMT_FIELD_TID, axisOf<NVVM::ThreadIdXOp, NVVM::ThreadIdYOp>(op));
    if (isa<NVVM::BlockDimXOp, NVVM::BlockDimYOp, NVVM::BlockDimZOp>(op))
      return replaceWithField(DECAY_SIMT_FIELD_NTID, axisOf<NVVM::BlockDimXOp, NVVM::BlockDimYOp>(op));
    if (isa<NVVM::BlockIdXOp, NVVM::BlockIdYOp, NVVM::BlockIdZOp>(op))
      return replaceWithField(DECAY_SIMT_FIELD_CTAID, axisOf<NVVM::BlockIdXOp, NVVM::BlockIdYOp>(op));
    if (isa<NVVM::GridDimXOp, NVVM::GridDimYOp, NVVM::GridDimZOp>(op))
      return replaceWithField(DECAY_SIMT_FIELD_NCTAID, axisOf<NVVM::GridDimXOp, NVVM::GridDimYOp>(op));
    if (isa<NVVM::LaneIdOp>(op))
      return replaceWithField(DECAY_SIMT_FIELD_LANE, -1);
    if (isa<NVVM::WarpSizeOp>(op)) {
      op->getResult(0).replaceAllUsesWith(constant(b, loc, 32));
      op->erase();
      return success();
    }
    if (isa<NVVM::RcpApproxFtzF32Op>(op))
      return rewriteReciprocal(op);
    if (isa<NVVM::Barrier0Op>(op)) {
      callOperation(b, loc, DECAY_SIMT_OP_BARRIER, types.voidType, {});
      op->erase();
      return success();
    }
    if (auto mma = dyn_cast<NVVM::MmaOp>(op))
      return rewriteMma(mma);
    if (auto shuffle = dyn_cast<NVVM::ShflOp>(op))
      return rewriteShuffle(shuffle);
    if (auto copy = dyn_cast<NVVM::CpAsyncOp>(op))
      return rewriteCopy(copy);
    if (isa<NVVM::CpAsyncCommitGroupOp>(op)) {
      callOperation(b, loc, DECAY_SIMT_OP_CP_ASYNC_COMMIT, types.voidType, {});
      op->erase();
      return success();
    }
    if (auto wait = dyn_cast<NVVM::CpAsyncWaitGroupOp>(op)) {
      callOperation(b, loc, DECAY_SIMT_OP_CP_ASYNC_WAIT, types.voidType,
                    {constant(b, loc, wait.getN())});
      op->erase();
      return success();
    }
    return op->emitError() << "the SIMT emulator does not support '" << op->getName() << "'";
  }

  /// rcp.approx.ftz.f32: 1 / x in f32 (within the instruction's 1 ulp),
  /// subnormal inputs and results flushed to zero of the same sign.
  LogicalResult rewriteReciprocal(Operation *op) {
    OpBuilder b(op);
    Location loc = op->getLoc();
    Value one = LLVM::ConstantOp::create(b, loc, types.f32, b.getF32FloatAttr(1.0f));
    Value reciprocal = LLVM::FDivOp::create(b, loc, one, flushSubnormal(b, loc, op->getOperand(0)));
    op->getResult(0).replaceAllUsesWith(flushSubnormal(b, loc, reciprocal));
    op->erase();
    return success();
  }

  /// x, or a zero of its sign when x is subnormal (PTX's .ftz).
  Value flushSubnormal(OpBuilder &b, Location loc, Value x) {
    Value magnitude = LLVM::FAbsOp::create(b, loc, x);
    Value smallest = LLVM::ConstantOp::create(b, loc, types.f32,
                                              b.getF32FloatAttr(std::numeric_limits<float>::min()));
    Value subnormal = LLVM::FCmpOp::create(b, loc, LLVM::FCmpPredicate::olt, magnitude, smallest);
    Value zero = LLVM::ConstantOp::create(b, loc, types.f32, b.getF32FloatAttr(0.0f));
    Value signedZero = LLVM::CopySignOp::create(b, loc, zero, x);
    return LLVM::SelectOp::create(b, loc, subnormal, signedZero, x);
  }

  /// 0, 1 or 2 for the x, y or z form of a special register.
  template <typename X, typename Y> static int axisOf(Operation *op) {
    return isa<X>(op) ? 0 : isa<Y>(op) ? 1 : 2;
  }

  /// mma.sync m16n8k8 row.col f32 += tf32 x tf32: the emulator's call, its
  /// four results read back from a stack slot.
  LogicalResult rewriteMma(NVVM::MmaOp mma) {
    NVVM::MMAShapeAttr shape = mma.getShape();
    auto typeA = mma.getMultiplicandAPtxType(), typeB = mma.getMultiplicandBPtxType();
    auto result = dyn_cast<LLVM::LLVMStructType>(mma.getRes().getType());
    bool supported = shape.getM() == 16 && shape.getN() == 8 && shape.getK() == 8 &&
                     mma.getLayoutA() == NVVM::MMALayout::row &&
                     mma.getLayoutB() == NVVM::MMALayout::col && typeA == NVVM::MMATypes::tf32 &&
                     typeB == NVVM::MMATypes::tf32 && mma.getOperandA().size() == 4 &&
                     mma.getOperandB().size() == 2 && mma.getOperandC().size() == 4 && result &&
                     result.getBody().size() == 4 &&
                     llvm::all_of(result.getBody(), [](Type t) { return t.isF32(); });
    if (!supported)
      return mma.emitError("the SIMT emulator supports mma.sync only as m16n8k8 row.col with "
                           "tf32 operands and f32 accumulators");
    OpBuilder b(mma);
    Location loc = mma.getLoc();
    Value slot = stackSlot(LLVM::LLVMArrayType::get(types.f32, 4));
    SmallVector<Value> arguments(mma.getOperandA());
    llvm::append_range(arguments, mma.getOperandB());
    llvm::append_range(arguments, mma.getOperandC());
    arguments.push_back(slot);
    callOperation(b, loc, DECAY_SIMT_OP_MMA_M16N8K8_TF32, types.voidType, arguments);
    Value value = LLVM::PoisonOp::create(b, loc, result);
    for (int64_t i = 0; i < 4; ++i) {
      Value address = LLVM::GEPOp::create(b, loc, types.ptr, types.f32, slot,
                                          ArrayRef<LLVM::GEPArg>{static_cast<int32_t>(i)});
      Value element = LLVM::LoadOp::create(b, loc, types.f32, address);
      value = LLVM::InsertValueOp::create(b, loc, value, element, ArrayRef<int64_t>{i});
    }
    mma.getRes().replaceAllUsesWith(value);
    mma.erase();
    return success();
  }

  /// shfl.sync on an i32 or f32 value, optionally with its validity predicate.
  LogicalResult rewriteShuffle(NVVM::ShflOp shuffle) {
    Type valueType = shuffle.getVal().getType();
    if (!valueType.isInteger(32) && !valueType.isF32())
      return shuffle.emitError("the SIMT emulator shuffles only 32-bit values");
    OpBuilder b(shuffle);
    Location loc = shuffle.getLoc();
    int mode = 0;
    switch (shuffle.getKind()) {
    case NVVM::ShflKind::up:
      mode = DECAY_SIMT_SHUFFLE_UP;
      break;
    case NVVM::ShflKind::down:
      mode = DECAY_SIMT_SHUFFLE_DOWN;
      break;
    case NVVM::ShflKind::bfly:
      mode = DECAY_SIMT_SHUFFLE_BFLY;
      break;
    case NVVM::ShflKind::idx:
      mode = DECAY_SIMT_SHUFFLE_IDX;
      break;
    }
    Value bits = shuffle.getVal();
    if (valueType.isF32())
      bits = LLVM::BitcastOp::create(b, loc, types.i32, bits);
    Value valid = stackSlot(types.i8);
    Value read = callOperation(b, loc, DECAY_SIMT_OP_SHUFFLE, types.i32,
                               {constant(b, loc, mode), shuffle.getThreadMask(), bits,
                                shuffle.getOffset(), shuffle.getMaskAndClamp(), valid});
    Value value = valueType.isF32() ? LLVM::BitcastOp::create(b, loc, types.f32, read) : read;
    Value replacement = value;
    if (shuffle.getReturnValueAndIsValid()) {
      Value flag = LLVM::LoadOp::create(b, loc, types.i8, valid);
      Value predicate = LLVM::TruncOp::create(b, loc, b.getI1Type(), flag);
      replacement = LLVM::PoisonOp::create(b, loc, shuffle.getRes().getType());
      replacement = LLVM::InsertValueOp::create(b, loc, replacement, value, ArrayRef<int64_t>{0});
      replacement = LLVM::InsertValueOp::create(b, loc, replacement, predicate, ArrayRef<int64_t>{1});
    }
    shuffle.getRes().replaceAllUsesWith(replacement);
    shuffle.erase();
    return success();
  }

  /// cp.async of `size` bytes, of which `cpSize` (when given) come from the source.
  LogicalResult rewriteCopy(NVVM::CpAsyncOp copy) {
    OpBuilder b(copy);
    Location loc = copy.getLoc();
    Value bytes = constant(b, loc, copy.getSize());
    Value sourceBytes = copy.getCpSize() ? copy.getCpSize() : bytes;
    callOperation(b, loc, DECAY_SIMT_OP_CP_ASYNC, types.voidType,
                  {toGeneric(b, loc, copy.getDst()), toGeneric(b, loc, copy.getSrc()), bytes,
                   sourceBytes});
    copy.erase();
    return success();
  }

  /// Reports a load, store or atomic on shared memory to the emulator first.
  LogicalResult reportSharedAccess(Operation *op, Value address, Type accessed, int kind) {
    if (!isSharedPointer(address.getType()))
      return success();
    OpBuilder b(op);
    Location loc = op->getLoc();
    auto bytes = static_cast<int64_t>(layout.getTypeSize(accessed).getFixedValue());
    callOperation(b, loc, DECAY_SIMT_OP_SHARED_ACCESS, types.voidType,
                  {toGeneric(b, loc, address), constant(b, loc, bytes), constant(b, loc, kind)});
    return success();
  }

  /// The dynamic shared memory (an external array in address space 3)
  /// becomes the block's buffer; any other shared global is unsupported.
  LogicalResult replaceSharedAddress(LLVM::AddressOfOp address) {
    if (!isSharedPointer(address.getType()))
      return success();
    auto global = SymbolTable::lookupNearestSymbolFrom<LLVM::GlobalOp>(
        address, address.getGlobalNameAttr());
    auto array = global ? dyn_cast<LLVM::LLVMArrayType>(global.getGlobalType()) : nullptr;
    if (!array || array.getNumElements() != 0 || global.getLinkage() != LLVM::Linkage::External)
      return address.emitError("the SIMT emulator supports only dynamic shared memory (an "
                               "external zero-sized array in address space 3)");
    OpBuilder b(address);
    Location loc = address.getLoc();
    Value base = LLVM::LoadOp::create(b, loc, types.ptr, fieldAddress(b, loc, DECAY_SIMT_FIELD_SHARED, -1));
    address.getResult().replaceAllUsesWith(
        LLVM::AddrSpaceCastOp::create(b, loc, address.getType(), base));
    address.erase();
    return success();
  }

  /// A cast out of shared memory would let accesses escape the emulator's checks.
  LogicalResult checkAddressSpaceCast(LLVM::AddrSpaceCastOp cast) {
    if (isSharedPointer(cast.getArg().getType()))
      return cast.emitError("the SIMT emulator does not follow shared-memory pointers cast to "
                            "another address space");
    return success();
  }

  /// Operations that may carry a shared-memory pointer without accessing it.
  LogicalResult checkSharedOperands(Operation *op) {
    if (isa<LLVM::GEPOp, LLVM::SelectOp, LLVM::BrOp, LLVM::CondBrOp, LLVM::PtrToIntOp,
            LLVM::ICmpOp, LLVM::InsertValueOp, LLVM::ExtractValueOp, LLVM::ReturnOp>(op))
      return success();
    if (llvm::any_of(op->getOperandTypes(), isSharedPointer))
      return op->emitError() << "the SIMT emulator does not track shared memory used by '"
                             << op->getName() << "'";
    return success();
  }

  Value constant(OpBuilder &b, Location loc, int64_t value) {
    return LLVM::ConstantOp::create(b, loc, types.i32, b.getI32IntegerAttr(static_cast<int32_t>(value)));
  }

  Value toGeneric(OpBuilder &b, Location loc, Value pointer) {
    return LLVM::AddrSpaceCastOp::create(b, loc, types.ptr, pointer);
  }

  /// The address of a field of the thread's record (`element` >= 0: of one
  /// element of an x, y, z triple).
  Value fieldAddress(OpBuilder &b, Location loc, int field, int element) {
    SmallVector<LLVM::GEPArg> indices = {0, field};
    if (element >= 0)
      indices.push_back(element);
    return LLVM::GEPOp::create(b, loc, types.ptr, types.thread, thread, indices);
  }

  Value readField(OpBuilder &b, Location loc, int field, int element) {
    return LLVM::LoadOp::create(b, loc, types.i32, fieldAddress(b, loc, field, element));
  }

  /// Calls the operation `index` of the thread's table with the thread first.
  Value callOperation(OpBuilder &b, Location loc, int index, Type result, ValueRange arguments) {
    Value table = LLVM::LoadOp::create(b, loc, types.ptr, fieldAddress(b, loc, DECAY_SIMT_FIELD_OPS, -1));
    Value entry = LLVM::GEPOp::create(b, loc, types.ptr, types.ptr, table, ArrayRef<LLVM::GEPArg>{index});
    Value function = LLVM::LoadOp::create(b, loc, types.ptr, entry);
    SmallVector<Type> parameterTypes = {types.ptr};
    llvm::append_range(parameterTypes, arguments.getTypes());
    auto type = LLVM::LLVMFunctionType::get(result, parameterTypes);
    SmallVector<Value> operands = {function, thread};
    llvm::append_range(operands, arguments);
    auto call = LLVM::CallOp::create(b, loc, type, operands);
    return call.getNumResults() ? call.getResult() : Value();
  }

  /// A stack slot of `type` in the kernel's entry block, one per type.
  Value stackSlot(Type type) {
    Value &slot = slots[type];
    if (!slot) {
      OpBuilder b = OpBuilder::atBlockBegin(&kernel.getBody().front());
      Value one = LLVM::ConstantOp::create(b, kernel.getLoc(), b.getI64Type(), b.getI64IntegerAttr(1));
      slot = LLVM::AllocaOp::create(b, kernel.getLoc(), types.ptr, type, one);
    }
    return slot;
  }

  LLVM::LLVMFuncOp kernel;
  Value thread;
  const AbiTypes &types;
  DataLayout layout;
  llvm::DenseMap<Type, Value> slots;
};

struct DecayGpuToSimtPass : public decay::impl::DecayGpuToSimtPassBase<DecayGpuToSimtPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    AbiTypes types(&getContext());
    for (auto gpuModule : llvm::make_early_inc_range(module.getOps<gpu::GPUModuleOp>()))
      if (failed(convertModule(module, gpuModule, types)))
        return signalPassFailure();
    module->removeAttr(gpu::GPUDialect::getContainerModuleAttrName());
  }

  /// Rewrites the kernels of `gpuModule` and moves everything it defines
  /// into `module`, under names prefixed with the prefix and its own name.
  LogicalResult convertModule(ModuleOp module, gpu::GPUModuleOp gpuModule, const AbiTypes &types) {
    std::string prefix = symbolPrefix + gpuModule.getSymName().str() + "_";
    if (failed(useHostMath(gpuModule)))
      return failure();
    SmallVector<LLVM::LLVMFuncOp> kernels;
    for (auto function : gpuModule.getOps<LLVM::LLVMFuncOp>())
      if (function->hasAttr(NVVM::NVVMDialect::getKernelFuncAttrName()))
        kernels.push_back(function);
    for (LLVM::LLVMFuncOp kernel : kernels)
      if (failed(rewriteKernel(kernel, types)))
        return failure();
    // Dynamic shared memory is now the block's buffer.
    for (auto global : llvm::make_early_inc_range(gpuModule.getOps<LLVM::GlobalOp>()))
      if (global.getAddrSpace() == kSharedSpace && SymbolTable::symbolKnownUseEmpty(global, gpuModule))
        global.erase();
    SymbolTable hostSymbols(module);
    for (Operation &op : llvm::make_early_inc_range(gpuModule.getBody()->getOperations())) {
      auto symbol = dyn_cast<SymbolOpInterface>(&op);
      if (!symbol)
        continue;
      auto function = dyn_cast<LLVM::LLVMFuncOp>(&op);
      if (function && function.isExternal()) {
        // A declaration (the C library's math): one per host module.
        if (!hostSymbols.lookup(function.getName()))
          hostSymbols.insert(op.clone());
        continue;
      }
      bool isKernel = llvm::is_contained(kernels, function);
      std::string entryName = prefix + symbol.getName().str();
      std::string name = isKernel ? entryName + "_thread" : entryName;
      if (failed(SymbolTable::replaceAllSymbolUses(&op, StringAttr::get(&getContext(), name),
                                                   gpuModule)))
        return op.emitError("cannot rename a symbol of the GPU module");
      symbol.setName(name);
      op.moveBefore(module.getBody(), module.getBody()->end());
      if (isKernel)
        addEntryPoint(module, function, entryName, types);
    }
    gpuModule.erase();
    return success();
  }

  /// Points every libdevice call at the C library's function of the same
  /// meaning; fails on one without a host equivalent.
  LogicalResult useHostMath(gpu::GPUModuleOp gpuModule) {
    for (auto function : llvm::make_early_inc_range(gpuModule.getOps<LLVM::LLVMFuncOp>())) {
      StringRef name = function.getName();
      if (!function.isExternal() || !name.starts_with("__nv_"))
        continue;
      // __nv_fast_<f> is <f> at the approximate instructions' accuracy: the
      // C library's <f> is within it.
      StringRef host = name.drop_front(5);
      host.consume_front("fast_");
      if (!hostMathFunctions().contains(host))
        return function.emitError() << "the SIMT emulator has no host equivalent of '" << name << "'";
      bool declared = SymbolTable::lookupSymbolIn(gpuModule, host) != nullptr;
      if (failed(SymbolTable::replaceAllSymbolUses(function, StringAttr::get(&getContext(), host),
                                                   gpuModule)))
        return function.emitError("cannot redirect the calls of '") << name << "'";
      if (declared)
        function.erase();
      else
        function.setName(host);
    }
    return success();
  }

  /// Adds the thread's record as the kernel's first argument, rewrites its
  /// body and makes it internal (its entry point is the only way in).
  LogicalResult rewriteKernel(LLVM::LLVMFuncOp kernel, const AbiTypes &types) {
    if (kernel.isExternal())
      return kernel.emitError("a kernel without a body");
    if (kernel.getArgAttrs() || kernel.getFunctionType().isVarArg())
      return kernel.emitError("the SIMT emulator takes kernels without argument attributes or "
                              "variadic arguments");
    SmallVector<Type> parameters = {types.ptr};
    llvm::append_range(parameters, kernel.getFunctionType().getParams());
    kernel.setFunctionType(LLVM::LLVMFunctionType::get(types.voidType, parameters));
    kernel.getBody().front().insertArgument(0u, types.ptr, kernel.getLoc());
    KernelRewriter rewriter(kernel, kernel.getArgument(0), types);
    if (failed(rewriter.run()))
      return failure();
    kernel->removeAttr(NVVM::NVVMDialect::getKernelFuncAttrName());
    kernel->removeAttr(gpu::GPUDialect::getKernelFuncAttrName());
    kernel.setLinkage(LLVM::Linkage::Internal);
    return success();
  }

  /// `void <symbol>(ptr thread, ptr parameters)`: reads each parameter from
  /// parameters[i] (a pointer to its value) and calls the kernel's body.
  void addEntryPoint(ModuleOp module, LLVM::LLVMFuncOp body, const std::string &symbol,
                     const AbiTypes &types) {
    OpBuilder b = OpBuilder::atBlockEnd(module.getBody());
    Location loc = body.getLoc();
    auto type = LLVM::LLVMFunctionType::get(types.voidType, {types.ptr, types.ptr});
    auto entry = LLVM::LLVMFuncOp::create(b, loc, symbol, type);
    Block *block = entry.addEntryBlock(b);
    b.setInsertionPointToStart(block);
    SmallVector<Value> arguments = {block->getArgument(0)};
    for (auto [i, parameterType] : llvm::enumerate(body.getArgumentTypes().drop_front())) {
      Value slot = LLVM::GEPOp::create(b, loc, types.ptr, types.ptr, block->getArgument(1),
                                       ArrayRef<LLVM::GEPArg>{static_cast<int32_t>(i)});
      Value address = LLVM::LoadOp::create(b, loc, types.ptr, slot);
      arguments.push_back(LLVM::LoadOp::create(b, loc, parameterType, address));
    }
    LLVM::CallOp::create(b, loc, body, arguments);
    LLVM::ReturnOp::create(b, loc, ValueRange());
  }
};
} // namespace

// Shared pieces of the GPU kernels of a recurrence: gpu.func creation on raw device pointers, threads, shared memory.
#include "GpuKernelEmitter.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"

using namespace mlir;
using namespace decay;

GpuKernelEmitter::GpuKernelEmitter(RecurrenceOp spec, const GpuShape &shape, ImplicitLocOpBuilder &b)
    : RecurrenceEmitter(spec, b, b.getF32Type()), shape(shape) {
  reassociateSums = true;
}

ArrayRef<StringRef> GpuKernelEmitter::sizeParameters() {
  static const StringRef names[] = {"B", "T", "H", "N"};
  return names;
}

Value GpuKernelEmitter::wrapPointer(Value pointer, MemRefType type, ArrayRef<Value> sizes, Value offset) {
  MLIRContext *context = b.getContext();
  int64_t rank = type.getRank();
  Type i64 = b.getI64Type();
  auto array = LLVM::LLVMArrayType::get(i64, rank);
  auto descriptorType = LLVM::LLVMStructType::getLiteral(
      context, {pointer.getType(), pointer.getType(), i64, array, array});
  // The buffer starts `offset` elements into the pointer's memory. The
  // pointer itself is advanced: an identity-layout memref's accesses ignore
  // the descriptor's offset field (its offset is statically 0).
  Value start = LLVM::GEPOp::create(b, pointer.getType(), type.getElementType(), pointer,
                                    ValueRange{offset});
  Value descriptor = LLVM::PoisonOp::create(b, descriptorType);
  descriptor = LLVM::InsertValueOp::create(b, descriptor, start, ArrayRef<int64_t>{0});
  descriptor = LLVM::InsertValueOp::create(b, descriptor, start, ArrayRef<int64_t>{1});
  descriptor = LLVM::InsertValueOp::create(b, descriptor,
                                           LLVM::ConstantOp::create(b, i64, b.getI64IntegerAttr(0)),
                                           ArrayRef<int64_t>{2});
  Value stride = LLVM::ConstantOp::create(b, i64, b.getI64IntegerAttr(1));
  for (int64_t d = rank - 1; d >= 0; --d) {
    descriptor = LLVM::InsertValueOp::create(b, descriptor, sizes[d], ArrayRef<int64_t>{3, d});
    descriptor = LLVM::InsertValueOp::create(b, descriptor, stride, ArrayRef<int64_t>{4, d});
    stride = LLVM::MulOp::create(b, stride, sizes[d]);
  }
  // The memref-to-LLVM conversion meets this cast with its own and folds both.
  return UnrealizedConversionCastOp::create(b, type, descriptor).getResult(0);
}

ArrayRef<StringRef> GpuKernelEmitter::stepSizeParameters() {
  static const StringRef names[] = {"B", "T", "H", "S"};
  return names;
}

gpu::GPUFuncOp GpuKernelEmitter::openKernel(StringRef name, int64_t threads, ArrayRef<Type> tensorTypes,
                                            ArrayRef<std::string> tensorDims, bool withWorkspace,
                                            ArrayRef<StringRef> sizeNames, SmallVectorImpl<Value> &tensors) {
  Type pointer = LLVM::LLVMPointerType::get(b.getContext());
  SmallVector<Type> parameters(tensorTypes.size(), pointer);
  if (withWorkspace)
    parameters.push_back(pointer);
  parameters.append(sizeNames.size(), b.getI64Type());
  auto fn = gpu::GPUFuncOp::create(b, name, b.getFunctionType(parameters, {}));
  fn->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  // Not known_block_size: its .maxntid makes ptxas trade registers for
  // occupancy, down to spilling (seen at sm_80).
  fn->setAttr("decay.threads", b.getI64IntegerAttr(threads));
  Block &entry = fn.getBody().front();
  b.setInsertionPointToStart(&entry);
  gpu::ReturnOp::create(b);
  b.setInsertionPointToStart(&entry);

  ValueRange sizeArgs = entry.getArguments().take_back(sizeNames.size());
  sizeValues.clear();
  for (auto [sizeName, value] : llvm::zip(sizeNames, sizeArgs))
    sizeValues[sizeName] = value;
  Type i64 = b.getI64Type();
  auto constant = [&](int64_t value) {
    return LLVM::ConstantOp::create(b, i64, b.getI64IntegerAttr(value)).getResult();
  };
  auto sizeOf = [&](char dim) {
    if (Value size = sizeValues.lookup(StringRef(&dim, 1)))
      return size;
    return constant(dim == 'K' ? shape.keyDim : dim == 'V' ? shape.valueDim : 3);
  };
  for (auto [i, type] : llvm::enumerate(tensorTypes)) {
    SmallVector<Value> sizes;
    for (char dim : tensorDims[i])
      sizes.push_back(sizeOf(dim));
    tensors.push_back(wrapPointer(entry.getArgument(i), cast<MemRefType>(type), sizes, constant(0)));
  }
  return fn;
}

void GpuKernelEmitter::bindKernelSizes(Value q, Value v) {
  auto toIndex = [&](Value x) { return arith::IndexCastOp::create(b, b.getIndexType(), x).getResult(); };
  sizeB = toIndex(sizeValues.lookup("B")), sizeT = toIndex(sizeValues.lookup("T"));
  if (Value n = sizeValues.lookup("N")) // a step kernel has S (state slots) instead
    sizeN = toIndex(n);
  bindSizes(q, v);
  numHeads = toIndex(sizeValues.lookup("H"));
  keyDim = index(shape.keyDim);
  valueDim = index(shape.valueDim);
  auto sharedType = MemRefType::get({ShapedType::kDynamic}, b.getI8Type(), MemRefLayoutAttrInterface{},
                                    gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup));
  dynamicShared = gpu::DynamicSharedMemoryOp::create(b, sharedType);
  sharedOffset = 0;
}

gpu::GPUFuncOp GpuKernelEmitter::createStepKernel(StringRef name, int64_t threads, StepArgs &args) {
  SmallVector<Value> tensors;
  SmallVector<Type> types = stepArgumentTypes();
  SmallVector<std::string> dims = stepArgumentDims();
  gpu::GPUFuncOp fn = openKernel(name, threads, types, dims, /*withWorkspace=*/false,
                                 stepSizeParameters(), tensors);
  bindStepArguments(tensors, args);
  workspaceBuffers.clear();
  bindKernelSizes(args.q, args.v);
  return fn;
}

gpu::GPUFuncOp GpuKernelEmitter::createKernel(StringRef name, bool backward, int64_t threads,
                                              ArrayRef<WorkspaceBuffer> workspace,
                                              RecurrenceArgs &args,
                                              SmallVectorImpl<Value> &workspaceMemrefs) {
  SmallVector<Type> tensorTypes = argumentTypes(backward);
  SmallVector<std::string> tensorDims = argumentDims(backward);
  SmallVector<Value> tensors;
  gpu::GPUFuncOp fn = openKernel(name, threads, tensorTypes, tensorDims, !workspace.empty(),
                                 sizeParameters(), tensors);
  bindArguments(tensors, backward, args);
  Block &entry = fn.getBody().front();
  Value b64 = sizeValues.lookup("B"), t64 = sizeValues.lookup("T"), h64 = sizeValues.lookup("H"),
        n64 = sizeValues.lookup("N");
  Type i64 = b.getI64Type();
  auto constant = [&](int64_t value) {
    return LLVM::ConstantOp::create(b, i64, b.getI64IntegerAttr(value)).getResult();
  };
  Value zero = constant(0), one = constant(1), chunk = constant(shape.chunkSize);
  // Slots of per-chunk buffers: B (ceil(T / C) + 2) + N.
  Value chunksPerRow = LLVM::SDivOp::create(b, LLVM::AddOp::create(b, t64, LLVM::SubOp::create(b, chunk, one)), chunk);
  Value slots = LLVM::AddOp::create(b, LLVM::MulOp::create(b, b64, LLVM::AddOp::create(b, chunksPerRow, constant(2))), n64);
  // The workspace holds two regions of records: per (token, head) the rows
  // of every per-token buffer side by side, then per (slot, head) those of
  // every per-slot buffer. A buffer is a column range of its region, so all
  // buffers share the region's base pointer and strides (each a pointer of
  // its own cost the chunk kernels registers they do not have).
  int64_t tokenRows = 0, slotRows = 0;
  for (const WorkspaceBuffer &buffer : workspace)
    (buffer.perSlot ? slotRows : tokenRows) += buffer.rows;
  auto toIndex = [&](Value x) { return arith::IndexCastOp::create(b, b.getIndexType(), x).getResult(); };
  Value base = workspace.empty() ? Value() : entry.getArgument(tensorTypes.size());
  SmallVector<Value> tokenSizes = {b64, t64, h64, constant(tokenRows)};
  SmallVector<Value> slotSizes = {slots, h64, constant(slotRows)};
  Value slotStart = LLVM::MulOp::create(b, LLVM::MulOp::create(b, b64, t64),
                                        LLVM::MulOp::create(b, h64, tokenSizes.back()));
  Value tokenRecords = base ? wrapPointer(base, dynamicMemRef(4), tokenSizes, zero) : Value();
  Value slotRecords = base ? wrapPointer(base, dynamicMemRef(3), slotSizes, slotStart) : Value();
  int64_t tokenColumn = 0, slotColumn = 0;
  workspaceBuffers.clear();
  for (const WorkspaceBuffer &buffer : workspace) {
    Value records = buffer.perSlot ? slotRecords : tokenRecords;
    int64_t &column = buffer.perSlot ? slotColumn : tokenColumn;
    ArrayRef<Value> regionSizes = buffer.perSlot ? slotSizes : tokenSizes;
    SmallVector<OpFoldResult> offsets(regionSizes.size(), b.getIndexAttr(0));
    SmallVector<OpFoldResult> sizes, strides(regionSizes.size(), b.getIndexAttr(1));
    for (Value size : regionSizes.drop_back())
      sizes.push_back(toIndex(size));
    offsets.back() = b.getIndexAttr(column);
    sizes.push_back(b.getIndexAttr(buffer.rows));
    Value memref = memref::SubViewOp::create(b, records, offsets, sizes, strides);
    column += buffer.rows;
    workspaceMemrefs.push_back(memref);
    workspaceBuffers[buffer.name] = memref;
  }
  bindKernelSizes(args.q, args.v);
  return fn;
}

Value GpuKernelEmitter::threadIndex() { return gpu::ThreadIdOp::create(b, gpu::Dimension::x); }

Value GpuKernelEmitter::blockIndex(gpu::Dimension dimension) { return gpu::BlockIdOp::create(b, dimension); }

void GpuKernelEmitter::barrier() {
  if (barriersEmitted++ != shape.omittedBarrier)
    gpu::BarrierOp::create(b);
}

Value GpuKernelEmitter::sharedBuffer(ArrayRef<int64_t> bufferShape) {
  auto type = MemRefType::get(bufferShape, b.getF32Type(), MemRefLayoutAttrInterface{},
                              gpu::AddressSpaceAttr::get(b.getContext(), gpu::AddressSpace::Workgroup));
  int64_t bytes = 4;
  for (int64_t extent : bufferShape)
    bytes *= extent;
  Value view = memref::ViewOp::create(b, type, dynamicShared, index(sharedOffset), ValueRange{});
  sharedOffset += (bytes + 15) / 16 * 16;
  return view;
}

void GpuKernelEmitter::when(Value condition, function_ref<void()> body) {
  auto ifOp = scf::IfOp::create(b, condition, /*withElseRegion=*/false);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(ifOp.thenBlock());
  body();
}

void GpuKernelEmitter::strided(Value first, Value end, int64_t threads, function_ref<void(Value)> body) {
  auto forOp = scf::ForOp::create(b, arith::AddIOp::create(b, first, threadIndex()), end, index(threads));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToStart(forOp.getBody());
  body(forOp.getInductionVar());
}

Value GpuKernelEmitter::lessThan(Value x, Value y) {
  return arith::CmpIOp::create(b, arith::CmpIPredicate::slt, x, y);
}

// The decay-expand-gpu-kernels pass: a recurrence becomes its GPU kernels, one gpu.module per head dim.
#include "GpuKernelEmitter.h"

#include "decay/Conversion/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/NVGPU/IR/NVGPUDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

namespace decay {
#define GEN_PASS_DEF_DECAYEXPANDGPUKERNELSPASS
#include "decay/Conversion/Passes.h.inc"
} // namespace decay

using namespace mlir;
using namespace decay;

namespace {
struct DecayExpandGpuKernelsPass
    : public decay::impl::DecayExpandGpuKernelsPassBase<DecayExpandGpuKernelsPass> {
  using Base::Base;

  /// Why `spec` cannot be compiled at head dim `dim`, or "".
  std::string unsupported(RecurrenceOp spec, int64_t dim) {
    if (dim < 64 || dim % 64 != 0 || dim > 128)
      return "head dim " + std::to_string(dim) + " is not supported (64 or 128)";
    if (auto fixed = spec.getKeyDim(); fixed && static_cast<int64_t>(*fixed) != dim)
      return "the spec fixes K = " + std::to_string(*fixed);
    if (auto fixed = spec.getValueDim(); fixed && static_cast<int64_t>(*fixed) != dim)
      return "the spec fixes V = " + std::to_string(*fixed);
    return "";
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (chunkSize != 32) {
      module.emitError() << "decay-expand-gpu-kernels: chunk-size must be 32 (two 16-token "
                            "sub-blocks per chunk), got "
                         << static_cast<int64_t>(chunkSize);
      return signalPassFailure();
    }
    SmallVector<int64_t> dims(headDims.begin(), headDims.end());
    if (dims.empty())
      dims = {64, 128};
    SmallVector<RecurrenceOp> specs(module.getOps<RecurrenceOp>());
    llvm::StringMap<AdjointOp> adjoints;
    for (AdjointOp adjoint : module.getOps<AdjointOp>())
      adjoints[adjoint.getRecurrence()] = adjoint;
    Builder attrs(module.getContext());
    for (RecurrenceOp spec : specs) {
      if (!dtype.empty() && failed(spec.setDtypeByName(dtype))) {
        module.emitError() << "decay-expand-gpu-kernels: dtype must be f32 or bf16, got '" << dtype << "'";
        return signalPassFailure();
      }
      for (int64_t dim : dims) {
        if (std::string why = unsupported(spec, dim); !why.empty()) {
          spec.emitOpError() << "cannot be compiled for the GPU: " << why;
          return signalPassFailure();
        }
        GpuShape shape;
        shape.keyDim = shape.valueDim = dim;
        shape.chunkSize = chunkSize;
        shape.omittedBarrier = testOmitBarrier;
        AdjointOp adjoint = adjoints.lookup(spec.getSymName());
        if (backward && !adjoint && spec.getGranularity() != Granularity::none) {
          spec.emitOpError() << "has no decay.adjoint: run decay-derive-gradients before "
                                "decay-expand-gpu-kernels{backward=true}";
          return signalPassFailure();
        }
        for (StringRef entry : {"forward", "backward", "step"}) {
          if ((entry == "backward" && !backward) || (entry == "step" && !step))
            continue;
          OpBuilder builder(spec);
          std::string name = (spec.getSymName() + "_" + entry + "_k" + Twine(dim) + "_v" + Twine(dim)).str();
          auto gpuModule = gpu::GPUModuleOp::create(builder, spec.getLoc(), name);
          SmallVector<WorkspaceBuffer> workspace =
              entry == "forward"    ? buildGpuForward(spec, shape, gpuModule)
              : entry == "backward" ? buildGpuBackward(spec, adjoint, shape, gpuModule)
                                    : buildGpuStep(spec, shape, gpuModule);
          SmallVector<Attribute> buffers;
          for (const WorkspaceBuffer &buffer : workspace)
            buffers.push_back(attrs.getDictionaryAttr(
                {attrs.getNamedAttr("name", attrs.getStringAttr(buffer.name)),
                 attrs.getNamedAttr("rows", attrs.getI64IntegerAttr(buffer.rows)),
                 attrs.getNamedAttr("per_slot", attrs.getBoolAttr(buffer.perSlot))}));
          gpuModule->setAttr("decay.entry", attrs.getStringAttr(entry));
          gpuModule->setAttr("decay.key_dim", attrs.getI64IntegerAttr(dim));
          gpuModule->setAttr("decay.value_dim", attrs.getI64IntegerAttr(dim));
          gpuModule->setAttr("decay.chunk_size", attrs.getI64IntegerAttr(chunkSize));
          gpuModule->setAttr("decay.workspace", attrs.getArrayAttr(buffers));
        }
      }
    }
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(), attrs.getUnitAttr());
    for (auto &entry : adjoints)
      entry.second.erase();
    for (RecurrenceOp spec : specs)
      spec.erase();
  }
};
} // namespace

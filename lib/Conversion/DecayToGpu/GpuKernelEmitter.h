// Shared pieces of the GPU kernels of a recurrence: gpu.func creation on raw device pointers, threads, shared memory.
#ifndef DECAY_CONVERSION_DECAYTOGPU_GPUKERNELEMITTER_H
#define DECAY_CONVERSION_DECAYTOGPU_GPUKERNELEMITTER_H

#include "decay/Conversion/RecurrenceEmitter.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"

#include "llvm/ADT/StringMap.h"

namespace decay {

/// The shape of one GPU module: the head dims it is specialized for and the
/// tokens per chunk of its chunk kernels.
struct GpuShape {
  int64_t keyDim = 128, valueDim = 128;
  int64_t chunkSize = 32;
  int64_t valueTile = 64; ///< value columns per block of the chunk kernels
  /// Tests of the SIMT emulator only: the barrier (by emission order within
  /// each kernel) to leave out, making a deliberately racy kernel; -1: none.
  int64_t omittedBarrier = -1;
};

/// A buffer of the workspace that the launches of one entry share, one after
/// the other: `rows` f32 per token ([B, T, H, rows]), or with `perSlot` per
/// chunk slot ([slots, H, rows], see GpuChunkEmitter::slotOf).
struct WorkspaceBuffer {
  std::string name;
  int64_t rows;
  bool perSlot = false;
};

/// Emits GPU kernels in f32 on memrefs. A kernel's parameters are raw device
/// pointers (one per tensor of the entry's signature, as decay-lower-to-
/// reference orders them, then the workspace) and the sizes B, T, H, N as
/// i64 (docs/package.md, "GPU kernels"); inside, each pointer is wrapped as a
/// memref of its tensor's shape, so that the emitter's loads and stores,
/// regions, feature maps and RoPE work unchanged.
class GpuKernelEmitter : public RecurrenceEmitter {
public:
  GpuKernelEmitter(RecurrenceOp spec, const GpuShape &shape, mlir::ImplicitLocOpBuilder &b);

  /// The names of the size parameters after the pointers, in order.
  static llvm::ArrayRef<llvm::StringRef> sizeParameters();
  /// Those of a step kernel: B, T, H and S (the state slots).
  static llvm::ArrayRef<llvm::StringRef> stepSizeParameters();

protected:
  /// Creates `gpu.func @name kernel` at the builder's insertion point (in a
  /// gpu.module) with the entry's signature, `threads` threads per block,
  /// binds `args`, the spec's tensors, the sizes and `workspace` (one memref
  /// [B, T, H, rows] per buffer), and leaves the builder in its body.
  mlir::gpu::GPUFuncOp createKernel(llvm::StringRef name, bool backward, int64_t threads,
                                    llvm::ArrayRef<WorkspaceBuffer> workspace,
                                    RecurrenceArgs &args,
                                    llvm::SmallVectorImpl<mlir::Value> &workspaceMemrefs);
  /// Creates `gpu.func @name kernel` with the step's signature (raw
  /// pointers, then B, T, H, S as i64), `threads` threads per block, binds
  /// `args`, the spec's tensors and the sizes, and leaves the builder in its body.
  mlir::gpu::GPUFuncOp createStepKernel(llvm::StringRef name, int64_t threads, StepArgs &args);
  /// A memref of `type` over the memory at `pointer` + `offset` elements,
  /// row-major with the given sizes (i64 values).
  mlir::Value wrapPointer(mlir::Value pointer, mlir::MemRefType type, llvm::ArrayRef<mlir::Value> sizes,
                          mlir::Value offset);
  /// Thread and block indices (index values).
  mlir::Value threadIndex();
  mlir::Value blockIndex(mlir::gpu::Dimension dimension);
  void barrier();
  /// A row-major f32 buffer of `shape` in the block's dynamic shared memory,
  /// after the ones carved before; sharedBytes() is their total.
  mlir::Value sharedBuffer(llvm::ArrayRef<int64_t> shape);
  int64_t sharedBytes() const { return sharedOffset; }
  /// `body` runs only in the threads where `condition` holds.
  void when(mlir::Value condition, llvm::function_ref<void()> body);
  /// `for i = first + thread; i < end; i += threads`: the block's threads share the range.
  void strided(mlir::Value first, mlir::Value end, int64_t threads,
               llvm::function_ref<void(mlir::Value)> body);
  mlir::Value lessThan(mlir::Value x, mlir::Value y);
  /// The workspace buffer `name` of the kernel.
  mlir::Value workspace(llvm::StringRef name) const { return workspaceBuffers.lookup(name); }

  GpuShape shape;
  int64_t barriersEmitted = 0; ///< by barrier(), for GpuShape::omittedBarrier
  mlir::Value sizeB, sizeT, sizeN; ///< index values of the size parameters (H is numHeads)

private:
  /// Creates the kernel: one pointer per tensor (`tensorTypes`, `tensorDims`),
  /// the workspace pointer when `withWorkspace`, the i64 sizes `sizeNames`;
  /// each tensor's pointer wrapped as a memref into `tensors`. Leaves the
  /// builder in the body.
  mlir::gpu::GPUFuncOp openKernel(llvm::StringRef name, int64_t threads,
                                  llvm::ArrayRef<mlir::Type> tensorTypes,
                                  llvm::ArrayRef<std::string> tensorDims, bool withWorkspace,
                                  llvm::ArrayRef<llvm::StringRef> sizeNames,
                                  llvm::SmallVectorImpl<mlir::Value> &tensors);
  /// Binds the sizes (index values, H, K, V, the scale) and the dynamic
  /// shared memory, from the size parameters and q, v.
  void bindKernelSizes(mlir::Value q, mlir::Value v);

  llvm::StringMap<mlir::Value> sizeValues; ///< the size parameters (i64) by name
  llvm::StringMap<mlir::Value> workspaceBuffers;
  mlir::Value dynamicShared;
  int64_t sharedOffset = 0;
};

/// Creates the backward's GPU kernels for `spec` (with its `adjoint`) at
/// `shape` in `module` (see decay-expand-gpu-kernels). Returns the workspace
/// buffers they share.
llvm::SmallVector<WorkspaceBuffer> buildGpuBackward(RecurrenceOp spec, AdjointOp adjoint,
                                                    const GpuShape &shape, mlir::gpu::GPUModuleOp module);

/// Creates the forward's GPU kernels for `spec` at `shape` in `module`:
/// `<name>_forward_prepare` (one thread per key channel: the region, scans,
/// feature maps, RoPE and the chunk-local cumulative log-decay, into the
/// workspace) and `<name>_forward_chunks` (tensor cores: scores, outputs and
/// state per chunk). Returns the workspace buffers they share.
llvm::SmallVector<WorkspaceBuffer> buildGpuForward(RecurrenceOp spec, const GpuShape &shape,
                                                   mlir::gpu::GPUModuleOp module);

/// Creates the step's GPU kernel for `spec` at `shape` in `module`:
/// `<name>_step`, one block of K threads per (batch row, head), advancing the
/// row's state slot in place token by token (no workspace).
llvm::SmallVector<WorkspaceBuffer> buildGpuStep(RecurrenceOp spec, const GpuShape &shape,
                                                mlir::gpu::GPUModuleOp module);

} // namespace decay

#endif

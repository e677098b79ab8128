// Conversion passes of decayc: lowerings of decay.recurrence to executable IR.
#ifndef DECAY_CONVERSION_PASSES_TD
#define DECAY_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def DecayLowerToReferencePass : Pass<"decay-lower-to-reference", "mlir::ModuleOp"> {
  let summary = "Lower each decay.recurrence to the naive float64 token-by-token recurrence";
  let description = [{
    Replaces every `decay.recurrence @name` with `func.func @name_reference`,
    the obviously-right float64 recurrence of MATH.md section 1 with every
    option of the spec (feature map, normalizer, derived key, scans and their
    carried state, RoPE, initial and final states, sequences for varlen). It
    is the oracle every kernel is tested against. The function takes
    (q, k, v, h0, seqs, inputs..., params..., [norm_h0], scan_h0...,
     o, ht, [norm_ht], scan_ht...) as float64 memrefs, except `seqs`
    (memref<?x3xi64>: batch row, first token, end token of each sequence).
    The spec's f32 region is evaluated in f64.

    With `backward=true` it also creates `func.func @name_reference_backward`,
    the exact float64 gradients (it needs the `decay.adjoint` made by
    decay-derive-gradients): (q, k, v, h0, seqs, inputs..., params...,
    [norm_h0], scan_h0..., do, dht, [dnorm_ht], dscan_ht..., dq, dk, dv, dh0,
    d_inputs..., d_params..., [dnorm_h0], dscan_h0...). The gradients of the
    inputs and params are accumulated: the caller zeroes them.
  }];
  let options = [
    Option<"backward", "backward", "bool", /*default=*/"false",
           "Also create the backward reference function">
  ];
  let dependentDialects = ["::mlir::func::FuncDialect", "::mlir::scf::SCFDialect",
                           "::mlir::memref::MemRefDialect", "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect"];
}

def DecayExpandKernelsPass : Pass<"decay-expand-kernels", "mlir::ModuleOp"> {
  let summary = "Expand each decay.recurrence into its chunked f32 kernels";
  let description = [{
    Creates `func.func @name_forward` (and with `backward=true`
    `@name_backward`, which needs the `decay.adjoint` of decay-derive-gradients):
    the chunkwise-parallel algorithm of MATH.md sections 2 and 3 in f32 with
    f32 state, an `scf.parallel` over (sequence, group of up to 4 adjacent
    heads) and a sequential loop over chunks (each chunk for every head of
    the group in turn) of `chunk-size` tokens (0: the spec's chunk_size hint, else 64).
    The signatures are those of decay-lower-to-reference, with f32 memrefs,
    except that with `dtype = bf16` (the spec's option, or the pass's
    `dtype` option, which overrides it) the per-token tensors (q, k, v, o,
    do, dq, dk, dv, the spec's inputs and their gradients) are bf16 memrefs:
    their loads extend to f32 (arith.extf), their stores round to nearest
    even (arith.truncf); arithmetic, states and params stay f32.
    `vector-bits` is the width of the target's vector registers (512 for
    AVX-512, 256 for AVX2): it sizes the matmuls' register tiles and the
    transposes' blocks so that the accumulators stay in registers.
    With `phase-locations`, the ops of each phase of the chunked algorithm
    get the location `<kernel>.<phase>`:1 (`gla_backward.stateGradients`,
    ...), so that a package compiled with line tables (`decayc compile
    --profile-phases`) attributes its time to phases under `perf report
    --sort srcline`; the arith and math ops cloned from the spec's region (and its
    adjoint) keep the spec's locations.
    The results written once per token (o; the backward's dv, and dq and dk
    where the feature map is the identity without RoPE or a derived key, the
    backward then writing a chunk's rows of them after its token loop) take
    non-temporal vector stores where their base is aligned to a vector
    register and their rows are a whole number of vectors (checked when the
    kernel runs; plain stores otherwise, and always for bf16), fenced
    (`llvm.x86.sse.sfence`) before the work item ends.
    The spec and adjoint ops are removed.
  }];
  let options = [
    Option<"chunkSize", "chunk-size", "int64_t", /*default=*/"0",
           "Tokens per chunk (0: the spec's chunk_size, else 64)">,
    Option<"backward", "backward", "bool", /*default=*/"false",
           "Also create the backward kernel">,
    Option<"step", "step", "bool", /*default=*/"false",
           "Also create the step kernel @<name>_step (state slots advanced in place, token by "
           "token: decoding and the recurrent mode)">,
    Option<"dtype", "dtype", "std::string", /*default=*/"\"\"",
           "Storage of the per-token tensors: f32 or bf16 (empty: the spec's dtype, else f32)">,
    Option<"vectorBits", "vector-bits", "int64_t", /*default=*/"512",
           "Width of the target's vector registers, which sizes the register tiles of the "
           "matmuls and transposes: 512 (AVX-512: 8 x 32 tiles of 16-lane vectors) or 256 "
           "(AVX2: 6 x 16 tiles of 8-lane vectors)">,
    Option<"phaseLocations", "phase-locations", "bool", /*default=*/"false",
           "Locate each phase of the chunked kernels at `<kernel>.<phase>`:1 (for profiling "
           "per phase)">
  ];
  let dependentDialects = ["::mlir::func::FuncDialect", "::mlir::scf::SCFDialect",
                           "::mlir::memref::MemRefDialect", "::mlir::arith::ArithDialect",
                           "::mlir::math::MathDialect", "::mlir::vector::VectorDialect",
                           "::mlir::LLVM::LLVMDialect"];
}

def DecayExpandGpuKernelsPass : Pass<"decay-expand-gpu-kernels", "mlir::ModuleOp"> {
  let summary = "Expand each decay.recurrence into its GPU kernels (gpu.module per head dim)";
  let description = [{
    For every head dim D of `head-dims`, creates `gpu.module
    @<name>_forward_k<D>_v<D>` with two kernels on raw device pointers
    (docs/package.md, "GPU kernels"): `<name>_forward_prepare` (one thread
    per key channel: region, scans, feature maps, derived key, RoPE and the
    chunk-local cumulative log-decay with its rounding error, into the
    workspace) and `<name>_forward_chunks` (4 warps per (sequence, head,
    value tile of 64): the chunk's scores, outputs and state update on
    tensor cores with nvgpu.mma.sync m16n8k8 tf32, each product split
    3xTF32 for fp32 accuracy). Each gpu.func records its launch
    (`decay.threads`, `decay.grid`, `decay.dynamic_shared_bytes`); each
    gpu.module its entry, head dims, chunk size and workspace buffers. With
    `step=true` it also creates `gpu.module @<name>_step_k<D>_v<D>` with
    `<name>_step` (one block of D threads per (batch row, head): the row's
    state slot advanced in place token by token, no workspace). The
    module becomes a `gpu.container_module`; the spec ops are removed.
  }];
  let options = [
    ListOption<"headDims", "head-dims", "int64_t", "K = V of each module (multiples of 64)">,
    Option<"chunkSize", "chunk-size", "int64_t", /*default=*/"32",
           "Tokens per chunk of the GPU kernels (32: two 16-token sub-blocks)">,
    Option<"backward", "backward", "bool", /*default=*/"false",
           "Also create the backward's modules (needs decay-derive-gradients first)">,
    Option<"step", "step", "bool", /*default=*/"false",
           "Also create the step's modules (@<name>_step_k<D>_v<D>: state slots advanced in place)">,
    Option<"dtype", "dtype", "std::string", /*default=*/"\"\"",
           "Storage of the per-token tensors: f32 or bf16 (empty: the spec's dtype, else f32)">,
    Option<"testOmitBarrier", "test-omit-barrier", "int64_t", /*default=*/"-1",
           "Tests of the SIMT emulator only: leave out the barrier of this index (emission "
           "order within each kernel), making a deliberately racy kernel">
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect", "::mlir::nvgpu::NVGPUDialect",
                           "::mlir::scf::SCFDialect", "::mlir::memref::MemRefDialect",
                           "::mlir::arith::ArithDialect", "::mlir::math::MathDialect",
                           "::mlir::vector::VectorDialect", "::mlir::LLVM::LLVMDialect"];
}

def DecayGpuToSimtPass : Pass<"decay-gpu-to-simt", "mlir::ModuleOp"> {
  let summary = "Turn NVVM GPU kernels into host functions that run under decayrt's SIMT emulator";
  let description = [{
    Takes the gpu.modules as decay-gpu-kernels-to-nvvm leaves them (LLVM and
    NVVM dialects: the IR the NVPTX back end gets) and moves their kernels
    into the host module, rewritten for the emulator's ABI
    (runtime/include/decayrt/simt_abi.h). Each kernel `@f` of `gpu.module
    @m` becomes `void @<prefix><m>_<f>(ptr thread, ptr parameters)`, run by
    the emulator once per GPU thread: the parameters are read as
    cuLaunchKernel passes them (an array of pointers to the values), thread
    and block ids from the thread's record, and every primitive is a call
    through its table of operations: bar.sync, mma.sync m16n8k8 tf32,
    shfl.sync, cp.async and its groups. Every load, store and atomic on
    shared memory (address space 3) first reports its address to the
    emulator (bounds and races); the dynamic shared memory is the block's
    buffer. libdevice functions (`__nv_expf`, ...) become the C library's.
    An operation the emulator does not support is an error at its location,
    never a silent change of meaning.
  }];
  let options = [
    Option<"symbolPrefix", "symbol-prefix", "std::string", /*default=*/"\"decay_simt_\"",
           "Prefix of the host symbol of each kernel">
  ];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

def DecayExpandBf16Pass : Pass<"decay-expand-bf16", "mlir::ModuleOp"> {
  let summary = "Expand the bf16 conversions of the kernels into integer arithmetic";
  let description = [{
    Rewrites `arith.extf` from bf16 and `arith.truncf` to bf16 (the loads and
    stores of bf16 kernels) into bitcasts, shifts and integer adds with MLIR's
    arith bf16 expansion: round to nearest even, NaN stays a (quiet) NaN. The
    kernels then need neither AVX512-BF16 nor a `__truncsfbf2` from the C
    runtime, and round the same way on every x86-64 CPU. Only these
    conversions change (arith-expand would also rewrite maximumf and others).
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

#endif // DECAY_CONVERSION_PASSES_TD

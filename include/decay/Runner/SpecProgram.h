// A spec compiled on the fly (JIT) for this CPU: the float64 reference path or the chunked f32 (or bf16-stored) kernels.
#ifndef DECAY_RUNNER_SPECPROGRAM_H
#define DECAY_RUNNER_SPECPROGRAM_H

#include "decay/Runner/Signature.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace decay {

/// A row-major float64 tensor on the host.
struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<double> data;
};

/// What a spec is compiled to.
enum class Target {
  Reference,  ///< the float64 token-by-token recurrence (the oracle)
  CpuKernels, ///< the chunked f32 kernels (decay-expand-kernels)
};

/// How to compile a spec.
struct CompileOptions {
  std::string recurrence; ///< which decay.recurrence (empty: the file's only one)
  Target target = Target::Reference;
  int64_t chunkSize = 0;  ///< CpuKernels: tokens per chunk (0: the spec's hint, else 64)
  /// CpuKernels: storage of the per-token tensors, "f32" or "bf16" (empty:
  /// the spec's dtype). The reference ignores it.
  std::string dtype = {};
  /// CpuKernels: storage of the step's attention state, "f32" or "bf16"
  /// (empty: the spec's state_dtype). The reference ignores it.
  std::string stateDtype = {};
  /// CpuKernels: the vector register width that sizes the kernels' register
  /// tiles, 512 or 256 (decay-expand-kernels' vector-bits; 0: this CPU's,
  /// decay::cpuVectorBits("native")). The reference ignores it.
  int64_t vectorBits = 0;
};

/// One recurrence lowered for a target and compiled for this CPU.
class SpecProgram {
public:
  ~SpecProgram();

  /// Parses `source` (a spec in the decay dialect; `bufferName` names it in
  /// diagnostics, which go to stderr with their locations), verifies it and
  /// compiles it as `options` say.
  static llvm::Expected<std::unique_ptr<SpecProgram>>
  compile(llvm::StringRef source, llvm::StringRef bufferName,
          const CompileOptions &options = {});
  /// The same, reading the spec from `path`.
  static llvm::Expected<std::unique_ptr<SpecProgram>>
  compileFile(llvm::StringRef path, const CompileOptions &options = {});

  const SpecSummary &spec() const { return summary; }

  using Entry = decay::Entry;

  /// The tensors an entry reads (cu_seqlens, an integer tensor, is passed
  /// separately) and writes. The backward reads the forward's inputs plus
  /// `do` [B,T,H,V] and the optional gradients of the final states (`dht`,
  /// `dnorm_ht`, `dscan_<name>_ht`), and writes `dq`, `dk` (unless the key is
  /// derived), `dv`, `dh0`, `d<name>` for every spec input and param, and the
  /// gradients of the optional initial states (`dnorm_h0`, `dscan_<name>_h0`).
  std::vector<TensorSpec> inputsOf(Entry entry) const;
  std::vector<TensorSpec> outputsOf(Entry entry) const;

  /// Runs an entry. `cuSeqlens`, when given, packs sequences into batch row 0.
  /// The step entry (CpuKernels only, no cu_seqlens) reads its in-out state
  /// slots (`state` [S,H,K,V], `norm_state`, `scan_<name>_state`) and returns
  /// them updated among the outputs; `slots` and `positions` [B] hold
  /// integers.
  /// Tensors are float64 on both sides; the CpuKernels target computes in f32
  /// and rounds the tensors it stores in bf16 (spec().dtype) to bf16.
  /// Checks every shape first and returns an error naming the tensor and the
  /// expected shape; on error `outputs` is untouched. Absent optional tensors
  /// are zeros (scan states: the scan's init value).
  llvm::Error run(Entry entry, const std::map<std::string, HostTensor> &inputs,
                  const std::vector<int64_t> *cuSeqlens,
                  std::map<std::string, HostTensor> &outputs) const;

private:
  struct Impl;
  SpecProgram(std::unique_ptr<Impl> impl, SpecSummary summary);
  std::unique_ptr<Impl> impl;
  SpecSummary summary;
};

/// Formats a shape as "[2, 65, 4]".
std::string formatShape(const std::vector<int64_t> &shape);

} // namespace decay

#endif

// The CPU device of decayc: a kernel package (compiled from a spec on the fly when given one) run through decayrt.
#ifndef DECAYC_CPUDEVICE_H
#define DECAYC_CPUDEVICE_H

#include "decay/Runner/Signature.h"
#include "decay/Runner/SpecProgram.h"

#include "llvm/Support/Error.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

struct decayrt_package;

namespace decayc {

/// One f32 tensor as decayrt takes it.
struct SingleTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

class CpuDevice {
public:
  ~CpuDevice();

  /// Opens `path`: a package (an ELF shared object) is loaded as is; a spec
  /// is compiled to a temporary package first (with `recurrence` and
  /// `chunkSize`, see decayc compile).
  static llvm::Expected<std::unique_ptr<CpuDevice>> open(const std::string &path,
                                                         const std::string &recurrence,
                                                         int64_t chunkSize);

  const decay::SpecSummary &spec() const { return summary; }
  /// The tensors an entry reads (without cu_seqlens) and writes.
  std::vector<decay::TensorSpec> inputsOf(decay::Entry entry) const;
  std::vector<decay::TensorSpec> outputsOf(decay::Entry entry) const;

  /// Allocates the outputs of `entry` for the inputs' sizes (zeros).
  std::map<std::string, SingleTensor> allocateOutputs(decay::Entry entry,
                                                      const std::map<std::string, SingleTensor> &inputs,
                                                      const std::vector<int64_t> *cuSeqlens) const;
  /// Runs `entry` through decayrt; its error message names the tensor at fault.
  llvm::Error run(decay::Entry entry, const std::map<std::string, SingleTensor> &inputs,
                  const std::vector<int64_t> *cuSeqlens,
                  std::map<std::string, SingleTensor> &outputs) const;

private:
  CpuDevice() = default;
  decayrt_package *package = nullptr;
  decay::SpecSummary summary;
  std::string temporaryDir; ///< removed on destruction
};

/// Converts float64 host tensors to f32 and back.
std::map<std::string, SingleTensor> toSingle(const std::map<std::string, decay::HostTensor> &tensors);
std::map<std::string, decay::HostTensor> toDouble(const std::map<std::string, SingleTensor> &tensors);

} // namespace decayc

#endif

// The CPU device of decayc: a kernel package (compiled from a spec on the fly when given one) run through decayrt.
#ifndef DECAYC_CPUDEVICE_H
#define DECAYC_CPUDEVICE_H

#include "decay/Runner/Signature.h"
#include "decay/Runner/SpecProgram.h"
#include "decay/Support/Bfloat16.h"

#include "llvm/Support/Error.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

struct decayrt_package;

namespace decayc {

/// One float tensor as decayrt takes it: f32 values, or bfloat16 bits for a
/// tensor the package stores in bf16 (its manifest's dtype).
struct DeviceTensor {
  std::vector<int64_t> shape;
  bool bf16 = false;
  std::vector<float> f32;     ///< the values, unless bf16
  std::vector<uint16_t> bits; ///< the bfloat16 values, when bf16

  /// A tensor of `shape` holding `values` (rounded to nearest even when bf16).
  template <typename Number>
  static DeviceTensor of(std::vector<int64_t> shape, const std::vector<Number> &values, bool bf16);
  void *data() const;
  /// The values as f32 (bf16 ones widened exactly).
  std::vector<float> values() const;
};

class CpuDevice {
public:
  ~CpuDevice();

  /// Opens `path`: a package (an ELF shared object) is loaded as is (a
  /// non-empty `dtype` must then be the package's); a spec is compiled to a
  /// temporary package first (with `recurrence`, `chunkSize` and `dtype`, see
  /// decayc compile).
  static llvm::Expected<std::unique_ptr<CpuDevice>> open(const std::string &path,
                                                         const std::string &recurrence,
                                                         int64_t chunkSize,
                                                         const std::string &dtype = "");

  const decay::SpecSummary &spec() const { return summary; }
  /// The tensors an entry reads (without cu_seqlens) and writes.
  std::vector<decay::TensorSpec> inputsOf(decay::Entry entry) const;
  std::vector<decay::TensorSpec> outputsOf(decay::Entry entry) const;

  /// Whether the package stores tensor `name` in bf16.
  bool storesBf16(const std::string &name) const;
  /// `tensors` in the package's storage (bf16 ones rounded to nearest even).
  std::map<std::string, DeviceTensor>
  toDevice(const std::map<std::string, decay::HostTensor> &tensors) const;

  /// Allocates the outputs of `entry` for the inputs' sizes (zeros).
  std::map<std::string, DeviceTensor> allocateOutputs(decay::Entry entry,
                                                      const std::map<std::string, DeviceTensor> &inputs,
                                                      const std::vector<int64_t> *cuSeqlens) const;
  /// Runs `entry` through decayrt; its error message names the tensor at fault.
  llvm::Error run(decay::Entry entry, const std::map<std::string, DeviceTensor> &inputs,
                  const std::vector<int64_t> *cuSeqlens,
                  std::map<std::string, DeviceTensor> &outputs) const;

private:
  CpuDevice() = default;
  decayrt_package *package = nullptr;
  decay::SpecSummary summary;
  std::string temporaryDir; ///< removed on destruction
};

template <typename Number>
DeviceTensor DeviceTensor::of(std::vector<int64_t> shape, const std::vector<Number> &values,
                              bool bf16) {
  DeviceTensor tensor{std::move(shape), bf16, {}, {}};
  if (!bf16)
    tensor.f32.assign(values.begin(), values.end());
  for (size_t i = 0; bf16 && i < values.size(); ++i)
    tensor.bits.push_back(decay::toBfloat16(static_cast<float>(values[i])));
  return tensor;
}

} // namespace decayc

#endif

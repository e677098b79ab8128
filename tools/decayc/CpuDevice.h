// The devices of decayc: a kernel package (compiled from a spec on the fly when given one) run through decayrt on the CPU or a CUDA GPU.
#ifndef DECAYC_CPUDEVICE_H
#define DECAYC_CPUDEVICE_H

#include "decay/Runner/Signature.h"
#include "decay/Runner/SpecProgram.h"
#include "decay/Support/Bfloat16.h"
#include "decay/Support/CacheLineVector.h"

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
  /// The values, unless bf16; 64-byte aligned, as a framework's tensors.
  decay::CacheLineVector<float> f32;
  decay::CacheLineVector<uint16_t> bits; ///< the bfloat16 values, when bf16

  /// A tensor of `shape` holding `values` (rounded to nearest even when bf16).
  template <typename Values>
  static DeviceTensor of(std::vector<int64_t> shape, const Values &values, bool bf16);
  void *data() const;
  /// The values as f32 (bf16 ones widened exactly).
  std::vector<float> values() const;
};

/// Where a package's kernels run.
enum class DeviceKind {
  Cpu,  ///< the CPU kernels, on host memory (decayrt_run)
  Cuda, ///< the GPU kernels, on device memory the tensors are copied to (decayrt_run_cuda)
  Simt, ///< the GPU kernels under SIMT emulation, on host memory (decayrt_run_simt)
};

/// A package's kernels on one device (despite its name, the CPU or CUDA).
class CpuDevice {
public:
  ~CpuDevice();

  /// Opens `path`: a package (an ELF shared object) is loaded as is (a
  /// non-empty `dtype` and a positive `chunkSize` must then be the
  /// package's); a spec is compiled to a
  /// temporary package first (with `recurrence`, `chunkSize` and `dtype`, see
  /// decayc compile), for the CPU or (target simt, head dims 64 and 128
  /// unless the spec fixes them) for the SIMT emulator. For DeviceKind::Cuda the CUDA driver
  /// and a device must be usable (else decayrt's "no CUDA driver: ..." or
  /// "no CUDA device: ...") and `path` must be a package.
  static llvm::Expected<std::unique_ptr<CpuDevice>> open(const std::string &path,
                                                         const std::string &recurrence,
                                                         int64_t chunkSize,
                                                         const std::string &dtype = "",
                                                         DeviceKind kind = DeviceKind::Cpu);

  const decay::SpecSummary &spec() const { return summary; }
  /// Tokens per chunk of the package's chunk kernels (its manifest's chunk_size).
  int64_t chunkSize() const { return packageChunkSize; }
  /// The loaded package (owned by the device).
  decayrt_package *handle() const { return package; }
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
  /// Runs `entry` through decayrt on the device; its error message names the
  /// tensor at fault. The tensors live in host memory: on CUDA they are copied
  /// to the device and the outputs back.
  llvm::Error run(decay::Entry entry, const std::map<std::string, DeviceTensor> &inputs,
                  const std::vector<int64_t> *cuSeqlens,
                  std::map<std::string, DeviceTensor> &outputs) const;

private:
  CpuDevice() = default;
  decayrt_package *package = nullptr;
  decay::SpecSummary summary;
  int64_t packageChunkSize = 0;
  DeviceKind kind = DeviceKind::Cpu;
  std::string temporaryDir; ///< removed on destruction
};

template <typename Values>
DeviceTensor DeviceTensor::of(std::vector<int64_t> shape, const Values &values, bool bf16) {
  DeviceTensor tensor{std::move(shape), bf16, {}, {}};
  if (!bf16)
    tensor.f32.assign(values.begin(), values.end());
  for (size_t i = 0; bf16 && i < values.size(); ++i)
    tensor.bits.push_back(decay::toBfloat16(static_cast<float>(values[i])));
  return tensor;
}

} // namespace decayc

#endif

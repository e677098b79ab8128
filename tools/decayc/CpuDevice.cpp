// The devices of decayc: a kernel package (compiled from a spec on the fly when given one) run through decayrt on the CPU or a CUDA GPU.
#include "CpuDevice.h"
#include "CudaTransfer.h"
#include "RecurrentMode.h"

#include "decay/Codegen/CPU/CpuPackage.h"

#include "decayrt/decayrt.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <limits>

using namespace decayc;
using decay::Entry;

namespace {
llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// Whether `path` starts with the ELF magic: a package rather than a spec.
bool isSharedObject(const std::string &path) {
  auto buffer = llvm::MemoryBuffer::getFileSlice(path, 4, 0);
  return buffer && (*buffer)->getBuffer() == "\x7f" "ELF";
}

/// The dtype of the `state` of the manifest's step kernels (they agree): f32 or bf16.
std::string stepStateDtype(const llvm::json::Object &manifest) {
  if (const llvm::json::Array *kernels = manifest.getArray("kernels"))
    for (const llvm::json::Value &kernel : *kernels) {
      const llvm::json::Object *item = kernel.getAsObject();
      const llvm::json::Array *arguments = item ? item->getArray("arguments") : nullptr;
      if (!arguments || item->getString("entry") != "step")
        continue;
      for (const llvm::json::Value &argument : *arguments)
        if (const llvm::json::Object *object = argument.getAsObject();
            object && object->getString("name") == "state")
          return object->getString("dtype").value_or("f32").str();
    }
  return "f32";
}

/// The spec summary recorded in a package's manifest, and its kernels'
/// chunk size (spec.chunk_size, 0 if absent) in `chunkSize`.
llvm::Expected<decay::SpecSummary> summaryFromManifest(llvm::StringRef text, int64_t &chunkSize) {
  auto parsed = llvm::json::parse(text);
  if (!parsed)
    return parsed.takeError();
  const llvm::json::Object *spec = parsed->getAsObject() ? parsed->getAsObject()->getObject("spec")
                                                         : nullptr;
  if (!spec)
    return makeError("the package's manifest has no spec");
  chunkSize = spec->getInteger("chunk_size").value_or(0);
  decay::SpecSummary summary;
  summary.name = spec->getString("name").value_or("").str();
  summary.granularity = spec->getString("granularity").value_or("").str();
  summary.featureMap = spec->getString("feature_map").value_or("identity").str();
  summary.normalizer = spec->getBoolean("normalizer").value_or(false);
  summary.derivedKey = spec->getBoolean("derived_key").value_or(false);
  summary.rope = spec->getBoolean("rope").value_or(false);
  summary.dtype = spec->getString("dtype").value_or("f32").str();
  summary.stateDtype = stepStateDtype(*parsed->getAsObject());
  summary.perChannel = llvm::StringRef(summary.granularity).ends_with("vector");
  summary.keyDim = spec->getInteger("key_dim");
  summary.valueDim = spec->getInteger("value_dim");
  auto namedDims = [&](llvm::StringRef key, std::vector<std::pair<std::string, std::string>> &out) {
    if (const llvm::json::Array *list = spec->getArray(key))
      for (const llvm::json::Value &entry : *list)
        if (const llvm::json::Object *object = entry.getAsObject())
          out.emplace_back(object->getString("name").value_or("").str(),
                           object->getString("dims").value_or("").str());
  };
  namedDims("inputs", summary.inputs);
  namedDims("params", summary.params);
  if (const llvm::json::Array *scans = spec->getArray("scans"))
    for (const llvm::json::Value &entry : *scans)
      if (const llvm::json::Object *object = entry.getAsObject())
        summary.scans.emplace_back(object->getString("name").value_or("").str(),
                                   object->getNumber("init").value_or(0.0));
  return summary;
}
} // namespace

CpuDevice::~CpuDevice() {
  if (package)
    decayrt_package_free(package);
  if (!temporaryDir.empty())
    llvm::sys::fs::remove_directories(temporaryDir);
}

llvm::Expected<std::unique_ptr<CpuDevice>> CpuDevice::open(const std::string &path,
                                                           const std::string &recurrence,
                                                           int64_t chunkSize,
                                                           const std::string &dtype,
                                                           DeviceKind kind) {
  std::unique_ptr<CpuDevice> device(new CpuDevice());
  device->kind = kind;
  std::string packagePath = path;
  if (kind == DeviceKind::Cuda && decayrt_cuda_available() != DECAYRT_OK)
    return makeError(decayrt_last_error());
  if (!llvm::sys::fs::exists(path))
    return makeError("'" + path + "' does not exist");
  if (!isSharedObject(path) && kind == DeviceKind::Cuda)
    return makeError("--device cuda runs a package with GPU kernels: compile '" + path +
                     "' with decayc compile --target sm_80 (or sm_90) first");
  if (!isSharedObject(path)) {
    llvm::SmallString<128> dir;
    if (std::error_code ec = llvm::sys::fs::createUniqueDirectory("decayc", dir))
      return makeError("cannot create a temporary folder: " + ec.message());
    device->temporaryDir = dir.str().str();
    packagePath = (dir + "/package.so").str();
    decay::CpuPackageOptions options;
    options.recurrence = recurrence;
    options.chunkSize = chunkSize;
    options.dtype = dtype;
    if (kind == DeviceKind::Simt) {
      options.cpuKernels = false;
      options.gpu.targets = {"simt"};
    }
    if (llvm::Error error = decay::compileCpuPackage(path, packagePath, options))
      return std::move(error);
  }
  if (decayrt_package_load(packagePath.c_str(), &device->package) != DECAYRT_OK)
    return makeError(decayrt_last_error());
  auto summary = summaryFromManifest(decayrt_package_manifest(device->package), device->packageChunkSize);
  if (!summary)
    return summary.takeError();
  device->summary = std::move(*summary);
  if (chunkSize > 0 && device->packageChunkSize != chunkSize)
    return makeError("--chunk-size " + std::to_string(chunkSize) + " does not apply to the package '" + path +
                     "': it was compiled with chunks of " + std::to_string(device->packageChunkSize) +
                     " tokens (recompile its spec with decayc compile --chunk-size " +
                     std::to_string(chunkSize) + ")");
  if (!dtype.empty() && dtype != device->summary.dtype)
    return makeError("--dtype " + dtype + " does not apply to the package '" + path +
                     "': it was compiled for " + device->summary.dtype +
                     " (recompile its spec with decayc compile --dtype " + dtype + ")");
  return device;
}

std::vector<decay::TensorSpec> CpuDevice::inputsOf(Entry entry) const {
  std::vector<decay::TensorSpec> specs;
  for (const decay::Argument &argument : decay::signatureOf(summary, entry))
    if (argument.kind == decay::Argument::Input && !argument.placeholder)
      specs.push_back(argument.tensor);
  return specs;
}

std::vector<decay::TensorSpec> CpuDevice::outputsOf(Entry entry) const {
  std::vector<decay::TensorSpec> specs;
  for (const decay::Argument &argument : decay::signatureOf(summary, entry))
    if (argument.kind == decay::Argument::Output && !argument.placeholder)
      specs.push_back(argument.tensor);
  return specs;
}

bool CpuDevice::storesBf16(const std::string &name) const {
  for (Entry entry : {Entry::Forward, Entry::Backward})
    for (const decay::Argument &argument : decay::signatureOf(summary, entry))
      if (argument.tensor.name == name)
        return argument.tensor.dtype == "bf16";
  return false;
}

std::map<std::string, DeviceTensor>
CpuDevice::toDevice(const std::map<std::string, decay::HostTensor> &tensors) const {
  std::map<std::string, DeviceTensor> result;
  for (auto &[name, tensor] : tensors)
    result[name] = DeviceTensor::of(tensor.shape, tensor.data, storesBf16(name));
  return result;
}

std::map<std::string, DeviceTensor>
CpuDevice::allocateOutputs(Entry entry, const std::map<std::string, DeviceTensor> &inputs,
                           const std::vector<int64_t> *cuSeqlens) const {
  std::map<std::string, DeviceTensor> outputs;
  auto q = inputs.find("q"), v = inputs.find("v");
  if (q == inputs.end() || v == inputs.end() || q->second.shape.size() != 4 ||
      v->second.shape.size() != 4)
    return outputs; // decayrt reports the missing or malformed tensor
  const std::vector<int64_t> &qs = q->second.shape;
  int64_t n = cuSeqlens ? static_cast<int64_t>(cuSeqlens->size()) - 1 : qs[0];
  for (const decay::TensorSpec &spec : outputsOf(entry)) {
    std::vector<int64_t> shape;
    int64_t count = 1;
    for (char dim : spec.dims) {
      int64_t size = dim == 'B' ? qs[0] : dim == 'T' ? qs[1] : dim == 'H' ? qs[2]
                     : dim == 'K' ? qs[3] : dim == 'V' ? v->second.shape[3] : n;
      shape.push_back(std::max<int64_t>(size, 0));
      count *= std::max<int64_t>(size, 0);
    }
    // NaN until written: an element that neither the kernel nor the runtime
    // writes shows as NaN in the results, not as a plausible zero.
    outputs[spec.name] = DeviceTensor::of(shape, std::vector<float>(count, std::numeric_limits<float>::quiet_NaN()),
                                          spec.dtype == "bf16");
  }
  return outputs;
}

void *DeviceTensor::data() const {
  return bf16 ? static_cast<void *>(const_cast<uint16_t *>(bits.data()))
              : static_cast<void *>(const_cast<float *>(f32.data()));
}

std::vector<float> DeviceTensor::values() const {
  if (!bf16)
    return {f32.begin(), f32.end()};
  std::vector<float> widened;
  widened.reserve(bits.size());
  for (uint16_t value : bits)
    widened.push_back(decay::fromBfloat16(value));
  return widened;
}

llvm::Error CpuDevice::run(Entry entry, const std::map<std::string, DeviceTensor> &inputs,
                           const std::vector<int64_t> *cuSeqlens,
                           std::map<std::string, DeviceTensor> &outputs) const {
  if (entry == Entry::Step)
    return runRecurrentMode(package, kind, summary, inputs, cuSeqlens, outputs);
  std::vector<decayrt_tensor> tensors;
  auto add = [&](const std::string &name, const DeviceTensor &tensor) {
    tensors.push_back({name.c_str(), tensor.data(), tensor.bf16 ? DECAYRT_BF16 : DECAYRT_F32,
                       static_cast<int32_t>(tensor.shape.size()), tensor.shape.data(), nullptr});
  };
  for (auto &[name, tensor] : inputs)
    add(name, tensor);
  for (auto &[name, tensor] : outputs)
    add(name, tensor);
  std::vector<Transfer> transfers(inputs.size(), Transfer::In);
  transfers.resize(tensors.size(), Transfer::Out);
  int64_t cuCount = cuSeqlens ? static_cast<int64_t>(cuSeqlens->size()) : 0;
  if (cuSeqlens) {
    tensors.push_back({"cu_seqlens", const_cast<int64_t *>(cuSeqlens->data()), DECAYRT_I64, 1,
                       &cuCount, nullptr});
    transfers.push_back(Transfer::In);
  }
  if (kind == DeviceKind::Cuda)
    return runOnCuda(package, decay::entryName(entry), tensors, transfers);
  if (kind == DeviceKind::Simt) {
    if (decayrt_run_simt(package, decay::entryName(entry), tensors.data(), tensors.size(),
                         nullptr) != DECAYRT_OK)
      return makeError(decayrt_last_error());
    return llvm::Error::success();
  }
  if (decayrt_run(package, decay::entryName(entry), tensors.data(), tensors.size()) != DECAYRT_OK)
    return makeError(decayrt_last_error());
  return llvm::Error::success();
}

// decayrt_run_simt: plan and check a call, then run its simt module's launches under the SIMT emulator on host memory.
#include "CallPlan.h"
#include "CudaModules.h"
#include "CudaWorkspace.h"
#include "Dtype.h"
#include "HostBuffer.h"
#include "Package.h"
#include "simt/Emulator.h"

#include <cstring>
#include <memory>

using namespace decayrt::detail;

namespace {

/// The byte that fills memory the kernels must write before they read it:
/// every float made of it is a NaN.
constexpr unsigned char kUnwrittenByte = 0xFF;

/// Everything a simt call runs, decided before anything is written.
struct SimtCall {
  Plan plan;
  const SimtImage *module = nullptr;
  cuda::WorkspaceLayout layout;
  std::vector<std::array<unsigned, 3>> grids; ///< one per launch
};

/// The common arguments checked; the simt module of `entry` the call is planned against.
Error checkCall(const decayrt_package *package, const char *entry, const decayrt_tensor *tensors,
                size_t count, const Kernel *&kernel) {
  if (!package)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT, "decayrt_run_simt: package is NULL");
  if (!tensors && count > 0)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT, "decayrt_run_simt: tensors is NULL");
  if (Error error = checkEntry(entry); !error.ok())
    return error;
  for (const SimtImage &image : package->simtModules)
    if (image.kernel->entry == entry) {
      kernel = image.kernel;
      return Error::success();
    }
  return fail(DECAYRT_ERROR_UNSUPPORTED,
              "package @" + package->manifest.spec.name + " has no simt kernel for the " + entry +
                  " entry (compile it with --target simt)");
}

/// Plans a call: checks the tensors, chooses the module, computes the grids
/// and the workspace's layout. Writes nothing.
Error prepareCall(const decayrt_package &package, const Kernel &kernel, const char *entry,
                  const decayrt_tensor *tensors, size_t count, SimtCall &call) {
  if (Error error = planCall(package, kernel, tensors, count, readHostIntegers, call.plan);
      !error.ok())
    return error;
  const Sizes &sizes = call.plan.sizes;
  std::vector<const SimtImage *> candidates;
  if (Error error = cuda::modulesFor(package.simtModules, package.manifest.spec.name, entry,
                                     sizes.K, sizes.V, candidates);
      !error.ok())
    return error;
  call.module = candidates.front();
  const GpuModule &gpu = *call.module->kernel->gpu;
  for (const Launch &launch : gpu.launches) {
    call.grids.emplace_back();
    if (Error error = cuda::gridOf(launch, sizes, call.grids.back()); !error.ok())
      return error;
  }
  return cuda::layoutWorkspace(call.plan, gpu, gpu.chunkSize, call.layout);
}

/// Host memory standing in for device memory: the workspace, and a staging
/// copy of every caller tensor the kernels write (outputs and a step's state
/// caches), which they write instead.
struct SimtMemory {
  std::unique_ptr<HostBuffer> workspace;
  std::vector<std::unique_ptr<HostBuffer>> staged; ///< per plan slot; null for inputs
};

/// Allocates the memory, fills what the runtime provides (sequence table,
/// absent inputs, zeroed outputs, the state caches' current values) and NaN
/// everywhere else, and points every slot at its buffer. Returns every
/// argument's address by name.
std::map<std::string, cuda::CUdeviceptr> prepareMemory(SimtCall &call, const Kernel &kernel,
                                                       SimtMemory &memory) {
  memory.workspace = std::make_unique<HostBuffer>(static_cast<size_t>(call.layout.total));
  auto *base = static_cast<unsigned char *>(memory.workspace->data());
  std::memset(base, kUnwrittenByte, static_cast<size_t>(call.layout.total));
  std::vector<int64_t> sequences = call.plan.sequences();
  if (!sequences.empty())
    std::memcpy(base + call.layout.sequencesOffset, sequences.data(),
                sequences.size() * sizeof(int64_t));
  std::map<std::string, cuda::CUdeviceptr> addresses;
  memory.staged.resize(call.plan.slots.size());
  for (size_t i = 0; i < call.plan.slots.size(); ++i) {
    Slot &slot = call.plan.slots[i];
    auto bytes = static_cast<size_t>(slot.bytes);
    Role role = slot.argument->role;
    bool written = role == Role::Output || role == Role::Inout;
    if (slot.source == Source::Caller && written && bytes > 0) {
      memory.staged[i] = std::make_unique<HostBuffer>(bytes);
      slot.data = memory.staged[i]->data();
      if (role == Role::Inout)
        std::memcpy(slot.data, slot.given->data, bytes);
      else
        std::memset(slot.data, slot.zeroOnEntry ? 0 : kUnwrittenByte, bytes);
    } else if (slot.source == Source::Caller) {
      slot.data = slot.given->data;
    } else {
      slot.data = base + call.layout.slotOffsets[i];
      if (slot.source == Source::Init)
        fillBuffer(slot.data, slot.argument->dtype, slot.bytes / dtypeSize(slot.argument->dtype),
                   slot.fill);
      else
        std::memset(slot.data, 0, bytes);
    }
    addresses[slot.argument->name] = cuda::deviceAddress(slot.data);
  }
  for (const Argument &argument : kernel.arguments)
    if (argument.role == Role::Sequences)
      addresses[argument.name] = cuda::deviceAddress(base + call.layout.sequencesOffset);
  return addresses;
}

/// Runs the module's launches in order under the emulator.
Error runLaunches(const SimtCall &call, const std::map<std::string, cuda::CUdeviceptr> &addresses,
                  const SimtMemory &memory, const simt::Options &options) {
  const GpuModule &gpu = *call.module->kernel->gpu;
  cuda::CUdeviceptr workspace = cuda::deviceAddress(memory.workspace->data());
  for (size_t i = 0; i < gpu.launches.size(); ++i) {
    const Launch &launch = gpu.launches[i];
    if (call.grids[i][0] == 0 || call.grids[i][1] == 0 || call.grids[i][2] == 0)
      continue; // no block to run (an empty batch)
    std::vector<uint64_t> values =
        cuda::parameterValues(launch, call.plan.sizes, addresses, workspace);
    std::vector<void *> parameters;
    for (uint64_t &value : values)
      parameters.push_back(&value);
    simt::LaunchConfig config;
    config.kernel = call.module->functions[i];
    config.name = launch.function;
    config.grid = call.grids[i];
    config.block = {static_cast<unsigned>(launch.threads), 1, 1};
    config.dynamicSharedBytes = static_cast<size_t>(launch.dynamicSharedBytes);
    if (Error error = simt::launch(config, parameters.data(), options); !error.ok())
      return error;
  }
  return Error::success();
}

/// Copies what the kernels wrote (outputs, updated state caches) into the caller's tensors.
void deliverStaged(const SimtCall &call, const SimtMemory &memory) {
  for (size_t i = 0; i < call.plan.slots.size(); ++i)
    if (memory.staged[i])
      std::memcpy(call.plan.slots[i].given->data, memory.staged[i]->data(),
                  static_cast<size_t>(call.plan.slots[i].bytes));
}

/// decayrt_run_simt without the C API's exception guard.
Error runSimt(decayrt_package *package, const char *entry, const decayrt_tensor *tensors,
              size_t count, const decayrt_simt_options *given) {
  const Kernel *kernel = nullptr;
  if (Error error = checkCall(package, entry, tensors, count, kernel); !error.ok())
    return error;
  SimtCall call;
  if (Error error = prepareCall(*package, *kernel, entry, tensors, count, call); !error.ok())
    return error;
  simt::Options options;
  if (given) {
    options.checkRaces = given->ignore_races == 0;
    options.workers = given->workers;
  }
  SimtMemory memory;
  std::map<std::string, cuda::CUdeviceptr> addresses = prepareMemory(call, *kernel, memory);
  if (Error error = runLaunches(call, addresses, memory, options); !error.ok())
    return error;
  deliverStaged(call, memory);
  return Error::success();
}

} // namespace

extern "C" decayrt_status decayrt_run_simt(decayrt_package *package, const char *entry,
                                           const decayrt_tensor *tensors, size_t count,
                                           const decayrt_simt_options *options) {
  return guarded("decayrt_run_simt",
                 [&] { return runSimt(package, entry, tensors, count, options); });
}

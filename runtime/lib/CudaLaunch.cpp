// decayrt_run_cuda and decayrt_cuda_workspace_bytes: plan and check a call, choose its module, then enqueue copies, fills and launches on the caller's stream.
#include "CallPlan.h"
#include "CudaContext.h"
#include "CudaModules.h"
#include "CudaWorkspace.h"
#include "Dtype.h"
#include "Package.h"

#include <array>
#include <map>
#include <new>

using namespace decayrt::detail;
using namespace decayrt::detail::cuda;

namespace {

/// Reads the values of cu_seqlens, slots or positions for a CUDA call: host
/// memory in place; device or managed memory copied back on `stream` (in the
/// current context, else device 0's primary one), then waited for. Without a
/// driver (only decayrt_cuda_workspace_bytes gets there) there is no device
/// memory.
IntegerReader cudaIntegerReader(const Driver *driver, CUstream stream) {
  return [driver, stream](const decayrt_tensor &tensor, std::vector<int64_t> &values,
                          bool &inKernelMemory) -> Error {
    const std::string name = tensor.name;
    size_t count = static_cast<size_t>(tensor.shape[0]);
    unsigned memoryType = 0;
    CUresult result = CUDA_ERROR_INVALID_VALUE; // what the driver says of host memory
    if (driver && count > 0)
      result = driver->cuPointerGetAttribute(&memoryType, CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                                             deviceAddress(tensor.data));
    if (result != CUDA_SUCCESS && result != CUDA_ERROR_INVALID_VALUE)
      return driver->check(result, "cuPointerGetAttribute(MEMORY_TYPE) of " + name);
    if (result != CUDA_SUCCESS || memoryType == CU_MEMORYTYPE_HOST) {
      Error error = readHostIntegers(tensor, values, inKernelMemory);
      inKernelMemory = false;
      return error;
    }
    ContextScope scope; // a no-op within decayrt_run_cuda's own scope
    if (Error error = scope.enter(*driver); !error.ok())
      return error;
    size_t bytes = count * static_cast<size_t>(dtypeSize(tensor.dtype));
    std::vector<int64_t> copy((bytes + sizeof(int64_t) - 1) / sizeof(int64_t));
    if (Error error = driver->check(driver->cuMemcpyDtoHAsync(copy.data(),
                                                              deviceAddress(tensor.data), bytes,
                                                              stream),
                                    "cuMemcpyDtoHAsync of " + name);
        !error.ok())
      return error;
    if (Error error = driver->check(driver->cuStreamSynchronize(stream),
                                    "cuStreamSynchronize after copying " + name);
        !error.ok())
      return error;
    decayrt_tensor onHost = tensor;
    onHost.data = copy.data();
    return readHostIntegers(onHost, values, inKernelMemory);
  };
}

/// The arguments common to both entry points, checked; the GPU kernel whose
/// arguments the call is planned against.
Error checkCall(const decayrt_package *package, const char *entry, const decayrt_tensor *tensors,
                size_t count, const char *function, const Kernel *&kernel) {
  if (!package)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT, std::string(function) + ": package is NULL");
  if (!tensors && count > 0)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT, std::string(function) + ": tensors is NULL");
  if (Error error = checkEntry(entry); !error.ok())
    return error;
  kernel = package->findGpuKernel(entry);
  if (!kernel)
    return fail(DECAYRT_ERROR_UNSUPPORTED, "package @" + package->manifest.spec.name +
                                               " has no GPU kernel for the " + entry + " entry");
  return Error::success();
}

/// Everything a CUDA call enqueues, decided before anything is.
struct CudaCall {
  Plan plan;
  const LoadedModule *module = nullptr;
  WorkspaceLayout layout;
  std::vector<std::array<unsigned, 3>> grids; ///< one per launch
};

/// The caller's workspace: large enough, aligned, not overlapping a tensor.
Error checkCallerWorkspace(const CudaCall &call, const void *workspace, size_t bytes) {
  if (bytes < call.layout.total)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT,
                "workspace: " + std::to_string(bytes) + " bytes given, the call needs " +
                    std::to_string(call.layout.total) + " (decayrt_cuda_workspace_bytes)");
  if (deviceAddress(workspace) % kWorkspaceAlignment)
    return fail(DECAYRT_ERROR_LAYOUT,
                "workspace: not aligned to " + std::to_string(kWorkspaceAlignment) + " bytes");
  std::vector<Extent> extents = extentsOf(call.plan);
  auto begin = reinterpret_cast<uintptr_t>(workspace);
  extents.push_back({"the workspace", begin, begin + call.layout.total, true});
  return checkAliasing(extents);
}

/// Plans a call: checks the tensors, loads the module, computes the grids
/// and the workspace's layout. Enqueues nothing.
Error prepareCall(const decayrt_package &package, const Kernel &kernel, const Driver &driver,
                  const ContextScope &scope, CUstream stream, const char *entry,
                  const decayrt_tensor *tensors, size_t count, CudaCall &call) {
  if (Error error = planCall(package, kernel, tensors, count, cudaIntegerReader(&driver, stream),
                             call.plan);
      !error.ok())
    return error;
  const Sizes &sizes = call.plan.sizes;
  if (Error error = package.cudaModules.find(driver, scope, package.gpuModules,
                                             package.manifest.spec.name, entry, sizes.K, sizes.V,
                                             call.module);
      !error.ok())
    return error;
  const GpuModule &gpu = *call.module->image->kernel->gpu;
  for (const Launch &launch : gpu.launches) {
    call.grids.emplace_back();
    if (Error error = gridOf(launch, sizes, call.grids.back()); !error.ok())
      return error;
  }
  return layoutWorkspace(call.plan, gpu, gpu.chunkSize, call.layout);
}

/// Points every slot and the sequence table at device memory; returns the
/// address of every argument by name.
std::map<std::string, CUdeviceptr> bindAddresses(CudaCall &call, const Kernel &kernel,
                                                 CUdeviceptr workspace) {
  std::map<std::string, CUdeviceptr> addresses;
  for (size_t i = 0; i < call.plan.slots.size(); ++i) {
    Slot &slot = call.plan.slots[i];
    CUdeviceptr address = slot.source == Source::Caller ? deviceAddress(slot.given->data)
                                                        : workspace + call.layout.slotOffsets[i];
    slot.data = reinterpret_cast<void *>(static_cast<uintptr_t>(address));
    addresses[slot.argument->name] = address;
  }
  for (const Argument &argument : kernel.arguments)
    if (argument.role == Role::Sequences)
      addresses[argument.name] = workspace + call.layout.sequencesOffset;
  return addresses;
}

/// Enqueues the copy of the sequence table, the runtime buffers' contents and
/// the zeroing of accumulating outputs.
Error enqueueInputs(const Driver &driver, CUstream stream, const CudaCall &call,
                    CUdeviceptr workspace) {
  std::vector<int64_t> sequences = call.plan.sequences();
  if (!sequences.empty())
    if (Error error = driver.check(driver.cuMemcpyHtoDAsync(workspace + call.layout.sequencesOffset,
                                                            sequences.data(),
                                                            sequences.size() * sizeof(int64_t),
                                                            stream),
                                   "cuMemcpyHtoDAsync of the sequence table");
        !error.ok())
      return error;
  // Pageable host memory: each copy returns once its source is staged, so the
  // host buffers may go when it returns.
  for (const Slot &slot : call.plan.slots) {
    auto bytes = static_cast<size_t>(slot.bytes);
    if (bytes == 0)
      continue;
    Error error;
    if (slot.source == Source::Zeros || slot.source == Source::Scratch) {
      error = driver.check(driver.cuMemsetD8Async(deviceAddress(slot.data), 0, bytes, stream),
                           "cuMemsetD8Async of '" + slot.argument->name + "'");
    } else if (slot.source == Source::Init) {
      std::vector<int64_t> values((bytes + sizeof(int64_t) - 1) / sizeof(int64_t));
      fillBuffer(values.data(), slot.argument->dtype, slot.bytes / dtypeSize(slot.argument->dtype),
                 slot.fill);
      error = driver.check(
          driver.cuMemcpyHtoDAsync(deviceAddress(slot.data), values.data(), bytes, stream),
          "cuMemcpyHtoDAsync of '" + slot.argument->name + "'");
    }
    if (error.ok() && slot.zeroOnEntry)
      error = driver.check(driver.cuMemsetD8Async(deviceAddress(slot.given->data), 0, bytes, stream),
                           "cuMemsetD8Async of output '" + slot.argument->name + "'");
    if (!error.ok())
      return error;
  }
  return Error::success();
}

/// Enqueues the module's launches in order, each with its parameters
/// marshalled in the manifest's order (8 bytes each).
Error enqueueLaunches(const Driver &driver, CUstream stream, const CudaCall &call,
                      const std::map<std::string, CUdeviceptr> &addresses, CUdeviceptr workspace) {
  const GpuModule &gpu = *call.module->image->kernel->gpu;
  for (size_t i = 0; i < gpu.launches.size(); ++i) {
    const Launch &launch = gpu.launches[i];
    const std::array<unsigned, 3> &grid = call.grids[i];
    if (grid[0] == 0 || grid[1] == 0 || grid[2] == 0)
      continue; // no block to run (an empty batch)
    std::vector<uint64_t> values = parameterValues(launch, call.plan.sizes, addresses, workspace);
    std::vector<void *> parameters;
    for (uint64_t &value : values)
      parameters.push_back(&value);
    if (Error error = driver.check(
            driver.cuLaunchKernel(call.module->functions[i], grid[0], grid[1], grid[2],
                                  static_cast<unsigned>(launch.threads), 1, 1,
                                  static_cast<unsigned>(launch.dynamicSharedBytes), stream,
                                  parameters.data(), nullptr),
            "cuLaunchKernel of '" + launch.function + "'");
        !error.ok())
      return error;
  }
  return Error::success();
}

/// decayrt_run_cuda without the C API's exception guard.
Error runCuda(decayrt_package *package, const char *entry, const decayrt_tensor *tensors,
              size_t count, void *streamHandle, void *workspace, size_t workspaceBytes) {
  const Kernel *kernel = nullptr;
  if (Error error = checkCall(package, entry, tensors, count, "decayrt_run_cuda", kernel);
      !error.ok())
    return error;
  const Driver *driver = nullptr;
  ContextScope scope;
  if (Error error = enterContext(driver, scope); !error.ok())
    return error;
  auto stream = static_cast<CUstream>(streamHandle);
  CudaCall call;
  if (Error error = prepareCall(*package, *kernel, *driver, scope, stream, entry, tensors, count,
                                call);
      !error.ok())
    return error;
  DeviceWorkspace memory(*driver, stream);
  if (workspace) {
    if (Error error = checkCallerWorkspace(call, workspace, workspaceBytes); !error.ok())
      return error;
    memory.borrow(deviceAddress(workspace));
  } else if (Error error = memory.allocate(call.layout.total); !error.ok()) {
    return error;
  }
  // Every check has passed: from here on the call writes.
  std::map<std::string, CUdeviceptr> addresses = bindAddresses(call, *kernel, memory.address());
  if (Error error = enqueueInputs(*driver, stream, call, memory.address()); !error.ok())
    return error;
  if (Error error = enqueueLaunches(*driver, stream, call, addresses, memory.address());
      !error.ok())
    return error;
  return memory.release();
}

/// decayrt_cuda_workspace_bytes without the C API's exception guard.
Error workspaceBytes(const decayrt_package *package, const char *entry,
                     const decayrt_tensor *tensors, size_t count, void *streamHandle,
                     size_t *bytes) {
  const Kernel *kernel = nullptr;
  if (Error error =
          checkCall(package, entry, tensors, count, "decayrt_cuda_workspace_bytes", kernel);
      !error.ok())
    return error;
  if (!bytes)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT, "decayrt_cuda_workspace_bytes: bytes is NULL");
  // The driver is needed only to read a cu_seqlens in device memory (without
  // one there is none); no context is made current otherwise.
  const Driver *driver = nullptr;
  if (!loadDriver(driver).ok())
    driver = nullptr;
  Plan plan;
  if (Error error = planCall(*package, *kernel, tensors, count,
                             cudaIntegerReader(driver, static_cast<CUstream>(streamHandle)), plan);
      !error.ok())
    return error;
  std::vector<const ModuleImage *> candidates;
  if (Error error = modulesFor(package->gpuModules, package->manifest.spec.name, entry,
                               plan.sizes.K, plan.sizes.V, candidates);
      !error.ok())
    return error;
  uint64_t most = 0;
  for (const ModuleImage *image : candidates) {
    WorkspaceLayout layout;
    if (Error error = layoutWorkspace(plan, *image->kernel->gpu, image->kernel->gpu->chunkSize,
                                      layout);
        !error.ok())
      return error;
    most = std::max(most, layout.total);
  }
  *bytes = static_cast<size_t>(most);
  return Error::success();
}

} // namespace

extern "C" decayrt_status decayrt_run_cuda(decayrt_package *package, const char *entry,
                                           const decayrt_tensor *tensors, size_t count,
                                           void *stream, void *workspace,
                                           size_t workspace_bytes) {
  return guarded("decayrt_run_cuda", [&] {
    return runCuda(package, entry, tensors, count, stream, workspace, workspace_bytes);
  });
}

extern "C" decayrt_status decayrt_cuda_workspace_bytes(const decayrt_package *package,
                                                       const char *entry,
                                                       const decayrt_tensor *tensors,
                                                       size_t count, void *stream,
                                                       size_t *bytes) {
  return guarded("decayrt_cuda_workspace_bytes",
                 [&] { return workspaceBytes(package, entry, tensors, count, stream, bytes); });
}

// Evaluates a GPU module's size models for a call and lays out the workspace (module scratch, sequence table, runtime buffers).
#include "CudaWorkspace.h"

#include <algorithm>
#include <array>

namespace decayrt::detail::cuda {
namespace {

/// a * b + c, false on overflow.
bool multiplyAdd(uint64_t a, uint64_t b, uint64_t c, uint64_t &out) {
  uint64_t product = 0;
  return !__builtin_mul_overflow(a, b, &product) && !__builtin_add_overflow(product, c, &out);
}

/// Appends a region of `bytes` at the aligned end of `end`; false on overflow.
bool appendRegion(uint64_t &end, uint64_t bytes, uint64_t &offset) {
  uint64_t aligned = 0;
  if (__builtin_add_overflow(end, kWorkspaceAlignment - 1, &aligned))
    return false;
  offset = aligned / kWorkspaceAlignment * kWorkspaceAlignment;
  return !__builtin_add_overflow(offset, bytes, &end);
}

Error tooLarge(const std::string &what) {
  return fail(DECAYRT_ERROR_SHAPE, what + " overflows 64 bits for this call");
}

/// CUDA's limits on the grid's x, y and z dimensions.
constexpr std::array<uint64_t, 3> kGridLimits = {2147483647u, 65535u, 65535u};

} // namespace

Error gridOf(const Launch &launch, const Sizes &sizes, std::array<unsigned, 3> &out) {
  out = {1, 1, 1};
  for (size_t i = 0; i < launch.grid.size(); ++i) {
    const GridDim &dim = launch.grid[i];
    uint64_t product = 1;
    bool overflow = false;
    for (char letter : dim.dims)
      overflow |= __builtin_mul_overflow(product, static_cast<uint64_t>(sizes.of(letter)), &product);
    uint64_t blocks = product / dim.divide + (product % dim.divide != 0);
    if (overflow || blocks > kGridLimits[i])
      return fail(DECAYRT_ERROR_SHAPE,
                  "launch '" + launch.function + "': grid dimension " + "xyz"[i] + " (" +
                      (dim.dims.empty() ? "1" : dim.dims) + " / " + std::to_string(dim.divide) +
                      ") is " + (overflow ? "beyond 64 bits" : std::to_string(blocks)) +
                      ", above CUDA's limit of " + std::to_string(kGridLimits[i]));
    out[i] = static_cast<unsigned>(blocks);
  }
  return Error::success();
}

std::vector<uint64_t> parameterValues(const Launch &launch, const Sizes &sizes,
                                      const std::map<std::string, CUdeviceptr> &addresses,
                                      CUdeviceptr workspace) {
  std::vector<uint64_t> values;
  for (const std::string &name : launch.parameters) {
    if (name == kWorkspaceParameter)
      values.push_back(workspace);
    else if (isSizeParameter(name))
      values.push_back(static_cast<uint64_t>(sizes.of(name[0])));
    else
      values.push_back(addresses.at(name));
  }
  return values;
}

int64_t chunkCount(const Plan &plan, int64_t chunkSize) {
  std::vector<int64_t> seqs = plan.sequences();
  int64_t chunks = 0;
  for (size_t row = 0; row < seqs.size(); row += 3) {
    int64_t length = seqs[row + 2] - seqs[row + 1];
    chunks += length / chunkSize + (length % chunkSize != 0);
  }
  return chunks;
}

Error evaluateSize(const SizeModel &model, const Sizes &sizes, int64_t chunks, uint64_t &bytes) {
  auto u = [](int64_t value) { return static_cast<uint64_t>(value); };
  uint64_t tokens = 0, chunkHeads = 0, sequenceHeads = 0;
  if (!multiplyAdd(u(sizes.B), u(sizes.T), 0, tokens) || !multiplyAdd(tokens, u(sizes.H), 0, tokens) ||
      !multiplyAdd(u(sizes.H), u(chunks), 0, chunkHeads) ||
      !multiplyAdd(u(sizes.N), u(sizes.H), 0, sequenceHeads))
    return tooLarge("a size model");
  uint64_t total = u(model.fixed);
  if (!multiplyAdd(u(model.token), tokens, total, total) ||
      !multiplyAdd(u(model.chunk), chunkHeads, total, total) ||
      !multiplyAdd(u(model.sequence), sequenceHeads, total, total))
    return tooLarge("a size model");
  bytes = total;
  return Error::success();
}

Error layoutWorkspace(const Plan &plan, const GpuModule &module, int64_t chunkSize,
                      WorkspaceLayout &out) {
  WorkspaceLayout layout;
  if (Error error = evaluateSize(module.workspace, plan.sizes, chunkCount(plan, chunkSize),
                                 layout.moduleBytes);
      !error.ok())
    return error;
  uint64_t end = layout.moduleBytes, scratchBytes = 0;
  uint64_t sequenceBytes =
      plan.sequenceTable ? static_cast<uint64_t>(plan.sizes.N) * 3 * sizeof(int64_t) : 0;
  if (!appendRegion(end, sequenceBytes, layout.sequencesOffset))
    return tooLarge("the workspace");
  std::vector<size_t> scratchSlots;
  for (size_t i = 0; i < plan.slots.size(); ++i) {
    const Slot &slot = plan.slots[i];
    layout.slotOffsets.push_back(0);
    if (slot.source == Source::Scratch) {
      scratchSlots.push_back(i);
      scratchBytes = std::max(scratchBytes, static_cast<uint64_t>(slot.bytes));
    } else if (slot.source != Source::Caller &&
               !appendRegion(end, static_cast<uint64_t>(slot.bytes), layout.slotOffsets[i])) {
      return tooLarge("the workspace");
    }
  }
  if (!scratchSlots.empty()) {
    uint64_t scratchOffset = 0;
    if (!appendRegion(end, scratchBytes, scratchOffset))
      return tooLarge("the workspace");
    for (size_t i : scratchSlots)
      layout.slotOffsets[i] = scratchOffset;
  }
  layout.total = end;
  out = std::move(layout);
  return Error::success();
}

Error DeviceWorkspace::allocate(uint64_t bytes) {
  if (bytes == 0)
    return Error::success();
  if (driver.cuMemAllocAsync) {
    CUresult result = driver.cuMemAllocAsync(&base, bytes, stream);
    if (result == CUDA_SUCCESS) {
      owner = Owner::StreamOrdered;
      return Error::success();
    }
    if (result != CUDA_ERROR_NOT_SUPPORTED)
      return driver.check(result, "cuMemAllocAsync");
  }
  if (Error error = driver.check(driver.cuMemAlloc(&base, bytes), "cuMemAlloc"); !error.ok())
    return error;
  owner = Owner::Synchronous;
  return Error::success();
}

Error DeviceWorkspace::release() {
  Owner was = owner;
  owner = Owner::None;
  if (was == Owner::StreamOrdered)
    return driver.check(driver.cuMemFreeAsync(base, stream), "cuMemFreeAsync");
  if (was == Owner::Synchronous) {
    // The launches may still use it: wait for them (and free it even if that fails).
    Error synchronized = driver.check(driver.cuStreamSynchronize(stream), "cuStreamSynchronize");
    Error freed = driver.check(driver.cuMemFree(base), "cuMemFree");
    return synchronized.ok() ? freed : synchronized;
  }
  return Error::success();
}

} // namespace decayrt::detail::cuda

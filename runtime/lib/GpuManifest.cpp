// Reads and checks the GPU module items of a manifest (docs/package.md, "GPU kernels").
#include "GpuManifest.h"

#include <cstdint>
#include <set>

namespace decayrt::detail {
namespace {

using json = nlohmann::json;

/// The most threads a CUDA block may have.
constexpr int64_t kMaxThreadsPerBlock = 1024;
/// The most grid dimensions of a launch (x, y, z).
constexpr size_t kMaxGridDims = 3;

/// Reads a size model {"token", "chunk", "sequence", "fixed"}: bytes per
/// token, per chunk and head, per sequence and head, and fixed.
bool readSizeModel(Reader &reader, const json &item, const std::string &where, const char *key,
                   SizeModel &out) {
  const json *object = reader.readObject(item, where, key);
  if (!object)
    return false;
  std::string path = Reader::pathOf(where, key);
  return reader.readInteger(*object, path, "token", 0, out.token) &&
         reader.readInteger(*object, path, "chunk", 0, out.chunk) &&
         reader.readInteger(*object, path, "sequence", 0, out.sequence) &&
         reader.readInteger(*object, path, "fixed", 0, out.fixed);
}

/// Whether every letter of `dims` is one of BTHKVNS ("" is allowed: size 1).
bool isSizeDims(const std::string &dims) {
  return dims.find_first_not_of("BTHKVNS") == std::string::npos;
}

/// Checks that the sizes named by the letters `sizes` exist in a call of
/// `kernel`: S (the state slots) only in a step module, N (the sequences)
/// only in the others.
bool checkSizesOfEntry(Reader &reader, const std::string &path, const Kernel &kernel,
                       const std::string &sizes) {
  if (!kernel.isStep() && sizes.find('S') != std::string::npos)
    return reader.fail(path, "S (the state slots) is a size of step modules only");
  if (kernel.isStep() && sizes.find('N') != std::string::npos)
    return reader.fail(path, "a step module has no sequences (N); it is one sequence per "
                             "batch row (B)");
  return true;
}

/// Reads a launch's grid: 1 to 3 dimensions {"dims", "divide"}.
bool readGrid(Reader &reader, const json &launch, const std::string &where, Launch &out) {
  const json *grid = reader.readArray(launch, where, "grid");
  if (!grid)
    return false;
  if (grid->empty() || grid->size() > kMaxGridDims)
    return reader.fail(where + ".grid", "expected 1 to 3 dimensions, got " +
                                            std::to_string(grid->size()));
  for (size_t i = 0; i < grid->size(); ++i) {
    std::string dimWhere = where + ".grid[" + std::to_string(i) + "]";
    GridDim dim;
    if (!reader.expectObject((*grid)[i], dimWhere) ||
        !reader.readString((*grid)[i], dimWhere, "dims", dim.dims, /*nonEmpty=*/false) ||
        !reader.readInteger((*grid)[i], dimWhere, "divide", 1, dim.divide))
      return false;
    if (!isSizeDims(dim.dims))
      return reader.fail(dimWhere + ".dims",
                         "'" + dim.dims + "' is not made of the letters B, T, H, K, V, N, S");
    out.grid.push_back(std::move(dim));
  }
  return true;
}

/// Reads an exported symbol's name.
bool readSymbol(Reader &reader, const json &item, const std::string &where, const char *key,
                std::string &out) {
  if (!reader.readString(item, where, key, out))
    return false;
  return isIdentifier(out) ||
         reader.fail(Reader::pathOf(where, key), "'" + out + "' is not a symbol name");
}

/// Reads one element of `launches` (of a simt module: also its host symbol).
bool readLaunch(Reader &reader, const json &item, const std::string &where, bool simt,
                Launch &out) {
  if (!reader.expectObject(item, where) || !reader.readString(item, where, "function", out.function))
    return false;
  if (simt && !readSymbol(reader, item, where, "symbol", out.symbol))
    return false;
  if (!isIdentifier(out.function))
    return reader.fail(where + ".function", "'" + out.function + "' is not a function name");
  const json *parameters = reader.readArray(item, where, "parameters");
  if (!parameters)
    return false;
  for (size_t i = 0; i < parameters->size(); ++i) {
    const json &parameter = (*parameters)[i];
    if (!parameter.is_string() || parameter.get_ref<const std::string &>().empty())
      return reader.fail(where + ".parameters[" + std::to_string(i) + "]",
                         "expected a non-empty string");
    out.parameters.push_back(parameter.get<std::string>());
  }
  return reader.readInteger(item, where, "threads", 1, out.threads, kMaxThreadsPerBlock) &&
         readGrid(reader, item, where, out) &&
         reader.readInteger(item, where, "dynamic_shared_bytes", 0, out.dynamicSharedBytes,
                            INT32_MAX) &&
         reader.readInteger(item, where, "static_shared_bytes", 0, out.staticSharedBytes) &&
         reader.readInteger(item, where, "registers", 0, out.registers) &&
         reader.readInteger(item, where, "spills", 0, out.spills) &&
         reader.readInteger(item, where, "stack_bytes", 0, out.stackBytes);
}

/// Reads `launches`: at least one.
bool readLaunches(Reader &reader, const json &item, const std::string &where, GpuModule &module) {
  const json *launches = reader.readArray(item, where, "launches");
  if (!launches)
    return false;
  if (launches->empty())
    return reader.fail(where + ".launches", "a GPU module needs at least one launch");
  for (size_t i = 0; i < launches->size(); ++i) {
    Launch launch;
    if (!readLaunch(reader, (*launches)[i], where + ".launches[" + std::to_string(i) + "]",
                    module.simt, launch))
      return false;
    module.launches.push_back(std::move(launch));
  }
  return true;
}

} // namespace

bool parseGpuTarget(const std::string &target, int &capability) {
  if (target.size() < 5 || target.size() > 6 || target.compare(0, 3, "sm_") != 0 ||
      target[3] == '0' || target.find_first_not_of("0123456789", 3) != std::string::npos)
    return false;
  capability = std::stoi(target.substr(3));
  return true;
}

bool readGpuModule(Reader &reader, const json &item, const std::string &where, int capability,
                   Kernel &kernel) {
  GpuModule module;
  module.capability = capability;
  module.simt = kernel.target == "simt";
  std::optional<int64_t> chunkSize;
  bool images = module.simt ||
                (readSymbol(reader, item, where, "ptx", module.ptxSymbol) &&
                 readSymbol(reader, item, where, "cubin", module.cubinSymbol) &&
                 reader.readInteger(item, where, "cubin_size", 1, module.cubinSize));
  if (!reader.readInteger(item, where, "key_dim", 1, module.keyDim) ||
      !reader.readInteger(item, where, "value_dim", 1, module.valueDim) ||
      (item.contains("chunk_size") && !reader.readOptionalSize(item, where, "chunk_size", chunkSize)) ||
      !images ||
      !readSizeModel(reader, item, where, "workspace", module.workspace) ||
      !readSizeModel(reader, item, where, "moves", module.moves) ||
      !readLaunches(reader, item, where, module))
    return false;
  module.chunkSize = chunkSize.value_or(0); // 0: the spec's (filled in by parseManifest)
  kernel.gpu = std::move(module);
  return true;
}

bool checkGpuParameters(Reader &reader, const std::string &where, const Kernel &kernel) {
  std::set<std::string> arguments;
  for (size_t i = 0; i < kernel.arguments.size(); ++i) {
    const std::string &name = kernel.arguments[i].name;
    if (isSizeParameter(name) || name == kWorkspaceParameter)
      return reader.fail(where + ".arguments[" + std::to_string(i) + "].name",
                         "'" + name + "' names a launch parameter of its own in a GPU module");
    arguments.insert(name);
  }
  for (size_t i = 0; i < kernel.gpu->launches.size(); ++i) {
    const Launch &launch = kernel.gpu->launches[i];
    std::set<std::string> seen;
    for (size_t j = 0; j < launch.parameters.size(); ++j) {
      const std::string &name = launch.parameters[j];
      std::string path =
          where + ".launches[" + std::to_string(i) + "].parameters[" + std::to_string(j) + "]";
      if (!arguments.count(name) && !isSizeParameter(name) && name != kWorkspaceParameter)
        return reader.fail(path, "'" + name +
                                     "' is neither an argument, the workspace nor one of B, T, "
                                     "H, K, V, N, S");
      if (isSizeParameter(name) && !checkSizesOfEntry(reader, path, kernel, name))
        return false;
      if (!seen.insert(name).second)
        return reader.fail(path, "parameter '" + name + "' is listed twice");
    }
    for (size_t j = 0; j < launch.grid.size(); ++j)
      if (!checkSizesOfEntry(reader,
                             where + ".launches[" + std::to_string(i) + "].grid[" +
                                 std::to_string(j) + "].dims",
                             kernel, launch.grid[j].dims))
        return false;
  }
  return true;
}

} // namespace decayrt::detail

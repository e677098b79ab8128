// Parses the package manifest JSON and checks every field against docs/package.md.
#include "Manifest.h"

#include "Dtype.h"
#include "GpuManifest.h"
#include "ManifestReader.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include <set>
#include <tuple>
#include <utility>

using nlohmann::json;

namespace decayrt::detail {
namespace {

constexpr int64_t kManifestVersion = 1;
constexpr size_t kMaxRank = 8;

/// Reads spec.inputs or spec.params: objects {name, dims} with dims among `allowedDims`.
bool readDeclaredTensors(Reader &reader, const json &spec, const char *key,
                         std::initializer_list<const char *> allowedDims,
                         std::vector<DeclaredTensor> &out) {
  const json *list = reader.readArray(spec, "spec", key);
  if (!list)
    return false;
  for (size_t i = 0; i < list->size(); ++i) {
    std::string where = std::string("spec.") + key + "[" + std::to_string(i) + "]";
    const json &item = (*list)[i];
    DeclaredTensor tensor;
    if (!reader.expectObject(item, where) || !reader.readString(item, where, "name", tensor.name) ||
        !reader.readString(item, where, "dims", tensor.dims))
      return false;
    if (!isIdentifier(tensor.name))
      return reader.fail(where + ".name", "'" + tensor.name + "' is not an identifier");
    if (!isOneOf(tensor.dims, allowedDims))
      return reader.fail(where + ".dims", "unexpected dims '" + tensor.dims + "'");
    out.push_back(std::move(tensor));
  }
  return true;
}

/// Reads spec.scans: objects {name, init}.
bool readScans(Reader &reader, const json &spec, std::vector<Scan> &out) {
  const json *list = reader.readArray(spec, "spec", "scans");
  if (!list)
    return false;
  std::set<std::string> names;
  for (size_t i = 0; i < list->size(); ++i) {
    std::string where = "spec.scans[" + std::to_string(i) + "]";
    const json &item = (*list)[i];
    Scan scan;
    if (!reader.expectObject(item, where) || !reader.readString(item, where, "name", scan.name) ||
        !reader.readNumber(item, where, "init", scan.init))
      return false;
    if (!isIdentifier(scan.name))
      return reader.fail(where + ".name", "'" + scan.name + "' is not an identifier");
    if (!names.insert(scan.name).second)
      return reader.fail(where + ".name", "duplicate scan '" + scan.name + "'");
    out.push_back(std::move(scan));
  }
  return true;
}

/// Reads the manifest's `spec` object.
bool readSpec(Reader &reader, const json &root, Spec &spec) {
  const json *object = reader.field(root, "", "spec");
  if (!object || !reader.expectObject(*object, "spec"))
    return false;
  const std::string where = "spec";
  if (!reader.readString(*object, where, "name", spec.name) ||
      !reader.readString(*object, where, "granularity", spec.granularity) ||
      !reader.readString(*object, where, "feature_map", spec.featureMap) ||
      !reader.readBool(*object, where, "normalizer", spec.normalizer) ||
      !reader.readBool(*object, where, "derived_key", spec.derivedKey) ||
      !reader.readBool(*object, where, "rope", spec.rope) ||
      !reader.readOptionalSize(*object, where, "key_dim", spec.keyDim) ||
      !reader.readOptionalSize(*object, where, "value_dim", spec.valueDim) ||
      !reader.readInteger(*object, where, "chunk_size", 1, spec.chunkSize))
    return false;
  if (!isIdentifier(spec.name))
    return reader.fail("spec.name", "'" + spec.name + "' is not an identifier");
  if (!isOneOf(spec.granularity,
               {"none", "constant_scalar", "constant_vector", "scalar", "vector"}))
    return reader.fail("spec.granularity", "unknown granularity '" + spec.granularity + "'");
  if (!isOneOf(spec.featureMap, {"identity", "elu1", "exp", "silu", "relu"}))
    return reader.fail("spec.feature_map", "unknown feature map '" + spec.featureMap + "'");
  if (!readDeclaredTensors(reader, *object, "inputs", {"BTH", "BTHK"}, spec.inputs) ||
      !readDeclaredTensors(reader, *object, "params", {"H", "K", "HK"}, spec.params) ||
      !readScans(reader, *object, spec.scans))
    return false;
  std::set<std::string> names;
  for (const auto *list : {&spec.inputs, &spec.params})
    for (const DeclaredTensor &tensor : *list)
      if (!names.insert(tensor.name).second)
        return reader.fail("spec", "duplicate input or param '" + tensor.name + "'");
  return true;
}

/// Checks an argument's dims: "N3" for the sequence table, else 1 to kMaxRank
/// letters of BTHKVNS, where a step kernel's state caches (and only they)
/// start with S and only the other entries use N.
bool checkArgumentDims(Reader &reader, const std::string &where, const Kernel &kernel,
                       const Argument &argument) {
  if (argument.role == Role::Sequences)
    return argument.dims == "N3" ||
           reader.fail(where + ".dims",
                       "the sequence table has dims N3, got '" + argument.dims + "'");
  if (argument.dims.empty() || argument.dims.size() > kMaxRank)
    return reader.fail(where + ".dims", "expected 1 to " + std::to_string(kMaxRank) + " dims");
  for (char dim : argument.dims)
    if (std::string("BTHKVNS").find(dim) == std::string::npos)
      return reader.fail(where + ".dims", "unknown dim '" + std::string(1, dim) + "' in '" +
                                              argument.dims + "' (expected letters of BTHKVNS)");
  bool slotted = argument.dims[0] == 'S';
  if (argument.dims.find('S', 1) != std::string::npos || slotted != (argument.role == Role::Inout))
    return reader.fail(where + ".dims", "'" + argument.dims +
                                            "': S (the state slots) is the first dim of the "
                                            "inout state caches, and only theirs");
  if (kernel.isStep() && argument.dims.find('N') != std::string::npos)
    return reader.fail(where + ".dims", "'" + argument.dims +
                                            "': a step kernel has no sequences (N); it is "
                                            "one sequence per batch row");
  return true;
}

/// Checks an argument's dtype: f32, bf16 or i64, i64 only for the sequence
/// table and a step kernel's slots and positions (dims B), and the state
/// caches f32 but for the attention state `state`, which may be bf16.
bool checkArgumentDtype(Reader &reader, const std::string &where, const Kernel &kernel,
                        const Argument &argument) {
  if (argument.dtype != DECAYRT_F32 && argument.dtype != DECAYRT_BF16 &&
      argument.dtype != DECAYRT_I64)
    return reader.fail(where + ".dtype", std::string("dtype ") + dtypeName(argument.dtype) +
                                             " is not a kernel argument's (f32, bf16 or i64)");
  bool slotsOrPositions = kernel.isStep() && argument.role == Role::Input &&
                          isOneOf(argument.name, {"slots", "positions"}) && argument.dims == "B";
  bool integer = argument.role == Role::Sequences || slotsOrPositions;
  if (integer != (argument.dtype == DECAYRT_I64)) {
    if (argument.role == Role::Sequences)
      return reader.fail(where + ".dtype", "the sequence table is i64");
    if (integer)
      return reader.fail(where + ".dtype", "'" + argument.name + "' (dims B) is i64");
    return reader.fail(where + ".dtype", "only the sequence table and a step kernel's slots and "
                                         "positions (dims B) are i64");
  }
  bool bf16State = argument.name == "state" && argument.dtype == DECAYRT_BF16;
  if (argument.role == Role::Inout && argument.dtype != DECAYRT_F32 && !bf16State)
    return reader.fail(where + ".dtype", "state caches are f32 (only 'state' may be bf16), got " +
                                             std::string(dtypeName(argument.dtype)) + " for '" +
                                             argument.name + "'");
  return true;
}

/// Reads one argument of `kernel` (whose entry is known).
bool readArgument(Reader &reader, const json &item, const std::string &where, const Kernel &kernel,
                  Argument &argument) {
  std::string dtype, role;
  if (!reader.expectObject(item, where) || !reader.readString(item, where, "name", argument.name) ||
      !reader.readString(item, where, "dims", argument.dims) ||
      !reader.readString(item, where, "dtype", dtype) ||
      !reader.readString(item, where, "role", role) ||
      !reader.readOptionalBool(item, where, "optional", argument.optional) ||
      !reader.readOptionalBool(item, where, "unused", argument.unused) ||
      !reader.readOptionalBool(item, where, "overwritten", argument.overwritten))
    return false;
  if (!isIdentifier(argument.name))
    return reader.fail(where + ".name", "'" + argument.name + "' is not an identifier");
  if (!parseDtype(dtype, argument.dtype))
    return reader.fail(where + ".dtype", "unknown dtype '" + dtype + "'");
  if (role == "input")
    argument.role = Role::Input;
  else if (role == "output")
    argument.role = Role::Output;
  else if (role == "sequences")
    argument.role = Role::Sequences;
  else if (role == "inout" && kernel.isStep())
    argument.role = Role::Inout;
  else if (role == "inout")
    return reader.fail(where + ".role", "role inout belongs to step kernels only");
  else
    return reader.fail(where + ".role", "unknown role '" + role + "'");
  if (argument.optional && (argument.role != Role::Input || kernel.isStep()))
    return reader.fail(where + ".optional", kernel.isStep()
                                                ? "a step kernel has no optional arguments"
                                                : "only inputs may be optional");
  if (argument.unused && (argument.role == Role::Sequences || argument.role == Role::Inout))
    return reader.fail(where + ".unused", "the sequence table and state caches cannot be unused");
  if (argument.overwritten &&
      (argument.role != Role::Output || argument.unused || kernel.entry != "backward"))
    return reader.fail(where + ".overwritten",
                       "only a backward kernel's outputs that it writes can be overwritten");
  if (argument.name == "cu_seqlens")
    return reader.fail(where + ".name", "cu_seqlens is not a kernel argument");
  return checkArgumentDtype(reader, where, kernel, argument) &&
         checkArgumentDims(reader, where, kernel, argument);
}

/// Whether `kernel` has the argument `name` with exactly this role, dims and dtype.
bool hasArgument(const Kernel &kernel, const char *name, Role role, const char *dims,
                 decayrt_dtype dtype) {
  for (const Argument &argument : kernel.arguments)
    if (argument.name == name)
      return argument.role == role && argument.dims == dims && argument.dtype == dtype &&
             !argument.optional && !argument.unused;
  return false;
}

/// Checks what a step kernel needs besides q and v: no sequence table, i64
/// inputs slots and positions [B], the state cache `state` [S,H,K,V] (f32,
/// or bf16 storage), and state caches named <what>_state.
bool checkStepArguments(Reader &reader, const std::string &where, const Kernel &kernel) {
  if (!hasArgument(kernel, "slots", Role::Input, "B", DECAYRT_I64) ||
      !hasArgument(kernel, "positions", Role::Input, "B", DECAYRT_I64))
    return reader.fail(where + ".arguments",
                       "a step kernel takes inputs slots and positions (dims B, dtype i64)");
  if (!hasArgument(kernel, "state", Role::Inout, "SHKV", DECAYRT_F32) &&
      !hasArgument(kernel, "state", Role::Inout, "SHKV", DECAYRT_BF16))
    return reader.fail(where + ".arguments", "a step kernel takes the inout state cache 'state' "
                                             "(dims SHKV, dtype f32 or bf16)");
  for (const Argument &argument : kernel.arguments) {
    const std::string suffix = "_state";
    bool named =
        argument.name == "state" ||
        (argument.name.size() > suffix.size() &&
         argument.name.compare(argument.name.size() - suffix.size(), suffix.size(), suffix) == 0);
    if (argument.role == Role::Inout && !named)
      return reader.fail(where + ".arguments", "inout argument '" + argument.name +
                                                   "' is not named state or <name>_state");
  }
  return true;
}

/// Checks that a CPU kernel has what the runtime needs: q [B,T,H,K] and
/// v [B,T,H,V] inputs (they define the sizes), and one sequence table (a
/// step kernel: slots, positions and its state caches instead).
bool checkKernelArguments(Reader &reader, const std::string &where, const Kernel &kernel) {
  int sequenceTables = 0;
  bool hasQ = false, hasV = false;
  for (const Argument &argument : kernel.arguments) {
    sequenceTables += argument.role == Role::Sequences;
    auto isSizeSource = [&](const char *name, const char *dims) {
      return argument.name == name && argument.role == Role::Input && argument.dims == dims &&
             !argument.optional && !argument.unused;
    };
    hasQ |= isSizeSource("q", "BTHK");
    hasV |= isSizeSource("v", "BTHV");
  }
  if (sequenceTables != (kernel.isStep() ? 0 : 1))
    return reader.fail(where + ".arguments",
                       kernel.isStep() ? "a step kernel has no argument of role sequences"
                                       : "expected exactly one argument of role sequences");
  if (!hasQ || !hasV)
    return reader.fail(where + ".arguments",
                       "expected required inputs q (dims BTHK) and v (dims BTHV)");
  return !kernel.isStep() || checkStepArguments(reader, where, kernel);
}

/// Reads the arguments of a kernel item: unique names, each checked.
bool readArguments(Reader &reader, const json &item, const std::string &where, Kernel &kernel) {
  const json *arguments = reader.readArray(item, where, "arguments");
  if (!arguments)
    return false;
  std::set<std::string> names;
  for (size_t i = 0; i < arguments->size(); ++i) {
    std::string argumentWhere = where + ".arguments[" + std::to_string(i) + "]";
    Argument argument;
    if (!readArgument(reader, (*arguments)[i], argumentWhere, kernel, argument))
      return false;
    if (!names.insert(argument.name).second)
      return reader.fail(argumentWhere + ".name", "duplicate argument '" + argument.name + "'");
    kernel.arguments.push_back(std::move(argument));
  }
  return checkKernelArguments(reader, where, kernel);
}

/// Reads the fields of a CPU kernel item (target "cpu").
bool readCpuKernel(Reader &reader, const json &item, const std::string &where, Kernel &kernel) {
  if (!reader.readString(item, where, "symbol", kernel.symbol) ||
      !reader.readString(item, where, "cpu", kernel.cpu) ||
      !reader.readString(item, where, "threads", kernel.threads))
    return false;
  if (!isIdentifier(kernel.symbol))
    return reader.fail(where + ".symbol", "'" + kernel.symbol + "' is not a symbol name");
  return true;
}

/// Reads one element of `kernels`: a CPU kernel or a GPU module.
bool readKernel(Reader &reader, const json &item, const std::string &where, Kernel &kernel) {
  if (!reader.expectObject(item, where) || !reader.readString(item, where, "entry", kernel.entry) ||
      !reader.readString(item, where, "target", kernel.target))
    return false;
  if (!isOneOf(kernel.entry, {"forward", "backward", "step"}))
    return reader.fail(where + ".entry", "expected \"forward\", \"backward\" or \"step\", got '" +
                                             kernel.entry + "'");
  int capability = 0;
  bool gpu = parseGpuTarget(kernel.target, capability) || kernel.target == "simt";
  if (!gpu && kernel.target != "cpu")
    return reader.fail(where + ".target",
                       "unknown target '" + kernel.target + "' (expected cpu, sm_XY or simt)");
  if (!(gpu ? readGpuModule(reader, item, where, capability, kernel)
            : readCpuKernel(reader, item, where, kernel)))
    return false;
  return readArguments(reader, item, where, kernel) &&
         (!gpu || checkGpuParameters(reader, where, kernel));
}

/// Reads `kernels`: at least one, at most one per (entry, target) and, for
/// GPU modules, per (entry, target, K, V).
bool readKernels(Reader &reader, const json &root, std::vector<Kernel> &kernels) {
  const json *list = reader.readArray(root, "", "kernels");
  if (!list)
    return false;
  if (list->empty())
    return reader.fail("kernels", "the package has no kernel");
  std::set<std::tuple<std::string, std::string, int64_t, int64_t>> seen;
  for (size_t i = 0; i < list->size(); ++i) {
    std::string where = "kernels[" + std::to_string(i) + "]";
    Kernel kernel;
    if (!readKernel(reader, (*list)[i], where, kernel))
      return false;
    int64_t keyDim = kernel.isGpu() ? kernel.gpu->keyDim : 0;
    int64_t valueDim = kernel.isGpu() ? kernel.gpu->valueDim : 0;
    if (!seen.insert({kernel.entry, kernel.target, keyDim, valueDim}).second)
      return reader.fail(where, "a second " + kernel.entry + " kernel for target " +
                                    kernel.target +
                                    (kernel.isGpu() ? " with K = " + std::to_string(keyDim) +
                                                          ", V = " + std::to_string(valueDim)
                                                    : ""));
    // Every kernel of an entry takes the same tensors: a call is checked once,
    // whichever kernel then runs it. Which outputs a kernel overwrites (and so
    // which the runtime zeroes for it) may differ.
    auto sameTensors = [](const std::vector<Argument> &a, const std::vector<Argument> &b) {
      return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                        [](const Argument &x, const Argument &y) { return x.takesSameTensor(y); });
    };
    for (size_t j = 0; j < kernels.size(); ++j)
      if (kernels[j].entry == kernel.entry && !sameTensors(kernels[j].arguments, kernel.arguments))
        return reader.fail(where + ".arguments", "differ from those of kernels[" +
                                                     std::to_string(j) + "], the same entry");
    kernels.push_back(std::move(kernel));
  }
  return true;
}

} // namespace

bool isSizeParameter(const std::string &name) {
  return isOneOf(name, {"B", "T", "H", "K", "V", "N", "S"});
}

bool parseManifest(const std::string &text, Manifest &out, std::string &error) {
  error.clear();
  json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) {
    error = "not valid JSON";
    return false;
  }
  Reader reader(error);
  if (!reader.expectObject(root, "manifest"))
    return false;
  std::string format;
  int64_t version = 0;
  if (!reader.readString(root, "", "format", format))
    return false;
  if (format != "decayc-package")
    return reader.fail("format", "expected \"decayc-package\", got '" + format + "'");
  if (!reader.readInteger(root, "", "version", 0, version))
    return false;
  if (version != kManifestVersion)
    return reader.fail("version", "unsupported version " + std::to_string(version) +
                                      " (this decayrt reads version " +
                                      std::to_string(kManifestVersion) + ")");
  Manifest manifest;
  if (!readSpec(reader, root, manifest.spec) || !readKernels(reader, root, manifest.kernels))
    return false;
  for (Kernel &kernel : manifest.kernels)
    if (kernel.isGpu() && kernel.gpu->chunkSize == 0)
      kernel.gpu->chunkSize = manifest.spec.chunkSize;
  out = std::move(manifest);
  return true;
}

} // namespace decayrt::detail

// Parses the package manifest JSON and checks every field against docs/package.md.
#include "Manifest.h"

#include "Dtype.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <set>
#include <utility>

using nlohmann::json;

namespace decayrt::detail {
namespace {

constexpr int64_t kManifestVersion = 1;
constexpr size_t kMaxRank = 8;

/// Whether `name` is a C identifier (the names of tensors, specs and symbols).
bool isIdentifier(const std::string &name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9'))
    return false;
  for (char c : name)
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
      return false;
  return true;
}

/// Whether `value` is one of `allowed`.
bool isOneOf(const std::string &value, std::initializer_list<const char *> allowed) {
  for (const char *candidate : allowed)
    if (value == candidate)
      return true;
  return false;
}

/// Reads typed fields of JSON objects; the first failure is kept in `error`
/// as "<path>: <what is wrong>".
class Reader {
public:
  explicit Reader(std::string &error) : firstError(error) {}

  /// Records a failure at `path` and returns false.
  bool fail(const std::string &path, const std::string &what) {
    if (firstError.empty())
      firstError = path + ": " + what;
    return false;
  }

  /// The path of `key` inside the object at `where`.
  static std::string pathOf(const std::string &where, const std::string &key) {
    return where.empty() ? key : where + "." + key;
  }

  /// The member `key` of `object`, or null (and a failure) when it is absent.
  const json *field(const json &object, const std::string &where, const char *key) {
    auto it = object.find(key);
    if (it == object.end()) {
      fail(pathOf(where, key), "missing");
      return nullptr;
    }
    return &*it;
  }

  /// Reads a string member; `nonEmpty` rejects "".
  bool readString(const json &object, const std::string &where, const char *key, std::string &out,
                  bool nonEmpty = true) {
    const json *value = field(object, where, key);
    if (!value)
      return false;
    if (!value->is_string() || (nonEmpty && value->get_ref<const std::string &>().empty()))
      return fail(pathOf(where, key),
                  nonEmpty ? "expected a non-empty string" : "expected a string");
    out = value->get<std::string>();
    return true;
  }

  /// Reads a boolean member.
  bool readBool(const json &object, const std::string &where, const char *key, bool &out) {
    const json *value = field(object, where, key);
    if (!value)
      return false;
    if (!value->is_boolean())
      return fail(pathOf(where, key), "expected true or false");
    out = value->get<bool>();
    return true;
  }

  /// Reads a boolean member that defaults to false when absent.
  bool readOptionalBool(const json &object, const std::string &where, const char *key, bool &out) {
    out = false;
    if (object.find(key) == object.end())
      return true;
    return readBool(object, where, key, out);
  }

  /// Reads an integer member in [minimum, INT64_MAX].
  bool readInteger(const json &object, const std::string &where, const char *key, int64_t minimum,
                   int64_t &out) {
    const json *value = field(object, where, key);
    if (!value)
      return false;
    if (!toInteger(*value, minimum, out))
      return fail(pathOf(where, key), "expected an integer >= " + std::to_string(minimum));
    return true;
  }

  /// Reads a member that is null or a positive integer.
  bool readOptionalSize(const json &object, const std::string &where, const char *key,
                        std::optional<int64_t> &out) {
    const json *value = field(object, where, key);
    if (!value)
      return false;
    out.reset();
    if (value->is_null())
      return true;
    int64_t size = 0;
    if (!toInteger(*value, 1, size))
      return fail(pathOf(where, key), "expected null or a positive integer");
    out = size;
    return true;
  }

  /// Reads a number member; the strings "inf", "-inf" and "nan" stand for the
  /// values JSON cannot spell.
  bool readNumber(const json &object, const std::string &where, const char *key, double &out) {
    const json *value = field(object, where, key);
    if (!value)
      return false;
    if (value->is_number()) {
      out = value->get<double>();
      return true;
    }
    if (value->is_string()) {
      const std::string &text = value->get_ref<const std::string &>();
      if (text == "inf" || text == "+inf" || text == "-inf") {
        out = text == "-inf" ? -std::numeric_limits<double>::infinity()
                             : std::numeric_limits<double>::infinity();
        return true;
      }
      if (text == "nan") {
        out = std::numeric_limits<double>::quiet_NaN();
        return true;
      }
    }
    return fail(pathOf(where, key), "expected a number (or \"inf\", \"-inf\", \"nan\")");
  }

  /// The array member `key`, or null (and a failure).
  const json *readArray(const json &object, const std::string &where, const char *key) {
    const json *value = field(object, where, key);
    if (value && !value->is_array()) {
      fail(pathOf(where, key), "expected an array");
      return nullptr;
    }
    return value;
  }

  /// Fails unless `value` is an object.
  bool expectObject(const json &value, const std::string &path) {
    return value.is_object() || fail(path, "expected an object");
  }

private:
  /// Reads `value` as an integer in [minimum, INT64_MAX]; false if it is not one.
  static bool toInteger(const json &value, int64_t minimum, int64_t &out) {
    if (!value.is_number_integer())
      return false;
    if (value.is_number_unsigned()) {
      uint64_t unsignedValue = value.get<uint64_t>();
      if (unsignedValue > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return false;
      out = static_cast<int64_t>(unsignedValue);
    } else {
      out = value.get<int64_t>();
    }
    return out >= minimum;
  }

  std::string &firstError;
};

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
/// letters of BTHKVN.
bool checkArgumentDims(Reader &reader, const std::string &where, const Argument &argument) {
  if (argument.role == Role::Sequences)
    return argument.dims == "N3" ||
           reader.fail(where + ".dims",
                       "the sequence table has dims N3, got '" + argument.dims + "'");
  if (argument.dims.empty() || argument.dims.size() > kMaxRank)
    return reader.fail(where + ".dims", "expected 1 to " + std::to_string(kMaxRank) + " dims");
  for (char dim : argument.dims)
    if (std::string("BTHKVN").find(dim) == std::string::npos)
      return reader.fail(where + ".dims", "unknown dim '" + std::string(1, dim) + "' in '" +
                                              argument.dims + "' (expected letters of BTHKVN)");
  return true;
}

/// Reads one kernel argument.
bool readArgument(Reader &reader, const json &item, const std::string &where, Argument &argument) {
  std::string dtype, role;
  if (!reader.expectObject(item, where) || !reader.readString(item, where, "name", argument.name) ||
      !reader.readString(item, where, "dims", argument.dims) ||
      !reader.readString(item, where, "dtype", dtype) ||
      !reader.readString(item, where, "role", role) ||
      !reader.readOptionalBool(item, where, "optional", argument.optional) ||
      !reader.readOptionalBool(item, where, "unused", argument.unused))
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
  else
    return reader.fail(where + ".role", "unknown role '" + role + "'");
  if (argument.optional && argument.role != Role::Input)
    return reader.fail(where + ".optional", "only inputs may be optional");
  if (argument.unused && argument.role == Role::Sequences)
    return reader.fail(where + ".unused", "the sequence table cannot be unused");
  if (argument.role == Role::Sequences && argument.dtype != DECAYRT_I64)
    return reader.fail(where + ".dtype", "the sequence table is i64");
  if (argument.name == "cu_seqlens")
    return reader.fail(where + ".name", "cu_seqlens is not a kernel argument");
  return checkArgumentDims(reader, where, argument);
}

/// Checks that a CPU kernel has what the runtime needs: q [B,T,H,K] and
/// v [B,T,H,V] inputs (they define the sizes) and one sequence table.
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
  if (sequenceTables != 1)
    return reader.fail(where + ".arguments", "expected exactly one argument of role sequences");
  if (!hasQ || !hasV)
    return reader.fail(where + ".arguments",
                       "expected required inputs q (dims BTHK) and v (dims BTHV)");
  return true;
}

/// Reads one element of `kernels`.
bool readKernel(Reader &reader, const json &item, const std::string &where, Kernel &kernel) {
  if (!reader.expectObject(item, where) || !reader.readString(item, where, "entry", kernel.entry) ||
      !reader.readString(item, where, "target", kernel.target) ||
      !reader.readString(item, where, "symbol", kernel.symbol) ||
      !reader.readString(item, where, "cpu", kernel.cpu) ||
      !reader.readString(item, where, "threads", kernel.threads))
    return false;
  if (kernel.entry != "forward" && kernel.entry != "backward")
    return reader.fail(where + ".entry",
                       "expected \"forward\" or \"backward\", got '" + kernel.entry + "'");
  if (!isIdentifier(kernel.symbol))
    return reader.fail(where + ".symbol", "'" + kernel.symbol + "' is not a symbol name");
  const json *arguments = reader.readArray(item, where, "arguments");
  if (!arguments)
    return false;
  std::set<std::string> names;
  for (size_t i = 0; i < arguments->size(); ++i) {
    std::string argumentWhere = where + ".arguments[" + std::to_string(i) + "]";
    Argument argument;
    if (!readArgument(reader, (*arguments)[i], argumentWhere, argument))
      return false;
    if (!names.insert(argument.name).second)
      return reader.fail(argumentWhere + ".name", "duplicate argument '" + argument.name + "'");
    kernel.arguments.push_back(std::move(argument));
  }
  return checkKernelArguments(reader, where, kernel);
}

/// Reads `kernels`: at least one, at most one per (entry, target).
bool readKernels(Reader &reader, const json &root, std::vector<Kernel> &kernels) {
  const json *list = reader.readArray(root, "", "kernels");
  if (!list)
    return false;
  if (list->empty())
    return reader.fail("kernels", "the package has no kernel");
  std::set<std::pair<std::string, std::string>> seen;
  for (size_t i = 0; i < list->size(); ++i) {
    std::string where = "kernels[" + std::to_string(i) + "]";
    Kernel kernel;
    if (!readKernel(reader, (*list)[i], where, kernel))
      return false;
    if (!seen.insert({kernel.entry, kernel.target}).second)
      return reader.fail(where, "a second " + kernel.entry + " kernel for target " + kernel.target);
    kernels.push_back(std::move(kernel));
  }
  return true;
}

} // namespace

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
  out = std::move(manifest);
  return true;
}

} // namespace decayrt::detail

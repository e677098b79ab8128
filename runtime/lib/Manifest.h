// The package manifest (docs/package.md) as checked C++ values, and its parser.
#ifndef DECAYRT_LIB_MANIFEST_H
#define DECAYRT_LIB_MANIFEST_H

#include "decayrt/decayrt.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace decayrt::detail {

/// A spec input or param: its name and its dims ("BTH", "H", ...).
struct DeclaredTensor {
  std::string name;
  std::string dims;
};

/// A scan op of the spec: its state is `scan_<name>_h0` / `scan_<name>_ht`.
struct Scan {
  std::string name;
  double init = 0.0; ///< the state before the first token
};

/// The manifest's `spec`: what the recurrence declares.
struct Spec {
  std::string name;
  std::string granularity;
  std::string featureMap;
  bool normalizer = false;
  bool derivedKey = false;
  bool rope = false;
  std::optional<int64_t> keyDim, valueDim; ///< fixed K and V, if any
  int64_t chunkSize = 0;
  std::vector<DeclaredTensor> inputs, params;
  std::vector<Scan> scans;
};

/// What a kernel argument is.
enum class Role { Input, Output, Sequences };

/// One argument of a kernel, in the kernel's order.
struct Argument {
  std::string name;
  std::string dims; ///< letters of BTHKVN; "N3" for the sequence table
  decayrt_dtype dtype = DECAYRT_F32;
  Role role = Role::Input;
  bool optional = false; ///< an input the caller may omit (zeros or the scan's init)
  bool unused = false;   ///< neither read nor written: the runtime passes scratch
};

/// One compiled entry point.
struct Kernel {
  std::string entry;  ///< "forward" or "backward"
  std::string target; ///< "cpu"
  std::string symbol; ///< the exported function void symbol(void **arguments)
  std::string cpu;    ///< the -march it was compiled for
  std::string threads;
  std::vector<Argument> arguments;
};

/// A whole manifest.
struct Manifest {
  Spec spec;
  std::vector<Kernel> kernels;
};

/// Parses and validates manifest JSON. On failure returns false and sets
/// `error` to a message naming the offending field (e.g. "kernels[0].symbol:
/// expected a non-empty string").
bool parseManifest(const std::string &text, Manifest &out, std::string &error);

} // namespace decayrt::detail

#endif // DECAYRT_LIB_MANIFEST_H

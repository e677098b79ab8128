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

/// What a kernel argument is: read, written, the runtime's sequence table, or
/// (step kernels' state caches) read and updated in place.
enum class Role { Input, Output, Sequences, Inout };

/// One argument of a kernel, in the kernel's order.
struct Argument {
  std::string name;
  std::string dims; ///< letters of BTHKVNS; "N3" for the sequence table
  decayrt_dtype dtype = DECAYRT_F32;
  Role role = Role::Input;
  bool optional = false; ///< an input the caller may omit (zeros or the scan's init)
  bool unused = false;   ///< neither read nor written: the runtime passes scratch
  bool overwritten = false; ///< an output whose every element the kernel stores: not zeroed first

  /// Whether a call passes the same tensor for `other` as for this argument
  /// (overwritten, how one kernel writes it, aside).
  bool takesSameTensor(const Argument &other) const {
    return name == other.name && dims == other.dims && dtype == other.dtype &&
           role == other.role && optional == other.optional && unused == other.unused;
  }
};

/// A size in bytes as a function of the call (docs/package.md):
/// token * (B*T*H) + chunk * (H * chunks) + sequence * (N*H) + fixed, where
/// `chunks` counts the chunks of every sequence.
struct SizeModel {
  int64_t token = 0, chunk = 0, sequence = 0, fixed = 0;
};

/// One grid dimension: the product of the sizes its `dims` letters name
/// ("" is 1), divided by `divide`, rounded up.
struct GridDim {
  std::string dims;
  int64_t divide = 1;
};

/// One kernel launch of a GPU module.
struct Launch {
  std::string function;                ///< the .entry name in the PTX
  std::vector<std::string> parameters; ///< argument names, "workspace", B, T, H, K, V, N, S
  int64_t threads = 0;                 ///< threads per (1-d) block
  std::vector<GridDim> grid;           ///< 1 to 3 dimensions (x, y, z)
  int64_t dynamicSharedBytes = 0, staticSharedBytes = 0;
  int64_t registers = 0, spills = 0, stackBytes = 0; ///< from ptxas -v
  std::string symbol; ///< target simt: the exported host entry point (decayrt/simt_abi.h)
};

/// What a kernel item with target sm_XY adds: one CUDA module specialized for
/// K, V; with target simt, the same kernels compiled for the SIMT emulator
/// (no PTX or cubin; each launch names its host entry point).
struct GpuModule {
  bool simt = false;             ///< target simt
  int capability = 0;            ///< 10 * major + minor of the target (sm_86: 86); 0 for simt
  int64_t keyDim = 0, valueDim = 0;
  /// Tokens per chunk of the module's kernels (the manifest's `chunk_size`,
  /// else the spec's): the `chunk` term of its size models counts these.
  int64_t chunkSize = 0;
  std::string ptxSymbol;         ///< exported NUL-terminated PTX
  std::string cubinSymbol;       ///< exported ELF cubin of `cubinSize` bytes
  int64_t cubinSize = 0;
  SizeModel workspace;           ///< device scratch the launches need
  SizeModel moves;               ///< global-memory traffic of the launches as generated
  std::vector<Launch> launches;  ///< launched in this order on one stream
};

/// One compiled entry point: a CPU kernel (target "cpu") or a GPU module
/// (target "sm_XY" or "simt").
struct Kernel {
  std::string entry;  ///< "forward", "backward" or "step"
  std::string target; ///< "cpu", "sm_XY" or "simt"
  std::vector<Argument> arguments;
  // CPU kernels only:
  std::string symbol; ///< the exported function void symbol(void **arguments)
  std::string cpu;    ///< the -march it was compiled for
  std::string threads;
  // GPU modules only:
  std::optional<GpuModule> gpu;

  bool isGpu() const { return gpu.has_value(); }
  /// Whether this is a decoding step kernel (slots and positions, inout state caches).
  bool isStep() const { return entry == "step"; }
};

/// A whole manifest.
struct Manifest {
  Spec spec;
  std::vector<Kernel> kernels;
};

/// The parameters of a GPU launch that are not arguments: the sizes (64-bit
/// integers: B, T, H, K, V, N, and S, a step module's state slots) and the
/// module's workspace (a device address).
bool isSizeParameter(const std::string &name);
constexpr const char *kWorkspaceParameter = "workspace";

/// Parses and validates manifest JSON. On failure returns false and sets
/// `error` to a message naming the offending field (e.g. "kernels[0].symbol:
/// expected a non-empty string").
bool parseManifest(const std::string &text, Manifest &out, std::string &error);

} // namespace decayrt::detail

#endif // DECAYRT_LIB_MANIFEST_H

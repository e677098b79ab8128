// `decayc inspect`: a package's kernels as a table (launch resources per GPU module) and, for a shape, their FLOPs, traffic and roofline.
#include "Commands.h"
#include "ProblemShape.h"

#include "decayrt/decayrt.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

const char *const decayc::kInspectHelp = R"(USAGE: decayc inspect PKG [options]

Prints what a kernel package holds, from its manifest (docs/package.md): one
row per CPU kernel and per launch of each GPU module, with its entry, target,
head dims K and V, function, threads per block, grid (the product of the sizes
each dimension names, divided and rounded up), registers and spilled bytes per
thread, static + dynamic shared memory and stack bytes per block, and the size
of the module's cubin. decayrt loads the package first, so every field is
checked.

OPTIONS:
  --shape B=..,T=..,H=..,K=..,V=..
                       Also print, for every kernel that runs this shape (CPU
                       kernels and the GPU modules of its K and V):
                       - FLOPs: MATH.md section 2, 2T[C(K+V) + 2KV] per
                         (batch, head) with C the chunk size; the backward
                         counted as twice the forward;
                       - min bytes: the least global-memory traffic, every
                         argument tensor of the entry read or written once
                         at its dtype (optional inputs and the sequence table
                         included, unused arguments not);
                       - moves bytes: the traffic of a GPU module as generated
                         (its manifest's `moves`, with N = B sequences of
                         ceil(T/C) chunks each), and moves/min, marked '!'
                         above the goal of 1.5.
                       Unset sizes default to B=4,T=4096,H=8,K=128,V=128.
  --gpu h100|a100      With --shape: each GPU module's roofline time,
                       max(FLOPs / peak, bytes / bandwidth), at the minimum
                       traffic (the bound) and at the generated traffic (H100
                       SXM: 3.35 TB/s and 989 TFLOP/s dense bf16; A100: 2.0
                       TB/s and 312 TFLOP/s).
  --json               Print one JSON object instead of the tables.
  --help               Print this help.

Exit code 0 on success, 1 on any error (one line on stderr).
)";

namespace {

int fail(const std::string &message) {
  std::fprintf(stderr, "decayc inspect: error: %s\n", message.c_str());
  return 1;
}

/// The goal for generated traffic over the minimum.
constexpr double kTrafficGoal = 1.5;

/// A GPU's peak dense bf16 FLOP/s and memory bandwidth in bytes/s.
struct Gpu {
  const char *name;
  double flops, bandwidth;
};
constexpr Gpu kGpus[] = {{"h100", 989e12, 3.35e12}, {"a100", 312e12, 2.0e12}};

/// An argument of a kernel as inspect needs it.
struct ArgumentInfo {
  std::string dims, dtype;
  bool unused = false;
  bool inout = false; ///< role inout: read and written (a step's state slots)
};

/// One kernel item of the manifest.
struct KernelInfo {
  std::string entry, target;
  bool gpu = false;
  int64_t keyDim = 0, valueDim = 0, cubinSize = 0;
  int64_t chunkSize = 0;       ///< GPU modules: their own chunk size (0: the spec's)
  std::string symbol, threads; ///< CPU kernels
  std::vector<ArgumentInfo> arguments;
  const llvm::json::Object *moves = nullptr;            ///< GPU modules
  std::vector<const llvm::json::Object *> launches;     ///< GPU modules
};

int64_t integerOf(const llvm::json::Object &object, llvm::StringRef key) {
  return object.getInteger(key).value_or(0);
}

/// The kernels of a manifest decayrt has already checked.
std::vector<KernelInfo> readKernels(const llvm::json::Object &manifest) {
  std::vector<KernelInfo> kernels;
  const llvm::json::Array *items = manifest.getArray("kernels");
  if (!items)
    return kernels;
  for (const llvm::json::Value &value : *items) { // kernels point into `manifest`
    const llvm::json::Object &item = *value.getAsObject();
    KernelInfo kernel;
    kernel.entry = item.getString("entry").value_or("").str();
    kernel.target = item.getString("target").value_or("").str();
    kernel.gpu = kernel.target != "cpu";
    kernel.keyDim = integerOf(item, "key_dim");
    kernel.valueDim = integerOf(item, "value_dim");
    kernel.cubinSize = integerOf(item, "cubin_size");
    kernel.chunkSize = integerOf(item, "chunk_size");
    kernel.symbol = item.getString("symbol").value_or("").str();
    kernel.threads = item.getString("threads").value_or("").str();
    kernel.moves = item.getObject("moves");
    if (const llvm::json::Array *arguments = item.getArray("arguments"))
      for (const llvm::json::Value &argument : *arguments) {
        const llvm::json::Object &object = *argument.getAsObject();
        kernel.arguments.push_back({object.getString("dims").value_or("").str(),
                                    object.getString("dtype").value_or("").str(),
                                    object.getBoolean("unused").value_or(false),
                                    object.getString("role").value_or("") == "inout"});
      }
    if (const llvm::json::Array *launches = item.getArray("launches"))
      for (const llvm::json::Value &launch : *launches)
        kernel.launches.push_back(launch.getAsObject());
    kernels.push_back(std::move(kernel));
  }
  return kernels;
}

/// A launch's grid as "[NH, V/64, 1]" (each dimension rounded up).
std::string gridText(const llvm::json::Object &launch) {
  std::string text = "[";
  const llvm::json::Array *grid = launch.getArray("grid");
  for (const llvm::json::Value &value : grid ? *grid : llvm::json::Array()) { // a copy
    const llvm::json::Object &dim = *value.getAsObject();
    std::string dims = dim.getString("dims").value_or("").str();
    int64_t divide = integerOf(dim, "divide");
    text += (text.size() > 1 ? ", " : "") + (dims.empty() ? std::string("1") : dims) +
            (divide > 1 ? "/" + std::to_string(divide) : "");
  }
  return text + "]";
}

/// Columns of text, printed left-aligned two spaces apart.
class Table {
public:
  explicit Table(std::vector<std::string> header) { rows.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows.push_back(std::move(row)); }
  void print() const {
    std::vector<size_t> widths;
    for (const auto &row : rows)
      for (size_t i = 0; i < row.size(); ++i) {
        widths.resize(std::max(widths.size(), row.size()));
        widths[i] = std::max(widths[i], row[i].size());
      }
    for (const auto &row : rows) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i)
        line += row[i] + std::string(i + 1 < row.size() ? widths[i] - row[i].size() + 2 : 0, ' ');
      std::printf("%s\n", line.c_str());
    }
  }

private:
  std::vector<std::vector<std::string>> rows;
};

std::string number(int64_t value) { return std::to_string(value); }

/// The table of kernels: one row per CPU kernel and per GPU launch.
void printKernels(const std::vector<KernelInfo> &kernels) {
  Table table({"entry", "target", "K", "V", "function", "threads", "grid", "registers", "spills",
               "shared static+dynamic", "stack", "cubin bytes"});
  for (const KernelInfo &kernel : kernels) {
    if (!kernel.gpu) {
      table.add({kernel.entry, kernel.target, "-", "-", kernel.symbol, kernel.threads, "-", "-",
                 "-", "-", "-", "-"});
      continue;
    }
    for (const llvm::json::Object *launch : kernel.launches)
      table.add({kernel.entry, kernel.target, number(kernel.keyDim), number(kernel.valueDim),
                 launch->getString("function").value_or("").str(),
                 number(integerOf(*launch, "threads")), gridText(*launch),
                 number(integerOf(*launch, "registers")), number(integerOf(*launch, "spills")),
                 number(integerOf(*launch, "static_shared_bytes")) + "+" +
                     number(integerOf(*launch, "dynamic_shared_bytes")),
                 number(integerOf(*launch, "stack_bytes")), number(kernel.cubinSize)});
  }
  table.print();
}

/// What a kernel costs at one shape.
struct Cost {
  const KernelInfo *kernel = nullptr;
  double flops = 0, minBytes = 0, moves = 0; ///< moves: GPU modules only
  double boundSeconds = 0, movesSeconds = 0; ///< with --gpu, GPU modules only
  bool overGoal() const { return kernel->gpu && moves > kTrafficGoal * minBytes; }
};

/// The bytes of one element of a manifest dtype.
double dtypeBytes(const std::string &dtype) {
  return dtype == "bf16" ? 2 : dtype == "f64" || dtype == "i64" ? 8 : 4;
}

/// The costs of every kernel that runs `shape` (N = B).
std::vector<Cost> costsAt(const std::vector<KernelInfo> &kernels, const decayc::ProblemShape &shape,
                          int64_t chunkSize, const Gpu *gpu) {
  auto size = [&](char dim) -> double {
    switch (dim) {
    case 'B': case 'N': case 'S': return static_cast<double>(shape.B); // a step: one slot per sequence
    case 'T': return static_cast<double>(shape.T);
    case 'H': return static_cast<double>(shape.H);
    case 'K': return static_cast<double>(shape.K);
    case 'V': return static_cast<double>(shape.V);
    default: return static_cast<double>(dim - '0'); // the 3 of N3
    }
  };
  std::vector<Cost> costs;
  for (const KernelInfo &kernel : kernels) {
    if (kernel.gpu && (kernel.keyDim != shape.K || kernel.valueDim != shape.V))
      continue;
    // A GPU module counts its own chunks (and FLOPs) with its chunk size.
    int64_t moduleChunk = kernel.chunkSize ? kernel.chunkSize : chunkSize;
    double chunks = static_cast<double>(shape.B) * static_cast<double>((shape.T + moduleChunk - 1) / moduleChunk);
    Cost cost;
    cost.kernel = &kernel;
    cost.flops = kernel.entry == "step" ? decayc::recurrentFlops(shape)
                 : decayc::forwardFlops(shape, moduleChunk) * (kernel.entry == "backward" ? 2 : 1);
    for (const ArgumentInfo &argument : kernel.arguments) {
      if (argument.unused)
        continue;
      double elements = 1;
      for (char dim : argument.dims)
        elements *= size(dim);
      // A step's in-out state slots are read and written.
      cost.minBytes += elements * dtypeBytes(argument.dtype) * (argument.inout ? 2 : 1);
    }
    if (kernel.gpu && kernel.moves) {
      const llvm::json::Object &moves = *kernel.moves;
      cost.moves = integerOf(moves, "token") * size('B') * size('T') * size('H') +
                   integerOf(moves, "chunk") * size('H') * chunks +
                   integerOf(moves, "sequence") * size('N') * size('H') +
                   static_cast<double>(integerOf(moves, "fixed"));
    }
    if (kernel.gpu && gpu) {
      double compute = cost.flops / gpu->flops;
      cost.boundSeconds = std::max(compute, cost.minBytes / gpu->bandwidth);
      cost.movesSeconds = std::max(compute, cost.moves / gpu->bandwidth);
    }
    costs.push_back(cost);
  }
  return costs;
}

std::string integerText(double value) {
  char text[64];
  std::snprintf(text, sizeof text, "%.0f", value);
  return text;
}

std::string fixedText(double value, const char *format) {
  char text[64];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

/// The table of costs at a shape.
void printCosts(const std::vector<Cost> &costs, const std::vector<KernelInfo> &kernels,
                const decayc::ProblemShape &shape, int64_t chunkSize, const Gpu *gpu) {
  std::printf("\nat B=%lld T=%lld H=%lld K=%lld V=%lld: N=%lld sequences of %lld chunks of %lld\n",
              (long long)shape.B, (long long)shape.T, (long long)shape.H, (long long)shape.K,
              (long long)shape.V, (long long)shape.B,
              (long long)((shape.T + chunkSize - 1) / chunkSize), (long long)chunkSize);
  std::vector<std::string> header = {"entry", "target", "FLOPs", "min bytes", "moves bytes",
                                     "moves/min"};
  if (gpu) {
    header.push_back(std::string("bound us (") + gpu->name + ")");
    header.push_back("at moves us");
  }
  Table table(header);
  bool flagged = false;
  for (const Cost &cost : costs) {
    bool gpuModule = cost.kernel->gpu;
    std::vector<std::string> row = {
        cost.kernel->entry, cost.kernel->target, integerText(cost.flops),
        integerText(cost.minBytes), gpuModule ? integerText(cost.moves) : "-",
        gpuModule ? fixedText(cost.moves / cost.minBytes, "%.3f") + (cost.overGoal() ? " !" : "")
                  : "-"};
    if (gpu) {
      row.push_back(gpuModule ? fixedText(cost.boundSeconds * 1e6, "%.3f") : "-");
      row.push_back(gpuModule ? fixedText(cost.movesSeconds * 1e6, "%.3f") : "-");
    }
    flagged |= cost.overGoal();
    table.add(row);
  }
  table.print();
  if (flagged)
    std::printf("! moves more than %.1fx the minimum\n", kTrafficGoal);
  std::string others;
  for (const KernelInfo &kernel : kernels)
    if (kernel.gpu && (kernel.keyDim != shape.K || kernel.valueDim != shape.V))
      others += (others.empty() ? "" : ", ") + kernel.entry + " " + kernel.target + " K=" +
                number(kernel.keyDim) + " V=" + number(kernel.valueDim);
  if (!others.empty())
    std::printf("not listed, compiled for other head dims: %s\n", others.c_str());
}

/// The whole report as one JSON object.
llvm::json::Object toJson(const llvm::json::Object &spec, const std::vector<KernelInfo> &kernels,
                          const std::vector<Cost> *costs, const decayc::ProblemShape &shape,
                          const Gpu *gpu) {
  llvm::json::Array kernelArray;
  for (const KernelInfo &kernel : kernels) {
    llvm::json::Object item{{"entry", kernel.entry}, {"target", kernel.target}};
    if (!kernel.gpu) {
      item["symbol"] = kernel.symbol;
      item["threads"] = kernel.threads;
    } else {
      item["key_dim"] = kernel.keyDim;
      item["value_dim"] = kernel.valueDim;
      item["cubin_size"] = kernel.cubinSize;
      llvm::json::Array launches;
      for (const llvm::json::Object *launch : kernel.launches) {
        llvm::json::Object copy = *launch;
        copy["grid_text"] = gridText(*launch);
        launches.push_back(std::move(copy));
      }
      item["launches"] = std::move(launches);
    }
    kernelArray.push_back(std::move(item));
  }
  llvm::json::Object result{{"spec", spec.getString("name").value_or("")},
                            {"chunk_size", integerOf(spec, "chunk_size")},
                            {"dtype", spec.getString("dtype").value_or("f32")},
                            {"kernels", std::move(kernelArray)}};
  if (!costs)
    return result;
  result["shape"] = llvm::json::Object{{"B", shape.B}, {"T", shape.T}, {"H", shape.H},
                                       {"K", shape.K}, {"V", shape.V}, {"N", shape.B}};
  if (gpu)
    result["gpu"] = gpu->name;
  llvm::json::Array costArray;
  for (const Cost &cost : *costs) {
    llvm::json::Object item{{"entry", cost.kernel->entry}, {"target", cost.kernel->target},
                            {"flops", cost.flops}, {"min_bytes", cost.minBytes}};
    if (cost.kernel->gpu) {
      item["moves_bytes"] = cost.moves;
      item["moves_over_min"] = cost.moves / cost.minBytes;
      item["over_goal"] = cost.overGoal();
      if (gpu) {
        item["bound_s"] = cost.boundSeconds;
        item["at_moves_s"] = cost.movesSeconds;
      }
    }
    costArray.push_back(std::move(item));
  }
  result["costs"] = std::move(costArray);
  return result;
}

} // namespace

int decayc::inspectCommand(int argc, char **argv) {
  Arguments args;
  if (!parseArguments(argc, argv, 2, {"shape", "gpu"}, {"json", "help"}, args))
    return 1;
  if (args.has("help")) {
    std::fputs(kInspectHelp, stdout);
    return 0;
  }
  if (args.positionals.size() != 1)
    return fail("expected exactly one PKG (see decayc inspect --help)");
  ProblemShape shape;
  std::string error;
  if (auto text = args.get("shape"); text && !parseShape(*text, shape, error))
    return fail(error);
  const Gpu *gpu = nullptr;
  if (auto name = args.get("gpu")) {
    for (const Gpu &candidate : kGpus)
      if (*name == candidate.name)
        gpu = &candidate;
    if (!gpu)
      return fail("--gpu must be h100 or a100, got '" + *name + "'");
    if (!args.has("shape"))
      return fail("--gpu needs --shape: the roofline is computed for a shape");
  }
  decayrt_package *package = nullptr;
  if (decayrt_package_load(args.positionals[0].c_str(), &package) != DECAYRT_OK)
    return fail(decayrt_last_error());
  llvm::Expected<llvm::json::Value> manifest = llvm::json::parse(decayrt_package_manifest(package));
  decayrt_package_free(package);
  if (!manifest) // decayrt has parsed it already
    return fail(llvm::toString(manifest.takeError()));
  const llvm::json::Object &root = *manifest->getAsObject();
  const llvm::json::Object &spec = *root.getObject("spec");
  int64_t chunkSize = integerOf(spec, "chunk_size");
  std::vector<KernelInfo> kernels = readKernels(root);
  std::vector<Cost> costs;
  if (args.has("shape"))
    costs = costsAt(kernels, shape, chunkSize, gpu);

  if (args.has("json")) {
    std::string text;
    llvm::raw_string_ostream os(text);
    os << llvm::json::Value(toJson(spec, kernels, args.has("shape") ? &costs : nullptr, shape, gpu));
    std::printf("%s\n", text.c_str());
    return 0;
  }
  std::printf("@%s: %zu kernels (%s decay, %s, chunk %lld)\n",
              spec.getString("name").value_or("").str().c_str(), kernels.size(),
              spec.getString("granularity").value_or("").str().c_str(),
              spec.getString("dtype").value_or("f32").str().c_str(), (long long)chunkSize);
  printKernels(kernels);
  if (args.has("shape"))
    printCosts(costs, kernels, shape, chunkSize, gpu);
  return 0;
}

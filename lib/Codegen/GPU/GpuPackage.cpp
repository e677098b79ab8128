// GPU code generation: a recurrence's GPU kernels as PTX (MLIR) and cubin (ptxas), with their launches and ptxas report.
#include "decay/Codegen/GPU/GpuPackage.h"

#include "decay/Conversion/Passes.h"
#include "decay/Dialect/Decay/IR/DecayDialect.h"
#include "decay/Dialect/Decay/Transforms/Passes.h"
#include "decay/Runner/Signature.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"

#include "llvm/ADT/ScopeExit.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/raw_ostream.h"

#include <map>

using namespace mlir;
using namespace decay;

namespace {
llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// What decay-expand-gpu-kernels recorded on one gpu.module.
struct ExpandedModule {
  std::string name;
  GpuModule module; ///< entry, dims, chunk size, workspace and launches (without ptxas figures)
};

/// Reads the launches and the workspace off the expanded gpu.modules.
std::vector<ExpandedModule> readExpandedModules(ModuleOp expanded) {
  std::vector<ExpandedModule> modules;
  for (auto gpuModule : expanded.getOps<gpu::GPUModuleOp>()) {
    ExpandedModule item;
    item.name = gpuModule.getSymName().str();
    GpuModule &m = item.module;
    m.entry = cast<StringAttr>(gpuModule->getAttr("decay.entry")).str();
    m.keyDim = cast<IntegerAttr>(gpuModule->getAttr("decay.key_dim")).getInt();
    m.valueDim = cast<IntegerAttr>(gpuModule->getAttr("decay.value_dim")).getInt();
    m.chunkSize = cast<IntegerAttr>(gpuModule->getAttr("decay.chunk_size")).getInt();
    // Per-token buffers: 4 rows bytes per (token, head). Per-slot ones: 4
    // rows bytes per (slot, head), with slots <= B (T / C + 3) + N <= B T / C + 4 N.
    for (Attribute buffer : cast<ArrayAttr>(gpuModule->getAttr("decay.workspace"))) {
      auto dict = cast<DictionaryAttr>(buffer);
      int64_t rows = cast<IntegerAttr>(dict.get("rows")).getInt();
      if (cast<BoolAttr>(dict.get("per_slot")).getValue()) {
        m.workspace.token += 4 * rows / m.chunkSize;
        m.workspace.sequence += 16 * rows;
      } else {
        m.workspace.token += 4 * rows;
      }
    }
    for (auto fn : gpuModule.getOps<gpu::GPUFuncOp>()) {
      GpuLaunch launch;
      launch.function = fn.getName().str();
      launch.threads = cast<IntegerAttr>(fn->getAttr("decay.threads")).getInt();
      launch.dynamicSharedBytes = cast<IntegerAttr>(fn->getAttr("decay.dynamic_shared_bytes")).getInt();
      for (Attribute dim : cast<ArrayAttr>(fn->getAttr("decay.grid"))) {
        auto dict = cast<DictionaryAttr>(dim);
        launch.grid.emplace_back(cast<StringAttr>(dict.get("dims")).str(),
                                 cast<IntegerAttr>(dict.get("divide")).getInt());
      }
      m.launches.push_back(std::move(launch));
    }
    modules.push_back(std::move(item));
  }
  return modules;
}

/// Elements per (token, head) or per (sequence, head) of a tensor with `dims`.
int64_t elementsPerRow(llvm::StringRef dims, int64_t keyDim, int64_t valueDim) {
  int64_t count = 1;
  for (char dim : dims.drop_front(dims.starts_with("BT") ? 2 : dims.starts_with("N") ? 1 : 0))
    count *= dim == 'K' ? keyDim : dim == 'V' ? valueDim : 1;
  return count;
}

/// Bytes per (token, head) of the per-token inputs of the spec (dims B, T, ...).
int64_t tokenInputBytes(const SpecSummary &summary, const GpuModule &m) {
  int64_t element = summary.dtype == "bf16" ? 2 : 4, bytes = 0;
  for (auto &[name, dims] : summary.inputs)
    if (llvm::StringRef(dims).starts_with("BT"))
      bytes += element * elementsPerRow(dims, m.keyDim, m.valueDim);
  return bytes;
}

/// The global-memory traffic of the backward as generated, per launch:
/// preparation (q, k, inputs in; q', k', G, G_low, scan values out; the
/// accumulators zeroed), states (the prepared rows and v per value tile; the
/// entering states out), chunk gradients (prepared rows, v, do per tile;
/// dq*, dk', dkH added per tile; dv out; states in) and the tail (prepared
/// rows and the gradient parts in, dq, dk and the inputs' gradients out).
ByteModel backwardTraffic(const SpecSummary &summary, const GpuModule &m, int64_t valueTile) {
  int64_t element = summary.dtype == "bf16" ? 2 : 4;
  int64_t tiles = m.valueDim / valueTile, keys = m.keyDim;
  int64_t decayRows = summary.perChannel ? keys : 1;
  int64_t prepared = 4 * (2 * keys + 2 * decayRows);
  int64_t scans = 4 * decayRows * static_cast<int64_t>(summary.scans.size());
  int64_t inputs = tokenInputBytes(summary, m);
  ByteModel moves;
  moves.token += element * keys * 2 + inputs + prepared + scans + 4 * (3 * keys + 1); // prepare
  moves.token += tiles * (prepared + element * valueTile);                            // states
  moves.token += tiles * (prepared + 2 * element * valueTile + 2 * 4 * (3 * keys + 1)) +
                 element * m.valueDim;                                                  // gradients
  moves.token += prepared + 4 * 5 * keys + scans + element * 4 * keys + 2 * inputs;    // tail
  moves.chunk += 2 * 4 * keys * m.valueDim + 3 * 4 * keys;                             // states, edges
  moves.sequence += 4 * 4 * keys * m.valueDim + 4 * 24;                                // h0, dht, dh0; seqs
  for (auto &[name, dims] : summary.params)
    moves.sequence += 2 * 4 * elementsPerRow(dims, m.keyDim, m.valueDim);
  return moves;
}

/// The global-memory traffic of the forward as generated: the preparation
/// reads q, k and the per-token inputs and writes the workspace; every value
/// tile's block reads the workspace and its v columns and writes its o
/// columns; states and params are read (and written) once per block.
ByteModel forwardTraffic(const SpecSummary &summary, const GpuModule &m, int64_t valueTile) {
  int64_t element = summary.dtype == "bf16" ? 2 : 4;
  int64_t tiles = m.valueDim / valueTile;
  ByteModel moves;
  moves.token += element * m.keyDim * (summary.derivedKey ? 1 : 2) + m.workspace.token;
  moves.token += tokenInputBytes(summary, m);
  moves.token += tiles * m.workspace.token + 2 * element * m.valueDim; // workspace again; v and o
  for (auto &[name, dims] : summary.params)
    moves.sequence += 4 * elementsPerRow(dims, m.keyDim, m.valueDim);
  int64_t scanState = summary.perChannel ? m.keyDim : 1;
  moves.sequence += 2 * 4 * scanState * static_cast<int64_t>(summary.scans.size()); // scan h0, ht
  moves.sequence += (1 + tiles) * 24;                                                 // seqs rows
  moves.sequence += 2 * 4 * m.keyDim * m.valueDim;                                    // h0, ht
  if (summary.normalizer)
    moves.sequence += (tiles + 1) * 4 * m.keyDim;
  return moves;
}

/// The global-memory traffic of the step as generated: per token and head
/// its q, k, inputs, v and o, and the [K, V] state read and written in its
/// storage type (every token sweeps it); per row and head the carried normalizer and scans read
/// and written, the params, its slot and position.
ByteModel stepTraffic(const SpecSummary &summary, const GpuModule &m) {
  int64_t element = summary.dtype == "bf16" ? 2 : 4;
  int64_t stateElement = summary.stateDtype == "bf16" ? 2 : 4;
  ByteModel moves;
  moves.token += element * m.keyDim * (summary.derivedKey ? 1 : 2) + tokenInputBytes(summary, m);
  moves.token += 2 * element * m.valueDim + 2 * stateElement * m.keyDim * m.valueDim;
  int64_t scanState = summary.perChannel ? m.keyDim : 1;
  moves.sequence += 2 * 4 * scanState * static_cast<int64_t>(summary.scans.size()) + 2 * 8;
  if (summary.normalizer)
    moves.sequence += 2 * 4 * m.keyDim;
  for (auto &[name, dims] : summary.params)
    moves.sequence += 4 * elementsPerRow(dims, m.keyDim, m.valueDim);
  return moves;
}

/// The traffic model of a module of `m.entry`.
ByteModel trafficOf(const SpecSummary &summary, const GpuModule &m) {
  if (m.entry == "step")
    return stepTraffic(summary, m);
  return m.entry == "forward" ? forwardTraffic(summary, m, /*valueTile=*/64)
                              : backwardTraffic(summary, m, /*valueTile=*/64);
}

/// The most shared memory a block may opt in to on `chip` (CUDA C
/// Programming Guide, "Technical Specifications per Compute Capability").
int64_t sharedMemoryLimit(llvm::StringRef chip) {
  if (chip == "sm_90")
    return 227 * 1024;
  if (chip == "sm_80" || chip == "sm_87")
    return 163 * 1024;
  return 99 * 1024; // sm_86, sm_89
}

/// ptxas: `requested`, else $CUDA_HOME/bin/ptxas, /usr/local/cuda/bin/ptxas, PATH.
llvm::Expected<std::string> findPtxas(const std::string &requested) {
  if (!requested.empty()) {
    if (!llvm::sys::fs::can_execute(requested))
      return makeError("ptxas '" + requested + "' is not an executable file");
    return requested;
  }
  for (const std::string &toolkit : cudaToolkitCandidates())
    if (std::string candidate = toolkit + "/bin/ptxas"; llvm::sys::fs::can_execute(candidate))
      return candidate;
  if (auto found = llvm::sys::findProgramByName("ptxas"))
    return *found;
  return makeError("ptxas not found (CUDA toolkit): looked in $CUDA_HOME/bin, /usr/local/cuda/bin "
                   "and PATH; pass --ptxas PATH");
}

/// Fills the launches' registers, spills, stack and static shared memory from ptxas -v output.
llvm::Error readPtxasReport(llvm::StringRef report, GpuModule &m) {
  std::map<std::string, GpuLaunch *> byName;
  for (GpuLaunch &launch : m.launches)
    byName[launch.function] = &launch;
  llvm::Regex properties("Function properties for ([A-Za-z0-9_]+)");
  llvm::Regex frame("([0-9]+) bytes stack frame, ([0-9]+) bytes spill stores, ([0-9]+) bytes spill loads");
  llvm::Regex compiling("Compiling entry function '([A-Za-z0-9_]+)'");
  llvm::Regex used("Used ([0-9]+) registers");
  llvm::Regex shared("([0-9]+) bytes smem");
  GpuLaunch *current = nullptr;
  llvm::SmallVector<llvm::StringRef> lines, groups;
  report.split(lines, '\n');
  for (llvm::StringRef line : lines) {
    if (properties.match(line, &groups) || compiling.match(line, &groups)) {
      auto found = byName.find(groups[1].str());
      current = found == byName.end() ? nullptr : found->second;
      continue;
    }
    if (!current)
      continue;
    if (frame.match(line, &groups)) {
      current->stackBytes = std::stoll(groups[1].str());
      current->spillBytes = std::stoll(groups[2].str()) + std::stoll(groups[3].str());
    }
    if (used.match(line, &groups))
      current->registers = std::stoll(groups[1].str());
    if (shared.match(line, &groups))
      current->staticSharedBytes = std::stoll(groups[1].str());
  }
  for (const GpuLaunch &launch : m.launches)
    if (launch.registers == 0)
      return makeError("ptxas did not report on kernel '" + launch.function + "'");
  return llvm::Error::success();
}

/// Assembles `m.ptx` for `m.target` with ptxas into `m.cubin` and reads its report.
llvm::Error assemble(const std::string &ptxas, GpuModule &m) {
  llvm::SmallString<128> ptxPath, cubinPath, outPath, errPath;
  for (auto [path, suffix] : {std::pair{&ptxPath, "ptx"}, std::pair{&cubinPath, "cubin"},
                              std::pair{&outPath, "out"}, std::pair{&errPath, "err"}})
    if (std::error_code ec = llvm::sys::fs::createTemporaryFile("decayc-gpu", suffix, *path))
      return makeError("cannot create a temporary file: " + ec.message());
  llvm::scope_exit cleanup([&] {
    for (auto *path : {&ptxPath, &cubinPath, &outPath, &errPath})
      llvm::sys::fs::remove(*path);
  });
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(ptxPath, ec);
    if (ec)
      return makeError("cannot write '" + ptxPath + "': " + ec.message());
    os << m.ptx;
  }
  std::string arch = "-arch=" + m.target;
  llvm::SmallVector<llvm::StringRef> argv = {ptxas, arch, "-v", "-o", cubinPath, ptxPath};
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, llvm::StringRef(outPath),
                                                llvm::StringRef(errPath)};
  std::string message;
  int status = llvm::sys::ExecuteAndWait(ptxas, argv, std::nullopt, redirects, 0, 0, &message);
  std::string report;
  for (auto *path : {&outPath, &errPath})
    if (auto text = llvm::MemoryBuffer::getFile(*path))
      report += (*text)->getBuffer().str();
  if (status != 0)
    return makeError("ptxas failed on '" + m.launches.front().function + "' for " + m.target + ": " +
                     (report.empty() ? message : report));
  auto cubin = llvm::MemoryBuffer::getFile(cubinPath, /*IsText=*/false);
  if (!cubin)
    return makeError("ptxas wrote no cubin: " + cubin.getError().message());
  m.cubin = (*cubin)->getBuffer().str();
  return readPtxasReport(report, m);
}
} // namespace

namespace {
/// The chips `targets` names, checked; whether it also names simt.
llvm::Error splitTargets(const std::vector<std::string> &targets, std::vector<std::string> &chips,
                         bool &simt) {
  llvm::Regex chipPattern("^sm_(80|86|87|89|90)$");
  simt = false;
  for (const std::string &target : targets) {
    if (target == "simt") {
      simt = true;
      continue;
    }
    if (!chipPattern.match(target))
      return makeError("GPU target '" + target + "' is not supported (sm_80, sm_86, sm_87, sm_89, "
                       "sm_90: the kernels need mma.sync with tf32; or simt)");
    chips.push_back(target);
  }
  return llvm::Error::success();
}

/// The head dims of the modules: the requested ones, else the spec's fixed K = V, else 64 and 128.
llvm::Expected<std::vector<int64_t>> moduleHeadDims(const SpecSummary &summary,
                                                    const GpuOptions &options) {
  std::vector<int64_t> headDims = options.headDims;
  if (headDims.empty()) {
    if (summary.keyDim && summary.valueDim && *summary.keyDim != *summary.valueDim)
      return makeError("the GPU kernels need K = V; the spec fixes K = " + llvm::Twine(*summary.keyDim) +
                       " and V = " + llvm::Twine(*summary.valueDim));
    std::optional<int64_t> fixed = summary.keyDim ? summary.keyDim : summary.valueDim;
    headDims = fixed ? std::vector<int64_t>{*fixed} : std::vector<int64_t>{64, 128};
  }
  for (int64_t dim : headDims)
    if (dim != 64 && dim != 128)
      return makeError("GPU head dim " + llvm::Twine(dim) + " is not supported (64 or 128)");
  return headDims;
}

/// The toolkit of ptxas (<toolkit>/bin/ptxas), where libdevice also is.
llvm::Expected<std::string> toolkitOf(const std::string &ptxas) {
  std::string toolkit = llvm::sys::path::parent_path(llvm::sys::path::parent_path(ptxas)).str();
  if (!llvm::sys::fs::exists(toolkit + "/nvvm/libdevice/libdevice.10.bc"))
    toolkit = defaultCudaToolkit();
  if (toolkit.empty())
    return makeError("libdevice (nvvm/libdevice/libdevice.10.bc of the CUDA toolkit) not found next "
                     "to '" + ptxas + "', in $CUDA_HOME or in /usr/local/cuda");
  return toolkit;
}

/// Writes a module's PTX into `directory` as <module>_<target>.ptx.
llvm::Error writePtx(const std::string &directory, const std::string &moduleName, const GpuModule &m) {
  llvm::SmallString<256> path(directory);
  llvm::sys::path::append(path, moduleName + "_" + m.target + ".ptx");
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec)
    return makeError("cannot write '" + path + "': " + ec.message());
  os << m.ptx;
  return llvm::Error::success();
}

/// Checks a module's launches against the chip's shared memory and ptxas's spills.
llvm::Error checkResources(const GpuModule &m) {
  int64_t sharedLimit = sharedMemoryLimit(m.target);
  for (const GpuLaunch &launch : m.launches)
    if (launch.dynamicSharedBytes + launch.staticSharedBytes > sharedLimit)
      return makeError("kernel '" + launch.function + "' needs " +
                       llvm::Twine(launch.dynamicSharedBytes + launch.staticSharedBytes) +
                       " bytes of shared memory per block; " + m.target + " allows " +
                       llvm::Twine(sharedLimit) + " (try --gpu-head-dims 64)");
  for (const GpuLaunch &launch : m.launches)
    if (launch.spillBytes != 0)
      return makeError("kernel '" + launch.function + "' spills " + llvm::Twine(launch.spillBytes) +
                       " bytes of registers for " + m.target + " (ptxas -v); refusing to package it");
  return llvm::Error::success();
}

/// The expanded modules compiled to PTX and cubin for `chip`.
llvm::Error compileForChip(ModuleOp expanded, const std::vector<ExpandedModule> &expandedModules,
                           const SpecSummary &summary, const GpuOptions &options,
                           const std::string &chip, const std::string &ptxas,
                           const std::string &toolkit, std::vector<GpuModule> &out) {
  OwningOpRef<ModuleOp> lowered = expanded.clone();
  PassManager pm(expanded.getContext());
  buildGpuKernelsToPtxPipeline(pm, chip, toolkit);
  if (failed(pm.run(*lowered)))
    return makeError("lowering the GPU kernels to PTX for " + chip + " failed (see the "
                     "diagnostics above)");
  for (const ExpandedModule &item : expandedModules) {
    auto binary = lowered->lookupSymbol<gpu::BinaryOp>(item.name);
    if (!binary || binary.getObjects().empty())
      return makeError("no PTX was produced for '" + item.name + "'");
    GpuModule m = item.module;
    m.target = chip;
    m.ptx = cast<gpu::ObjectAttr>(binary.getObjects()[0]).getObject().str();
    if (llvm::Error error = assemble(ptxas, m))
      return error;
    if (llvm::Error error = checkResources(m))
      return error;
    m.moves = trafficOf(summary, m);
    if (!options.emitPtxDir.empty())
      if (llvm::Error error = writePtx(options.emitPtxDir, item.name, m))
        return error;
    out.push_back(std::move(m));
  }
  return llvm::Error::success();
}

/// The expanded modules compiled for the SIMT emulator: simt modules whose
/// launches name their host entry points, and the LLVM IR defining them.
llvm::Error compileForSimt(ModuleOp expanded, const std::vector<ExpandedModule> &expandedModules,
                           const SpecSummary &summary, GpuCompilation &out) {
  OwningOpRef<ModuleOp> lowered = expanded.clone();
  PassManager pm(expanded.getContext());
  buildGpuKernelsToSimtPipeline(pm);
  if (failed(pm.run(*lowered)))
    return makeError("lowering the GPU kernels for the SIMT emulator failed (see the diagnostics "
                     "above)");
  for (const ExpandedModule &item : expandedModules) {
    GpuModule m = item.module;
    m.target = "simt";
    for (GpuLaunch &launch : m.launches)
      launch.symbol = "decay_simt_" + item.name + "_" + launch.function;
    m.moves = trafficOf(summary, m);
    out.modules.push_back(std::move(m));
  }
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> host = translateModuleToLLVMIR(*lowered, llvmContext, "simt");
  if (!host)
    return makeError("translating the SIMT kernels to LLVM IR failed");
  llvm::raw_string_ostream os(out.simtLLVMIR);
  host->print(os, nullptr);
  return llvm::Error::success();
}
} // namespace

llvm::Expected<GpuCompilation> decay::compileGpuModules(ModuleOp specModule,
                                                        const GpuOptions &options) {
  std::vector<std::string> chips;
  bool simt = false;
  if (llvm::Error error = splitTargets(options.targets, chips, simt))
    return std::move(error);
  SpecSummary summary = summarize(*specModule.getOps<RecurrenceOp>().begin());
  auto headDims = moduleHeadDims(summary, options);
  if (!headDims)
    return headDims.takeError();
  std::string ptxas, toolkit;
  if (!chips.empty()) {
    auto found = findPtxas(options.ptxas);
    if (!found)
      return found.takeError();
    auto foundToolkit = toolkitOf(*found);
    if (!foundToolkit)
      return foundToolkit.takeError();
    ptxas = *found;
    toolkit = *foundToolkit;
  }

  MLIRContext *context = specModule.getContext();
  OwningOpRef<ModuleOp> expanded = specModule.clone();
  PassManager expand(context);
  DecayExpandGpuKernelsPassOptions expandOptions;
  expandOptions.headDims = llvm::SmallVector<int64_t>(headDims->begin(), headDims->end());
  expandOptions.backward = true;
  expandOptions.step = true;
  expandOptions.testOmitBarrier = options.testOmitBarrier;
  expand.addPass(createDecayDeriveGradientsPass());
  expand.addPass(createDecayExpandGpuKernelsPass(expandOptions));
  if (failed(expand.run(*expanded)))
    return makeError("building the GPU kernels failed (see the diagnostics above)");
  std::vector<ExpandedModule> expandedModules = readExpandedModules(*expanded);

  GpuCompilation compilation;
  for (const std::string &chip : chips)
    if (llvm::Error error = compileForChip(*expanded, expandedModules, summary, options, chip, ptxas,
                                           toolkit, compilation.modules))
      return std::move(error);
  if (simt)
    if (llvm::Error error = compileForSimt(*expanded, expandedModules, summary, compilation))
      return std::move(error);
  return compilation;
}

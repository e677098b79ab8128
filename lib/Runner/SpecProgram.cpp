// A spec compiled on the fly (JIT) for this CPU: the float64 reference path or the chunked f32 kernels.
#include "decay/Runner/SpecProgram.h"

#include "decay/Conversion/Passes.h"
#include "decay/Dialect/Decay/IR/DecayDialect.h"
#include "decay/Dialect/Decay/Transforms/Passes.h"
#include "decay/InitDecay.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"

#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"

#include <sstream>

using namespace mlir;
using namespace decay;

std::string decay::formatShape(const std::vector<int64_t> &shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i)
    out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

namespace {
/// Whether decay-expand-kernels builds the backward kernel yet.
constexpr bool kChunkedBackwardReady = true;

llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// Formats dims letters as "[B, T, H]".
std::string formatDims(llvm::StringRef dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i)
    out += (i ? ", " : "") + std::string(1, dims[i]);
  return out + "]";
}

/// Reads what a driver needs to know from the recurrence op.
SpecSummary summarize(RecurrenceOp op) {
  SpecSummary summary;
  summary.name = op.getSymName().str();
  summary.granularity = stringifyGranularity(op.getGranularity()).str();
  summary.featureMap = stringifyFeatureMap(op.getEffectiveFeatureMap()).str();
  summary.derivedKey = op.hasDerivedKey();
  summary.normalizer = op.getNormalizer();
  summary.perChannel = op.isPerChannel();
  summary.rope = op.getRopeTheta().has_value();
  summary.keyDim = op.getKeyDim();
  summary.valueDim = op.getValueDim();
  auto collect = [](ArrayAttr names, ArrayAttr dims,
                    std::vector<std::pair<std::string, std::string>> &out) {
    for (auto [name, dim] : llvm::zip(names, dims))
      out.emplace_back(cast<StringAttr>(name).str(), cast<StringAttr>(dim).str());
  };
  collect(op.getInputNames(), op.getInputDims(), summary.inputs);
  collect(op.getParamNames(), op.getParamDims(), summary.params);
  op.walk([&](Operation *scan) {
    if (isa<CumSumOp, LogCumSumExpOp>(scan))
      summary.scans.emplace_back(scan->getAttrOfType<StringAttr>("name").str(),
                                 scan->getAttrOfType<FloatAttr>("init").getValueAsDouble());
  });
  return summary;
}

/// A ranked memref descriptor {allocated, aligned, offset, sizes[R], strides[R]}
/// as the C interface of a lowered function expects it, over caller memory.
class Descriptor {
public:
  template <typename T>
  Descriptor(T *data, const std::vector<int64_t> &shape) {
    words.push_back(reinterpret_cast<int64_t>(data));
    words.push_back(reinterpret_cast<int64_t>(data));
    words.push_back(0);
    words.insert(words.end(), shape.begin(), shape.end());
    std::vector<int64_t> strides(shape.size(), 1);
    for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i)
      strides[i] = strides[i + 1] * shape[i + 1];
    words.insert(words.end(), strides.begin(), strides.end());
  }
  void *get() { return words.data(); }

private:
  std::vector<int64_t> words;
};
} // namespace

struct SpecProgram::Impl {
  MLIRContext context;
  std::unique_ptr<ExecutionEngine> engine;
  std::string forwardName, backwardName;
  bool singlePrecision = false; ///< the kernels take f32 tensors
};

SpecProgram::SpecProgram(std::unique_ptr<Impl> impl, SpecSummary summary)
    : impl(std::move(impl)), summary(std::move(summary)) {}
SpecProgram::~SpecProgram() = default;

llvm::Expected<std::unique_ptr<SpecProgram>>
SpecProgram::compileFile(llvm::StringRef path, const CompileOptions &options) {
  std::string error;
  std::unique_ptr<llvm::MemoryBuffer> file = openInputFile(path, &error);
  if (!file)
    return makeError("cannot read spec '" + path + "': " + error);
  return compile(file->getBuffer(), path, options);
}

llvm::Expected<std::unique_ptr<SpecProgram>>
SpecProgram::compile(llvm::StringRef source, llvm::StringRef bufferName,
                     const CompileOptions &options) {
  llvm::StringRef recurrence = options.recurrence;
  auto impl = std::make_unique<Impl>();
  DialectRegistry registry;
  registerDecayDialects(registry);
  impl->context.appendDialectRegistry(registry);
  impl->context.printOpOnDiagnostic(false); // the location says where; the op dump is noise
  registerBuiltinDialectTranslation(impl->context);
  registerLLVMDialectTranslation(impl->context);

  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(source, bufferName),
                               llvm::SMLoc());
  SourceMgrDiagnosticHandler diagnostics(sourceMgr, &impl->context);
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &impl->context);
  if (!module)
    return makeError("'" + bufferName + "' is not a valid spec (see the diagnostics above)");

  // Keep only the requested recurrence.
  SmallVector<RecurrenceOp> specs(module->getOps<RecurrenceOp>());
  RecurrenceOp chosen;
  for (RecurrenceOp spec : specs)
    if (recurrence.empty() ? specs.size() == 1 : spec.getSymName() == recurrence)
      chosen = spec;
  if (!chosen) {
    std::string names;
    for (RecurrenceOp spec : specs)
      names += (names.empty() ? "@" : ", @") + spec.getSymName().str();
    if (specs.empty())
      return makeError("'" + bufferName + "' holds no decay.recurrence");
    if (recurrence.empty())
      return makeError("'" + bufferName + "' holds several recurrences (" + names +
                       "): choose one with --recurrence");
    return makeError("'" + bufferName + "' has no recurrence @" + recurrence +
                     " (it has " + names + ")");
  }
  for (RecurrenceOp spec : specs)
    if (spec != chosen)
      spec.erase();
  SpecSummary summary = summarize(chosen);
  bool reference = options.target == Target::Reference;
  impl->singlePrecision = !reference;
  impl->forwardName = "_mlir_ciface_" + (reference ? referenceFunctionName(summary.name)
                                                   : summary.name + "_forward");
  impl->backwardName = reference ? impl->forwardName + "_backward"
                                 : "_mlir_ciface_" + summary.name + "_backward";

  PassManager pm(&impl->context);
  pm.addPass(createDecayDeriveGradientsPass());
  if (reference)
    pm.addPass(createDecayLowerToReferencePass(DecayLowerToReferencePassOptions{/*backward=*/true}));
  else
    pm.addPass(createDecayExpandKernelsPass(
        DecayExpandKernelsPassOptions{options.chunkSize, /*backward=*/kChunkedBackwardReady}));
  buildReferenceToLLVMPipeline(pm);
  if (failed(pm.run(*module)))
    return makeError("lowering '" + bufferName + "' to the reference path failed");

  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  auto optimizer = makeOptimizingTransformer(/*optLevel=*/2, /*sizeLevel=*/0, nullptr);
  ExecutionEngineOptions engineOptions;
  engineOptions.transformer = optimizer;
  auto engine = ExecutionEngine::create(*module, engineOptions);
  if (!engine)
    return engine.takeError();
  impl->engine = std::move(*engine);
  return std::unique_ptr<SpecProgram>(
      new SpecProgram(std::move(impl), std::move(summary)));
}

/// One argument of a reference function: a tensor it reads or writes, or the
/// sequence table. `placeholder` marks k and dk of a spec that derives its
/// key: the function neither reads nor writes them.
struct SpecProgram::Slot {
  enum Kind { Input, Output, Sequences } kind;
  TensorSpec tensor;
  bool placeholder = false;
};

std::vector<SpecProgram::Slot> SpecProgram::signature(Entry entry) const {
  std::vector<Slot> slots;
  auto in = [&](std::string name, std::string dims, bool optional = false) {
    slots.push_back({Slot::Input, {std::move(name), std::move(dims), optional}});
  };
  auto out = [&](std::string name, std::string dims) {
    slots.push_back({Slot::Output, {std::move(name), std::move(dims)}});
  };
  std::string scanDims = summary.perChannel ? "NHK" : "NH";
  // States: prefix + name + suffix for the normalizer and every scan.
  auto states = [&](auto add, const std::string &prefix, const std::string &suffix) {
    if (summary.normalizer)
      add(prefix + "norm_" + suffix, "NHK");
    for (auto &[name, init] : summary.scans)
      add(prefix + "scan_" + name + "_" + suffix, scanDims);
  };
  auto optionalIn = [&](std::string name, std::string dims) { in(std::move(name), std::move(dims), true); };
  auto specTensors = [&](auto add, const std::string &prefix) {
    for (auto &list : {summary.inputs, summary.params})
      for (auto &[name, dims] : list)
        add(prefix + name, dims);
  };
  in("q", "BTHK");
  in("k", "BTHK");
  slots.back().placeholder = summary.derivedKey;
  in("v", "BTHV");
  in("h0", "NHKV", true);
  slots.push_back({Slot::Sequences, {"seqs", ""}});
  specTensors([&](std::string name, std::string dims) { in(name, dims); }, "");
  states(optionalIn, "", "h0");
  if (entry == Entry::Forward) {
    out("o", "BTHV");
    out("ht", "NHKV");
    states(out, "", "ht");
    return slots;
  }
  in("do", "BTHV");
  in("dht", "NHKV", true);
  states(optionalIn, "d", "ht");
  out("dq", "BTHK");
  out("dk", "BTHK");
  slots.back().placeholder = summary.derivedKey;
  out("dv", "BTHV");
  out("dh0", "NHKV");
  specTensors(out, "d");
  states(out, "d", "h0");
  return slots;
}

std::vector<TensorSpec> SpecProgram::inputsOf(Entry entry) const {
  std::vector<TensorSpec> specs;
  for (const Slot &slot : signature(entry))
    if (slot.kind == Slot::Input && !slot.placeholder)
      specs.push_back(slot.tensor);
  return specs;
}

std::vector<TensorSpec> SpecProgram::outputsOf(Entry entry) const {
  std::vector<TensorSpec> specs;
  for (const Slot &slot : signature(entry))
    if (slot.kind == Slot::Output && !slot.placeholder)
      specs.push_back(slot.tensor);
  return specs;
}

namespace {
/// The sizes of one problem, resolved from q, v and cu_seqlens.
struct Sizes {
  int64_t B = 0, T = 0, H = 0, K = 0, V = 0, N = 0;
  std::vector<int64_t> shapeOf(llvm::StringRef dims) const {
    std::vector<int64_t> shape;
    for (char dim : dims)
      shape.push_back(dim == 'B' ? B : dim == 'T' ? T : dim == 'H' ? H
                      : dim == 'K' ? K : dim == 'V' ? V : N);
    return shape;
  }
};

int64_t numElements(const std::vector<int64_t> &shape) {
  int64_t count = 1;
  for (int64_t dim : shape)
    count *= dim;
  return count;
}

llvm::Error checkShape(const std::string &name, const HostTensor &tensor,
                       const std::vector<int64_t> &expected, llvm::StringRef dims) {
  if (tensor.shape != expected)
    return makeError("tensor '" + name + "': expected shape " + formatShape(expected) +
                     " (" + formatDims(dims) + "), got " + formatShape(tensor.shape));
  if (static_cast<int64_t>(tensor.data.size()) != numElements(expected))
    return makeError("tensor '" + name + "': holds " + llvm::Twine(tensor.data.size()) +
                     " values, its shape needs " + llvm::Twine(numElements(expected)));
  return llvm::Error::success();
}

/// Resolves B, T, H, K, V from q and v and N from cu_seqlens, checking both.
llvm::Expected<Sizes> resolveSizes(const SpecSummary &summary,
                                   const std::map<std::string, HostTensor> &inputs,
                                   const std::vector<int64_t> *cuSeqlens) {
  for (auto [name, dims] : {std::pair{"q", "[B, T, H, K]"}, std::pair{"v", "[B, T, H, V]"}})
    if (!inputs.count(name))
      return makeError(llvm::Twine("missing tensor '") + name + "': expected shape " + dims);
  const HostTensor &q = inputs.at("q"), &v = inputs.at("v");
  if (q.shape.size() != 4)
    return makeError("tensor 'q': expected 4 dims [B, T, H, K], got " + formatShape(q.shape));
  Sizes sizes{q.shape[0], q.shape[1], q.shape[2], q.shape[3], 0, q.shape[0]};
  if (v.shape.size() != 4)
    return makeError("tensor 'v': expected 4 dims [B, T, H, V], got " + formatShape(v.shape));
  sizes.V = v.shape[3];
  if (sizes.K < 1 || sizes.V < 1 || sizes.H < 1)
    return makeError("tensors 'q' and 'v': H, K and V must be at least 1");
  if (summary.keyDim && *summary.keyDim != sizes.K)
    return makeError("tensor 'q': the spec fixes key_dim = " + llvm::Twine(*summary.keyDim) +
                     ", got K = " + llvm::Twine(sizes.K));
  if (summary.valueDim && *summary.valueDim != sizes.V)
    return makeError("tensor 'v': the spec fixes value_dim = " +
                     llvm::Twine(*summary.valueDim) + ", got V = " + llvm::Twine(sizes.V));
  if (summary.rope && sizes.K % 2)
    return makeError("tensor 'q': RoPE needs an even K, got " + llvm::Twine(sizes.K));
  if (!cuSeqlens)
    return sizes;
  const std::vector<int64_t> &cu = *cuSeqlens;
  if (sizes.B != 1)
    return makeError("tensor 'cu_seqlens': varlen packing needs B = 1, got B = " +
                     llvm::Twine(sizes.B));
  if (cu.size() < 2 || cu.front() != 0 || cu.back() != sizes.T)
    return makeError("tensor 'cu_seqlens': expected N+1 >= 2 offsets from 0 to T = " +
                     llvm::Twine(sizes.T));
  for (size_t i = 1; i < cu.size(); ++i)
    if (cu[i] < cu[i - 1])
      return makeError("tensor 'cu_seqlens': offsets must not decrease (entry " +
                       llvm::Twine(i) + ")");
  sizes.N = static_cast<int64_t>(cu.size()) - 1;
  return sizes;
}
} // namespace

llvm::Error SpecProgram::run(Entry entry, const std::map<std::string, HostTensor> &inputs,
                                  const std::vector<int64_t> *cuSeqlens,
                                  std::map<std::string, HostTensor> &outputs) const {
  auto sizes = resolveSizes(summary, inputs, cuSeqlens);
  if (!sizes)
    return sizes.takeError();

  // Check every input; make absent optional ones (zeros, scan states at their
  // init value), the outputs (zeros: the backward accumulates) and placeholders.
  std::map<std::string, HostTensor> local;
  std::vector<Slot> slots = signature(entry);
  for (const Slot &slot : slots) {
    const TensorSpec &spec = slot.tensor;
    if (slot.kind == Slot::Sequences)
      continue;
    std::vector<int64_t> shape = sizes->shapeOf(spec.dims);
    auto found = inputs.find(spec.name);
    if (slot.kind == Slot::Input && !slot.placeholder && found != inputs.end()) {
      if (auto error = checkShape(spec.name, found->second, shape, spec.dims))
        return error;
      continue;
    }
    if (slot.kind == Slot::Input && !slot.placeholder && !spec.optional)
      return makeError("missing tensor '" + spec.name + "': expected shape " +
                       formatShape(shape) + " (" + formatDims(spec.dims) + ")");
    double fill = 0.0;
    for (auto &[name, init] : summary.scans)
      if (spec.name == "scan_" + name + "_h0")
        fill = init;
    local[spec.name] = HostTensor{shape, std::vector<double>(numElements(shape), fill)};
  }

  // Sequences as (batch row, first token, end token).
  std::vector<int64_t> seqs;
  for (int64_t n = 0; n < sizes->N; ++n) {
    bool packed = cuSeqlens != nullptr;
    seqs.insert(seqs.end(), {packed ? 0 : n, packed ? (*cuSeqlens)[n] : 0,
                             packed ? (*cuSeqlens)[n + 1] : sizes->T});
  }

  if (entry == Entry::Backward && impl->singlePrecision && !kChunkedBackwardReady)
    return makeError("the chunked backward kernel is not built yet");
  std::vector<Descriptor> descriptors;
  std::vector<std::vector<float>> singles(slots.size()); // f32 copies for the kernels
  for (size_t i = 0; i < slots.size(); ++i) {
    const Slot &slot = slots[i];
    if (slot.kind == Slot::Sequences) {
      descriptors.emplace_back(seqs.data(), std::vector<int64_t>{sizes->N, 3});
      continue;
    }
    auto given = inputs.find(slot.tensor.name);
    const HostTensor &tensor = local.count(slot.tensor.name) ? local.at(slot.tensor.name)
                                                             : given->second;
    if (!impl->singlePrecision) {
      descriptors.emplace_back(const_cast<double *>(tensor.data.data()), tensor.shape);
      continue;
    }
    singles[i].assign(tensor.data.begin(), tensor.data.end());
    descriptors.emplace_back(singles[i].data(), tensor.shape);
  }
  std::vector<void *> pointers;
  for (Descriptor &descriptor : descriptors)
    pointers.push_back(descriptor.get());
  std::vector<void *> packed;
  for (void *&pointer : pointers)
    packed.push_back(&pointer);
  const std::string &name = entry == Entry::Forward ? impl->forwardName : impl->backwardName;
  if (auto error = impl->engine->invokePacked(name, packed))
    return error;
  for (size_t i = 0; i < slots.size(); ++i) {
    const Slot &slot = slots[i];
    if (slot.kind != Slot::Output || slot.placeholder)
      continue;
    HostTensor &result = local.at(slot.tensor.name);
    if (impl->singlePrecision)
      result.data.assign(singles[i].begin(), singles[i].end());
    outputs[slot.tensor.name] = std::move(result);
  }
  return llvm::Error::success();
}

// A spec compiled on the fly (JIT) for this CPU: the float64 reference path or the chunked f32 (or bf16-stored) kernels.
#include "decay/Runner/SpecProgram.h"
#include "decay/Runner/SpecLoader.h"
#include "decay/Codegen/CPU/CpuTarget.h"
#include "decay/Support/Bfloat16.h"
#include "decay/Support/CacheLineVector.h"

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
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

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

/// A tensor in the kernels' storage: f32, or bf16 bits.
class KernelBuffer {
public:
  KernelBuffer(const std::vector<double> &values, bool bf16) : bf16(bf16) {
    if (bf16)
      for (double value : values)
        halves.push_back(toBfloat16(static_cast<float>(value)));
    else
      singles.assign(values.begin(), values.end());
  }
  Descriptor descriptor(const std::vector<int64_t> &shape) {
    return bf16 ? Descriptor(halves.data(), shape) : Descriptor(singles.data(), shape);
  }
  std::vector<double> values() const {
    if (!bf16)
      return {singles.begin(), singles.end()};
    std::vector<double> widened;
    for (uint16_t bits : halves)
      widened.push_back(fromBfloat16(bits));
    return widened;
  }

private:
  bool bf16;
  decay::CacheLineVector<float> singles; // aligned as a framework's tensors
  decay::CacheLineVector<uint16_t> halves;
};
} // namespace

struct SpecProgram::Impl {
  MLIRContext context;
  std::unique_ptr<ExecutionEngine> engine;
  std::string forwardName, backwardName, stepName; ///< stepName: CpuKernels only
  bool singlePrecision = false; ///< the kernels: f32 (or bf16) copies of the tensors
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

  bool kernels = options.target != Target::Reference;
  auto module = loadSpec(impl->context, source, bufferName, recurrence,
                         kernels ? options.dtype : "", kernels ? options.stateDtype : "");
  if (!module)
    return module.takeError();
  RecurrenceOp chosen = *(*module)->getOps<RecurrenceOp>().begin();
  SpecSummary summary = summarize(chosen);
  bool reference = options.target == Target::Reference;
  impl->singlePrecision = !reference;
  impl->forwardName = "_mlir_ciface_" + (reference ? referenceFunctionName(summary.name)
                                                   : summary.name + "_forward");
  impl->backwardName = reference ? impl->forwardName + "_backward"
                                 : "_mlir_ciface_" + summary.name + "_backward";
  if (!reference)
    impl->stepName = "_mlir_ciface_" + summary.name + "_step";

  PassManager pm(&impl->context);
  pm.addPass(createDecayDeriveGradientsPass());
  if (reference)
    pm.addPass(createDecayLowerToReferencePass(DecayLowerToReferencePassOptions{/*backward=*/true}));
  else {
    DecayExpandKernelsPassOptions expand;
    expand.chunkSize = options.chunkSize;
    expand.backward = true;
    expand.step = true;
    if (options.vectorBits != 0) {
      expand.vectorBits = options.vectorBits;
    } else {
      auto hostBits = cpuVectorBits("native");
      if (!hostBits)
        return hostBits.takeError();
      expand.vectorBits = *hostBits;
    }
    pm.addPass(createDecayExpandKernelsPass(expand));
  }
  buildReferenceToLLVMPipeline(pm);
  if (failed(pm.run(**module)))
    return makeError("lowering '" + bufferName + "' to the reference path failed");

  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  auto optimizer = makeOptimizingTransformer(/*optLevel=*/2, /*sizeLevel=*/0, nullptr);
  ExecutionEngineOptions engineOptions;
  engineOptions.transformer = optimizer;
  auto engine = ExecutionEngine::create(**module, engineOptions);
  if (!engine)
    return engine.takeError();
  impl->engine = std::move(*engine);
  return std::unique_ptr<SpecProgram>(
      new SpecProgram(std::move(impl), std::move(summary)));
}

std::vector<TensorSpec> SpecProgram::inputsOf(Entry entry) const {
  std::vector<TensorSpec> specs;
  for (const Argument &slot : signatureOf(summary, entry))
    if ((slot.kind == Argument::Input || slot.kind == Argument::InOut) && !slot.placeholder)
      specs.push_back(slot.tensor);
  return specs;
}

std::vector<TensorSpec> SpecProgram::outputsOf(Entry entry) const {
  std::vector<TensorSpec> specs;
  for (const Argument &slot : signatureOf(summary, entry))
    if ((slot.kind == Argument::Output || slot.kind == Argument::InOut) && !slot.placeholder)
      specs.push_back(slot.tensor);
  return specs;
}

namespace {
/// The sizes of one problem, resolved from q, v and cu_seqlens.
struct Sizes {
  int64_t B = 0, T = 0, H = 0, K = 0, V = 0, N = 0, S = 0;
  std::vector<int64_t> shapeOf(llvm::StringRef dims) const {
    std::vector<int64_t> shape;
    for (char dim : dims)
      shape.push_back(dim == 'B' ? B : dim == 'T' ? T : dim == 'H' ? H : dim == 'K' ? K
                      : dim == 'V' ? V : dim == 'S' ? S : N);
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

namespace {
/// Flushes subnormal f32 results and operands to zero (MXCSR's FTZ and DAZ)
/// while the kernels run, as a package's entry point does (CpuPackage.cpp),
/// so that kernels run here compute as they do from a package; the caller's
/// MXCSR is restored afterwards. OpenMP's workers take the caller's MXCSR at
/// each parallel region. No effect off x86-64.
class FlushSubnormals {
public:
  explicit FlushSubnormals(bool enabled) {
#if defined(__x86_64__)
    if (!enabled)
      return;
    saved = _mm_getcsr();
    active = true;
    _mm_setcsr(saved | kFlushSubnormals);
#else
    (void)enabled;
#endif
  }
  ~FlushSubnormals() {
#if defined(__x86_64__)
    if (active)
      _mm_setcsr(saved);
#endif
  }
  FlushSubnormals(const FlushSubnormals &) = delete;
  FlushSubnormals &operator=(const FlushSubnormals &) = delete;

private:
  unsigned saved = 0;
  bool active = false;
};
} // namespace

llvm::Error SpecProgram::run(Entry entry, const std::map<std::string, HostTensor> &inputs,
                                  const std::vector<int64_t> *cuSeqlens,
                                  std::map<std::string, HostTensor> &outputs) const {
  if (entry == Entry::Step && impl->stepName.empty())
    return makeError("the reference path has no step entry (compile the kernels)");
  if (entry == Entry::Step && cuSeqlens)
    return makeError("the step entry takes no cu_seqlens: each batch row advances its own slot");
  auto sizes = resolveSizes(summary, inputs, cuSeqlens);
  if (!sizes)
    return sizes.takeError();
  if (entry == Entry::Step) {
    auto found = inputs.find("state");
    if (found == inputs.end() || found->second.shape.empty())
      return makeError("missing tensor 'state': expected shape [S, H, K, V]");
    sizes->S = found->second.shape[0];
  }

  // Check every input; make absent optional ones (zeros, scan states at their
  // init value), the outputs (zeros: the backward accumulates) and placeholders.
  std::map<std::string, HostTensor> local;
  std::vector<Argument> slots = signatureOf(summary, entry);
  for (const Argument &slot : slots) {
    const TensorSpec &spec = slot.tensor;
    if (slot.kind == Argument::Sequences)
      continue;
    std::vector<int64_t> shape = sizes->shapeOf(spec.dims);
    auto found = inputs.find(spec.name);
    bool read = slot.kind == Argument::Input || slot.kind == Argument::InOut;
    if (read && !slot.placeholder && found != inputs.end()) {
      if (auto error = checkShape(spec.name, found->second, shape, spec.dims))
        return error;
      continue;
    }
    if (read && !slot.placeholder && !spec.optional)
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

  std::vector<Descriptor> descriptors;
  std::vector<std::optional<KernelBuffer>> buffers(slots.size()); // the kernels' copies
  std::vector<std::vector<int64_t>> integers(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    const Argument &slot = slots[i];
    if (slot.kind == Argument::Sequences) {
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
    if (slot.tensor.dtype == "i64") { // a step's slots and positions
      integers[i].assign(tensor.data.begin(), tensor.data.end());
      descriptors.emplace_back(integers[i].data(), tensor.shape);
      continue;
    }
    buffers[i].emplace(tensor.data, slot.tensor.dtype == "bf16");
    descriptors.push_back(buffers[i]->descriptor(tensor.shape));
  }
  std::vector<void *> pointers;
  for (Descriptor &descriptor : descriptors)
    pointers.push_back(descriptor.get());
  std::vector<void *> packed;
  for (void *&pointer : pointers)
    packed.push_back(&pointer);
  const std::string &name = entry == Entry::Forward    ? impl->forwardName
                            : entry == Entry::Backward ? impl->backwardName
                                                       : impl->stepName;
  // Looked up (and so compiled, on first use) before the kernels' MXCSR is set.
  auto function = impl->engine->lookupPacked(name);
  if (!function)
    return function.takeError();
  {
    FlushSubnormals flushing(/*enabled=*/impl->singlePrecision); // not the f64 reference
    (*function)(packed.data());
  }
  for (size_t i = 0; i < slots.size(); ++i) {
    const Argument &slot = slots[i];
    if ((slot.kind != Argument::Output && slot.kind != Argument::InOut) || slot.placeholder)
      continue;
    HostTensor result = local.count(slot.tensor.name) ? local.at(slot.tensor.name)
                                                      : inputs.at(slot.tensor.name);
    if (impl->singlePrecision)
      result.data = buffers[i]->values();
    outputs[slot.tensor.name] = std::move(result);
  }
  return llvm::Error::success();
}

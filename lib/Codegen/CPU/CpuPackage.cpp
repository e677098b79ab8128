// CPU code generation: the kernels of a recurrence as one shared object with its manifest (docs/package.md).
#include "decay/Codegen/CPU/CpuPackage.h"
#include "decay/Codegen/CPU/CpuTarget.h"

#include "decay/Conversion/Passes.h"
#include "decay/Dialect/Decay/IR/DecayDialect.h"
#include "decay/Dialect/Decay/Transforms/Passes.h"
#include "decay/InitDecay.h"
#include "decay/Runner/Signature.h"
#include "decay/Runner/SpecLoader.h"
#include "decay/Support/GradientStores.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/IntrinsicsX86.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>

#include "PackageScratch.inc"

using namespace mlir;
using namespace decay;

namespace {
llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// The exported entry point of a kernel.
std::string entrySymbol(const SpecSummary &summary, Entry entry) {
  return "decay_" + summary.name + "_" + entryName(entry);
}

/// The exported symbol of a GPU module's PTX or cubin.
std::string gpuSymbol(const SpecSummary &summary, const GpuModule &m, llvm::StringRef what) {
  return llvm::formatv("decay_{0}_{1}_{2}_k{3}_v{4}_{5}", summary.name, m.entry, m.target, m.keyDim,
                       m.valueDim, what)
      .str();
}

llvm::json::Object byteModel(const ByteModel &model) {
  return llvm::json::Object{{"token", model.token},
                            {"chunk", model.chunk},
                            {"sequence", model.sequence},
                            {"fixed", model.fixed}};
}

/// The manifest's description of the arguments of `entry`.
llvm::json::Array describeArguments(const SpecSummary &summary, Entry entry, bool cpuKernel);

/// The manifest item of a GPU module (docs/package.md, "GPU kernels").
llvm::json::Object describeGpuModule(const SpecSummary &summary, const GpuModule &m) {
  Entry entry = m.entry == "forward" ? Entry::Forward : m.entry == "backward" ? Entry::Backward : Entry::Step;
  llvm::json::Array parameters;
  for (const Argument &argument : signatureOf(summary, entry))
    parameters.push_back(argument.kind == Argument::Sequences ? std::string("seqs") : argument.tensor.name);
  if (m.workspace.token || m.workspace.chunk || m.workspace.sequence || m.workspace.fixed)
    parameters.push_back("workspace");
  // The kernels' i64 sizes (GpuKernelEmitter): a step's state slots S instead of the sequences N.
  for (llvm::StringRef size : {"B", "T", "H", entry == Entry::Step ? "S" : "N"})
    parameters.push_back(size);
  bool simt = m.target == "simt";
  llvm::json::Array launches;
  for (const GpuLaunch &launch : m.launches) {
    llvm::json::Array grid;
    for (auto &[dims, divide] : launch.grid)
      grid.push_back(llvm::json::Object{{"dims", dims}, {"divide", divide}});
    llvm::json::Object item{{"function", launch.function},
                            {"parameters", llvm::json::Array(parameters)},
                            {"threads", launch.threads},
                            {"grid", std::move(grid)},
                            {"dynamic_shared_bytes", launch.dynamicSharedBytes},
                            {"static_shared_bytes", launch.staticSharedBytes},
                            {"registers", launch.registers},
                            {"spills", launch.spillBytes},
                            {"stack_bytes", launch.stackBytes}};
    if (simt)
      item["symbol"] = launch.symbol;
    launches.push_back(std::move(item));
  }
  llvm::json::Object item{{"entry", m.entry},
                          {"target", m.target},
                          {"key_dim", m.keyDim},
                          {"value_dim", m.valueDim},
                          {"chunk_size", m.chunkSize},
                          {"arguments", describeArguments(summary, entry, /*cpuKernel=*/false)},
                          {"workspace", byteModel(m.workspace)},
                          {"moves", byteModel(m.moves)},
                          {"launches", std::move(launches)}};
  if (!simt) {
    item["ptx"] = gpuSymbol(summary, m, "ptx");
    item["cubin"] = gpuSymbol(summary, m, "cubin");
    item["cubin_size"] = static_cast<int64_t>(m.cubin.size());
  }
  return item;
}

/// Whether the CPU backward stores every element of output `name` once (the
/// gradient of a spec input, see inputGradientStoredOnce), so that the
/// runtime need not zero it.
bool overwrittenByCpuBackward(const SpecSummary &summary, const std::string &name) {
  for (const auto &[input, dims] : summary.inputs)
    if (name == "d" + input)
      return inputGradientStoredOnce(dims, summary.perChannel);
  return false;
}

llvm::json::Array describeArguments(const SpecSummary &summary, Entry entry, bool cpuKernel) {
  llvm::json::Array arguments;
  for (const Argument &argument : signatureOf(summary, entry)) {
    bool sequences = argument.kind == Argument::Sequences;
    llvm::json::Object object{
        {"name", argument.tensor.name},
        {"dims", sequences ? std::string("N3") : argument.tensor.dims},
        {"dtype", sequences ? std::string("i64") : argument.tensor.dtype},
        {"role", sequences                           ? "sequences"
                 : argument.kind == Argument::Input  ? "input"
                 : argument.kind == Argument::InOut ? "inout"
                                                     : "output"}};
    if (argument.tensor.optional)
      object["optional"] = true;
    if (argument.placeholder)
      object["unused"] = true;
    else if (cpuKernel && entry == Entry::Backward && argument.kind == Argument::Output &&
             overwrittenByCpuBackward(summary, argument.tensor.name))
      object["overwritten"] = true;
    arguments.push_back(std::move(object));
  }
  return arguments;
}

/// The manifest of docs/package.md.
std::string buildManifest(const SpecSummary &summary, int64_t chunkSize, const CpuPackageOptions &options,
                          const std::vector<GpuModule> &gpuModules) {
  auto namedDims = [](const std::vector<std::pair<std::string, std::string>> &list) {
    llvm::json::Array array;
    for (auto &[name, dims] : list)
      array.push_back(llvm::json::Object{{"name", name}, {"dims", dims}});
    return array;
  };
  llvm::json::Array scans;
  for (auto &[name, init] : summary.scans) {
    // JSON has no infinities: decayrt reads "inf", "-inf" and "nan".
    llvm::json::Value value = std::isfinite(init) ? llvm::json::Value(init)
                              : std::isnan(init)  ? llvm::json::Value("nan")
                              : init > 0          ? llvm::json::Value("inf")
                                                  : llvm::json::Value("-inf");
    scans.push_back(llvm::json::Object{{"name", name}, {"init", std::move(value)}});
  }
  auto optionalInt = [](std::optional<int64_t> value) -> llvm::json::Value {
    return value ? llvm::json::Value(*value) : llvm::json::Value(nullptr);
  };
  llvm::json::Object spec{{"name", summary.name},
                          {"granularity", summary.granularity},
                          {"feature_map", summary.featureMap},
                          {"normalizer", summary.normalizer},
                          {"derived_key", summary.derivedKey},
                          {"rope", summary.rope},
                          {"dtype", summary.dtype},
                          {"key_dim", optionalInt(summary.keyDim)},
                          {"value_dim", optionalInt(summary.valueDim)},
                          {"chunk_size", chunkSize},
                          {"inputs", namedDims(summary.inputs)},
                          {"params", namedDims(summary.params)},
                          {"scans", std::move(scans)}};
  llvm::json::Array kernels;
  if (options.cpuKernels)
    for (Entry entry : {Entry::Forward, Entry::Backward, Entry::Step})
      kernels.push_back(llvm::json::Object{{"entry", entryName(entry)},
                                           {"target", "cpu"},
                                           {"symbol", entrySymbol(summary, entry)},
                                           {"cpu", options.cpu},
                                           {"threads", "openmp"},
                                           {"arguments", describeArguments(summary, entry, /*cpuKernel=*/true)}});
  for (const GpuModule &m : gpuModules)
    kernels.push_back(describeGpuModule(summary, m));
  llvm::json::Object manifest{{"format", "decayc-package"},
                              {"version", 1},
                              {"spec", std::move(spec)},
                              {"kernels", std::move(kernels)}};
  std::string text;
  llvm::raw_string_ostream os(text);
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(manifest)));
  return text;
}

/// Adds `void <symbol>(void **arguments)` calling the kernel's C interface
/// with one memref descriptor pointer per argument, with subnormal f32
/// results and operands flushed to zero for the call (the caller's MXCSR is
/// restored after it; OpenMP's worker threads inherit the caller's at each
/// parallel region). Strong decays produce subnormals (exp(G) below 2^-126),
/// which Intel's cores compute by microcode assists: mamba2's forward ran
/// 2.7x slower on them.
llvm::Error addEntryPoint(llvm::Module &module, llvm::StringRef kernel, llvm::StringRef symbol) {
  llvm::Function *target = module.getFunction(("_mlir_ciface_" + kernel).str());
  if (!target)
    return makeError("the lowered module has no kernel '" + kernel + "'");
  llvm::LLVMContext &context = module.getContext();
  llvm::Type *ptr = llvm::PointerType::getUnqual(context);
  auto *type = llvm::FunctionType::get(llvm::Type::getVoidTy(context), {ptr}, false);
  auto *entry = llvm::Function::Create(type, llvm::GlobalValue::ExternalLinkage, symbol, module);
  llvm::IRBuilder<> builder(llvm::BasicBlock::Create(context, "entry", entry));
  llvm::SmallVector<llvm::Value *> arguments;
  for (unsigned i = 0; i < target->arg_size(); ++i) {
    llvm::Value *slot = builder.CreateConstInBoundsGEP1_64(ptr, entry->getArg(0), i);
    arguments.push_back(builder.CreateLoad(ptr, slot));
  }
  llvm::Type *i32 = builder.getInt32Ty();
  llvm::Value *callers = builder.CreateAlloca(i32, nullptr, "callers_mxcsr");
  llvm::Value *flushing = builder.CreateAlloca(i32, nullptr, "flushing_mxcsr");
  builder.CreateIntrinsic(llvm::Intrinsic::x86_sse_stmxcsr, {callers});
  builder.CreateStore(builder.CreateOr(builder.CreateLoad(i32, callers), kFlushSubnormals), flushing);
  builder.CreateIntrinsic(llvm::Intrinsic::x86_sse_ldmxcsr, {flushing});
  // Not inlined: LLVM assumes the default floating-point environment and
  // could otherwise move the kernel's arithmetic across the MXCSR writes.
  builder.CreateCall(target, arguments)->setIsNoInline();
  builder.CreateIntrinsic(llvm::Intrinsic::x86_sse_ldmxcsr, {callers});
  builder.CreateRetVoid();
  return llvm::Error::success();
}

/// Tells LLVM that the scratch allocator returns fresh memory, as it knows of
/// malloc: buffers from different allocations never alias, which lets it
/// vectorize the kernels' elementwise loops without runtime checks.
void markScratchAllocators(llvm::Module &module) {
  for (llvm::StringRef name : {"_mlir_memref_to_llvm_alloc", "_mlir_memref_to_llvm_aligned_alloc"})
    if (llvm::Function *allocator = module.getFunction(name))
      allocator->addRetAttr(llvm::Attribute::NoAlias);
}

/// Asks LLVM to keep the kernels' `bits`-wide vectors whole and to vectorize
/// their loops as wide: on CPUs whose tuning prefers 256-bit vectors (most of
/// Intel's AVX-512 parts) it would otherwise split each 512-bit vector in
/// two (register tiles sized for 16 zmm accumulators would need 32 registers
/// and spill) and vectorize the elementwise loops with ymm (gla's forward on
/// an Intel Xeon: 0.097 s -> 0.087 s).
void keepVectorsWhole(llvm::Module &module, int64_t bits) {
  for (llvm::Function &function : module)
    if (!function.isDeclaration()) {
      function.addFnAttr("min-legal-vector-width", std::to_string(bits));
      function.addFnAttr("prefer-vector-width", std::to_string(bits));
    }
}

/// Adds `const char decay_package_manifest[]`.
void addManifest(llvm::Module &module, llvm::StringRef manifest) {
  llvm::Constant *text = llvm::ConstantDataArray::getString(module.getContext(), manifest, true);
  auto *global = new llvm::GlobalVariable(module, text->getType(), /*isConstant=*/true,
                                          llvm::GlobalValue::ExternalLinkage, text,
                                          "decay_package_manifest");
  global->setAlignment(llvm::Align(1));
}

/// Adds each GPU module's PTX (NUL-terminated) and cubin as exported constants.
void addGpuModules(llvm::Module &module, const SpecSummary &summary,
                   const std::vector<GpuModule> &gpuModules) {
  for (const GpuModule &m : gpuModules)
    if (m.target != "simt")
      for (auto [what, bytes, terminate] : {std::tuple{"ptx", &m.ptx, true}, std::tuple{"cubin", &m.cubin, false}}) {
      llvm::Constant *data = llvm::ConstantDataArray::getString(module.getContext(), *bytes, terminate);
      auto *global = new llvm::GlobalVariable(module, data->getType(), /*isConstant=*/true,
                                              llvm::GlobalValue::ExternalLinkage, data,
                                              gpuSymbol(summary, m, what));
      global->setAlignment(llvm::Align(16));
    }
}

/// Writes `text` to a new temporary file with extension `suffix`.
llvm::Expected<std::string> writeTemporary(llvm::StringRef suffix, llvm::StringRef text) {
  llvm::SmallString<128> path;
  int fd;
  if (std::error_code ec = llvm::sys::fs::createTemporaryFile("decayc-package", suffix, fd, path))
    return makeError("cannot create a temporary file: " + ec.message());
  llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
  os << text;
  return path.str().str();
}

/// Runs the compiler on the LLVM IR files `irPaths` and `scratchPath`
/// (PackageScratch.c), producing the shared object `outputPath`.
llvm::Error linkSharedObject(const CpuPackageOptions &options, llvm::ArrayRef<std::string> irPaths,
                             llvm::StringRef scratchPath, llvm::StringRef outputPath) {
  auto compiler = llvm::sys::findProgramByName(options.compiler);
  if (!compiler)
    return makeError("cannot find the compiler '" + options.compiler +
                     "' that assembles CPU packages (install clang-22)");
  std::string march = "-march=" + options.cpu;
  // -hoist-runtime-checks=false: LLVM otherwise hoists a vectorized loop's
  // alias checks out of its enclosing loop, which needs that loop to walk
  // memory forward; the backward's token loop runs in reverse, so every
  // channel loop inside it fell back to its scalar copy (gla's backward:
  // 0.40 s -> 0.23-0.30 s, measured side by side).
  llvm::SmallVector<llvm::StringRef> args = {*compiler, "-O3", march,
                                             "-ffp-contract=fast",
                                             "-mllvm", "-hoist-runtime-checks=false",
                                             "-fveclib=libmvec", "-shared", "-fPIC",
                                             "-Wno-override-module", "-x", "ir"};
  args.append(irPaths.begin(), irPaths.end());
  args.append({"-x", "c", "-std=c11", scratchPath, "-o", outputPath, "-fopenmp=libomp",
               "-L/usr/lib/llvm-22/lib", "-Wl,-rpath,/usr/lib/llvm-22/lib", "-lm"});
  std::string message;
  int status = llvm::sys::ExecuteAndWait(*compiler, args, std::nullopt, {}, 0, 0, &message);
  if (status != 0)
    return makeError("'" + options.compiler + "' failed to build the package" +
                     (message.empty() ? "" : ": " + message) + " (exit code " +
                     llvm::Twine(status) + ")");
  return llvm::Error::success();
}
} // namespace

llvm::Error decay::compileCpuPackage(llvm::StringRef specPath, llvm::StringRef outputPath,
                                     const CpuPackageOptions &options) {
  MLIRContext context;
  DialectRegistry registry;
  registerDecayDialects(registry);
  registerGpuCodegen(registry);
  context.appendDialectRegistry(registry);
  context.printOpOnDiagnostic(false);
  registerOpenMPDialectTranslation(context);

  auto module =
      loadSpecFile(context, specPath, options.recurrence, options.dtype, options.stateDtype);
  if (!module)
    return module.takeError();
  RecurrenceOp spec = *(*module)->getOps<RecurrenceOp>().begin();
  SpecSummary summary = summarize(spec);
  int64_t chunkSize = options.chunkSize > 0 ? options.chunkSize : spec.getChunkSize().value_or(64);
  if (chunkSize < 1 || chunkSize > 1024)
    return makeError("--chunk-size must be in [1, 1024], got " + llvm::Twine(chunkSize));

  if (!options.cpuKernels && options.gpu.targets.empty())
    return makeError("no target to compile for");
  GpuCompilation gpu;
  if (!options.gpu.targets.empty()) {
    auto compiled = compileGpuModules(**module, options.gpu);
    if (!compiled)
      return compiled.takeError();
    gpu = std::move(*compiled);
  }

  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule;
  if (options.cpuKernels) {
    auto vectorBits = cpuVectorBits(options.cpu);
    if (!vectorBits)
      return makeError("--cpu: " + llvm::toString(vectorBits.takeError()));
    PassManager pm(&context);
    pm.addPass(createDecayDeriveGradientsPass());
    DecayExpandKernelsPassOptions expand;
    expand.chunkSize = chunkSize;
    expand.backward = true;
    expand.step = true;
    expand.vectorBits = *vectorBits;
    expand.phaseLocations = options.profilePhases;
    pm.addPass(createDecayExpandKernelsPass(expand));
    buildCpuKernelsToLLVMPipeline(pm, /*cachedScratch=*/true, /*lineTables=*/options.profilePhases);
    if (failed(pm.run(**module)))
      return makeError("compiling '" + specPath + "' for the CPU failed (see the diagnostics above)");
    llvmModule = translateModuleToLLVMIR(**module, llvmContext, summary.name);
    if (!llvmModule)
      return makeError("translating '" + specPath + "' to LLVM IR failed");
    keepVectorsWhole(*llvmModule, *vectorBits); // the kernels, not the entry points below
    for (Entry entry : {Entry::Forward, Entry::Backward, Entry::Step})
      if (llvm::Error error = addEntryPoint(*llvmModule, summary.name + "_" + entryName(entry),
                                            entrySymbol(summary, entry)))
        return error;
    markScratchAllocators(*llvmModule);
  } else {
    llvmModule = std::make_unique<llvm::Module>(summary.name, llvmContext);
  }
  addGpuModules(*llvmModule, summary, gpu.modules);
  addManifest(*llvmModule, buildManifest(summary, chunkSize, options, gpu.modules));

  // Write the IR and the scratch allocator to temporary files, build next to
  // the output, then rename.
  std::string ir;
  llvm::raw_string_ostream irStream(ir);
  llvmModule->print(irStream, nullptr);
  std::vector<std::string> temporaries;
  auto removeTemporaries = [&] {
    for (const std::string &path : temporaries)
      llvm::sys::fs::remove(path);
  };
  for (auto [suffix, text] : {std::pair{"ll", llvm::StringRef(ir)},
                              std::pair{"ll", llvm::StringRef(gpu.simtLLVMIR)},
                              std::pair{"c", llvm::StringRef(kPackageScratchSource)}}) {
    if (text.empty())
      continue;
    auto path = writeTemporary(suffix, text);
    if (!path) {
      removeTemporaries();
      return path.takeError();
    }
    temporaries.push_back(*path);
  }
  std::string scratchPath = temporaries.back();
  llvm::ArrayRef<std::string> irPaths = llvm::ArrayRef(temporaries).drop_back();
  if (!options.emitLLVMPath.empty())
    if (std::error_code ec = llvm::sys::fs::copy_file(irPaths.front(), options.emitLLVMPath)) {
      removeTemporaries();
      return makeError("cannot write '" + options.emitLLVMPath + "': " + ec.message());
    }
  std::string partial = (outputPath + ".partial").str();
  llvm::Error linked = linkSharedObject(options, irPaths, scratchPath, partial);
  removeTemporaries();
  if (linked) {
    llvm::sys::fs::remove(partial);
    return linked;
  }
  if (std::error_code ec = llvm::sys::fs::rename(partial, outputPath)) {
    llvm::sys::fs::remove(partial);
    return makeError("cannot write '" + outputPath + "': " + ec.message());
  }
  return llvm::Error::success();
}

// `decayc compile`: a spec becomes a kernel package (docs/package.md).
#include "Commands.h"

#include "decay/Codegen/CPU/CpuPackage.h"

#include "llvm/Support/FileSystem.h"

#include <cstdio>
#include <cstdlib>

const char *const decayc::kCompileHelp = R"(USAGE: decayc compile SPEC -o PKG [options]

Compiles the recurrence of SPEC into a kernel package: one shared object with
the chunked forward and backward kernels for the CPU, the GPU modules (PTX and
cubin) and a manifest describing each kernel and its argument ABI
(docs/package.md). decayrt loads it; `decayc run PKG --device cpu` runs it;
`decayc inspect PKG` prints its manifest.

OPTIONS:
  -o PKG, --output PKG   The package to write (required). Written only when the
                         whole compilation succeeded.
  --target LIST          What to compile for, comma-separated (default: cpu):
                         `cpu` (the CPU kernels) and NVIDIA chips `sm_80`,
                         `sm_86`, `sm_87`, `sm_89`, `sm_90` (GPU modules: PTX
                         from MLIR's NVPTX back end, cubin from the CUDA
                         toolkit's ptxas), forward and backward; a kernel
                         that spills registers, or needs more shared memory
                         than the chip allows, fails the compilation.
                         `simt`: the same GPU kernels (the NVVM IR every
                         chip's PTX is made from) compiled for this CPU, to
                         run under decayrt's SIMT emulator (`decayc run
                         --device simt`, docs/simt.md).
  --gpu-head-dims LIST   The K = V the GPU modules are specialized for
                         (each of 64, 128; default: the spec's fixed key_dim
                         and value_dim, else 64,128).
  --emit-ptx DIR         Also write each GPU module's PTX to
                         DIR/<name>_<entry>_k<K>_v<V>_<chip>.ptx.
  --ptxas PATH           The ptxas to assemble with (default:
                         $CUDA_HOME/bin/ptxas, /usr/local/cuda/bin/ptxas, PATH).
  --chunk-size N         Tokens per chunk of the CPU kernels (default: the
                         spec's chunk_size hint, else 64). The GPU kernels use
                         32 (two 16-token sub-blocks; the manifest says so).
  --cpu NAME             The -march of the kernels (default: native, the CPU
                         of this machine), an x86-64 CPU that LLVM knows. Its
                         vector registers size the kernels' register tiles:
                         16-lane tiles where it has AVX-512, 8-lane (AVX2)
                         tiles otherwise.
  --dtype f32|bf16       How the kernels store the per-token tensors (q, k, v,
                         o, do, dq, dk, dv, the spec's inputs and their
                         gradients; default: the spec's dtype option, else
                         f32). bf16 tensors are read by widening to f32 and
                         written rounded to nearest even; arithmetic, states
                         and params stay f32. The manifest states each
                         tensor's dtype.
  --state-dtype f32|bf16 How the step kernels store the attention state S
                         (the decoder's largest cache; default: the spec's
                         state_dtype option, else f32): bf16 halves a
                         decoding step's memory traffic; the step still
                         computes in f32 and rounds S to nearest even when
                         it writes it back. The normalizer's and scans'
                         states and the forward's and backward's states
                         (h0, ht, ...) stay f32.
  --recurrence NAME      Which recurrence of SPEC (default: its only one).
  --emit-llvm FILE       Also write the LLVM IR of the package to FILE.
  --profile-phases       Give the CPU kernels line tables in which each phase
                         of the chunked algorithm is a source file of its own
                         (`gla_backward.stateGradients:1`, ...; the ops
                         copied from the spec's region keep the spec's
                         lines), so that `perf record`
                         and `perf report --sort srcline` show where a
                         kernel's time goes, phase by phase. Debug info
                         only: the kernels' code is the same.
  --help                 Print this help.

The package is linked by clang-22 against LLVM's OpenMP (libomp): the kernels
run their (sequence, head) work items on OpenMP threads (OMP_NUM_THREADS).
)";

int decayc::compileCommand(int argc, char **argv) {
  Arguments args;
  if (!parseArguments(argc, argv, 2,
                      {"output", "target", "chunk-size", "cpu", "recurrence", "emit-llvm", "dtype", "state-dtype",
                       "gpu-head-dims", "emit-ptx", "ptxas"},
                      {"help", "profile-phases"}, args))
    return 1;
  if (args.has("help")) {
    std::fputs(kCompileHelp, stdout);
    return 0;
  }
  auto fail = [](const std::string &message) {
    std::fprintf(stderr, "decayc compile: error: %s\n", message.c_str());
    return 1;
  };
  if (args.positionals.size() != 1)
    return fail("expected exactly one SPEC file (see decayc compile --help)");
  auto output = args.get("output");
  if (!output)
    return fail("-o PKG is required");
  decay::CpuPackageOptions options;
  options.cpuKernels = false;
  std::string targetList = args.get("target").value_or("cpu"); // the split below points into it
  llvm::SmallVector<llvm::StringRef> targets;
  llvm::StringRef(targetList).split(targets, ',');
  for (llvm::StringRef target : targets) {
    if (target == "cpu")
      options.cpuKernels = true;
    else if (target.starts_with("sm_") || target == "simt")
      options.gpu.targets.push_back(target.str());
    else
      return fail("unknown --target '" + target.str() +
                  "' (cpu, sm_80, sm_86, sm_87, sm_89, sm_90, simt)");
  }
  if (auto dims = args.get("gpu-head-dims")) {
    llvm::SmallVector<llvm::StringRef> items;
    llvm::StringRef(*dims).split(items, ',');
    for (llvm::StringRef item : items) {
      int64_t dim = 0;
      if (item.getAsInteger(10, dim) || (dim != 64 && dim != 128))
        return fail("--gpu-head-dims takes 64 and/or 128, got '" + item.str() + "'");
      options.gpu.headDims.push_back(dim);
    }
  }
  options.gpu.emitPtxDir = args.get("emit-ptx").value_or("");
  if (!options.gpu.emitPtxDir.empty() && !llvm::sys::fs::is_directory(options.gpu.emitPtxDir))
    return fail("--emit-ptx: '" + options.gpu.emitPtxDir + "' is not a directory");
  options.gpu.ptxas = args.get("ptxas").value_or("");
  options.recurrence = args.get("recurrence").value_or("");
  options.cpu = args.get("cpu").value_or("native");
  options.emitLLVMPath = args.get("emit-llvm").value_or("");
  options.profilePhases = args.has("profile-phases");
  if (std::string error; !readDtypeOption(args, options.dtype, error) ||
                          !readDtypeOption(args, options.stateDtype, error, "state-dtype"))
    return fail(error);
  if (auto chunk = args.get("chunk-size")) {
    char *end = nullptr;
    long long value = std::strtoll(chunk->c_str(), &end, 10);
    if (chunk->empty() || *end != '\0' || value < 1 || value > 1024)
      return fail("--chunk-size must be an integer in [1, 1024], got '" + *chunk + "'");
    options.chunkSize = value;
  }
  if (llvm::Error error = decay::compileCpuPackage(args.positionals[0], *output, options))
    return fail(llvm::toString(std::move(error)));
  return 0;
}

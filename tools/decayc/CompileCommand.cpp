// `decayc compile`: a spec becomes a kernel package (docs/package.md).
#include "Commands.h"

#include "decay/Codegen/CPU/CpuPackage.h"

#include <cstdio>
#include <cstdlib>

const char *const decayc::kCompileHelp = R"(USAGE: decayc compile SPEC -o PKG [options]

Compiles the recurrence of SPEC into a kernel package: one shared object with
the chunked forward and backward kernels and a manifest describing each kernel
and its argument ABI (docs/package.md). decayrt loads it; `decayc run PKG
--device cpu` runs it.

OPTIONS:
  -o PKG, --output PKG   The package to write (required). Written only when the
                         whole compilation succeeded.
  --target cpu           What to compile for (default: cpu). The GPU targets
                         (sm_80, sm_90) come with the GPU back end.
  --chunk-size N         Tokens per chunk (default: the spec's chunk_size hint,
                         else 64).
  --cpu NAME             The -march of the kernels (default: native, the CPU
                         of this machine).
  --dtype f32|bf16       How the kernels store the per-token tensors (q, k, v,
                         o, do, dq, dk, dv, the spec's inputs and their
                         gradients; default: the spec's dtype option, else
                         f32). bf16 tensors are read by widening to f32 and
                         written rounded to nearest even; arithmetic, states
                         and params stay f32. The manifest states each
                         tensor's dtype.
  --recurrence NAME      Which recurrence of SPEC (default: its only one).
  --emit-llvm FILE       Also write the LLVM IR of the package to FILE.
  --help                 Print this help.

The package is linked by clang-22 against LLVM's OpenMP (libomp): the kernels
run their (sequence, head) work items on OpenMP threads (OMP_NUM_THREADS).
)";

int decayc::compileCommand(int argc, char **argv) {
  Arguments args;
  if (!parseArguments(argc, argv, 2,
                      {"output", "target", "chunk-size", "cpu", "recurrence", "emit-llvm", "dtype"},
                      {"help"}, args))
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
  std::string target = args.get("target").value_or("cpu");
  if (target != "cpu")
    return fail("--target " + target + " is not available yet: only cpu (the GPU back end is "
                                       "not built)");
  decay::CpuPackageOptions options;
  options.recurrence = args.get("recurrence").value_or("");
  options.cpu = args.get("cpu").value_or("native");
  options.emitLLVMPath = args.get("emit-llvm").value_or("");
  if (std::string error; !readDtypeOption(args, options.dtype, error))
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

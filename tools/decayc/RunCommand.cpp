// `decayc run`: read a spec's tensors from .npy files, run the recurrence, write the outputs atomically.
#include "Commands.h"
#include "CpuDevice.h"

#include "decay/Runner/SpecProgram.h"
#include "decay/Support/Npy.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"

#include <cstdio>
#include <functional>
#include <set>

using decay::HostTensor;

const char *const decayc::kRunHelp = R"(USAGE: decayc run SPEC|PKG [options]

Runs a recurrence on the tensors in --inputs and writes its outputs to
--outputs: a spec (a .mlir file) or a package from decayc compile.

OPTIONS:
  --entry forward|backward|step
                       The entry point to run (default: forward). The backward
                       computes the gradients of the loss
                       sum(o * do) + sum(ht * dht) (+ the final normalizer and
                       scan states times their gradients). step is the
                       recurrent mode (MATH.md section 4): the forward's files
                       in and out, computed token by token by the package's
                       step kernel (the decoding kernel), every sequence from
                       its initial states at position 0; it must agree with
                       the chunked forward to rounding. On every device: the
                       CPU step kernel, the GPU one (cuda: the states are
                       copied to the device and back) or the GPU one under
                       emulation (simt).
  --device cpu|cuda|simt
                       cpu (the default): run the chunked CPU kernels; a spec
                       is compiled to a temporary package first (like decayc
                       compile), a package is loaded as is, both through
                       decayrt. cuda: run a package's GPU kernels on device 0
                       (or the CUDA context current in the process): the
                       inputs are copied to the device, the outputs back; the
                       module is chosen by the device's compute capability
                       and K, V (docs/cuda.md). Needs the CUDA driver
                       (libcuda.so.1, or the library DECAYRT_CUDA_DRIVER
                       names); without one the run fails with "no CUDA driver".
                       simt: run the GPU kernels on this CPU under SIMT
                       emulation (docs/simt.md): a package compiled with
                       --target simt, or a spec compiled so on the fly (head
                       dims 64 and 128 unless the spec fixes them). A
                       deadlock, a divergent warp, an out-of-bounds or racy
                       shared-memory access fails the run with the
                       emulator's report. Slow: meant for verification.
  --reference          Run the float64 token-by-token reference path instead
                       (the oracle of every kernel; specs only).
  --chunk-size N       Tokens per chunk when compiling a spec for --device cpu
                       (default: the spec's chunk_size hint, else 64); a
                       package's must match.
  --dtype f32|bf16     How the kernels store the per-token tensors (q, k, v, o,
                       do, dq, dk, dv, the spec's inputs and their gradients)
                       when compiling a spec for --device cpu (default: the
                       spec's dtype option, else f32). With a package it must
                       be the package's. States and params are always f32.
                       Not with --reference, which computes in float64 and
                       ignores a spec's dtype.
  --inputs DIR         Folder of .npy files named after the tensors (required):
                         q, k [B,T,H,K]; v [B,T,H,V]; optional h0 [N,H,K,V];
                         optional cu_seqlens [N+1] (int32/int64; needs B = 1);
                         every spec input and param by its spec name; optional
                         norm_h0 [N,H,K] (normalizer) and scan_<name>_h0
                         [N,H] or [N,H,K] (scan states).
                       Float tensors may be float32 or float64. A tensor the
                       kernels store in bf16 is rounded to bfloat16 on load
                       (to float32, then to nearest even bf16). Files the spec
                       does not use (k when the spec derives its key) are
                       ignored with a warning.
  --outputs DIR        Folder for the outputs (required; created if missing):
                       float32 from --device cpu, cuda and simt (bf16 outputs as
                       float32 holding their bfloat16 values exactly),
                       float64 from --reference.
                       Forward: o [B,T,H,V], ht [N,H,K,V], plus norm_ht and
                       scan_<name>_ht when the spec has them.
                       Backward (reads also do [B,T,H,V] and optional dht
                       [N,H,K,V], dnorm_ht, dscan_<name>_ht): dq, dk (unless the
                       spec derives its key), dv, dh0, d<name> for every spec
                       input and param (reduced over the dims it is broadcast
                       on), and dnorm_h0, dscan_<name>_h0 when the spec has them.
                       Outputs are written only when the whole run succeeded.
  --recurrence NAME    Which recurrence of SPEC to run (default: its only one).
  --help               Print this help.

N is B without cu_seqlens, else len(cu_seqlens) - 1. docs/semantics.md defines
what is computed. Exit code 0 on success, 1 on any error (one line on stderr).
)";

namespace {
int fail(const std::string &message) {
  std::fprintf(stderr, "decayc run: error: %s\n", message.c_str());
  return 1;
}

/// Reads `DIR/name.npy` as float64 values; `error` says what is wrong.
bool readFloatTensor(const std::string &path, const std::string &name, HostTensor &out,
                     std::string &error) {
  decay::npy::Array array;
  if (!decay::npy::readNpy(path, array, error))
    return false;
  if (array.dtype != decay::npy::DType::F32 && array.dtype != decay::npy::DType::F64) {
    error = name + ".npy: expected float32 or float64, got " +
            decay::npy::dtypeName(array.dtype);
    return false;
  }
  out.shape = array.shape;
  out.data = array.toF64();
  return true;
}

/// Reads cu_seqlens: a 1-d int32 or int64 tensor.
bool readCuSeqlens(const std::string &path, std::vector<int64_t> &out, std::string &error) {
  decay::npy::Array array;
  if (!decay::npy::readNpy(path, array, error))
    return false;
  if (array.dtype != decay::npy::DType::I32 && array.dtype != decay::npy::DType::I64) {
    error = std::string("cu_seqlens.npy: expected int32 or int64, got ") +
            decay::npy::dtypeName(array.dtype);
    return false;
  }
  if (array.shape.size() != 1) {
    error = "cu_seqlens.npy: expected shape [N+1], got " + decay::formatShape(array.shape);
    return false;
  }
  out = array.toI64();
  return true;
}

/// The .npy files in `dir` by tensor name.
std::set<std::string> listNpyFiles(const std::string &dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec; it.increment(ec)) {
    llvm::StringRef file = llvm::sys::path::filename(it->path());
    if (file.ends_with(".npy"))
      names.insert(file.drop_back(4).str());
  }
  return names;
}

/// Writes every output to a temporary file, then moves them all into place.
/// Earlier outputs are moved aside first and restored if any step fails, so
/// the folder ends with either all new outputs or exactly what it held before.
bool writeOutputsAtomically(const std::string &dir,
                            const std::map<std::string, decay::npy::Array> &outputs,
                            std::string &error) {
  if (std::error_code ec = llvm::sys::fs::create_directories(dir)) {
    error = "cannot create output folder '" + dir + "': " + ec.message();
    return false;
  }
  std::string pid = std::to_string(llvm::sys::Process::getProcessId());
  struct Output {
    const decay::npy::Array *array;
    std::string temporary, final, backup;
    bool backedUp = false, placed = false;
  };
  std::vector<Output> files;
  for (auto &[name, tensor] : outputs) {
    std::string final = dir + "/" + name + ".npy";
    files.push_back({&tensor, final + ".tmp." + pid, final, final + ".old." + pid});
  }
  auto rollBack = [&] {
    for (Output &file : files) {
      if (file.placed)
        llvm::sys::fs::remove(file.final);
      if (file.backedUp)
        llvm::sys::fs::rename(file.backup, file.final);
      llvm::sys::fs::remove(file.temporary);
    }
  };
  for (Output &file : files)
    if (!decay::npy::writeNpy(file.temporary, *file.array, error)) {
      rollBack();
      return false;
    }
  for (Output &file : files) {
    std::error_code ec;
    if (llvm::sys::fs::exists(file.final)) {
      if (!llvm::sys::fs::is_regular_file(file.final))
        ec = std::make_error_code(std::errc::is_a_directory);
      else if (!(ec = llvm::sys::fs::rename(file.final, file.backup)))
        file.backedUp = true;
    }
    if (!ec && !(ec = llvm::sys::fs::rename(file.temporary, file.final)))
      file.placed = true;
    if (ec) {
      error = "cannot write '" + file.final + "': " + ec.message();
      rollBack();
      return false;
    }
  }
  for (Output &file : files)
    if (file.backedUp)
      llvm::sys::fs::remove(file.backup);
  return true;
}
} // namespace

namespace {
/// What `decayc run` runs: the reference path or a package's kernels on a device.
struct Backend {
  decay::SpecSummary spec;
  std::vector<decay::TensorSpec> inputs;
  /// Runs on float64 inputs; returns the outputs as .npy arrays.
  std::function<llvm::Error(const std::map<std::string, HostTensor> &, const std::vector<int64_t> *,
                            std::map<std::string, decay::npy::Array> &)>
      run;
  std::shared_ptr<void> owner; ///< keeps the program or device alive
};

llvm::Expected<Backend> openReference(const std::string &path, const decayc::Arguments &args,
                                      decay::Entry entry) {
  decay::CompileOptions options;
  options.recurrence = args.get("recurrence").value_or("");
  auto program = decay::SpecProgram::compileFile(path, options);
  if (!program)
    return program.takeError();
  std::shared_ptr<decay::SpecProgram> shared = std::move(*program);
  Backend backend{shared->spec(), shared->inputsOf(entry), nullptr, shared};
  backend.run = [shared, entry](const std::map<std::string, HostTensor> &inputs,
                                const std::vector<int64_t> *cu,
                                std::map<std::string, decay::npy::Array> &outputs) -> llvm::Error {
    std::map<std::string, HostTensor> results;
    if (llvm::Error error = shared->run(entry, inputs, cu, results))
      return error;
    for (auto &[name, tensor] : results)
      outputs[name] = decay::npy::Array::fromF64(tensor.data, tensor.shape);
    return llvm::Error::success();
  };
  return backend;
}

llvm::Expected<Backend> openDevice(const std::string &path, const decayc::Arguments &args,
                                   decay::Entry entry, int64_t chunkSize, const std::string &dtype,
                                   decayc::DeviceKind kind) {
  auto device =
      decayc::CpuDevice::open(path, args.get("recurrence").value_or(""), chunkSize, dtype, kind);
  if (!device)
    return device.takeError();
  std::shared_ptr<decayc::CpuDevice> shared = std::move(*device);
  // The recurrent mode (step) reads and writes the forward's files.
  decay::Entry files = entry == decay::Entry::Step ? decay::Entry::Forward : entry;
  Backend backend{shared->spec(), shared->inputsOf(files), nullptr, shared};
  backend.run = [shared, entry, files](const std::map<std::string, HostTensor> &inputs,
                                       const std::vector<int64_t> *cu,
                                       std::map<std::string, decay::npy::Array> &outputs) -> llvm::Error {
    std::map<std::string, decayc::DeviceTensor> stored = shared->toDevice(inputs);
    std::map<std::string, decayc::DeviceTensor> results = shared->allocateOutputs(files, stored, cu);
    if (llvm::Error error = shared->run(entry, stored, cu, results))
      return error;
    for (auto &[name, tensor] : results)
      outputs[name] = decay::npy::Array::fromF32(tensor.values(), tensor.shape);
    return llvm::Error::success();
  };
  return backend;
}
} // namespace

int decayc::runCommand(int argc, char **argv) {
  Arguments args;
  if (!parseArguments(argc, argv, 2,
                      {"entry", "inputs", "outputs", "recurrence", "device", "chunk-size", "dtype"},
                      {"reference", "help"}, args))
    return 1;
  if (args.has("help")) {
    std::fputs(kRunHelp, stdout);
    return 0;
  }
  if (args.positionals.size() != 1)
    return fail("expected exactly one SPEC or PKG (see decayc run --help)");
  std::string entryName = args.get("entry").value_or("forward");
  if (entryName != "forward" && entryName != "backward" && entryName != "step")
    return fail("--entry " + entryName +
                " is not available: the entries are forward, backward and step");
  decay::Entry entry = entryName == "forward"    ? decay::Entry::Forward
                       : entryName == "backward" ? decay::Entry::Backward
                                                 : decay::Entry::Step;
  if (entry == decay::Entry::Step && args.has("reference"))
    return fail("--entry step runs a package's step kernel; the float64 reference of the "
                "recurrent mode is --entry forward --reference (the same recurrence)");
  std::string device = args.get("device").value_or("cpu");
  if (args.has("reference") && args.has("device"))
    return fail("--reference and --device exclude each other: the reference path is its own device");
  if (!args.has("reference") && device != "cpu" && device != "cuda" && device != "simt")
    return fail("--device " + device +
                " is not available: the devices are cpu, cuda and simt (and --reference)");
  std::string dtype, error;
  if (!readDtypeOption(args, dtype, error))
    return fail(error);
  if (args.has("dtype") && args.has("reference"))
    return fail("--dtype applies to the CPU kernels: the --reference path computes in float64");
  int64_t chunkSize = 0;
  if (auto chunk = args.get("chunk-size")) {
    char *end = nullptr;
    long long value = std::strtoll(chunk->c_str(), &end, 10);
    if (chunk->empty() || *end != '\0' || value < 1 || value > 1024)
      return fail("--chunk-size must be an integer in [1, 1024], got '" + *chunk + "'");
    chunkSize = value;
  }
  auto inputDir = args.get("inputs"), outputDir = args.get("outputs");
  if (!inputDir || !outputDir)
    return fail("--inputs DIR and --outputs DIR are required");
  if (!llvm::sys::fs::is_directory(*inputDir))
    return fail("--inputs '" + *inputDir + "' is not a folder");

  decayc::DeviceKind kind = device == "cuda"   ? decayc::DeviceKind::Cuda
                            : device == "simt" ? decayc::DeviceKind::Simt
                                               : decayc::DeviceKind::Cpu;
  auto backend = args.has("reference")
                     ? openReference(args.positionals[0], args, entry)
                     : openDevice(args.positionals[0], args, entry, chunkSize, dtype, kind);
  if (!backend)
    return fail(llvm::toString(backend.takeError()));

  std::set<std::string> files = listNpyFiles(*inputDir);
  std::map<std::string, HostTensor> inputs;
  for (const decay::TensorSpec &spec : backend->inputs) {
    if (!files.erase(spec.name))
      continue; // a missing required tensor is reported by run
    if (!readFloatTensor(*inputDir + "/" + spec.name + ".npy", spec.name, inputs[spec.name],
                         error))
      return fail(error);
  }
  std::vector<int64_t> cuSeqlens;
  bool varlen = files.erase("cu_seqlens") != 0;
  if (varlen && !readCuSeqlens(*inputDir + "/cu_seqlens.npy", cuSeqlens, error))
    return fail(error);
  for (const std::string &unused : files) {
    if (unused == "k" && backend->spec.derivedKey)
      std::fprintf(stderr, "decayc run: warning: k.npy is ignored: @%s derives its key\n",
                   backend->spec.name.c_str());
    else
      std::fprintf(stderr, "decayc run: warning: %s.npy is not a tensor of @%s; ignored\n",
                   unused.c_str(), backend->spec.name.c_str());
  }

  std::map<std::string, decay::npy::Array> outputs;
  if (llvm::Error runError = backend->run(inputs, varlen ? &cuSeqlens : nullptr, outputs))
    return fail(llvm::toString(std::move(runError)));
  if (!writeOutputsAtomically(*outputDir, outputs, error))
    return fail(error);
  return 0;
}

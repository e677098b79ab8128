// Loads a package: dlopen, reads and validates the manifest, resolves the kernel symbols (C API).
#ifndef _GNU_SOURCE
#define _GNU_SOURCE // dladdr1, to bound the manifest by its symbol size
#endif

#include "Package.h"
#include "Error.h"

#include <dlfcn.h>
#include <link.h>

#include <cstring>
#include <memory>

using namespace decayrt::detail;

namespace {

constexpr const char *kManifestSymbol = "decay_package_manifest";

/// Deletes a package and closes its library.
struct PackageDeleter {
  void operator()(decayrt_package *package) const {
    package->cudaModules.unloadAll(); // before the images' library goes
    if (package->library)
      dlclose(package->library);
    delete package;
  }
};
using PackagePtr = std::unique_ptr<decayrt_package, PackageDeleter>;

/// The current dlerror() text, or `fallback` when there is none.
std::string dynamicLinkerError(const char *fallback) {
  const char *message = dlerror();
  return message ? message : fallback;
}

/// dlopens `path`; a path without a slash is relative to the working directory
/// (dlopen would search the library path instead).
Error openLibrary(const std::string &path, void *&library) {
  std::string file = path.find('/') == std::string::npos ? "./" + path : path;
  dlerror();
  library = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!library)
    return fail(DECAYRT_ERROR_PACKAGE,
                "cannot load package '" + path + "': " + dynamicLinkerError("dlopen failed"));
  return Error::success();
}

/// The size in bytes the symbol table gives the object `name` at `address`, or 0 if unknown.
size_t symbolSize(const void *address, const char *name) {
#if defined(__GLIBC__) // RTLD_DL_SYMENT is an enumerator there, not a macro
  Dl_info info;
  void *entry = nullptr;
  if (!dladdr1(address, &info, &entry, RTLD_DL_SYMENT) || !entry || !info.dli_sname ||
      std::strcmp(info.dli_sname, name) != 0 || info.dli_saddr != address)
    return 0;
  return static_cast<size_t>(static_cast<const ElfW(Sym) *>(entry)->st_size);
#else
  (void)address;
  (void)name;
#endif
  return 0;
}

/// Whether the NUL-terminated string at `text` ends inside its symbol's size
/// (true when the size is unknown).
bool isTerminatedInSymbol(const char *text, const char *name) {
  size_t size = symbolSize(text, name);
  return !size || strnlen(text, size) < size;
}

/// Copies the NUL-terminated manifest the library exports; when the symbol
/// table knows its size, the terminator must lie inside it.
Error readManifestText(void *library, const std::string &path, std::string &text) {
  dlerror();
  const char *manifest = static_cast<const char *>(dlsym(library, kManifestSymbol));
  if (!manifest)
    return fail(DECAYRT_ERROR_PACKAGE, "package '" + path + "' does not export " + kManifestSymbol +
                                           ": " + dynamicLinkerError("symbol not found"));
  if (!isTerminatedInSymbol(manifest, kManifestSymbol))
    return fail(DECAYRT_ERROR_PACKAGE,
                "package '" + path + "': " + kManifestSymbol + " is not a NUL-terminated string");
  text.assign(manifest);
  return Error::success();
}

/// The address of the exported `symbol` of `kernel`, or an error naming it.
Error findSymbol(void *library, const std::string &path, const Kernel &kernel,
                 const std::string &symbol, const char *what, const void *&out) {
  dlerror();
  out = dlsym(library, symbol.c_str());
  if (!out)
    return fail(DECAYRT_ERROR_PACKAGE, "package '" + path + "': missing " + what + " symbol '" +
                                           symbol + "' of the " + kernel.entry + " entry (" +
                                           kernel.target + "): " +
                                           dynamicLinkerError("symbol not found"));
  return Error::success();
}

/// Resolves a GPU module's PTX (a NUL-terminated string) and cubin (an ELF
/// image of cubin_size bytes; at least that many when the symbol table knows).
Error resolveModule(decayrt_package &package, const std::string &path, const Kernel &kernel) {
  const GpuModule &gpu = *kernel.gpu;
  const void *ptx = nullptr, *cubin = nullptr;
  if (Error error = findSymbol(package.library, path, kernel, gpu.ptxSymbol, "PTX", ptx);
      !error.ok())
    return error;
  if (Error error = findSymbol(package.library, path, kernel, gpu.cubinSymbol, "cubin", cubin);
      !error.ok())
    return error;
  std::string where = "package '" + path + "': ";
  if (!isTerminatedInSymbol(static_cast<const char *>(ptx), gpu.ptxSymbol.c_str()))
    return fail(DECAYRT_ERROR_PACKAGE,
                where + "PTX " + gpu.ptxSymbol + " is not a NUL-terminated string");
  size_t cubinSymbolSize = symbolSize(cubin, gpu.cubinSymbol.c_str());
  if (cubinSymbolSize && cubinSymbolSize < static_cast<uint64_t>(gpu.cubinSize))
    return fail(DECAYRT_ERROR_PACKAGE, where + "cubin " + gpu.cubinSymbol + " has " +
                                           std::to_string(cubinSymbolSize) +
                                           " bytes, the manifest says cubin_size " +
                                           std::to_string(gpu.cubinSize));
  if (gpu.cubinSize < 4 || std::memcmp(cubin, "\x7f" "ELF", 4) != 0)
    return fail(DECAYRT_ERROR_PACKAGE,
                where + "cubin " + gpu.cubinSymbol + " is not an ELF image");
  package.gpuModules.push_back({&kernel, static_cast<const char *>(ptx),
                                static_cast<const unsigned char *>(cubin)});
  return Error::success();
}

/// Resolves the host entry point of every launch of a simt module.
Error resolveSimtModule(decayrt_package &package, const std::string &path, const Kernel &kernel) {
  SimtImage image{&kernel, {}};
  for (const Launch &launch : kernel.gpu->launches) {
    const void *address = nullptr;
    if (Error error = findSymbol(package.library, path, kernel, launch.symbol, "simt launch",
                                 address);
        !error.ok())
      return error;
    image.functions.push_back(reinterpret_cast<decay_simt_kernel>(const_cast<void *>(address)));
  }
  package.simtModules.push_back(std::move(image));
  return Error::success();
}

/// Resolves the entry point of every CPU kernel and the images of every GPU
/// module of the manifest.
Error resolveKernels(decayrt_package &package, const std::string &path) {
  for (const Kernel &kernel : package.manifest.kernels) {
    if (kernel.isGpu() && kernel.gpu->simt) {
      if (Error error = resolveSimtModule(package, path, kernel); !error.ok())
        return error;
      continue;
    }
    if (kernel.isGpu()) {
      if (Error error = resolveModule(package, path, kernel); !error.ok())
        return error;
      continue;
    }
    dlerror();
    void *address = dlsym(package.library, kernel.symbol.c_str());
    if (!address)
      return fail(DECAYRT_ERROR_PACKAGE, "package '" + path + "': missing kernel symbol '" +
                                             kernel.symbol + "' of the " + kernel.entry +
                                             " entry: " + dynamicLinkerError("symbol not found"));
    package.cpuKernels.push_back({&kernel, reinterpret_cast<KernelFunction>(address)});
  }
  return Error::success();
}

/// Loads and checks the package at `path`.
Error loadPackage(const char *path, PackagePtr &out) {
  if (!path || !*path)
    return fail(DECAYRT_ERROR_INVALID_ARGUMENT, "decayrt_package_load: empty path");
  PackagePtr package(new decayrt_package);
  if (Error error = openLibrary(path, package->library); !error.ok())
    return error;
  if (Error error = readManifestText(package->library, path, package->manifestText); !error.ok())
    return error;
  std::string problem;
  if (!parseManifest(package->manifestText, package->manifest, problem))
    return fail(DECAYRT_ERROR_PACKAGE,
                std::string("package '") + path + "': invalid manifest: " + problem);
  if (Error error = resolveKernels(*package, path); !error.ok())
    return error;
  out = std::move(package);
  return Error::success();
}

} // namespace

extern "C" decayrt_status decayrt_package_load(const char *path, decayrt_package **out) {
  if (out)
    *out = nullptr;
  return guarded(
      "decayrt_package_load",
      [&] {
        if (!out)
          return fail(DECAYRT_ERROR_INVALID_ARGUMENT, "decayrt_package_load: out is NULL");
        PackagePtr package;
        if (Error error = loadPackage(path, package); !error.ok())
          return error;
        *out = package.release();
        return Error::success();
      },
      DECAYRT_ERROR_PACKAGE);
}

extern "C" void decayrt_package_free(decayrt_package *package) {
  if (package)
    PackageDeleter()(package);
}

extern "C" const char *decayrt_package_manifest(const decayrt_package *package) {
  return package ? package->manifestText.c_str() : nullptr;
}

extern "C" const char *decayrt_package_spec_name(const decayrt_package *package) {
  return package ? package->manifest.spec.name.c_str() : nullptr;
}

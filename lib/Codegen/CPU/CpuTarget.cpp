// The vector register width of a -march CPU, which sizes the kernels' register tiles.
#include "decay/Codegen/CPU/CpuTarget.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/Triple.h"

#include <memory>

llvm::Expected<int64_t> decay::cpuVectorBits(llvm::StringRef cpu) {
  bool native = cpu == "native";
  llvm::StringRef name = native ? llvm::sys::getHostCPUName() : cpu;
  llvm::InitializeNativeTarget();
  llvm::Triple triple("x86_64-unknown-linux-gnu");
  std::string error;
  const llvm::Target *target = llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return llvm::createStringError("cannot find LLVM's x86 back end: " + error);
  // Asked of a generic subtarget first: creating one for an unknown CPU prints a warning.
  std::unique_ptr<llvm::MCSubtargetInfo> generic(target->createMCSubtargetInfo(triple, "", ""));
  if (!generic || !generic->isCPUStringValid(name))
    return llvm::createStringError("unknown CPU '" + cpu.str() +
                                   "' (expected an x86-64 -march name such as znver4, "
                                   "x86-64-v3 or native)");
  std::unique_ptr<llvm::MCSubtargetInfo> info(target->createMCSubtargetInfo(triple, name, ""));
  // A virtual machine may hide features of its CPU model: for this machine,
  // ask the CPU itself.
  bool avx512 = native ? llvm::sys::getHostCPUFeatures().lookup("avx512f")
                       : info->checkFeatures("+avx512f");
  return avx512 ? 512 : 256;
}

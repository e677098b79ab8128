// Reading the GPU module items of a manifest (targets sm_XY and simt: head dims, PTX/cubin symbols, launches, size models).
#ifndef DECAYRT_LIB_GPUMANIFEST_H
#define DECAYRT_LIB_GPUMANIFEST_H

#include "Manifest.h"
#include "ManifestReader.h"

namespace decayrt::detail {

/// Whether `target` names a GPU ("sm_" and 2 or 3 digits); sets `capability`
/// to the digits (sm_86: 86, sm_100: 100).
bool parseGpuTarget(const std::string &target, int &capability);

/// Reads the GPU fields of a kernel item (all but entry, target and
/// arguments) into `kernel.gpu`; target simt has no PTX or cubin but a
/// host symbol per launch.
bool readGpuModule(Reader &reader, const nlohmann::json &item, const std::string &where,
                   int capability, Kernel &kernel);

/// Checks the launches' parameters against the module's arguments (read
/// after readGpuModule): each names an argument, the workspace or a size,
/// once per launch; no argument is called like a size or the workspace; the
/// sizes of parameters and grids exist for the entry (S in step modules
/// only, N in the others only).
bool checkGpuParameters(Reader &reader, const std::string &where, const Kernel &kernel);

} // namespace decayrt::detail

#endif // DECAYRT_LIB_GPUMANIFEST_H

# lit configuration of decayc: tests are .mlir files run through decay-opt and decayc.
import os
import shutil

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "DECAY"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "unit", "fuzz", "Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.decay_obj_root, "test")
config.substitutions.append(("%examples", os.path.join(config.decay_src_root, "examples", "specs")))
# The built libraries: libdecayrt.so and the tests' mock CUDA driver, libdecay-mock-cuda.so.
config.substitutions.append(("%decay_lib", os.path.join(config.decay_obj_root, "lib")))

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
tools = [ToolSubst("decay-opt", unresolved="fatal"), ToolSubst("decayc", unresolved="fatal"),
         ToolSubst("decay-trainer", unresolved="fatal")]
llvm_config.add_tool_substitutions(tools, [config.decay_tools_dir])

if shutil.which("ptxas") or os.path.exists("/usr/local/cuda/bin/ptxas"):
    config.available_features.add("ptxas")


def cuda_device_usable():
    """Whether the CUDA driver (libcuda.so.1, never the tests' mock) loads and reports a device."""
    import ctypes

    try:
        driver = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        return (driver.cuInit(0) == 0 and driver.cuDeviceGetCount(ctypes.byref(count)) == 0
                and count.value > 0)
    except (OSError, AttributeError):
        return False


if cuda_device_usable():
    config.available_features.add("cuda-gpu")

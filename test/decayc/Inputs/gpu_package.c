/* A handwritten GPU package for decayc's lit tests: the manifest (the JSON file -DMANIFEST="path" names, e.g. mamba2_gpu.json: Mamba2 forward modules for sm_80 and sm_90 at K = V = 64 and sm_80 at 128, a backward for sm_80 at 64; mamba2_gpu_step.json: a step module for sm_80 at 64) and fake PTX and cubin images in the mock driver's format (test/unit/MockCudaDriver.c). */
#ifndef MANIFEST
#error "compile with -DMANIFEST='\"path/to/manifest.json\"'"
#endif

/* decay_package_manifest: the file's bytes and a NUL. */
__asm__(".pushsection .rodata\n"
        ".globl decay_package_manifest\n"
        ".type decay_package_manifest, @object\n"
        "decay_package_manifest:\n"
        ".incbin \"" MANIFEST "\"\n"
        ".byte 0\n"
        ".size decay_package_manifest, . - decay_package_manifest\n"
        ".popsection\n");

/* Images: "target=sm_XY" and the functions' parameter counts. */
const char mamba2_sm80_ptx[] = "// mock ptx target=sm_80 functions=mamba2_forward:13,mamba2_backward:20\n";
const unsigned char mamba2_sm80_cubin[] =
    "\x7f" "ELF mock cubin target=sm_80 functions=mamba2_forward:13,mamba2_backward:20\n";
const char mamba2_sm90_ptx[] = "// mock ptx target=sm_90 functions=mamba2_forward:13\n";
const unsigned char mamba2_sm90_cubin[] =
    "\x7f" "ELF mock cubin target=sm_90 functions=mamba2_forward:13\n";
/* The step module's images (mamba2_gpu_step.json). */
const char mamba2_sm80_step_ptx[] = "// mock ptx target=sm_80 functions=mamba2_step:14\n";
const unsigned char mamba2_sm80_step_cubin[] =
    "\x7f" "ELF mock cubin target=sm_80 functions=mamba2_step:14\n";

// decay-gpu-kernels-to-ptx: the gpu.modules of decay-expand-gpu-kernels
// become gpu.binary ops holding PTX for the chip (NVGPU and GPU ops to NVVM,
// libdevice linked for the math, the dynamic shared memory made an extern
// declaration, MLIR's NVPTX back end); the tf32 mma.sync and the barriers
// reach the PTX.
// REQUIRES: ptxas
// RUN: decay-opt %examples/retnet.mlir --decay-expand-gpu-kernels='head-dims=64' \
// RUN:   | decay-opt --pass-pipeline='builtin.module(decay-gpu-kernels-to-ptx{chip=sm_90})' \
// RUN:   | FileCheck %s
// RUN: decay-opt %examples/lightnet.mlir --decay-expand-gpu-kernels='head-dims=128' \
// RUN:   | decay-opt --pass-pipeline='builtin.module(decay-gpu-kernels-to-ptx{chip=sm_80})' \
// RUN:   | sed -e 's/\\0A/\n/g' -e 's/\\09/ /g' | FileCheck %s --check-prefix=PTX

// CHECK: module attributes {gpu.container_module}
// CHECK-NEXT: gpu.binary @retnet_forward_k64_v64 [#gpu.object<#nvvm.target<O = 3, chip = "sm_90", features = "+ptx80">, {{.*}}assembly = "{{.*}}.version 8.0\0A.target sm_90\0A
// CHECK-NOT: gpu.module

// The dynamic shared memory is what the launch gives: an extern array.
// Kernel parameters: one pointer per tensor and the workspace, then B, T, H, N.
// PTX: .version 7.0
// PTX: .target sm_80
// PTX: .extern .shared .align 16 .b8 __dynamic_shmem__0[];
// PTX: .visible .entry lightnet_forward_prepare(
// PTX-NEXT: .param .u64 .ptr .align 1 lightnet_forward_prepare_param_0,
// PTX: .visible .entry lightnet_forward_chunks(
// The chunk's rows are staged with cp.async (zero-filled past its end),
// committed, waited for, then made visible by the barrier.
// PTX: cp.async.ca.shared.global [%rd{{[0-9]+}}], [%rd{{[0-9]+}}], 16, %r{{[0-9]+}};
// PTX: cp.async.commit_group;
// PTX: cp.async.wait_group 0;
// PTX: bar.sync 0;
// PTX: mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32
// No math call is left for the driver to resolve: libdevice is linked and inlined.
// PTX-NOT: call{{.*}}__nv_

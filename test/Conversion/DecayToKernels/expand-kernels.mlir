// decay-expand-kernels: the chunked f32 kernels @<name>_forward and @<name>_backward (signatures, the (sequence, group of heads) scf.parallel, the loop over chunks (each chunk for every head of the group) and its chunk size, the register-tiled matmuls, the causal mask, the backward's matmuls and its f64 parts of dg, the atomic param gradients), the spec erased, and the error without decay-derive-gradients.
// RUN: decay-opt %s -split-input-file --decay-expand-kernels | FileCheck %s
// RUN: decay-opt %s -split-input-file --decay-expand-kernels | FileCheck %s --check-prefix=WHOLE
// RUN: decay-opt %s -split-input-file --decay-expand-kernels=chunk-size=32 | FileCheck %s --check-prefix=C32 --implicit-check-not='arith.constant 64 : index' --implicit-check-not='arith.constant 128 : index'
// RUN: decay-opt %s -split-input-file --decay-derive-gradients --decay-expand-kernels=backward=true | FileCheck %s --check-prefix=BWD
// RUN: decay-opt %s -split-input-file --decay-derive-gradients --decay-expand-kernels=backward=true | FileCheck %s --check-prefix=BWD-WHOLE
// RUN: decay-opt %s -split-input-file --decay-derive-gradients '--decay-expand-kernels=chunk-size=32 backward=true' | FileCheck %s --check-prefix=BWD32 --implicit-check-not='arith.constant 64 : index' --implicit-check-not='arith.constant 128 : index'
// RUN: decay-opt %s -split-input-file --decay-derive-gradients --decay-expand-kernels=backward=true | FileCheck %s --check-prefix=GONE
// RUN: not decay-opt %s -split-input-file --decay-expand-kernels=backward=true 2>&1 | FileCheck %s --check-prefix=ERR

// The recurrences and their adjoints are gone; only func, scf, memref, arith,
// math and vector ops remain, and the LLVM intrinsic call of the forward's sfence.
// GONE-NOT: decay.
// GONE-NOT: unrealized_conversion_cast

// Without decay-derive-gradients a decaying spec has no adjoint to build its
// backward kernel from; a spec without decay needs none.
// ERR: error: 'decay.recurrence' op has no decay.adjoint: run decay-derive-gradients before decay-expand-kernels{backward=true}
// ERR-NEXT: decay.recurrence @mamba2 scalar
// ERR: error: 'decay.recurrence' op has no decay.adjoint: run decay-derive-gradients before decay-expand-kernels{backward=true}
// ERR-NEXT: decay.recurrence @lightnet vector
// ERR: error: 'decay.recurrence' op has no decay.adjoint: run decay-derive-gradients before decay-expand-kernels{backward=true}
// ERR-NEXT: decay.recurrence @normalized constant_vector
// ERR-NOT: error:
// ERR: func.func @linear_forward(
// ERR: func.func @linear_backward(
// ERR-NOT: error:

//===----------------------------------------------------------------------===//
// Scalar decay (Mamba2), default chunk size 64.
//===----------------------------------------------------------------------===//

// The forward kernel: the reference forward's signature in f32.
// CHECK-LABEL: func.func @mamba2_forward(
// CHECK-SAME:    %[[Q:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[K:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[V:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[H0:[a-z0-9_]+]]: memref<?x?x?x?xf32>,
// CHECK-SAME:    %[[SEQS:[a-z0-9_]+]]: memref<?x3xi64>,
// CHECK-SAME:    %[[DT:[a-z0-9_]+]]: memref<?x?x?xf32>, %[[ALOG:[a-z0-9_]+]]: memref<?xf32>, %[[DTB:[a-z0-9_]+]]: memref<?xf32>,
// CHECK-SAME:    %[[O:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[HT:[a-z0-9_]+]]: memref<?x?x?x?xf32>)
// CHECK-SAME:    attributes {llvm.emit_c_interface} {
// H and K from q, V from v, scale = K^-1/2 in f32.
// CHECK:         %[[NH:.*]] = memref.dim %[[Q]], %c2 : memref<?x?x?x?xf32>
// CHECK:         %[[KD:.*]] = memref.dim %[[Q]], %c3 : memref<?x?x?x?xf32>
// CHECK:         %[[VD:.*]] = memref.dim %[[V]], %c3{{.*}} : memref<?x?x?x?xf32>
// CHECK:         %[[SQRT:.*]] = math.sqrt %{{.*}} : f32
// CHECK-NEXT:    %[[SCALE:.*]] = arith.divf %{{.*}}, %[[SQRT]] : f32
// One parallel work item per (sequence, group of heads): clamp(N * H / 8, 1, 4)
// heads per group, the last group possibly smaller.
// CHECK:         %[[NSEQ:.*]] = memref.dim %[[SEQS]], %{{.*}} : memref<?x3xi64>
// CHECK-NEXT:    %[[C1:.*]] = arith.constant 1 : index
// CHECK-NEXT:    %[[C8:.*]] = arith.constant 8 : index
// CHECK-NEXT:    %[[C4:.*]] = arith.constant 4 : index
// CHECK-NEXT:    %[[PAIRS:.*]] = arith.muli %[[NSEQ]], %[[NH]] : index
// CHECK-NEXT:    %[[SHARE:.*]] = arith.divui %[[PAIRS]], %[[C8]] : index
// CHECK-NEXT:    %[[CAP:.*]] = arith.minui %[[SHARE]], %[[C4]] : index
// CHECK-NEXT:    %[[PER:.*]] = arith.maxui %[[C1]], %[[CAP]] : index
// CHECK-NEXT:    %[[GROUPS:.*]] = arith.ceildivui %[[NH]], %[[PER]] : index
// CHECK-NEXT:    scf.parallel (%[[N:[a-z0-9_]+]], %[[GRP:[a-z0-9_]+]]) = (%{{.*}}, %{{.*}}) to (%[[NSEQ]], %[[GROUPS]]) step (%{{.*}}, %{{.*}}) {
// CHECK-NEXT:      %[[HFIRST:.*]] = arith.muli %[[GRP]], %[[PER]] : index
// CHECK-NEXT:      %[[HNEXT:.*]] = arith.addi %[[HFIRST]], %[[PER]] : index
// CHECK-NEXT:      %[[HEND:.*]] = arith.minui %[[HNEXT]], %[[NH]] : index
// CHECK:           %[[CS:.*]] = arith.constant 64 : index
// The sequence's row of seqs: batch row, first token, end token.
// CHECK:           memref.load %[[SEQS]][%[[N]], %{{.*}}] : memref<?x3xi64>
// CHECK-NEXT:      %[[B:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           memref.load %[[SEQS]][%[[N]], %{{.*}}] : memref<?x3xi64>
// CHECK-NEXT:      %[[START:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           memref.load %[[SEQS]][%[[N]], %{{.*}}] : memref<?x3xi64>
// CHECK-NEXT:      %[[END:.*]] = arith.index_cast %{{.*}} : i64 to index
// The running state lives in ht, starting from h0, for every head of the group.
// CHECK:           scf.for %[[HI:[a-z0-9_]+]] = %[[HFIRST]] to %[[HEND]] step
// CHECK:           %[[H0V:.*]] = memref.load %[[H0]][%[[N]], %[[HI]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf32>
// CHECK-NEXT:      memref.store %[[H0V]], %[[HT]][%[[N]], %[[HI]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf32>
// Whether o takes aligned non-temporal vector stores: its first element
// (aligned pointer + 4 * offset) at a multiple of 64 bytes and V a multiple
// of 16 lanes, checked when the kernel runs.
// CHECK:           %[[OPTR:.*]] = memref.extract_aligned_pointer_as_index %[[O]] : memref<?x?x?x?xf32> -> index
// CHECK-NEXT:      %{{.*}}, %[[OOFF:.*]], %{{.*}}:4, %{{.*}}:4 = memref.extract_strided_metadata %[[O]]
// CHECK-NEXT:      %[[C4B:.*]] = arith.constant 4 : index
// CHECK-NEXT:      %[[OOFFB:.*]] = arith.muli %[[OOFF]], %[[C4B]] : index
// CHECK-NEXT:      %[[OFIRST:.*]] = arith.addi %[[OPTR]], %[[OOFFB]] : index
// CHECK-NEXT:      %[[C63:.*]] = arith.constant 63 : index
// CHECK-NEXT:      %[[OMIS:.*]] = arith.andi %[[OFIRST]], %[[C63]] : index
// CHECK:           %[[ODIM:.*]] = memref.dim %[[O]], %{{.*}} : memref<?x?x?x?xf32>
// CHECK-NEXT:      %[[C15:.*]] = arith.constant 15 : index
// CHECK-NEXT:      %[[VMIS:.*]] = arith.andi %[[ODIM]], %[[C15]] : index
// CHECK-NEXT:      %[[OALIGNED:.*]] = arith.cmpi eq, %[[OMIS]], %{{.*}} : index
// CHECK-NEXT:      %[[VWHOLE:.*]] = arith.cmpi eq, %[[VMIS]], %{{.*}} : index
// CHECK-NEXT:      %[[STREAM:.*]] = arith.andi %[[OALIGNED]], %[[VWHOLE]] : i1
// Per-chunk buffers: G and G's rounding error [C, 1] (a scalar decay's G is
// the same in every channel); A [C, C]; work [max(C, K)]^2; out, values [C,
// V]. No copies of q and k: an identity feature map without RoPE, f32, a
// scalar decay (the chunk reads q's and k's own rows).
// CHECK:           %[[CSA:.*]] = arith.constant 64 : index
// CHECK-NEXT:      %[[ONECOL:.*]] = arith.constant 1 : index
// CHECK-NEXT:      %[[GC:.*]] = memref.alloc(%[[CS]], %[[ONECOL]]) : memref<?x?xf32>
// CHECK-NEXT:      %[[GLOW:.*]] = memref.alloc(%[[CS]], %[[ONECOL]]) : memref<?x?xf32>
// Per-step decays exp(g) [C, K] (vector decays); a decayed key, a running
// product of steps, and G and its rounding error so far, per channel [K].
// CHECK-NEXT:      memref.alloc(%[[CS]], %[[KD]]) : memref<?x?xf32>
// CHECK-NEXT:      memref.alloc(%[[KD]]) : memref<?xf32>
// CHECK-NEXT:      memref.alloc(%[[KD]]) : memref<?xf32>
// CHECK-NEXT:      %[[RUNHIGH:.*]] = memref.alloc(%[[KD]]) : memref<?xf32>
// CHECK-NEXT:      %[[RUNLOW:.*]] = memref.alloc(%[[KD]]) : memref<?xf32>
// CHECK-NEXT:      %[[AC:.*]] = memref.alloc(%[[CSA]], %[[CSA]]) : memref<?x?xf32>
// CHECK-NEXT:      %[[SIDE:.*]] = arith.maxui %[[CSA]], %[[KD]] : index
// CHECK-NEXT:      %[[WORK:.*]] = memref.alloc(%[[SIDE]], %[[SIDE]]) : memref<?x?xf32>
// CHECK-NEXT:      %[[OUT:.*]] = memref.alloc(%[[CSA]], %[[VD]]) : memref<?x?xf32>
// CHECK-NEXT:      %[[VALS:.*]] = memref.alloc(%[[CSA]], %[[VD]]) : memref<?x?xf32>
// (No sub-block buffers: the decay is scalar.)
// The sequential loop over the chunks, C tokens apart; the last one may be
// shorter; each chunk for every head of the group in turn.
// CHECK-NEXT:      scf.for %[[FIRST:[a-z0-9_]+]] = %[[START]] to %[[END]] step %[[CS]] {
// CHECK-NEXT:        %[[REST:.*]] = arith.subi %[[END]], %[[FIRST]] : index
// CHECK-NEXT:        %[[LEN:.*]] = arith.minsi %[[CS]], %[[REST]] : index
// CHECK:             scf.for %[[H:[a-z0-9_]+]] = %[[HFIRST]] to %[[HEND]] step
// The head's rows of q and k, [T, K] views H * K apart.
// CHECK:               %[[QC:.*]] = memref.subview %[[Q]][%[[B]], 0, %[[H]], 0] [1, %{{.*}}, 1, %{{.*}}] [1, 1, 1, 1] : memref<?x?x?x?xf32> to memref<?x?xf32, strided<[?, 1], offset: ?>>
// CHECK:               %[[KC:.*]] = memref.subview %[[K]][%[[B]], 0, %[[H]], 0] [1, %{{.*}}, 1, %{{.*}}] [1, 1, 1, 1] : memref<?x?x?x?xf32> to memref<?x?xf32, strided<[?, 1], offset: ?>>
// G starts from 0 in every chunk.
// CHECK:             scf.for %{{.*}} = %{{.*}} to %[[KD]] step
// CHECK:               memref.store %{{.*}}, %[[RUNHIGH]][%{{.*}}] : memref<?xf32>
// CHECK:               memref.store %{{.*}}, %[[RUNLOW]][%{{.*}}] : memref<?xf32>
// Per token of the chunk: first a prefetch of every line of the rows of the
// token 8 ahead (at most the chunk's last), of dt, q, v and k (rows of one
// head are H * D apart, which the hardware prefetcher does not follow); then
// g from the region (once per token: scalar decay).
// CHECK:             scf.for %[[I:[a-z0-9_]+]] = %{{.*}} to %[[LEN]] step
// CHECK-NEXT:          %[[TOK:.*]] = arith.addi %[[FIRST]], %[[I]] : index
// CHECK:               %[[C8P:.*]] = arith.constant 8 : index
// CHECK-NEXT:          %[[AHEAD:.*]] = arith.addi %[[TOK]], %[[C8P]] : index
// CHECK-NEXT:          %[[PTOK:.*]] = arith.minui %[[AHEAD]], %{{.*}} : index
// CHECK:                 memref.prefetch %[[DT]][%[[B]], %[[PTOK]], %[[H]]], read, locality<3>, data : memref<?x?x?xf32>
// CHECK:                 memref.prefetch %[[Q]][%[[B]], %[[PTOK]], %[[H]], %{{.*}}], read, locality<3>, data : memref<?x?x?x?xf32>
// CHECK:                 memref.prefetch %[[V]][%[[B]], %[[PTOK]], %[[H]], %{{.*}}], read, locality<3>, data : memref<?x?x?x?xf32>
// CHECK:                 memref.prefetch %[[K]][%[[B]], %[[PTOK]], %[[H]], %{{.*}}], read, locality<3>, data : memref<?x?x?x?xf32>
// CHECK:               memref.load %[[DT]][%[[B]], %[[TOK]], %[[H]]] : memref<?x?x?xf32>
// CHECK-NEXT:          memref.load %[[ALOG]][%[[H]]] : memref<?xf32>
// CHECK-NEXT:          memref.load %[[DTB]][%[[H]]] : memref<?xf32>
// softplus(x) = max(x, 0) + log1p(exp(-|x|)), the log1p of e in [0, 1] as
// e P(e), P of degree 9 by Horner's rule in multiply-adds that may be fused
// (contract), no division.
// CHECK:               %[[E:.*]] = math.exp %{{.*}} : f32
// CHECK-NEXT:          %[[C9:.*]] = arith.constant -0.00317605701 : f32
// CHECK-NEXT:          %[[P9E:.*]] = arith.mulf %[[C9]], %[[E]] fastmath<contract> : f32
// CHECK-NEXT:          %[[C8:.*]] = arith.constant 0.0195425265 : f32
// CHECK-NEXT:          arith.addf %[[P9E]], %[[C8]] fastmath<contract> : f32
// CHECK-COUNT-8:       arith.mulf %{{.*}}, %[[E]] fastmath<contract> : f32
// CHECK:               %[[LOG1P:.*]] = arith.mulf %[[E]], %{{.*}} : f32
// CHECK-NOT:           arith.divf
// CHECK:               %[[SP:.*]] = arith.addf %{{.*}}, %[[LOG1P]] : f32
// CHECK:               %[[NA:.*]] = arith.negf %{{.*}} : f32
// CHECK-NEXT:          %[[G:.*]] = arith.mulf %[[NA]], %[[SP]] : f32
// The inclusive cumsum G of g, once (column 0), with its rounding error
// (TwoSum) in GLOW; the running pair carries them to the next token.
// CHECK-NEXT:          %[[BEFORE:.*]] = memref.load %[[RUNHIGH]][%[[C:[a-z0-9_]+]]] : memref<?xf32>
// CHECK-NEXT:          %[[CUM:.*]] = arith.addf %[[BEFORE]], %[[G]] : f32
// CHECK-NEXT:          %[[GPART:.*]] = arith.subf %[[CUM]], %[[BEFORE]] : f32
// CHECK-NEXT:          %[[BPART:.*]] = arith.subf %[[CUM]], %[[GPART]] : f32
// CHECK-NEXT:          %[[BERR:.*]] = arith.subf %[[BEFORE]], %[[BPART]] : f32
// CHECK-NEXT:          %[[GERR:.*]] = arith.subf %[[G]], %[[GPART]] : f32
// CHECK-NEXT:          %[[ROUNDING:.*]] = arith.addf %[[BERR]], %[[GERR]] : f32
// CHECK-NEXT:          %[[LOWBEFORE:.*]] = memref.load %[[RUNLOW]][%[[C]]] : memref<?xf32>
// CHECK-NEXT:          %[[LOW:.*]] = arith.addf %[[LOWBEFORE]], %[[ROUNDING]] : f32
// CHECK-NEXT:          memref.store %[[CUM]], %[[GC]][%{{.*}}, %[[C]]] : memref<?x?xf32>
// CHECK-NEXT:          memref.store %[[CUM]], %[[RUNHIGH]][%[[C]]] : memref<?xf32>
// CHECK-NEXT:          memref.store %[[LOW]], %[[GLOW]][%{{.*}}, %[[C]]] : memref<?x?xf32>
// CHECK-NEXT:          memref.store %[[LOW]], %[[RUNLOW]][%[[C]]] : memref<?xf32>
// (q and k are not copied: no store follows the token's decay.)
// CHECK-NOT:             memref.store %{{.*}}, %{{.*}} : memref<?x?xf32, strided<[?, 1], offset: ?>>
// The chunk's rows of v, staged contiguously.
// CHECK:               memref.load %[[V]][%[[B]], %{{.*}}, %[[H]], %{{.*}}] : memref<?x?x?x?xf32>
// CHECK-NEXT:          memref.store %{{.*}}, %[[VALS]][%{{.*}}, %{{.*}}] : memref<?x?xf32>
// K transposed into the work buffer in 16x16 blocks (16 rows of K as
// vectors, transposed in registers by x86's shuffle network: 16 shuffles
// interleaving single lanes of row pairs, 16 interleaving pairs, then 2 x 16
// swapping 128-bit groups; stored as 16 rows of K^T), then the columns and
// rows left over element by element.
// CHECK:               %[[TR0:.*]] = vector.load %[[KC]][%{{.*}}, %{{.*}}] : memref<?x?xf32, strided<[?, 1], offset: ?>>, vector<16xf32>
// CHECK:               %[[TR1:.*]] = vector.load %[[KC]][%{{.*}}, %{{.*}}] : memref<?x?xf32, strided<[?, 1], offset: ?>>, vector<16xf32>
// CHECK:               vector.shuffle %[[TR0]], %[[TR1]] [0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25, 12, 28, 13, 29] : vector<16xf32>, vector<16xf32>
// CHECK-NEXT:          vector.shuffle %[[TR0]], %[[TR1]] [2, 18, 3, 19, 6, 22, 7, 23, 10, 26, 11, 27, 14, 30, 15, 31] : vector<16xf32>, vector<16xf32>
// CHECK-COUNT-14:      vector.shuffle %{{.*}}, %{{.*}} [{{[0-9, ]+}}] : vector<16xf32>, vector<16xf32>
// CHECK-NEXT:          vector.shuffle %{{.*}}, %{{.*}} [0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29] : vector<16xf32>, vector<16xf32>
// CHECK-NEXT:          vector.shuffle %{{.*}}, %{{.*}} [2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31] : vector<16xf32>, vector<16xf32>
// CHECK-COUNT-14:      vector.shuffle %{{.*}}, %{{.*}} [{{[0-9, ]+}}] : vector<16xf32>, vector<16xf32>
// CHECK-NEXT:          vector.shuffle %{{.*}}, %{{.*}} [0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27] : vector<16xf32>, vector<16xf32>
// CHECK-NEXT:          vector.shuffle %{{.*}}, %{{.*}} [4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31] : vector<16xf32>, vector<16xf32>
// CHECK-COUNT-30:      vector.shuffle %{{.*}}, %{{.*}} [{{[0-9, ]+}}] : vector<16xf32>, vector<16xf32>
// CHECK-NOT:           vector.shuffle
// CHECK:               vector.store %{{.*}}, %[[WORK]][%{{.*}}, %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// CHECK:               memref.load %[[KC]][%{{.*}}, %{{.*}}] : memref<?x?xf32, strided<[?, 1], offset: ?>>
// CHECK-NEXT:          memref.store %{{.*}}, %[[WORK]][%{{.*}}, %{{.*}}] : memref<?x?xf32>
// A = Q K^T as a register-tiled matmul: 12 rows x 32 columns, 24 vector<16xf32>
// accumulators carried over the reduction, a broadcast element of Q times
// two vectors of a row of K^T. A is lower triangular: a row tile stops at
// the column tile holding its last row.
// CHECK:             scf.for %[[TI:.*]] = %{{.*}} to %{{.*}} step %c12{{.*}} {
// CHECK-NEXT:          %[[C12:.*]] = arith.constant 12 : index
// CHECK-NEXT:          %[[TEND:.*]] = arith.addi %[[TI]], %[[C12]] : index
// CHECK-NEXT:          %[[COLS:.*]] = arith.minsi %{{.*}}, %[[TEND]] : index
// CHECK:               scf.for %{{.*}} = %{{.*}} to %[[COLS]] step %c32{{.*}} {
// CHECK:                 %[[ZERO:.*]] = arith.constant dense<0.000000e+00> : vector<16xf32>
// CHECK:                 %[[ACC:[0-9]+]]:24 = scf.for %[[KK:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args({{(%[a-z0-9_]+ = %[a-z0-9_]+, ){23}%[a-z0-9_]+}} = %[[ZERO]]) -> ({{(vector<16xf32>, ){23}vector<16xf32>}}) {
// CHECK-NEXT:              %[[B0:.*]] = vector.load %[[WORK]][%[[KK]], %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// CHECK-NEXT:              %[[B1:.*]] = vector.load %[[WORK]][%[[KK]], %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// CHECK:                   %[[AIK:.*]] = memref.load %[[QC]][%{{.*}}, %[[KK]]] : memref<?x?xf32, strided<[?, 1], offset: ?>>
// CHECK-NEXT:              %[[BC:.*]] = vector.broadcast %[[AIK]] : f32 to vector<16xf32>
// CHECK-NEXT:              vector.fma %[[BC]], %[[B0]], %{{.*}} : vector<16xf32>
// CHECK-NEXT:              vector.fma %[[BC]], %[[B1]], %{{.*}} : vector<16xf32>
// CHECK-COUNT-22:          vector.fma %{{.*}}, %{{.*}}, %{{.*}} : vector<16xf32>
// CHECK-NEXT:              scf.yield {{(%[0-9]+, ){23}%[0-9]+}} : {{(vector<16xf32>, ){23}vector<16xf32>}}
// CHECK-NEXT:            }
// CHECK-COUNT-24:        vector.store %[[ACC]]#{{[0-9]+}}, %[[AC]][%{{.*}}, %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// Leftover rows 4 at a time (8 accumulators), then one at a time (2
// accumulators), leftover columns in scalar.
// CHECK:                 %{{.*}}:8 = scf.for %{{.*}} to %{{.*}} {{.*}} -> ({{(vector<16xf32>, ){7}vector<16xf32>}}) {
// CHECK:                 %{{.*}}:2 = scf.for %{{.*}} to %{{.*}} {{.*}} -> (vector<16xf32>, vector<16xf32>) {
// CHECK:                 memref.store %{{.*}}, %[[AC]][%{{.*}}, %{{.*}}] : memref<?x?xf32>
// The causal mask, before exponentiating: the exponent is -inf above the
// diagonal, G_t - G_s (<= 0) on and below it, as (G_t - G_s) + (GLOW_t - GLOW_s).
// CHECK:             %[[NINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK:             scf.for %[[T:[a-z0-9_]+]] = %{{.*}} to %[[LEN]] step
// CHECK-NEXT:          %[[GT:.*]] = memref.load %[[WORK]][%{{.*}}, %[[T]]] : memref<?x?xf32>
// CHECK-NEXT:          %[[LT:.*]] = memref.load %[[WORK]][%{{.*}}, %[[T]]] : memref<?x?xf32>
// CHECK:               scf.for %[[S:[a-z0-9_]+]] = %{{.*}} to %[[LEN]] step
// CHECK-NEXT:            %[[CAUSAL:.*]] = arith.cmpi ule, %[[S]], %[[T]] : index
// CHECK-NEXT:            %[[GS:.*]] = memref.load %[[WORK]][%{{.*}}, %[[S]]] : memref<?x?xf32>
// CHECK-NEXT:            %[[HIGH:.*]] = arith.subf %[[GT]], %[[GS]] : f32
// CHECK-NEXT:            %[[LS:.*]] = memref.load %[[WORK]][%{{.*}}, %[[S]]] : memref<?x?xf32>
// CHECK-NEXT:            %[[LOWD:.*]] = arith.subf %[[LT]], %[[LS]] : f32
// CHECK-NEXT:            %[[DIFF:.*]] = arith.addf %[[HIGH]], %[[LOWD]] : f32
// CHECK-NEXT:            %[[EXPONENT:.*]] = arith.select %[[CAUSAL]], %[[DIFF]], %[[NINF]] : f32
// CHECK-NEXT:            %[[QK:.*]] = memref.load %[[AC]][%[[T]], %[[S]]] : memref<?x?xf32>
// CHECK-NEXT:            %[[DECAY:.*]] = math.exp %[[EXPONENT]] : f32
// CHECK-NEXT:            %[[MASKED:.*]] = arith.mulf %[[QK]], %[[DECAY]] : f32
// Above the diagonal 0 is selected (the tiles left A unwritten there).
// CHECK-NEXT:            %[[ZEROF:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:            %[[KEPT:.*]] = arith.select %[[CAUSAL]], %[[MASKED]], %[[ZEROF]] : f32
// CHECK-NEXT:            memref.store %[[KEPT]], %[[AC]][%[[T]], %[[S]]] : memref<?x?xf32>
// out = (Q * exp(G)) H, the tiles reading rows of the state in ht ...
// CHECK:                 scf.for {{.*}} iter_args({{.*}}) -> ({{(vector<16xf32>, ){23}vector<16xf32>}}) {
// CHECK-NEXT:              vector.load %[[HT]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf32>, vector<16xf32>
// CHECK:                 vector.store %{{.*}}, %[[OUT]][%{{.*}}, %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// ... then out += A V, the accumulators starting from out; A is lower
// triangular, so a row tile's reduction stops after its last row.
// CHECK:                 %[[OLD:.*]] = vector.load %[[OUT]][%{{.*}}, %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// CHECK:                 %[[AVEND:.*]] = arith.minsi %[[LEN]], %{{.*}} : index
// CHECK:                 scf.for %[[SS:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}} = %[[OLD]],
// CHECK-NEXT:              vector.load %[[VALS]][%[[SS]], %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// CHECK-NEXT:              vector.load %[[VALS]][%[[SS]], %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// CHECK:                   memref.load %[[AC]][%{{.*}}, %[[SS]]] : memref<?x?xf32>
// o = scale * out: 16 lanes at a time with non-temporal stores where o is
// aligned, else element by element.
// CHECK:             %[[OTOK:.*]] = arith.addi %[[FIRST]], %{{.*}} : index
// CHECK-NEXT:        scf.if %[[STREAM]] {
// CHECK-NEXT:          %[[SCALEV:.*]] = vector.broadcast %[[SCALE]] : f32 to vector<16xf32>
// CHECK:               %[[C16S:.*]] = arith.constant 16 : index
// CHECK-NEXT:          scf.for %[[OJ:[a-z0-9_]+]] = %{{.*}} to %[[VD]] step %[[C16S]] {
// CHECK-NEXT:            %[[NUMV16:.*]] = vector.load %[[OUT]][%{{.*}}, %[[OJ]]] : memref<?x?xf32>, vector<16xf32>
// CHECK-NEXT:            %[[OUTV16:.*]] = arith.mulf %[[NUMV16]], %[[SCALEV]] : vector<16xf32>
// CHECK-NEXT:            vector.store %[[OUTV16]], %[[O]][%[[B]], %[[OTOK]], %[[H]], %[[OJ]]] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?x?xf32>, vector<16xf32>
// CHECK-NEXT:          }
// CHECK-NEXT:        } else {
// CHECK:               %[[NUM:.*]] = memref.load %[[OUT]][%{{.*}}, %{{.*}}] : memref<?x?xf32>
// CHECK-NEXT:          %[[SCALED:.*]] = arith.mulf %[[NUM]], %[[SCALE]] : f32
// CHECK-NEXT:          memref.store %[[SCALED]], %[[O]][%[[B]], %[[OTOK]], %[[H]], %{{.*}}] : memref<?x?x?x?xf32>
// H <- diag(exp(G_last)) H ...
// CHECK:             %[[LAST:.*]] = arith.subi %[[LEN]], %{{.*}} : index
// CHECK:               %[[GHIGH:.*]] = memref.load %[[GC]][%{{.*}}, %{{.*}}] : memref<?x?xf32>
// CHECK-NEXT:          %[[GLOWL:.*]] = memref.load %[[GLOW]][%{{.*}}, %{{.*}}] : memref<?x?xf32>
// CHECK-NEXT:          %[[GL:.*]] = arith.addf %[[GHIGH]], %[[GLOWL]] : f32
// CHECK-NEXT:          %[[EL:.*]] = math.exp %[[GL]] : f32
// CHECK-NEXT:          memref.store %[[EL]], %[[CARRY:.*]][%{{.*}}] : memref<?xf32>
// ... + (K * exp(G_last - G))^T V, accumulated by tiles in place in ht.
// CHECK:               %[[GLAST:.*]] = memref.load %[[GC]]
// CHECK:               %[[GSRC:.*]] = memref.load %[[GC]]
// CHECK-NEXT:          %[[HIGHD:.*]] = arith.subf %[[GLAST]], %[[GSRC]] : f32
// CHECK:               %[[LATER:.*]] = arith.addf %[[HIGHD]], %{{.*}} : f32
// CHECK-NEXT:          %[[KDEC:.*]] = math.exp %[[LATER]] : f32
// CHECK:                 %[[KV:.*]] = memref.load %[[KC]][%{{.*}}, %{{.*}}] : memref<?x?xf32, strided<[?, 1], offset: ?>>
// CHECK-NEXT:            %[[KD2:.*]] = arith.mulf %[[KV]], %[[KDEC]] : f32
// CHECK-NEXT:            memref.store %[[KD2]], %[[WORK]][%{{.*}}, %{{.*}}] : memref<?x?xf32>
// Each tile of H times its row's decay exp(G_last) as the product loads it.
// CHECK:                 %[[HLOADED:.*]] = vector.load %[[HT]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf32>, vector<16xf32>
// CHECK-NEXT:            %[[ELC:.*]] = memref.load %[[CARRY]][%{{.*}}] : memref<?xf32>
// CHECK-NEXT:            %[[ELV:.*]] = vector.broadcast %[[ELC]] : f32 to vector<16xf32>
// CHECK-NEXT:            %[[HOLD:.*]] = arith.mulf %[[ELV]], %[[HLOADED]] : vector<16xf32>
// CHECK:                 %[[HACC:[0-9]+]]:24 = scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}} = %[[HOLD]],
// CHECK-NEXT:              vector.load %[[VALS]]
// CHECK-NEXT:              vector.load %[[VALS]]
// CHECK:                 vector.store %[[HACC]]#0, %[[HT]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf32>, vector<16xf32>
// The chunk buffers are freed after the last chunk.
// CHECK:           memref.dealloc %[[GC]] : memref<?x?xf32>
// CHECK-NEXT:      memref.dealloc %[[GLOW]] : memref<?x?xf32>
// CHECK-COUNT-5:   memref.dealloc
// CHECK-NEXT:      memref.dealloc %[[AC]] : memref<?x?xf32>
// CHECK-NEXT:      memref.dealloc %[[WORK]] : memref<?x?xf32>
// CHECK-NEXT:      memref.dealloc %[[OUT]] : memref<?x?xf32>
// CHECK-NEXT:      memref.dealloc %[[VALS]] : memref<?x?xf32>
// The work item's non-temporal stores of o are fenced before it ends.
// CHECK-NEXT:      llvm.call_intrinsic "llvm.x86.sse.sfence"() : () -> ()
// CHECK-NEXT:      scf.reduce
// CHECK-NEXT:    }
// CHECK-NEXT:    return
// CHECK-NEXT:  }
// Without backward=true there is no backward kernel.
// CHECK-NOT:   func.func @mamba2_backward

// The forward kernel is f32 throughout.
// WHOLE-LABEL: func.func @mamba2_forward(
// WHOLE-NOT:     f64
// WHOLE:         return
// WHOLE-NOT:   func.func @mamba2_backward

// chunk-size=32 overrides the default.
// C32-LABEL: func.func @mamba2_forward(
// C32:           arith.index_cast %{{.*}} : i64 to index
// C32:           %[[START:.*]] = arith.index_cast %{{.*}} : i64 to index
// C32:           %[[END:.*]] = arith.index_cast %{{.*}} : i64 to index
// C32:           memref.alloc(%[[CS:c32(_[0-9]+)?]], %{{.*}}) : memref<?x?xf32>
// C32:           scf.for %[[FIRST:[a-z0-9_]+]] = %[[START]] to %[[END]] step %[[CS]] {
// C32-NEXT:        %[[REST:.*]] = arith.subi %[[END]], %[[FIRST]] : index
// C32-NEXT:        arith.minsi %[[CS]], %[[REST]] : index

// The backward kernel: the reference backward's signature in f32.
// BWD-LABEL: func.func @mamba2_forward(
// BWD-LABEL: func.func @mamba2_backward(
// BWD-SAME:    %[[Q:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[K:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[V:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[H0:[a-z0-9_]+]]: memref<?x?x?x?xf32>,
// BWD-SAME:    %[[SEQS:[a-z0-9_]+]]: memref<?x3xi64>,
// BWD-SAME:    %[[DT:[a-z0-9_]+]]: memref<?x?x?xf32>, %[[ALOG:[a-z0-9_]+]]: memref<?xf32>, %[[DTB:[a-z0-9_]+]]: memref<?xf32>,
// BWD-SAME:    %[[DO:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DHT:[a-z0-9_]+]]: memref<?x?x?x?xf32>,
// BWD-SAME:    %[[DQ:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DK:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DV:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DH0:[a-z0-9_]+]]: memref<?x?x?x?xf32>,
// BWD-SAME:    %[[DDT:[a-z0-9_]+]]: memref<?x?x?xf32>, %[[DALOG:[a-z0-9_]+]]: memref<?xf32>, %[[DDTB:[a-z0-9_]+]]: memref<?xf32>)
// BWD-SAME:    attributes {llvm.emit_c_interface} {
// BWD:         %[[NH:.*]] = memref.dim %[[Q]], %c2 : memref<?x?x?x?xf32>
// BWD:         %[[KD:.*]] = memref.dim %[[Q]], %c3 : memref<?x?x?x?xf32>
// BWD:         %[[VD:.*]] = memref.dim %[[V]], %c3{{.*}} : memref<?x?x?x?xf32>
// BWD:         %[[SQRT:.*]] = math.sqrt %{{.*}} : f32
// BWD-NEXT:    %[[SCALE:.*]] = arith.divf %{{.*}}, %[[SQRT]] : f32
// Work items of (sequence, group of heads), as in the forward: heads per
// item clamp(N * H / 8, 1, 4), groups ceil(H / heads per item).
// BWD:         %[[NSEQ:.*]] = memref.dim %[[SEQS]], %{{.*}} : memref<?x3xi64>
// BWD:         %[[PER:.*]] = arith.maxui %{{.*}}, %{{.*}} : index
// BWD-NEXT:    %[[NGROUPS:.*]] = arith.ceildivui %[[NH]], %[[PER]] : index
// BWD-NEXT:    scf.parallel (%[[N:[a-z0-9_]+]], %[[G:[a-z0-9_]+]]) = (%{{.*}}, %{{.*}}) to (%[[NSEQ]], %[[NGROUPS]]) step (%{{.*}}, %{{.*}}) {
// BWD-NEXT:      %[[HFIRST:.*]] = arith.muli %[[G]], %[[PER]] : index
// BWD:           %[[CS:.*]] = arith.constant 64 : index
// BWD:           %[[B:.*]] = arith.index_cast %{{.*}} : i64 to index
// BWD:           %[[START:.*]] = arith.index_cast %{{.*}} : i64 to index
// BWD:           %[[END:.*]] = arith.index_cast %{{.*}} : i64 to index
// BWD-NEXT:      %[[HEADS:.*]] = arith.subi %{{.*}}, %[[HFIRST]] : index
// BWD-NEXT:      %[[SEQLEN:.*]] = arith.subi %[[END]], %[[START]] : index
// BWD-NEXT:      %[[NCHUNKS:.*]] = arith.ceildivsi %[[SEQLEN]], %[[CS]] : index
// G and G's rounding error (one column: a scalar decay) of the whole
// sequence of every head of the group, one head after the other (q and k
// are read in place, not copied); the state entering each chunk of each
// head, H^T [V, K] (states are held transposed); each head's own H^T, dH^T,
// z, dz.
// BWD-NEXT:      %[[ROWS:.*]] = arith.muli %[[HEADS]], %[[SEQLEN]] : index
// BWD:           %[[ONECOL:.*]] = arith.constant 1 : index
// BWD-NEXT:      %[[GS:.*]] = memref.alloc(%[[ROWS]], %[[ONECOL]]) : memref<?x?xf32>
// BWD-NEXT:      %[[GLOWS:.*]] = memref.alloc(%[[ROWS]], %[[ONECOL]]) : memref<?x?xf32>
// The entering states' rows padded to whole vectors of 16 lanes, the buffer
// aligned to 64 bytes (the sweep streams them out with aligned stores).
// BWD:           %[[SLOTS:.*]] = arith.muli %[[HEADS]], %[[NCHUNKS]] : index
// BWD-NEXT:      %[[LANES:.*]] = arith.constant 16 : index
// BWD-NEXT:      %[[VECS:.*]] = arith.ceildivui %[[KD]], %[[LANES]] : index
// BWD-NEXT:      %[[LANES2:.*]] = arith.constant 16 : index
// BWD-NEXT:      %[[PADDED:.*]] = arith.muli %[[VECS]], %[[LANES2]] : index
// BWD-NEXT:      %[[ENTERING:.*]] = memref.alloc(%[[SLOTS]], %[[VD]], %[[PADDED]]) {alignment = 64 : i64} : memref<?x?x?xf32>
// BWD-NEXT:      memref.alloc(%[[SLOTS]], %[[KD]]) : memref<?x?xf32>
// BWD-NEXT:      %[[STATES:.*]] = memref.alloc(%[[HEADS]], %[[VD]], %[[KD]]) : memref<?x?x?xf32>
// BWD-NEXT:      %[[DSTATES:.*]] = memref.alloc(%[[HEADS]], %[[VD]], %[[KD]]) : memref<?x?x?xf32>
// BWD-NEXT:      memref.alloc(%[[HEADS]], %[[KD]]) : memref<?x?xf32>
// BWD-NEXT:      memref.alloc(%[[HEADS]], %[[KD]]) : memref<?x?xf32>
// Each head's share of d_A_log and d_dt_bias, zeroed.
// BWD:           memref.alloc(%[[HEADS]], %[[KD]]) : memref<?x?xf32>
// BWD:           memref.alloc(%[[HEADS]], %[[KD]]) : memref<?x?xf32>
// BWD:           memref.alloc(%[[KD]], %[[VD]]) : memref<?x?xf32>
// dA and the decayed pairs D [C, C], dnum [C, V], dden [C], V^T and dv^T [V, C], Kd^T [K, C].
// BWD-NEXT:      %[[DA:.*]] = memref.alloc(%[[CS]], %[[CS]]) : memref<?x?xf32>
// BWD-NEXT:      %[[PAIRS:.*]] = memref.alloc(%[[CS]], %[[CS]]) : memref<?x?xf32>
// BWD-NEXT:      %[[DNUM:.*]] = memref.alloc(%[[CS]], %[[VD]]) : memref<?x?xf32>
// BWD-NEXT:      memref.alloc(%[[CS]]) : memref<?xf32>
// BWD-NEXT:      %[[VT:.*]] = memref.alloc(%[[VD]], %[[CS]]) : memref<?x?xf32>
// BWD-NEXT:      %[[DVT:.*]] = memref.alloc(%[[VD]], %[[CS]]) : memref<?x?xf32>
// BWD-NEXT:      %[[KDT:.*]] = memref.alloc(%[[KD]], %[[CS]]) : memref<?x?xf32>
// dq, dk's pair and state terms [C, K]; the dg parts in f64.
// BWD-NEXT:      %[[DQB:.*]] = memref.alloc(%[[CS]], %[[KD]]) : memref<?x?xf32>
// BWD-NEXT:      %[[DKP:.*]] = memref.alloc(%[[CS]], %[[KD]]) : memref<?x?xf32>
// BWD-NEXT:      %[[DKS:.*]] = memref.alloc(%[[CS]], %[[KD]]) : memref<?x?xf32>
// exp(G) and exp(G_last - G) [C, K] (no sub-block buffers: a scalar decay).
// BWD-NEXT:      %[[DECAYIN:.*]] = memref.alloc(%[[CS]], %[[KD]]) : memref<?x?xf32>
// BWD-NEXT:      %[[DECAYOUT:.*]] = memref.alloc(%[[CS]], %[[KD]]) : memref<?x?xf32>
// BWD:           %[[DGP:.*]] = memref.alloc(%[[CS]], %[[KD]]) : memref<?x?xf64>
// BWD-NEXT:      %[[CARRY:.*]] = memref.alloc(%[[KD]]) : memref<?xf64>
// BWD-NEXT:      %[[EDGE:.*]] = memref.alloc(%[[KD]]) : memref<?xf64>
// Whether dv, and dq and dk both, take non-temporal vector stores: their
// bases multiples of 64 bytes, V and K multiples of 16.
// BWD:           memref.extract_aligned_pointer_as_index %[[DV]]
// BWD:           %[[DVSTREAM:.*]] = arith.andi %{{.*}}, %{{.*}} : i1
// BWD:           memref.extract_aligned_pointer_as_index %[[DQ]]
// BWD:           arith.andi %{{.*}}, %{{.*}} : i1
// BWD:           memref.extract_aligned_pointer_as_index %[[DK]]
// BWD:           arith.andi %{{.*}}, %{{.*}} : i1
// BWD-NEXT:      %[[DQDKSTREAM:.*]] = arith.andi %{{.*}}, %{{.*}} : i1
// BWD:           %[[LSUM:.*]] = memref.alloc(%[[KD]]) : memref<?xf64>
// h0 into each head's state: head i of the group is h = first + i, its H^T
// the slice i of the heads' states.
// BWD:           scf.for %[[IH:[a-z0-9_]+]] = %{{.*}} to %[[HEADS]] step
// BWD:             %[[STATE:.*]] = memref.subview %[[STATES]][%[[IH]], 0, 0] [1, %{{.*}}, %{{.*}}] [1, 1, 1] : memref<?x?x?xf32> to memref<?x?xf32, strided<[?, 1], offset: ?>>
// BWD:             %[[H:.*]] = arith.addi %[[HFIRST]], %[[IH]] : index
// BWD:                 memref.load %[[H0]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf32>
// BWD-NEXT:            memref.store %{{.*}}, %[[STATE]][%{{.*}}, %{{.*}}] : memref<?x?xf32, strided<[?, 1], offset: ?>>
// The forward sweep over the chunks, each chunk for every head in turn,
// saving the entering states: head i's rows of q, k, G start at row
// i * length, its entering states at slot i * chunks + chunk.
// BWD:           scf.for %[[CI:[a-z0-9_]+]] = %{{.*}} to %[[NCHUNKS]] step
// BWD:             scf.for %[[FH:[a-z0-9_]+]] = %{{.*}} to %[[HEADS]] step
// BWD:               %[[H:.*]] = arith.addi %[[HFIRST]], %[[FH]] : index
// BWD-NEXT:          %[[HEADROW:.*]] = arith.muli %[[FH]], %[[SEQLEN]] : index
// BWD-NEXT:          %[[CIC:.*]] = arith.constant 64 : index
// BWD-NEXT:          %[[OFFSET:.*]] = arith.muli %[[CI]], %[[CIC]] : index
// BWD-NEXT:          %[[BASE:.*]] = arith.addi %[[HEADROW]], %[[OFFSET]] : index
// BWD-NEXT:          %[[FIRST:.*]] = arith.addi %[[START]], %[[OFFSET]] : index
// BWD-NEXT:          %[[CIC2:.*]] = arith.constant 64 : index
// BWD-NEXT:          %[[REST:.*]] = arith.subi %[[END]], %[[FIRST]] : index
// BWD-NEXT:          %[[LEN:.*]] = arith.minsi %[[CIC2]], %[[REST]] : index
// BWD:               memref.subview %[[Q]][%[[B]], 0, %[[H]], 0] [1, %{{.*}}, 1, %{{.*}}] [1, 1, 1, 1] : memref<?x?x?x?xf32> to memref<?x?xf32, strided<[?, 1], offset: ?>>
// BWD:               memref.subview %[[K]][%[[B]], 0, %[[H]], 0] [1, %{{.*}}, 1, %{{.*}}] [1, 1, 1, 1] : memref<?x?x?x?xf32> to memref<?x?xf32, strided<[?, 1], offset: ?>>
// BWD-NEXT:          %[[SLOTH:.*]] = arith.muli %[[FH]], %[[NCHUNKS]] : index
// BWD-NEXT:          %[[SLOT:.*]] = arith.addi %[[SLOTH]], %[[CI]] : index
// BWD:                 memref.load %[[DT]][%[[B]], %{{.*}}, %[[H]]] : memref<?x?x?xf32>
// The state update saves each tile of the entering H^T as it reads it, with
// aligned non-temporal stores.
// BWD:                 %[[HIN:.*]] = vector.load %{{.*}}[%{{.*}}, %{{.*}}] : memref<?x?xf32, strided<[?, 1], offset: ?>>, vector<16xf32>
// BWD-NEXT:            vector.store %[[HIN]], %[[ENTERING]][%[[SLOT]], %{{.*}}, %{{.*}}] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?xf32>, vector<16xf32>
// dState = dht, per head.
// BWD:           scf.for %[[DH:[a-z0-9_]+]] = %{{.*}} to %[[HEADS]] step
// BWD:             %[[DSTATE:.*]] = memref.subview %[[DSTATES]][%[[DH]], 0, 0] [1, %{{.*}}, %{{.*}}] [1, 1, 1] : memref<?x?x?xf32> to memref<?x?xf32, strided<[?, 1], offset: ?>>
// BWD:             %[[H:.*]] = arith.addi %[[HFIRST]], %[[DH]] : index
// BWD:               %[[DHTV:.*]] = memref.load %[[DHT]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf32>
// BWD-NEXT:          memref.store %[[DHTV]], %[[DSTATE]][%{{.*}}, %{{.*}}] : memref<?x?xf32, strided<[?, 1], offset: ?>>
// The reverse sweep over the chunks (chunk index = chunks - 1 - r), each
// chunk for every head in turn.
// BWD:           scf.for %[[R:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step
// BWD-NEXT:        %[[ONE:.*]] = arith.constant 1 : index
// BWD-NEXT:        %[[LASTCHUNK:.*]] = arith.subi %[[NCHUNKS]], %[[ONE]] : index
// BWD-NEXT:        %[[RCI:.*]] = arith.subi %[[LASTCHUNK]], %[[R]] : index
// BWD:             scf.for %[[RH:[a-z0-9_]+]] = %{{.*}} to %[[HEADS]] step
// BWD:               %[[RDSTATE:.*]] = memref.subview %[[DSTATES]][%[[RH]], 0, 0] [1, %{{.*}}, %{{.*}}] [1, 1, 1] : memref<?x?x?xf32> to memref<?x?xf32, strided<[?, 1], offset: ?>>
// BWD:               %[[H:.*]] = arith.addi %[[HFIRST]], %[[RH]] : index
// BWD-NEXT:          %[[RHEADROW:.*]] = arith.muli %[[RH]], %[[SEQLEN]] : index
// BWD-NEXT:          %[[RC:.*]] = arith.constant 64 : index
// BWD-NEXT:          %[[ROFFSET:.*]] = arith.muli %[[RCI]], %[[RC]] : index
// BWD-NEXT:          %[[RBASE:.*]] = arith.addi %[[RHEADROW]], %[[ROFFSET]] : index
// BWD-NEXT:          %[[RFIRST:.*]] = arith.addi %[[START]], %[[ROFFSET]] : index
// BWD-NEXT:          %[[RC2:.*]] = arith.constant 64 : index
// BWD-NEXT:          %[[RREST:.*]] = arith.subi %[[END]], %[[RFIRST]] : index
// BWD-NEXT:          %[[RLEN:.*]] = arith.minsi %[[RC2]], %[[RREST]] : index
// BWD:               %[[RKS:.*]] = memref.subview %[[K]][%[[B]], 0, %[[H]], 0] [1, %{{.*}}, 1, %{{.*}}] [1, 1, 1, 1] : memref<?x?x?x?xf32> to memref<?x?xf32, strided<[?, 1], offset: ?>>
// BWD-NEXT:          %[[RSLOTH:.*]] = arith.muli %[[RH]], %[[NCHUNKS]] : index
// BWD-NEXT:          %[[RSLOT:.*]] = arith.addi %[[RSLOTH]], %[[RCI]] : index
// The state entering the chunk (streamed to memory by the forward sweep)
// prefetched into L2, a line at a time, before the chunk's gradients.
// BWD:               scf.for %[[PJ:[a-z0-9_]+]] = %{{.*}} to %[[VD]] step
// BWD:                 scf.for %[[PC:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step %c16{{.*}} {
// BWD-NEXT:              memref.prefetch %[[ENTERING]][%[[RSLOT]], %[[PJ]], %[[PC]]], read, locality<2>, data : memref<?x?x?xf32>
// The scores again, masked before the exponential (s <= t).
// BWD:               %[[RCAUSAL:.*]] = arith.cmpi ule, %{{.*}}, %{{.*}} : index
// BWD:               %[[REXP:.*]] = arith.select %[[RCAUSAL]], %{{.*}}, %{{.*}} : f32
// BWD:               math.exp %[[REXP]] : f32
// Without a normalizer the numerators are not recomputed: dnum = scale * do.
// BWD-NOT:           vector.load %[[ENTERING]]
// BWD:               %[[DOV:.*]] = memref.load %[[DO]][%[[B]], %{{.*}}, %[[H]], %{{.*}}] : memref<?x?x?x?xf32>
// BWD-NEXT:          arith.mulf %[[SCALE]], %[[DOV]] : f32
// dA = dnum V^T: V transposed straight from v's rows (16 x 16 blocks; v is
// not staged without a normalizer), then register tiles over rows of V^T.
// BWD:                 vector.load %[[V]][%[[B]], %{{.*}}, %[[H]], %{{.*}}] : memref<?x?x?x?xf32>, vector<16xf32>
// BWD:                 vector.store %{{.*}}, %[[VT]][%{{.*}}, %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// BWD:                 vector.load %[[VT]][%{{.*}}, %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// BWD:                 vector.store %{{.*}}, %[[DA]][%{{.*}}, %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// The state terms, no transposes: dnum H^T into dq, reading rows of the
// entering H^T, and V dH^T into dk's state term, reading rows of dH^T; each
// tile times its decays (exp(G), exp(G_last - G)) as it is stored.
// BWD:               %[[TILEQ:.*]]:24 = scf.for
// BWD:                 vector.load %[[ENTERING]][%[[RSLOT]], %{{.*}}, %{{.*}}] : memref<?x?x?xf32>, vector<16xf32>
// BWD:               %[[DIN:.*]] = vector.load %[[DECAYIN]][%{{.*}}, %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// BWD-NEXT:          %[[DQV:.*]] = arith.mulf %[[DIN]], %[[TILEQ]]#0 : vector<16xf32>
// BWD-NEXT:          vector.store %[[DQV]], %[[DQB]][%{{.*}}, %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// BWD:               %[[TILEK:.*]]:24 = scf.for
// BWD:                 vector.load %[[RDSTATE]][%{{.*}}, %{{.*}}] : memref<?x?xf32, strided<[?, 1], offset: ?>>, vector<16xf32>
// BWD:               %[[DOUT:.*]] = vector.load %[[DECAYOUT]][%{{.*}}, %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// BWD-NEXT:          %[[DKV:.*]] = arith.mulf %[[DOUT]], %[[TILEK]]#0 : vector<16xf32>
// BWD-NEXT:          vector.store %[[DKV]], %[[DKS]][%{{.*}}, %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// The pairs D = dA exp(G_t - G_s), strictly below the diagonal (s < t), then
// dq += D K and dk' = D^T Q, tiled.
// BWD:                 %[[PCAUSAL:.*]] = arith.cmpi ult, %{{.*}}, %{{.*}} : index
// BWD:                 %[[PEXP:.*]] = arith.select %[[PCAUSAL]], %{{.*}}, %{{.*}} : f32
// BWD:                 math.exp %[[PEXP]] : f32
// BWD:                 memref.store %{{.*}}, %[[PAIRS]][%{{.*}}, %{{.*}}] : memref<?x?xf32>
// BWD:                 vector.load %[[DQB]][%{{.*}}, %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// BWD:                 memref.load %[[PAIRS]][%{{.*}}, %{{.*}}] : memref<?x?xf32>
// BWD:                 vector.load %[[RKS]][%{{.*}}, %{{.*}}] : memref<?x?xf32, strided<[?, 1], offset: ?>>, vector<16xf32>
// BWD:                 vector.store %{{.*}}, %[[DKP]][%{{.*}}, %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// The prefix sums of k dkState in f64, forward.
// BWD:                 %[[PREFIX:.*]] = memref.load %[[CARRY]][%{{.*}}] : memref<?xf64>
// BWD-NEXT:            memref.store %[[PREFIX]], %[[DGP]][%{{.*}}, %{{.*}}] : memref<?x?xf64>
// dv^T = dnum^T A + dH^T Kd^T (tiled), then into dv. A is zero above its
// diagonal: the tile of columns (tokens) from s reduces over tokens t >= s.
// BWD:                 scf.for %[[DVCOL:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step %c32{{.*}} {
// BWD:                   %[[FROMS:.*]] = arith.minsi %[[RLEN]], %[[DVCOL]] : index
// BWD-NEXT:              %[[TOS:.*]] = arith.maxsi %[[RLEN]], %[[FROMS]] : index
// BWD:                   %{{.*}}:24 = scf.for %{{.*}} = %[[FROMS]] to %[[TOS]] step
// BWD:                 vector.store %{{.*}}, %[[DVT]][%{{.*}}, %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// BWD:                 vector.load %[[KDT]][%{{.*}}, %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// BWD:                 vector.store %{{.*}}, %[[DVT]][%{{.*}}, %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// dv^T's 16x16 blocks go to dv with non-temporal stores where dv is aligned
// (its base a multiple of 64 bytes, V of 16), else with plain ones; the rows
// and columns left over element by element.
// BWD:               scf.if %[[DVSTREAM]] {
// BWD:                 vector.shuffle
// BWD:                 vector.store %{{.*}}, %[[DV]][%[[B]], %{{.*}}, %[[H]], %{{.*}}] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?x?xf32>, vector<16xf32>
// BWD:               } else {
// BWD:                 vector.shuffle
// BWD:                 vector.store %{{.*}}, %[[DV]][%[[B]], %{{.*}}, %[[H]], %{{.*}}] : memref<?x?x?x?xf32>, vector<16xf32>
// BWD:               memref.store %{{.*}}, %[[DV]][%[[B]], %{{.*}}, %[[H]], %{{.*}}] : memref<?x?x?x?xf32>
// dH^T <- dH^T diag(exp(G_last)) + dnum^T Qd: as the product loads each tile
// of dH^T, the edge term of dg (in f64: <H, dH>, over rows of H^T and dH^T)
// takes its share and the decay is applied.
// BWD:                 %[[DSV:.*]] = vector.load %[[RDSTATE]][%{{.*}}, %{{.*}}] : memref<?x?xf32, strided<[?, 1], offset: ?>>, vector<16xf32>
// BWD-NEXT:            %[[HV:.*]] = vector.load %[[ENTERING]][%[[RSLOT]], %{{.*}}, %{{.*}}] : memref<?x?x?xf32>, vector<16xf32>
// BWD-NEXT:            %[[HDH:.*]] = arith.mulf %[[HV]], %[[DSV]] : vector<16xf32>
// BWD-NEXT:            %[[HDHW:.*]] = arith.extf %[[HDH]] : vector<16xf32> to vector<16xf64>
// BWD-NEXT:            %[[EDGEOLD:.*]] = vector.load %[[EDGE]][%{{.*}}] : memref<?xf64>, vector<16xf64>
// BWD-NEXT:            %[[EDGENEW:.*]] = arith.addf %[[EDGEOLD]], %[[HDHW]] : vector<16xf64>
// BWD-NEXT:            vector.store %[[EDGENEW]], %[[EDGE]][%{{.*}}] : memref<?xf64>, vector<16xf64>
// BWD-NEXT:            %[[LASTDECAY:.*]] = vector.load %{{.*}}[%{{.*}}] : memref<?xf32>, vector<16xf32>
// BWD-NEXT:            arith.mulf %[[LASTDECAY]], %[[DSV]] : vector<16xf32>
// BWD:                 vector.store %{{.*}}, %[[RDSTATE]][%{{.*}}, %{{.*}}] : memref<?x?xf32, strided<[?, 1], offset: ?>>, vector<16xf32>
// Token by token in reverse: first a prefetch of the rows of the token 8
// earlier (at least the sequence's first) that the loop reads (dt) and writes
// (d_dt; dq and dk are written after the loop); then the later sum of
// q dq* - k dk' in f64, plus the prefix and the edge, is the token's dg per
// channel; then the diagonal terms.
// BWD:             scf.for %[[RT:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step
// BWD:               %[[PFLOOR:.*]] = arith.maxui %{{.*}}, %{{.*}} : index
// BWD:               %[[PEARLY:.*]] = arith.subi %[[PFLOOR]], %{{.*}} : index
// BWD:                 memref.prefetch %{{.*}}[%[[B]], %[[PEARLY]], %[[H]]], read, locality<3>, data : memref<?x?x?xf32>
// BWD:                 memref.prefetch %{{.*}}[%[[B]], %[[PEARLY]], %[[H]]], write, locality<3>, data : memref<?x?x?xf32>
// BWD:                 %[[LATER:.*]] = memref.load %[[CARRY]][%{{.*}}] : memref<?xf64>
// BWD:                 %[[QDQ:.*]] = arith.mulf %{{.*}}, %{{.*}} : f64
// BWD:                 %[[KDK:.*]] = arith.mulf %{{.*}}, %{{.*}} : f64
// BWD-NEXT:            %[[X:.*]] = arith.subf %[[QDQ]], %[[KDK]] : f64
// BWD-NEXT:            %[[NEWLATER:.*]] = arith.addf %[[LATER]], %[[X]] : f64
// BWD-NEXT:            memref.store %[[NEWLATER]], %[[CARRY]][%{{.*}}] : memref<?xf64>
// BWD-NEXT:            %[[PRE:.*]] = memref.load %[[DGP]][%{{.*}}, %{{.*}}] : memref<?x?xf64>
// BWD-NEXT:            %[[PART:.*]] = arith.addf %[[NEWLATER]], %[[PRE]] : f64
// BWD-NEXT:            %[[EDGEV:.*]] = memref.load %[[EDGE]][%{{.*}}] : memref<?xf64>
// BWD-NEXT:            %[[DGC:.*]] = arith.addf %[[PART]], %[[EDGEV]] : f64
// BWD-NEXT:            memref.store %[[DGC]], %[[LSUM]][%{{.*}}] : memref<?xf64>
// dq and dk are kept in the chunk's rows; a scalar decay's dg sums the
// channels' parts, then narrows to f32.
// BWD:               %[[DGW:.*]] = scf.for {{.*}} -> (f64) {
// BWD-NEXT:            memref.load %[[LSUM]][%{{.*}}] : memref<?xf64>
// BWD:               %[[DG:.*]] = arith.truncf %[[DGW]] : f64 to f32
// The adjoint: d_dt [B, T, H] gets this token's one contribution, a plain
// store; d_A_log and d_dt_bias [H] go to the item's partial sums, plain
// read-modify-writes of its own buffers.
// BWD:               memref.store %[[GX:[0-9]+]], %[[DDT]][%[[B]], %{{.*}}, %[[H]]] : memref<?x?x?xf32>
// BWD:               %[[OLDA:.*]] = memref.load %[[PARTA:.*]][%{{.*}}] : memref<?xf32, strided<[1], offset: ?>>
// BWD-NEXT:          %[[NEWA:.*]] = arith.addf %[[OLDA]], %{{.*}} : f32
// BWD-NEXT:          memref.store %[[NEWA]], %[[PARTA]][%{{.*}}] : memref<?xf32, strided<[1], offset: ?>>
// BWD:               %[[OLDB:.*]] = memref.load %[[PARTB:.*]][%{{.*}}] : memref<?xf32, strided<[1], offset: ?>>
// BWD-NEXT:          %[[NEWB:.*]] = arith.addf %[[OLDB]], %[[GX]] : f32
// BWD-NEXT:          memref.store %[[NEWB]], %[[PARTB]][%{{.*}}] : memref<?xf32, strided<[1], offset: ?>>
// After the token loop, dq and dk of the chunk's tokens, row by row in token
// order: with non-temporal stores where both are aligned, else element by
// element.
// BWD:             scf.for %[[WT:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step
// BWD-NEXT:          %[[WTOK:.*]] = arith.addi %{{.*}}, %[[WT]] : index
// BWD-NEXT:          scf.if %[[DQDKSTREAM]] {
// BWD:                 %[[DQROW:.*]] = vector.load %{{.*}}[%[[WT]], %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// BWD-NEXT:            vector.store %[[DQROW]], %[[DQ]][%[[B]], %[[WTOK]], %[[H]], %{{.*}}] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?x?xf32>, vector<16xf32>
// BWD:               } else {
// BWD:                 memref.store %{{.*}}, %[[DQ]][%[[B]], %[[WTOK]], %[[H]], %{{.*}}] : memref<?x?x?x?xf32>
// BWD:               scf.if %[[DQDKSTREAM]] {
// BWD:                 vector.store %{{.*}}, %[[DK]][%[[B]], %[[WTOK]], %[[H]], %{{.*}}] {alignment = 64 : i64, nontemporal = true} : memref<?x?x?x?xf32>, vector<16xf32>
// BWD:               } else {
// BWD:                 memref.store %{{.*}}, %[[DK]][%[[B]], %[[WTOK]], %[[H]], %{{.*}}] : memref<?x?x?x?xf32>
// After the reverse sweep, for each head of the group: its partials are
// added, atomically (d_A_log and d_dt_bias [H] are shared by every
// sequence), then its dState is dh0.
// BWD:           scf.for %[[LH:[a-z0-9_]+]] = %{{.*}} to %[[HEADS]] step
// BWD:             %[[LDSTATE:.*]] = memref.subview %[[DSTATES]][%[[LH]], 0, 0]
// BWD:             %[[H:.*]] = arith.addi %[[HFIRST]], %[[LH]] : index
// BWD:               %[[PA:.*]] = memref.load %{{.*}}[%{{.*}}] : memref<?xf32, strided<[1], offset: ?>>
// BWD-NEXT:          memref.atomic_rmw addf %[[PA]], %[[DALOG]][%[[H]]] : (f32, memref<?xf32>) -> f32
// BWD:               %[[PB:.*]] = memref.load %{{.*}}[%{{.*}}] : memref<?xf32, strided<[1], offset: ?>>
// BWD-NEXT:          memref.atomic_rmw addf %[[PB]], %[[DDTB]][%[[H]]] : (f32, memref<?xf32>) -> f32
// BWD:                 %[[DS:.*]] = memref.load %[[LDSTATE]][%{{.*}}, %{{.*}}] : memref<?x?xf32, strided<[?, 1], offset: ?>>
// BWD-NEXT:            memref.store %[[DS]], %[[DH0]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf32>
// BWD:           scf.reduce
// BWD:         return

// The gradients of the spec's inputs and params are never stored plainly
// where several work items could race: d_A_log and d_dt_bias only by atomics.
// BWD-WHOLE-LABEL: func.func @mamba2_backward(
// BWD-WHOLE-SAME:    %[[DALOG:[a-z0-9_]+]]: memref<?xf32>, %[[DDTB:[a-z0-9_]+]]: memref<?xf32>)
// BWD-WHOLE-NOT:     memref.store %{{.*}}, %[[DALOG]]
// BWD-WHOLE-NOT:     memref.store %{{.*}}, %[[DDTB]]
// BWD-WHOLE:         return

// chunk-size=32 for the backward too (both sweeps).
// BWD32-LABEL: func.func @mamba2_backward(
// BWD32:           arith.index_cast %{{.*}} : i64 to index
// BWD32:           arith.index_cast %{{.*}} : i64 to index
// BWD32:           %[[END:.*]] = arith.index_cast %{{.*}} : i64 to index
// BWD32-NEXT:      arith.subi %{{.*}}, %{{.*}} : index
// BWD32-NEXT:      %[[SEQLEN:.*]] = arith.subi %[[END]], %{{.*}} : index
// BWD32-NEXT:      %[[NCHUNKS:.*]] = arith.ceildivsi %[[SEQLEN]], %c32{{(_[0-9]+)?}} : index
// BWD32-NEXT:      %[[ROWS:.*]] = arith.muli %{{.*}}, %[[SEQLEN]] : index
// BWD32:           memref.alloc(%[[ROWS]], %{{.*}}) : memref<?x?xf32>
// The forward sweep: chunk ci starts 32 ci tokens in.
// BWD32:           scf.for %[[CI:[a-z0-9_]+]] = %{{.*}} to %[[NCHUNKS]] step
// BWD32:               %[[C1:.*]] = arith.constant 32 : index
// BWD32-NEXT:          arith.muli %[[CI]], %[[C1]] : index
// BWD32:               arith.minsi %c32{{(_[0-9]+)?}}, %{{.*}} : index
// The reverse sweep likewise.
// BWD32:           %[[LASTCHUNK:.*]] = arith.subi %[[NCHUNKS]], %c1{{(_[0-9]+)?}} : index
// BWD32-NEXT:      %[[RCI:.*]] = arith.subi %[[LASTCHUNK]], %{{.*}} : index
// BWD32:               %[[C2:.*]] = arith.constant 32 : index
// BWD32-NEXT:          arith.muli %[[RCI]], %[[C2]] : index
// BWD32:               arith.minsi %c32{{(_[0-9]+)?}}, %{{.*}} : index
decay.recurrence @mamba2 scalar
    inputs(%dt : [B, T, H])
    params(%A_log : [H], %dt_bias : [H]) {
  %x = arith.addf %dt, %dt_bias : f32
  %sp = decay.softplus %x : f32
  %a = math.exp %A_log : f32
  %na = arith.negf %a : f32
  %g = arith.mulf %na, %sp : f32
  decay.yield %g : f32
}

// -----

//===----------------------------------------------------------------------===//
// Vector decay with a scan and a derived key (LightNet): scan_z_h0 and
// scan_z_ht [N, H, K]; the input key k is never read.
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @lightnet_forward(
// CHECK-SAME:    %[[Q:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[K:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[V:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[H0:[a-z0-9_]+]]: memref<?x?x?x?xf32>,
// CHECK-SAME:    %[[SEQS:[a-z0-9_]+]]: memref<?x3xi64>, %[[F:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[Z0:[a-z0-9_]+]]: memref<?x?x?xf32>,
// CHECK-SAME:    %[[O:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[HT:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[ZT:[a-z0-9_]+]]: memref<?x?x?xf32>)
// CHECK-SAME:    attributes {llvm.emit_c_interface} {
// CHECK:         %[[NH:.*]] = memref.dim %[[Q]], %c2 : memref<?x?x?x?xf32>
// CHECK:         %[[KD:.*]] = memref.dim %[[Q]], %c3 : memref<?x?x?x?xf32>
// CHECK:         %[[NSEQ:.*]] = memref.dim %[[SEQS]], %{{.*}} : memref<?x3xi64>
// CHECK:         scf.parallel (%[[N:[a-z0-9_]+]], %{{.*}}) = (%{{.*}}, %{{.*}}) to (%[[NSEQ]], %{{.*}}) step (%{{.*}}, %{{.*}}) {
// CHECK-NEXT:      %[[HFIRST:.*]] = arith.muli
// CHECK-NEXT:      arith.addi
// CHECK-NEXT:      %[[HEND:.*]] = arith.minui %{{.*}}, %[[NH]] : index
// CHECK:           %[[CS:.*]] = arith.constant 64 : index
// CHECK:           %[[B:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           %[[START:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           %[[END:.*]] = arith.index_cast %{{.*}} : i64 to index
// The scan's running state lives in scan_z_ht, starting from scan_z_h0.
// CHECK:           scf.for %[[HI:[a-z0-9_]+]] = %[[HFIRST]] to %[[HEND]] step
// CHECK:           %[[ZI:.*]] = memref.load %[[Z0]][%[[N]], %[[HI]], %{{.*}}] : memref<?x?x?xf32>
// CHECK-NEXT:      memref.store %[[ZI]], %[[ZT]][%[[N]], %[[HI]], %{{.*}}] : memref<?x?x?xf32>
// CHECK:           arith.andi %{{.*}}, %{{.*}} : i1
// CHECK:           %[[CSA:.*]] = arith.constant 64 : index
// CHECK-NEXT:      %[[QC:.*]] = memref.alloc(%[[CS]], %[[KD]]) : memref<?x?xf32>
// CHECK-NEXT:      %[[KC:.*]] = memref.alloc(%[[CS]], %[[KD]]) : memref<?x?xf32>
// CHECK-NEXT:      %[[GC:.*]] = memref.alloc(%[[CS]], %[[KD]]) : memref<?x?xf32>
// CHECK-NEXT:      %[[GLOW:.*]] = memref.alloc(%[[CS]], %[[KD]]) : memref<?x?xf32>
// CHECK-NEXT:      %[[STEP:.*]] = memref.alloc(%[[CS]], %[[KD]]) : memref<?x?xf32>
// CHECK-NEXT:      %[[CARRIED:.*]] = memref.alloc(%[[KD]]) : memref<?xf32>
// CHECK-NEXT:      %[[PRODUCT:.*]] = memref.alloc(%[[KD]]) : memref<?xf32>
// CHECK-NEXT:      memref.alloc(%[[KD]]) : memref<?xf32>
// CHECK-NEXT:      memref.alloc(%[[KD]]) : memref<?xf32>
// CHECK-NEXT:      %[[AC:.*]] = memref.alloc(%[[CSA]], %[[CSA]]) : memref<?x?xf32>
// CHECK-NEXT:      %[[SIDE:.*]] = arith.maxui %[[CSA]], %[[KD]] : index
// CHECK-NEXT:      %[[WORK:.*]] = memref.alloc(%[[SIDE]], %[[SIDE]]) : memref<?x?xf32>
// CHECK-NEXT:      memref.alloc(%[[CSA]], %[[VD]]) : memref<?x?xf32>
// CHECK-NEXT:      memref.alloc(%[[CSA]], %[[VD]]) : memref<?x?xf32>
// CHECK-NEXT:      %[[C16:.*]] = arith.constant 16 : index
// CHECK-NEXT:      %[[SUBC:.*]] = memref.alloc(%[[KD]], %[[C16]]) : memref<?x?xf32>
// CHECK-NEXT:      %[[KEYST:.*]] = memref.alloc(%[[KD]], %[[CSA]]) : memref<?x?xf32>
// CHECK:           scf.for %[[FIRST:[a-z0-9_]+]] = %[[START]] to %[[END]] step %[[CS]] {
// CHECK-NEXT:        %[[REST:.*]] = arith.subi %[[END]], %[[FIRST]] : index
// CHECK-NEXT:        %[[LEN:.*]] = arith.minsi %[[CS]], %[[REST]] : index
// CHECK:             scf.for %[[H:[a-z0-9_]+]] = %[[HFIRST]] to %[[HEND]] step
// CHECK:             scf.for %[[I:[a-z0-9_]+]] = %{{.*}} to %[[LEN]] step
// CHECK-NEXT:          %[[TOK:.*]] = arith.addi %[[FIRST]], %[[I]] : index
// CHECK-NEXT:          %[[ROW:.*]] = arith.addi %{{.*}}, %[[I]] : index
// CHECK-NEXT:          %[[KROW:.*]] = arith.addi %{{.*}}, %[[I]] : index
// The region per channel: z = logaddexp(z_prev, f), g = z_prev - z, key = exp(f - z).
// CHECK:               scf.for %[[C:[a-z0-9_]+]] = %{{.*}} to %[[KD]] step
// CHECK-NEXT:            %[[FV:.*]] = memref.load %[[F]][%[[B]], %[[TOK]], %[[H]], %[[C]]] : memref<?x?x?x?xf32>
// CHECK-NEXT:            %[[PREV:.*]] = memref.load %[[ZT]][%[[N]], %[[H]], %[[C]]] : memref<?x?x?xf32>
// CHECK:                 %[[CUR:.*]] = arith.select %{{.*}}, %{{.*}}, %{{.*}} : f32
// CHECK-NEXT:            memref.store %[[CUR]], %[[ZT]][%[[N]], %[[H]], %[[C]]] : memref<?x?x?xf32>
// CHECK-NEXT:            %[[G:.*]] = arith.subf %[[PREV]], %[[CUR]] : f32
// CHECK-NEXT:            %[[D:.*]] = arith.subf %[[FV]], %[[CUR]] : f32
// CHECK-NEXT:            %[[KEY:.*]] = math.exp %[[D]] : f32
// g parked in the step row, the derived key in k's row.
// CHECK-NEXT:            memref.store %[[G]], %[[STEP]][%[[ROW]], %[[C]]] : memref<?x?xf32>
// CHECK-NEXT:            memref.store %[[KEY]], %[[KC]][%[[KROW]], %[[C]]] : memref<?x?xf32>
// CHECK-NEXT:          }
// Then G (TwoSum) and the step's decay exp(g), channel by channel.
// CHECK:               scf.for %[[C2:[a-z0-9_]+]] = %{{.*}} to %[[KD]] step
// CHECK-NEXT:            %[[G2:.*]] = memref.load %[[STEP]][%[[ROW]], %[[C2]]] : memref<?x?xf32>
// CHECK:                 %[[CUM:.*]] = arith.addf %{{.*}}, %[[G2]] : f32
// CHECK:                 memref.store %[[CUM]], %[[GC]][%[[ROW]], %[[C2]]] : memref<?x?xf32>
// CHECK:                 memref.store %{{.*}}, %[[GLOW]][%[[ROW]], %[[C2]]] : memref<?x?xf32>
// CHECK:                 %[[STEPV:.*]] = math.exp %[[G2]] : f32
// CHECK-NEXT:            memref.store %[[STEPV]], %[[STEP]][%[[ROW]], %[[C2]]] : memref<?x?xf32>
// Only q is loaded: the key is the derived one.
// CHECK-NEXT:          }
// CHECK:               %[[QV:.*]] = memref.load %[[Q]][%[[B]], %[[TOK]], %[[H]], %{{.*}}] : memref<?x?x?x?xf32>
// CHECK-NEXT:          memref.store %[[QV]], %[[QC]][%[[KROW]], %{{.*}}] : memref<?x?xf32>
// CHECK-NEXT:        }
// CHECK:             memref.load %[[V]][%[[B]], %{{.*}}, %[[H]], %{{.*}}] : memref<?x?x?x?xf32>
// The scores of a vector decay by secondary chunking: sub-blocks of 16 tokens
// starting at r. After the first, the earlier keys decayed to r, transposed
// (KEYST[c, s] = k_sc exp(G_rc - G_sc)): the columns of the keys before the
// previous sub-block times exp(G_r - G_{r-16}) (<= 1; the factors in a loop
// of their own), then the previous sub-block's keys decayed to r, the decay
// a running product of the steps exp(g) (each <= 1, no exponential), walking
// back from r, and transposed in.
// CHECK:             scf.for %[[R:[a-z0-9_]+]] = %{{.*}} to %[[LEN]] step %{{c16.*}} {
// CHECK:               %[[BEND:.*]] = arith.minsi %{{.*}}, %[[LEN]] : index
// CHECK-NEXT:          %[[BLEN:.*]] = arith.subi %[[BEND]], %[[R]] : index
// CHECK:               %[[AFTER:.*]] = arith.cmpi ugt, %[[R]], %{{.*}} : index
// CHECK-NEXT:          scf.if %[[AFTER]] {
// CHECK:                 %[[PREV:.*]] = arith.subi %[[R]], %{{.*}} : index
// CHECK:                 scf.for %[[CF:[a-z0-9_]+]] = %{{.*}} to %[[KD]] step
// CHECK:                   %[[FEXP:.*]] = math.exp %{{.*}} : f32
// CHECK-NEXT:              memref.store %[[FEXP]], %[[CARRIED]][%[[CF]]] : memref<?xf32>
// CHECK:                 scf.for %[[CS1:[a-z0-9_]+]] = %{{.*}} to %[[KD]] step
// CHECK-NEXT:              %[[FAC:.*]] = memref.load %[[CARRIED]][%[[CS1]]] : memref<?xf32>
// CHECK-NEXT:              %[[FACV:.*]] = vector.broadcast %[[FAC]] : f32 to vector<16xf32>
// CHECK:                   scf.for %[[SC:[a-z0-9_]+]] = %{{.*}} to %[[PREV]] step
// CHECK-NEXT:                %[[OLD:.*]] = vector.load %[[KEYST]][%[[CS1]], %[[SC]]] : memref<?x?xf32>, vector<16xf32>
// CHECK-NEXT:                %[[SCALED:.*]] = arith.mulf %[[OLD]], %[[FACV]] : vector<16xf32>
// CHECK-NEXT:                vector.store %[[SCALED]], %[[KEYST]][%[[CS1]], %[[SC]]] : memref<?x?xf32>, vector<16xf32>
// CHECK:                 scf.for %{{.*}} = %{{.*}} to %[[KD]] step
// CHECK-NEXT:              %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT:              memref.store %[[ONE]], %[[PRODUCT]]
// CHECK:                 %[[SPAN:.*]] = arith.subi %[[R]], %[[PREV]] : index
// CHECK:                 scf.for %[[SI:[a-z0-9_]+]] = %{{.*}} to %[[SPAN]] step
// CHECK-NEXT:              arith.constant 1 : index
// CHECK-NEXT:              %[[TOP:.*]] = arith.subi %[[R]], %{{.*}} : index
// CHECK-NEXT:              %[[S:.*]] = arith.subi %[[TOP]], %[[SI]] : index
// CHECK-NEXT:              %[[BEFORE:.*]] = arith.cmpi ult, %[[S]], %[[R]] : index
// CHECK-NEXT:              %[[NEXT:.*]] = arith.addi %[[S]], %{{.*}} : index
// CHECK-NEXT:              %[[NEXTIN:.*]] = arith.minui %[[NEXT]], %[[R]] : index
// CHECK-NEXT:              %[[NEXTROW:.*]] = arith.addi %{{.*}}, %[[NEXTIN]] : index
// CHECK:                   scf.for %[[CK:[a-z0-9_]+]] = %{{.*}} to %[[KD]] step
// CHECK-NEXT:                %[[STEPN:.*]] = memref.load %[[STEP]][%[[NEXTROW]], %[[CK]]] : memref<?x?xf32>
// CHECK:                     %[[FACTOR:.*]] = arith.select %[[BEFORE]], %[[STEPN]], %{{.*}} : f32
// CHECK-NEXT:                %[[PARTIAL:.*]] = memref.load %[[PRODUCT]][%[[CK]]] : memref<?xf32>
// CHECK-NEXT:                %[[DEC:.*]] = arith.mulf %[[PARTIAL]], %[[FACTOR]] : f32
// CHECK-NEXT:                memref.store %[[DEC]], %[[PRODUCT]][%[[CK]]] : memref<?xf32>
// CHECK:                     %[[KS:.*]] = memref.load %[[KC]][%{{.*}}, %[[CK]]] : memref<?x?xf32>
// CHECK-NEXT:                %[[KDEC:.*]] = arith.mulf %[[KS]], %[[DEC]] : f32
// CHECK:                     memref.store %[[KDEC]], %[[WORK]][%{{.*}}, %[[CK]]] : memref<?x?xf32>
// Transposed into KEYST's columns from PREV, in 16x16 register blocks (64 shuffles).
// CHECK-COUNT-64:        vector.shuffle %{{.*}}, %{{.*}} [{{[0-9, ]+}}] : vector<16xf32>, vector<16xf32>
// CHECK:                 %[[COL:.*]] = arith.addi %[[PREV]], %{{.*}} : index
// CHECK-NEXT:            vector.store %{{.*}}, %[[KEYST]][%{{.*}}, %[[COL]]] : memref<?x?xf32>, vector<16xf32>
// The sub-block's queries decayed from r, transposed into SUBC the same way.
// CHECK:               vector.shuffle
// CHECK:               vector.store %{{.*}}, %[[SUBC]][%{{.*}}, %{{.*}}] : memref<?x?xf32>, vector<16xf32>
// Earlier tokens, 16 at a time (a vector of KEYST's row c) against the 16
// rows of the sub-block (SUBC's, broadcast), accumulated over the channels
// in 16 registers; each row stored where the sub-block has it.
// CHECK:               scf.for %[[S0:[a-z0-9_]+]] = %{{.*}} to %[[R]] step
// CHECK:                 %[[TILE:.*]]:16 = scf.for %[[CE:[a-z0-9_]+]] = %{{.*}} to %[[KD]] step %{{.*}} iter_args({{.*}}) -> (vector<16xf32>, {{.*}}) {
// CHECK-NEXT:              %[[KROWV:.*]] = vector.load %[[KEYST]][%[[CE]], %[[S0]]] : memref<?x?xf32>, vector<16xf32>
// CHECK:                   %[[QE:.*]] = memref.load %[[SUBC]][%[[CE]], %{{.*}}] : memref<?x?xf32>
// CHECK-NEXT:              %[[QB:.*]] = vector.broadcast %[[QE]] : f32 to vector<16xf32>
// CHECK-NEXT:              vector.fma %[[QB]], %[[KROWV]], %{{.*}} : vector<16xf32>
// CHECK:                 %[[IN0:.*]] = arith.cmpi ult, %{{.*}}, %[[BLEN]] : index
// CHECK-NEXT:            scf.if %[[IN0]] {
// CHECK:                   vector.store %[[TILE]]#0, %[[AC]][%{{.*}}, %[[S0]]] : memref<?x?xf32>, vector<16xf32>
// CHECK-COUNT-15:        vector.store %[[TILE]]#{{[0-9]+}}, %[[AC]]
// Inside the sub-block, a whole one (16 tokens): per key (unrolled), per
// strip of 16 channels, the key decayed step by step (times exp(g_t)) to each
// later token, each pair's sum in a register of its own, reduced at the end.
// CHECK:               %[[FULLBLOCK:.*]] = arith.cmpi eq, %[[BLEN]], %{{.*}} : index
// CHECK-NEXT:          scf.if %[[FULLBLOCK]] {
// CHECK:                 %[[PS:.*]]:16 = scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args({{.*}}) -> (vector<16xf32>, {{.*}}) {
// CHECK:                   %[[K0:.*]] = vector.load %[[KC]]
// CHECK-NEXT:              %[[Q0:.*]] = vector.load %[[QC]]
// CHECK-NEXT:              math.fma %[[Q0]], %[[K0]], %{{.*}} : vector<16xf32>
// CHECK-NEXT:              %[[ST1:.*]] = vector.load %[[STEP]]
// CHECK-NEXT:              %[[K1:.*]] = arith.mulf %[[K0]], %[[ST1]] : vector<16xf32>
// CHECK:                 %[[LS:.*]]:16 = scf.for %{{.*}} = %{{.*}} to %[[KD]] step %{{.*}} iter_args({{.*}}) -> (f32, {{.*}}) {
// CHECK:                 %[[SUM0:.*]] = vector.reduction <add>, %[[PS]]#0, %[[LS]]#0 fastmath<reassoc,contract> : vector<16xf32> into f32
// CHECK-NEXT:            memref.store %[[SUM0]], %[[AC]]
// Otherwise pair by pair, key by key.
// CHECK:               } else {
// CHECK:                 scf.for %[[S1:[a-z0-9_]+]] = %[[R]] to %[[BEND]] step
// CHECK:                   memref.store %{{.*}}, %[[CARRIED]][%{{.*}}] : memref<?xf32>
// CHECK:                   scf.for %[[T:[a-z0-9_]+]] = %[[S1]] to %[[BEND]] step
// One pass over the channels per (t, src): the key decayed one more step
// (times 1 at t = src), stored back, and its product with q_t summed.
// CHECK:                     %[[LATER:.*]] = arith.cmpi ugt, %[[T]], %[[S1]] : index
// CHECK:                     %[[SCORE:.*]] = scf.for %{{.*}} = %{{.*}} to %[[KD]] step %{{.*}} iter_args(%[[PART:.*]] = %{{.*}}) -> (f32) {
// CHECK-NEXT:                  %[[STEPT:.*]] = memref.load %[[STEP]][%{{.*}}, %{{.*}}] : memref<?x?xf32>
// CHECK:                       %[[FACT:.*]] = arith.select %[[LATER]], %[[STEPT]], %{{.*}} : f32
// CHECK-NEXT:                  %[[KEYV:.*]] = memref.load %[[CARRIED]][%{{.*}}] : memref<?xf32>
// CHECK-NEXT:                  %[[DECAYED:.*]] = arith.mulf %[[KEYV]], %[[FACT]] : f32
// CHECK-NEXT:                  memref.store %[[DECAYED]], %[[CARRIED]][%{{.*}}] : memref<?xf32>
// CHECK-NEXT:                  %[[QV2:.*]] = memref.load %[[QC]][%{{.*}}, %{{.*}}] : memref<?x?xf32>
// CHECK-NEXT:                  %[[PROD:.*]] = arith.mulf %[[QV2]], %[[DECAYED]] : f32
// CHECK-NEXT:                  arith.addf %[[PART]], %[[PROD]] fastmath<reassoc,contract> : f32
// CHECK:                     memref.store %[[SCORE]], %[[AC]][%[[T]], %[[S1]]] : memref<?x?xf32>
// Zero above the diagonal.
// CHECK:               scf.for %[[T2:[a-z0-9_]+]] = %[[R]] to %[[BEND]] step
// CHECK:                 scf.for %[[S2:[a-z0-9_]+]] = %{{.*}} to %[[LEN]] step
// CHECK-NEXT:              %[[Z:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT:              memref.store %[[Z]], %[[AC]][%[[T2]], %[[S2]]] : memref<?x?xf32>
// The numerators and the state update still use the tiled matmuls.
// CHECK:             vector.fma
// CHECK:             memref.store %{{.*}}, %[[O]][%[[B]], %{{.*}}, %[[H]], %{{.*}}] : memref<?x?x?x?xf32>
// CHECK:             vector.store %{{.*}}, %[[HT]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf32>, vector<16xf32>
// CHECK:         return

// Never the input key, never -inf (no mask), f32 throughout.
// WHOLE-LABEL: func.func @lightnet_forward(
// WHOLE-SAME:    %{{[a-z0-9_]+}}: memref<?x?x?x?xf32>, %[[K:[a-z0-9_]+]]: memref<?x?x?x?xf32>,
// WHOLE-NOT:     %[[K]][
// WHOLE-NOT:     0xFF800000
// WHOLE-NOT:     f64
// WHOLE:         return

// C32-LABEL: func.func @lightnet_forward(
// C32:           memref.alloc(%[[CS:c32(_[0-9]+)?]], %{{.*}}) : memref<?x?xf32>
// C32:           scf.for %{{.*}} = %{{.*}} to %{{.*}} step %[[CS]] {
// C32-NEXT:        arith.subi
// C32-NEXT:        arith.minsi %[[CS]], %{{.*}} : index

// BWD-LABEL: func.func @lightnet_forward(
// BWD-LABEL: func.func @lightnet_backward(
// BWD-SAME:    %[[Q:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[K:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[V:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[H0:[a-z0-9_]+]]: memref<?x?x?x?xf32>,
// BWD-SAME:    %[[SEQS:[a-z0-9_]+]]: memref<?x3xi64>, %[[F:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[Z0:[a-z0-9_]+]]: memref<?x?x?xf32>,
// BWD-SAME:    %[[DO:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DHT:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DZT:[a-z0-9_]+]]: memref<?x?x?xf32>,
// BWD-SAME:    %[[DQ:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DK:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DV:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DH0:[a-z0-9_]+]]: memref<?x?x?x?xf32>,
// BWD-SAME:    %[[DF:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DZ0:[a-z0-9_]+]]: memref<?x?x?xf32>)
// BWD-SAME:    attributes {llvm.emit_c_interface} {
// BWD:         scf.parallel (%[[N:[a-z0-9_]+]], %[[G:[a-z0-9_]+]]) =
// BWD-NEXT:      %[[HFIRST:.*]] = arith.muli %[[G]], %{{.*}} : index
// BWD:           %[[B:.*]] = arith.index_cast %{{.*}} : i64 to index
// The scan restarts from scan_z_h0 in the forward sweep, each head's own.
// BWD:             %[[H:.*]] = arith.addi %[[HFIRST]], %{{.*}} : index
// BWD:               memref.load %[[Z0]][%[[N]], %[[H]], %{{.*}}] : memref<?x?x?xf32>
// The scan's carried gradient starts from dscan_z_ht, with the head's dht.
// BWD:               memref.load %[[DHT]][%[[N]], %[[H:[0-9]+]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf32>
// BWD:               memref.load %[[DZT]][%[[N]], %[[H]], %{{.*}}] : memref<?x?x?xf32>
// The reverse sweep: the head's do.
// BWD:                 memref.load %[[DO]][%[[B]], %{{.*}}, %[[H:[0-9]+]], %{{.*}}] : memref<?x?x?x?xf32>
// The pairs inside a sub-block, per strip of 16 channels: over the later
// tokens t, the decay from src to t and src's dk' carried in registers, dq_t
// updated in place; then the scalar channels left over.
// BWD:                 %[[PONE:.*]] = vector.broadcast %cst{{.*}} : f32 to vector<16xf32>
// BWD-NEXT:            %[[PDK:.*]] = vector.load %[[DKPB:[a-z0-9_]+]][%[[PSRC:[a-z0-9_]+]], %[[PC:[a-z0-9_]+]]] : memref<?x?xf32>, vector<16xf32>
// BWD:                 %[[PAIR:.*]]:2 = scf.for %[[PT:[a-z0-9_]+]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[CARRIED:.*]] = %[[PONE]], %[[ACC:.*]] = %[[PDK]]) -> (vector<16xf32>, vector<16xf32>) {
// BWD:                   %[[STEP:.*]] = vector.load %{{.*}}[%{{.*}}, %[[PC]]] : memref<?x?xf32>, vector<16xf32>
// BWD-NEXT:              %[[PDECAY:.*]] = arith.mulf %[[CARRIED]], %[[STEP]] : vector<16xf32>
// BWD:                   %[[FACTOR:.*]] = arith.mulf %{{.*}}, %[[PDECAY]] : vector<16xf32>
// BWD:                   vector.store %{{.*}}, %[[DQPB:[a-z0-9_]+]][%[[PT]], %[[PC]]] : memref<?x?xf32>, vector<16xf32>
// BWD:                   %[[NEXTDK:.*]] = arith.addf %[[ACC]], %{{.*}} : vector<16xf32>
// BWD-NEXT:              scf.yield %[[PDECAY]], %[[NEXTDK]] : vector<16xf32>, vector<16xf32>
// BWD:                 vector.store %[[PAIR]]#1, %[[DKPB]][%[[PSRC]], %[[PC]]] : memref<?x?xf32>, vector<16xf32>
// BWD:                 scf.for %{{.*}} iter_args(%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) -> (f32, f32) {
// dLambda in f64.
// BWD:                 arith.extf %{{.*}} : f32 to f64
// BWD:                 %[[DL:.*]] = arith.subf %{{.*}}, %{{.*}} : f64
// BWD:                 memref.store %{{.*}}, %{{.*}}[%{{.*}}] : memref<?xf64>
// dq written; the derived key's gradient goes to the adjoint, not to dk.
// BWD:                 memref.store %{{.*}}, %[[DQ]][%[[B]], %[[TT:[0-9]+]], %[[H]], %{{.*}}] : memref<?x?x?x?xf32>
// A vector decay: dg per channel, narrowed from the f64 sum.
// BWD:                 %[[DGW:.*]] = memref.load %{{.*}}[%[[C:[a-z0-9_]+]]] : memref<?xf64>
// BWD-NEXT:            %[[DG:.*]] = arith.truncf %[[DGW]] : f64 to f32
// BWD:                 memref.load %[[F]][%[[B]], %[[TT]], %[[H]], %[[C]]] : memref<?x?x?x?xf32>
// d_f [B, T, H, K] gets this (token, channel)'s one contribution: a plain store.
// BWD:                 memref.store %{{.*}}, %[[DF]][%[[B]], %[[TT]], %[[H]], %[[C]]] : memref<?x?x?x?xf32>
// dh0 and dscan_z_h0 after the reverse sweep, per head.
// BWD:               memref.store %{{.*}}, %[[DH0]][%[[N]], %[[H:[0-9]+]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf32>
// BWD:               memref.store %{{.*}}, %[[DZ0]][%[[N]], %[[H]], %{{.*}}] : memref<?x?x?xf32>
// BWD:         return

// No params: no atomics; the input key and its gradient are never touched.
// BWD-WHOLE-LABEL: func.func @lightnet_backward(
// BWD-WHOLE-SAME:    %{{[a-z0-9_]+}}: memref<?x?x?x?xf32>, %[[K:[a-z0-9_]+]]: memref<?x?x?x?xf32>,
// BWD-WHOLE-SAME:    %[[DQ:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DK:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DV:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DH0:[a-z0-9_]+]]: memref<?x?x?x?xf32>,
// BWD-WHOLE-NOT:     %[[K]][
// BWD-WHOLE-NOT:     %[[DK]][
// BWD-WHOLE-NOT:     atomic_rmw
// BWD-WHOLE:         return

decay.recurrence @lightnet vector
    inputs(%f : [B, T, H, K]) {
  %prev, %z = decay.logcumsumexp "z" %f init 0.0 : f32
  %g = arith.subf %prev, %z : f32
  %d = arith.subf %f, %z : f32
  %key = math.exp %d : f32
  decay.yield %g, %key : f32, f32
}

// -----

//===----------------------------------------------------------------------===//
// Normalizer, exp feature map, constant vector decay with a [H, K] param, and
// a chunk_size hint of 128.
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @normalized_forward(
// CHECK-SAME:    %[[Q:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[K:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[V:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[H0:[a-z0-9_]+]]: memref<?x?x?x?xf32>,
// CHECK-SAME:    %[[SEQS:[a-z0-9_]+]]: memref<?x3xi64>, %[[PS:[a-z0-9_]+]]: memref<?x?xf32>, %[[NORM0:[a-z0-9_]+]]: memref<?x?x?xf32>,
// CHECK-SAME:    %[[O:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[HT:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[NORMT:[a-z0-9_]+]]: memref<?x?x?xf32>)
// CHECK-SAME:    attributes {llvm.emit_c_interface} {
// CHECK:         scf.parallel (%[[N:[a-z0-9_]+]], %{{.*}}) =
// CHECK-NEXT:      %[[HFIRST:.*]] = arith.muli
// CHECK-NEXT:      arith.addi
// CHECK-NEXT:      %[[HEND:.*]] = arith.minui
// The spec's chunk_size hint.
// CHECK:           %[[CS:.*]] = arith.constant 128 : index
// CHECK:           %[[B:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           %[[START:.*]] = arith.index_cast %{{.*}} : i64 to index
// CHECK:           %[[END:.*]] = arith.index_cast %{{.*}} : i64 to index
// The normalizer's running state lives in norm_ht, starting from norm_h0.
// CHECK:           scf.for %[[HI:[a-z0-9_]+]] = %[[HFIRST]] to %[[HEND]] step
// CHECK:           %[[ZI:.*]] = memref.load %[[NORM0]][%[[N]], %[[HI]], %{{.*}}] : memref<?x?x?xf32>
// CHECK-NEXT:      memref.store %[[ZI]], %[[NORMT]][%[[N]], %[[HI]], %{{.*}}] : memref<?x?x?xf32>
// CHECK:           %[[QC:.*]] = memref.alloc(%[[CS]], %{{.*}}) : memref<?x?xf32>
// CHECK:           scf.for %[[FIRST:[a-z0-9_]+]] = %[[START]] to %[[END]] step %[[CS]] {
// CHECK-NEXT:        %[[REST:.*]] = arith.subi %[[END]], %[[FIRST]] : index
// CHECK-NEXT:        %[[LEN:.*]] = arith.minsi %[[CS]], %[[REST]] : index
// CHECK:             scf.for %[[H:[a-z0-9_]+]] = %[[HFIRST]] to %[[HEND]] step
// g = h - ps[h, c], per channel.
// CHECK:                 memref.load %[[PS]][%[[H]], %{{.*}}] : memref<?x?xf32>
// The exp feature map on q and k.
// CHECK:                 %[[QV:.*]] = memref.load %[[Q]][%[[B]], %{{.*}}, %[[H]], %{{.*}}] : memref<?x?x?x?xf32>
// CHECK-NEXT:            %[[QE:.*]] = math.exp %[[QV]] : f32
// CHECK-NEXT:            memref.store %[[QE]], %[[QC]][%{{.*}}, %{{.*}}] : memref<?x?xf32>
// CHECK-NEXT:            %[[KV:.*]] = memref.load %[[K]][%[[B]], %{{.*}}, %[[H]], %{{.*}}] : memref<?x?x?x?xf32>
// CHECK-NEXT:            math.exp %[[KV]] : f32
// o = num / (q exp(G) . z + sum_{s<=t} A_ts + eps).
// CHECK:             scf.for %[[T:[a-z0-9_]+]] = %{{.*}} to %[[LEN]] step
// CHECK:               memref.load %[[NORMT]][%[[N]], %[[H]], %{{.*}}] : memref<?x?x?xf32>
// CHECK:               %[[EPS:.*]] = arith.constant 9.99999974E-6 : f32
// CHECK-NEXT:          %[[DEN:.*]] = arith.addf %{{.*}}, %[[EPS]] : f32
// CHECK-NEXT:          %[[FACTOR:.*]] = arith.divf %{{.*}}, %[[DEN]] : f32
// CHECK:                 %[[NUMV:.*]] = memref.load %{{.*}}[%[[T]], %{{.*}}] : memref<?x?xf32>
// CHECK-NEXT:            %[[OV:.*]] = arith.mulf %[[NUMV]], %[[FACTOR]] : f32
// CHECK-NEXT:            memref.store %[[OV]], %[[O]][%[[B]], %{{.*}}, %[[H]], %{{.*}}] : memref<?x?x?x?xf32>
// z <- exp(G_last) z + sum_s k_s exp(G_last - G_s).
// CHECK:               %[[ZV:.*]] = memref.load %[[NORMT]][%[[N]], %[[H]], %{{.*}}] : memref<?x?x?xf32>
// CHECK-NEXT:          %[[ZD:.*]] = arith.mulf %{{.*}}, %[[ZV]] : f32
// CHECK-NEXT:          memref.store %[[ZD]], %[[NORMT]][%[[N]], %[[H]], %{{.*}}] : memref<?x?x?xf32>
// CHECK:               %[[ZOLD:.*]] = memref.load %[[NORMT]][%[[N]], %[[H]], %{{.*}}] : memref<?x?x?xf32>
// CHECK:               %[[ZNEW:.*]] = arith.addf %[[ZOLD]], %{{.*}} : f32
// CHECK-NEXT:          memref.store %[[ZNEW]], %[[NORMT]][%[[N]], %[[H]], %{{.*}}] : memref<?x?x?xf32>
// CHECK:         return

// No mask (not a scalar decay), f32 throughout.
// WHOLE-LABEL: func.func @normalized_forward(
// WHOLE-NOT:     0xFF800000
// WHOLE-NOT:     f64
// WHOLE:         return

// chunk-size=32 overrides the spec's chunk_size hint.
// C32-LABEL: func.func @normalized_forward(
// C32:           memref.alloc(%[[CS:c32(_[0-9]+)?]], %{{.*}}) : memref<?x?xf32>
// C32:           scf.for %{{.*}} = %{{.*}} to %{{.*}} step %[[CS]] {
// C32-NEXT:        arith.subi
// C32-NEXT:        arith.minsi %[[CS]], %{{.*}} : index

// BWD-LABEL: func.func @normalized_forward(
// BWD-LABEL: func.func @normalized_backward(
// BWD-SAME:    %[[Q:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[K:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[V:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[H0:[a-z0-9_]+]]: memref<?x?x?x?xf32>,
// BWD-SAME:    %[[SEQS:[a-z0-9_]+]]: memref<?x3xi64>, %[[PS:[a-z0-9_]+]]: memref<?x?xf32>, %[[NORM0:[a-z0-9_]+]]: memref<?x?x?xf32>,
// BWD-SAME:    %[[DO:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DHT:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DNORMT:[a-z0-9_]+]]: memref<?x?x?xf32>,
// BWD-SAME:    %[[DQ:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DK:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DV:[a-z0-9_]+]]: memref<?x?x?x?xf32>, %[[DH0:[a-z0-9_]+]]: memref<?x?x?x?xf32>,
// BWD-SAME:    %[[DPS:[a-z0-9_]+]]: memref<?x?xf32>, %[[DNORM0:[a-z0-9_]+]]: memref<?x?x?xf32>)
// BWD-SAME:    attributes {llvm.emit_c_interface} {
// BWD:         scf.parallel (%[[N:[a-z0-9_]+]], %[[G:[a-z0-9_]+]]) =
// BWD:           %[[CS:.*]] = arith.constant 128 : index
// BWD:           arith.index_cast %{{.*}} : i64 to index
// BWD:           arith.index_cast %{{.*}} : i64 to index
// BWD:           %[[END:.*]] = arith.index_cast %{{.*}} : i64 to index
// BWD-NEXT:      arith.subi %{{.*}}, %{{.*}} : index
// BWD-NEXT:      %[[SEQLEN:.*]] = arith.subi %[[END]], %{{.*}} : index
// BWD-NEXT:      arith.ceildivsi %[[SEQLEN]], %[[CS]] : index
// dnorm_ht starts dNorm, the gradient of the normalizer leaving the last
// chunk (the head's slice of the heads' dNorm).
// BWD:             %[[DZ:.*]] = memref.load %[[DNORMT]][%[[N]], %{{.*}}, %{{.*}}] : memref<?x?x?xf32>
// BWD-NEXT:        memref.store %[[DZ]], %{{.*}} : memref<?xf32, strided<[1], offset: ?>>
// dnum = do / den, dden = -(do . o) / den.
// BWD:             %[[EPS:.*]] = arith.constant 9.99999974E-6 : f32
// BWD-NEXT:        %[[DEN:.*]] = arith.addf %{{.*}}, %[[EPS]] : f32
// BWD:             %[[DODOTO:.*]] = scf.for %{{.*}} iter_args(%{{.*}}) -> (f32) {
// BWD-NEXT:          memref.load %[[DO]][%{{.*}}, %{{.*}}, %[[H:[0-9]+]], %{{.*}}] : memref<?x?x?x?xf32>
// BWD-NEXT:          %[[NUMV:.*]] = memref.load %{{.*}} : memref<?x?xf32>
// BWD-NEXT:          %[[OV:.*]] = arith.divf %[[NUMV]], %[[DEN]] : f32
// BWD-NEXT:          arith.mulf %{{.*}}, %[[OV]] : f32
// BWD:               %[[DOV:.*]] = memref.load %[[DO]][%{{.*}}, %{{.*}}, %[[H]], %{{.*}}] : memref<?x?x?x?xf32>
// BWD-NEXT:          %[[DNUM:.*]] = arith.divf %[[DOV]], %[[DEN]] : f32
// BWD-NEXT:          memref.store %[[DNUM]], %{{.*}} : memref<?x?xf32>
// BWD:             %[[R:.*]] = arith.divf %[[DODOTO]], %[[DEN]] : f32
// BWD-NEXT:        %[[DDEN:.*]] = arith.negf %[[R]] : f32
// BWD-NEXT:        memref.store %[[DDEN]], %{{.*}} : memref<?xf32>
// The exp feature map's derivative on dq and dk.
// BWD:               %[[QIN:.*]] = memref.load %[[Q]]
// BWD-NEXT:          %[[DQM:.*]] = memref.load
// BWD-NEXT:          %[[EQ:.*]] = math.exp %[[QIN]] : f32
// BWD-NEXT:          %[[DQV:.*]] = arith.mulf %[[DQM]], %[[EQ]] : f32
// BWD-NEXT:          memref.store %[[DQV]], %[[DQ]]
// The [H, K] param is shared by every sequence: -dg into the item's partial
// per channel, added atomically once after the reverse sweep.
// dg is narrowed to f32 in a loop of its own (the adjoint's channel loop
// then has no f64 and vectorizes at the full f32 width).
// BWD:               %[[DGW:.*]] = memref.load %{{.*}} : memref<?xf64>
// BWD-NEXT:          %[[DGN:.*]] = arith.truncf %[[DGW]] : f64 to f32
// BWD-NEXT:          memref.store %[[DGN]], %[[DGBUF:.*]][%{{.*}}] : memref<?xf32>
// BWD:               %[[DG:.*]] = memref.load %[[DGBUF]][%{{.*}}] : memref<?xf32>
// BWD:               %[[NDG:.*]] = arith.negf %[[DG]] : f32
// BWD-NEXT:          %[[OLDP:.*]] = memref.load %[[PARTP:.*]][%{{.*}}] : memref<?xf32, strided<[1], offset: ?>>
// BWD-NEXT:          %[[NEWP:.*]] = arith.addf %[[OLDP]], %[[NDG]] : f32
// BWD-NEXT:          memref.store %[[NEWP]], %[[PARTP]][%{{.*}}] : memref<?xf32, strided<[1], offset: ?>>
// After the reverse sweep, per head h: its partial added atomically, then dh0 and dnorm_h0.
// BWD:               %[[PP:.*]] = memref.load %{{.*}}[%{{.*}}] : memref<?xf32, strided<[1], offset: ?>>
// BWD-NEXT:          memref.atomic_rmw addf %[[PP]], %[[DPS]][%[[H:[0-9]+]], %{{.*}}] : (f32, memref<?x?xf32>) -> f32
// BWD:               memref.store %{{.*}}, %[[DH0]][%[[N]], %[[H]], %{{.*}}, %{{.*}}] : memref<?x?x?x?xf32>
// BWD:               memref.store %{{.*}}, %[[DNORM0]][%[[N]], %[[H]], %{{.*}}] : memref<?x?x?xf32>
// BWD:         return

// BWD-WHOLE-LABEL: func.func @normalized_backward(
// BWD-WHOLE-SAME:    %[[DPS:[a-z0-9_]+]]: memref<?x?xf32>, %{{[a-z0-9_]+}}: memref<?x?x?xf32>)
// BWD-WHOLE-NOT:     memref.store %{{.*}}, %[[DPS]]
// BWD-WHOLE:         return

// BWD32-LABEL: func.func @normalized_backward(
// BWD32:           arith.index_cast %{{.*}} : i64 to index
// BWD32:           arith.index_cast %{{.*}} : i64 to index
// BWD32:           %[[END:.*]] = arith.index_cast %{{.*}} : i64 to index
// BWD32-NEXT:      arith.subi %{{.*}}, %{{.*}} : index
// BWD32-NEXT:      %[[SEQLEN:.*]] = arith.subi %[[END]], %{{.*}} : index
// BWD32-NEXT:      arith.ceildivsi %[[SEQLEN]], %c32{{(_[0-9]+)?}} : index
decay.recurrence @normalized constant_vector
    params(%ps : [H, K])
    attributes {feature_map = "exp", normalizer, eps = 1.0e-5, chunk_size = 128} {
  %h = decay.head_index : f32
  %g = arith.subf %h, %ps : f32
  decay.yield %g : f32
}

// -----

//===----------------------------------------------------------------------===//
// No decay: no adjoint needed for the backward kernel.
//===----------------------------------------------------------------------===//

// CHECK-LABEL: func.func @linear_forward(
// CHECK:         scf.parallel
// CHECK:         return

// BWD-LABEL: func.func @linear_forward(
// BWD-LABEL: func.func @linear_backward(
// BWD:         scf.parallel
// BWD:         return
decay.recurrence @linear none

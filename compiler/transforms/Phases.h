// Strided convolutions over phases: with stride s, the padded input's rows r*s + a and columns
// q*s + e (a, e < min(s, k)) become channels of their own, and the k x k filter's taps the same
// way, so that a stride-s convolution is a stride-1 one with ceil(k/s) x ceil(k/s) taps of each
// phase, which the stride-1 kernels run. It multiplies the zeros of the filter padded to a
// multiple of s (16 taps for a 3 x 3 filter at stride 2), so it is the way only of the strided
// convolutions without a kernel of their own on the target (Plan.h's stridedKernel).
#pragma once
#include "ir/IR.h"
#include "transforms/Plan.h"

namespace soma::transforms {

// The three forms of one convolution over phases (Ops.def): y from x and w, the data gradient dx
// (of shape xShape) from dy and w, the filter gradient dw (of shape wShape) from x and dy. The
// gradients are the adjoints of the forward's moves: phases back to their places, windows
// padded back.
int phasedConv(ir::Builder &b, int x, int w, const ir::ConvParams &c);
int phasedConvBackData(ir::Builder &b, int dy, int w, const ir::Shape &xShape, const ir::ConvParams &c);
int phasedConvBackFilter(ir::Builder &b, int x, int dy, const ir::Shape &wShape, const ir::ConvParams &c);

// f with every strided convolution that machine m has no kernel for run over phases instead.
ir::Function splitStrides(const ir::Function &f, const Machine &m);

} // namespace soma::transforms

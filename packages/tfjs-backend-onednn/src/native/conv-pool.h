// A convolution with a ReLU, followed by a non-overlapping max pooling, as one forward and one
// backward kernel for the whole-step path (step.cc), used where the convolution needs no input
// gradient (the network's first weighted layer) and its filters are small.
//
// Why: for the tutorial CNN the first convolution (1 -> 32 channels, 3x3) is ~100 MFLOP per step
// but writes and re-reads a 21.6 MB activation five times through separate primitives (conv with
// ReLU, pooling forward, pooling backward, the ReLU's backward, backward weights): ~14 ms of the
// ~44 CPU ms a step takes, bound by memory traffic, not by arithmetic. Fused, the forward writes
// only the pooled output and each channel's argmax within its window (1 byte), and the backward
// recomputes the convolution's patches from the input (9 values) instead of reading the
// activation back: the activation is never stored.
#pragma once
#include <cstddef>
#include <cstdint>

namespace odnn {

struct ConvPoolShape {
  int B;                       // batch
  int ih, iw, ic;              // input (NHWC)
  int oh, ow, oc;              // convolution output
  int kh, kw, sh, sw, pt, pl;  // convolution kernel, strides, top/left padding
  int ph, pw;                  // pooling window = pooling strides, no padding
  int poh, pow;                // pooled output
};

// Whether the fused kernels handle this shape on this CPU: AVX2 + FMA, a patch of at most 128
// values, 8 to 64 output channels in steps of 8, at most 255 positions in a pooling window (the
// argmax is a byte).
bool convPoolSupported(const ConvPoolShape& s);

// pooled[b, py, px, c] = max over the window of relu(conv(x) + bias); arg = the window position
// (row-major) of the first maximum, as oneDNN's and tfjs' max pooling choose it.
void convPoolForward(const ConvPoolShape& s, const float* x, const float* w, const float* bias, float* pooled,
                     uint8_t* arg);

// From g = the gradient w.r.t. the pooled output: dW (hwio), dBias (when not null), and the
// convolution output's activity penalty (a1 = l1 / B, a2 = 2 l2 / B, both 0 for none) with its
// sums sa = Σ|y|, sq = Σy² over every convolution output (the ones no pooling window covers too).
void convPoolBackward(const ConvPoolShape& s, const float* x, const float* w, const float* bias, const float* pooled,
                      const uint8_t* arg, const float* g, float* dW, float* dBias, bool activity, float a1, float a2,
                      double& sa, double& sq);

}  // namespace odnn

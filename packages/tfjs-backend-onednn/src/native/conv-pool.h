// A convolution with a ReLU, followed by a non-overlapping max pooling (and the Dropout after it,
// if any), as one forward and one backward kernel for the whole-step path (step.cc), used where
// the convolution needs no input gradient (the network's first weighted layer) and its filters
// are small.
//
// Why: for the tutorial CNN the first convolution (1 -> 32 channels, 3x3) is ~100 MFLOP per step
// but writes and re-reads a 21.6 MB activation five times through separate primitives (conv with
// ReLU, pooling forward, pooling backward, the ReLU's backward, backward weights): ~14 ms of the
// ~44 CPU ms a step takes, bound by memory traffic, not by arithmetic. Fused, the forward writes
// only the pooled (and dropped-out) output, in the layout the next convolution reads (no
// reorder), and each channel's argmax within its window (1 byte); the backward recomputes the
// convolution's patches from the input (9 values) instead of reading the activation back: the
// activation is never stored.
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

// What becomes of the pooled values: an optional Regula seeded Dropout after the pooling (the same
// masks as dropoutForward in step.cc: element i of the pooled NHWC batch is kept when
// mix32(key ^ mix32(i)) >= threshold, and scaled), and the layout they are written in: NHWC
// (block 0), or oneDNN's nChw8c / nChw16c (block 8 / 16) when the next convolution reads that.
struct ConvPoolOut {
  int block = 0;
  bool drop = false;
  uint32_t key = 0, threshold = 0;
  float scale = 1.f;
};

// Whether the fused kernels handle this shape on this CPU: AVX2 + FMA, a patch of at most 128
// values, 8 to 64 output channels in steps of 8, at most 254 positions in a pooling window (the
// argmax is a byte, 255 meaning "no gradient").
bool convPoolSupported(const ConvPoolShape& s);

// y = dropout(max over the window of relu(conv(x) + bias)) in out's layout; arg (NHWC, a byte per
// pooled value) = the window position (row-major) of the first maximum, as oneDNN's and tfjs' max
// pooling choose it, or 255 where no gradient flows back (the maximum is not > 0, or dropped).
void convPoolForward(const ConvPoolShape& s, const ConvPoolOut& out, const float* x, const float* w, const float* bias,
                     float* y, uint8_t* arg);

// From g = the gradient w.r.t. y (out's layout): dW (hwio), dBias (when not null), and the
// convolution output's activity penalty (a1 = l1 / B, a2 = 2 l2 / B, both 0 for none) with its
// sums sa = Σ|y|, sq = Σy² over every convolution output (the ones no pooling window covers too).
void convPoolBackward(const ConvPoolShape& s, const ConvPoolOut& out, const float* x, const float* w, const float* bias,
                      const uint8_t* arg, const float* g, float* dW, float* dBias, bool activity, float a1, float a2,
                      double& sa, double& sq);

}  // namespace odnn

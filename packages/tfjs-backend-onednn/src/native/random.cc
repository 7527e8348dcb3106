// The Alea generator of seedrandom (what tfjs' randomUniform and dropout use),
// reproduced bit for bit. Alea's state s0..s2 are multiples of 2^-32 and its
// carry c is an integer, so t = 2091639 * s0 + c * 2^-32 is exactly
// (2091639 * x0 + c) / 2^32 with x0 = s0 * 2^32: the next state is the low
// 32 bits of that integer and the new carry its high bits.
#include <cmath>

#include "common.h"

namespace odnn {

namespace {

constexpr double kTwoPow32 = 4294967296.0;

struct Alea {
  uint64_t x0, x1, x2, c;
  explicit Alea(const double* st) {
    // st = [c, s0, s1, s2] as seedrandom's state() reports them.
    c = static_cast<uint64_t>(st[0]);
    x0 = static_cast<uint64_t>(st[1] * kTwoPow32);
    x1 = static_cast<uint64_t>(st[2] * kTwoPow32);
    x2 = static_cast<uint64_t>(st[3] * kTwoPow32);
  }
  void store(double* st) const {
    st[0] = static_cast<double>(c);
    st[1] = static_cast<double>(x0) / kTwoPow32;
    st[2] = static_cast<double>(x1) / kTwoPow32;
    st[3] = static_cast<double>(x2) / kTwoPow32;
  }
  inline double next() {
    const uint64_t t = 2091639ull * x0 + c;
    x0 = x1;
    x1 = x2;
    c = t >> 32;
    x2 = t & 0xffffffffull;
    return static_cast<double>(x2) * (1.0 / kTwoPow32);
  }
};

double* stateArg(const Args& a, size_t i) {
  bool isTyped = false;
  napi_is_typedarray(a.env, a.at(i), &isTyped);
  if (!isTyped) throw ArgError("state must be a Float64Array");
  napi_typedarray_type t;
  size_t n;
  void* data;
  napi_value ab;
  size_t off;
  napi_get_typedarray_info(a.env, a.at(i), &t, &n, &data, &ab, &off);
  if (t != napi_float64_array || n < 4) throw ArgError("state must be a Float64Array of 4");
  return static_cast<double*>(data);
}

}  // namespace

// uniform(out, state: Float64Array[4], min, range): out[i] = fround(min + range * next())
napi_value uniform(const Args& a) {
  size_t n;
  float* out = a.f32(0, &n);
  double* st = stateArg(a, 1);
  const double mn = a.num(2), range = a.num(3);
  Alea g(st);
  for (size_t i = 0; i < n; i++) out[i] = static_cast<float>(mn + range * g.next());
  g.store(st);
  return undefinedValue(a.env);
}

namespace {

// Fills out[0..n) with the tfjs dropout multiplier floor(u + keepProb) /
// keepProb, each step rounded to float32. As u < 1 and 0 < keepProb < 1,
// floor(u + keepProb) is 1 exactly when the float32 sum reaches 1, so the
// multiplier is either 1 / keepProb (the same float32 division) or +0. The
// generator runs first (a serial recurrence), then a vectorisable pass maps u.
void fillMask(float* out, size_t n, Alea& g, float keep, int threads) {
  for (size_t i = 0; i < n; i++) out[i] = static_cast<float>(g.next());
  const float scale = 1.f / keep;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (size_t i = 0; i < n; i++) out[i] = out[i] + keep >= 1.f ? scale : 0.f;
}

void checkKeep(float keep) {
  if (!(keep > 0.f && keep < 1.f)) throw ArgError("dropoutMask: keepProb must be in (0, 1)");
}

}  // namespace

// dropoutMask(out, state, keepProb): the mask computed now; state advances.
napi_value dropoutMask(const Args& a) {
  size_t n;
  float* out = a.f32(0, &n);
  double* st = stateArg(a, 1);
  const float keep = static_cast<float>(a.num(2));
  checkKeep(keep);
  Alea g(st);
  fillMask(out, n, g, keep, threadsFor(n));
  g.store(st);
  return undefinedValue(a.env);
}

// dropoutMaskSegments(out, states: Float64Array[4 * T], offsets: Int32Array[T + 1], keepProb):
// the same mask as dropoutMask, generated in T segments in parallel; segment
// t covers [offsets[t], offsets[t+1]) and starts from states[4t..4t+3], the
// generator state after offsets[t] draws (computed by jumping ahead, see
// src/dropout.ts).
napi_value dropoutMaskSegments(const Args& a) {
  size_t n, ns, no;
  float* out = a.f32(0, &n);
  const double* st = stateArg(a, 1);
  napi_typedarray_type t;
  size_t nst;
  void* data;
  napi_value ab;
  size_t off;
  napi_get_typedarray_info(a.env, a.at(1), &t, &nst, &data, &ab, &off);
  ns = nst / 4;
  const int32_t* offsets = a.i32(2, &no);
  const float keep = static_cast<float>(a.num(3));
  checkKeep(keep);
  if (ns == 0 || no != ns + 1 || offsets[0] != 0 || static_cast<size_t>(offsets[ns]) != n) {
    throw ArgError("dropoutMaskSegments: offsets must run from 0 to out.length, one segment per state");
  }
  for (size_t i = 0; i < ns; i++) {
    if (offsets[i + 1] < offsets[i]) throw ArgError("dropoutMaskSegments: offsets must not decrease");
  }
  const int64_t segments = static_cast<int64_t>(ns);
#pragma omp parallel for num_threads(static_cast<int>(std::min<int64_t>(segments, threads()))) schedule(static, 1)
  for (int64_t i = 0; i < segments; i++) {
    Alea g(st + 4 * i);
    fillMask(out + offsets[i], static_cast<size_t>(offsets[i + 1] - offsets[i]), g, keep, 1);
  }
  return undefinedValue(a.env);
}

}  // namespace odnn

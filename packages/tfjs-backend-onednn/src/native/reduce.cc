// Reductions over one contiguous block of axes: x viewed as [O, R, I] is
// reduced over R into out[O, I]. Sums accumulate in double (like the JS
// numbers the cpu backend accumulates in).
#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"

namespace odnn {

namespace {

// Reduce op codes shared with src/native.ts (REDUCE).
enum ReduceOp { kSum = 0, kMean, kMax, kMin };

inline float pickMax(float m, float v) { return (v > m || v != v) && m == m ? v : m; }
inline float pickMin(float m, float v) { return (v < m || v != v) && m == m ? v : m; }

void reduceSum(const float* x, float* out, int64_t O, int64_t R, int64_t I, double scale) {
  const size_t work = static_cast<size_t>(O * R * I);
  const int nt = threadsFor(work);
  if (I == 1) {
    if (O >= nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
      for (int64_t o = 0; o < O; o++) {
        const float* p = x + o * R;
        double s = 0;
        for (int64_t r = 0; r < R; r++) s += p[r];
        out[o] = static_cast<float>(s * scale);
      }
      return;
    }
    for (int64_t o = 0; o < O; o++) {
      const float* p = x + o * R;
      double s = 0;
#pragma omp parallel for num_threads(nt) reduction(+ : s) schedule(static)
      for (int64_t r = 0; r < R; r++) s += p[r];
      out[o] = static_cast<float>(s * scale);
    }
    return;
  }
  if (O >= nt * 2) {
#pragma omp parallel num_threads(nt)
    {
      std::vector<double> acc(static_cast<size_t>(I));
#pragma omp for schedule(static)
      for (int64_t o = 0; o < O; o++) {
        std::fill(acc.begin(), acc.end(), 0.0);
        const float* p = x + o * R * I;
        for (int64_t r = 0; r < R; r++) {
          const float* row = p + r * I;
          for (int64_t i = 0; i < I; i++) acc[i] += row[i];
        }
        for (int64_t i = 0; i < I; i++) out[o * I + i] = static_cast<float>(acc[i] * scale);
      }
    }
    return;
  }
  // Few outputs rows (e.g. a bias gradient): split R between threads, then combine.
  for (int64_t o = 0; o < O; o++) {
    const float* p = x + o * R * I;
    std::vector<double> total(static_cast<size_t>(I), 0.0);
#pragma omp parallel num_threads(nt)
    {
      std::vector<double> acc(static_cast<size_t>(I), 0.0);
#pragma omp for schedule(static) nowait
      for (int64_t r = 0; r < R; r++) {
        const float* row = p + r * I;
        for (int64_t i = 0; i < I; i++) acc[i] += row[i];
      }
#pragma omp critical
      for (int64_t i = 0; i < I; i++) total[i] += acc[i];
    }
    for (int64_t i = 0; i < I; i++) out[o * I + i] = static_cast<float>(total[i] * scale);
  }
}

template <float (*Pick)(float, float)>
void reduceExtreme(const float* x, float* out, int64_t O, int64_t R, int64_t I) {
  const int nt = threadsFor(static_cast<size_t>(O * R * I));
  if (I == 1) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t o = 0; o < O; o++) {
      const float* p = x + o * R;
      float m = p[0];
      for (int64_t r = 1; r < R; r++) m = Pick(m, p[r]);
      out[o] = m;
    }
    return;
  }
#pragma omp parallel for num_threads(nt) schedule(static) collapse(2)
  for (int64_t o = 0; o < O; o++) {
    for (int64_t i = 0; i < I; i++) {
      const float* p = x + o * R * I + i;
      float m = p[0];
      for (int64_t r = 1; r < R; r++) m = Pick(m, p[r * I]);
      out[o * I + i] = m;
    }
  }
}

}  // namespace

// reduce(x, out, O, R, I, op)
napi_value reduce(const Args& a) {
  size_t nx, no;
  const float* x = a.f32(0, &nx);
  float* out = a.f32(1, &no);
  const int64_t O = a.int32(2), R = a.int32(3), I = a.int32(4);
  const int op = a.int32(5);
  needLen(nx, static_cast<size_t>(O * R * I), "reduce x");
  needLen(no, static_cast<size_t>(O * I), "reduce output");
  if (O * I == 0) return undefinedValue(a.env);
  if (R == 0) {
    const float fill = op == kSum ? 0.f : op == kMean ? NAN : op == kMax ? -INFINITY : INFINITY;
    std::fill(out, out + O * I, fill);
    return undefinedValue(a.env);
  }
  switch (op) {
    case kSum: reduceSum(x, out, O, R, I, 1.0); break;
    case kMean: reduceSum(x, out, O, R, I, 1.0 / static_cast<double>(R)); break;
    case kMax: reduceExtreme<pickMax>(x, out, O, R, I); break;
    case kMin: reduceExtreme<pickMin>(x, out, O, R, I); break;
    default: throw ArgError("reduce: unknown op " + std::to_string(op));
  }
  return undefinedValue(a.env);
}

}  // namespace odnn

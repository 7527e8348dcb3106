// Element-wise kernels: broadcasting binary ops, unary ops, AddN and softmax.
// Plain loops (auto-vectorised) parallelised with OpenMP above a size
// threshold. Results are rounded to float32 like the tfjs cpu kernels.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common.h"

namespace odnn {

namespace {

// Binary op codes shared with src/native.ts (BINARY).
enum BinaryOp { kAdd = 0, kSub, kMul, kDiv, kMax, kMin, kSquaredDiff, kPow };

struct OpAdd { static float f(float a, float b) { return a + b; } };
struct OpSub { static float f(float a, float b) { return a - b; } };
struct OpMul { static float f(float a, float b) { return a * b; } };
struct OpDiv { static float f(float a, float b) { return a / b; } };
// tfjs' cpu Maximum/Minimum propagate NaN like Math.max / Math.min.
struct OpMax { static float f(float a, float b) { return (a != a || b != b) ? NAN : (a > b ? a : b); } };
struct OpMin { static float f(float a, float b) { return (a != a || b != b) ? NAN : (a < b ? a : b); } };
struct OpSqDiff { static float f(float a, float b) { float d = a - b; return d * d; } };
struct OpPow { static float f(float a, float b) { return static_cast<float>(std::pow(double(a), double(b))); } };

constexpr int kMaxRank = 8;

// Output dims after dropping size-1 dims and merging neighbours with the same
// broadcast pattern; strides are element strides into a and b (0 = broadcast).
struct Plan {
  int nd = 0;
  int64_t dims[kMaxRank];
  int64_t sa[kMaxRank];
  int64_t sb[kMaxRank];
  int64_t size = 1;
};

Plan makePlan(const int32_t* as, int ra, const int32_t* bs, int rb) {
  if (ra > kMaxRank || rb > kMaxRank) throw ArgError("binary: rank above 8");
  const int r = std::max(ra, rb);
  int64_t dims[kMaxRank];
  bool fa[kMaxRank], fb[kMaxRank];
  int nd = 0;
  Plan p;
  for (int i = 0; i < r; i++) {
    const int64_t da = i < r - ra ? 1 : as[i - (r - ra)];
    const int64_t db = i < r - rb ? 1 : bs[i - (r - rb)];
    if (da != db && da != 1 && db != 1) throw ArgError("binary: shapes are not broadcastable");
    const int64_t od = std::max(da, db);
    p.size *= od;
    if (od == 1) continue;
    const bool a = da != 1, b = db != 1;
    if (nd > 0 && fa[nd - 1] == a && fb[nd - 1] == b) {
      dims[nd - 1] *= od;
    } else {
      dims[nd] = od;
      fa[nd] = a;
      fb[nd] = b;
      nd++;
    }
  }
  if (nd == 0) {  // all dims 1: a single element
    nd = 1;
    dims[0] = 1;
    fa[0] = fb[0] = true;
  }
  p.nd = nd;
  int64_t ra_ = 1, rb_ = 1;
  for (int i = nd - 1; i >= 0; i--) {
    p.dims[i] = dims[i];
    p.sa[i] = fa[i] ? ra_ : 0;
    p.sb[i] = fb[i] ? rb_ : 0;
    if (fa[i]) ra_ *= dims[i];
    if (fb[i]) rb_ *= dims[i];
  }
  return p;
}

template <class Op>
inline void innerLoop(const float* __restrict a, const float* __restrict b, float* __restrict o, int64_t n, bool va,
                      bool vb) {
  if (va && vb) {
    for (int64_t i = 0; i < n; i++) o[i] = Op::f(a[i], b[i]);
  } else if (va) {
    const float bv = *b;
    for (int64_t i = 0; i < n; i++) o[i] = Op::f(a[i], bv);
  } else if (vb) {
    const float av = *a;
    for (int64_t i = 0; i < n; i++) o[i] = Op::f(av, b[i]);
  } else {
    const float v = Op::f(*a, *b);
    for (int64_t i = 0; i < n; i++) o[i] = v;
  }
}

template <class Op>
void runBinary(const float* a, const float* b, float* o, const Plan& p) {
  const int last = p.nd - 1;
  const int64_t inner = p.dims[last];
  const bool va = p.sa[last] != 0, vb = p.sb[last] != 0;
  int64_t outer = 1;
  for (int i = 0; i < last; i++) outer *= p.dims[i];
  const int nt = threadsFor(static_cast<size_t>(p.size));
  if (outer == 1) {
    // One contiguous run: split it between threads.
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num(), n = omp_get_num_threads();
      const int64_t chunk = (inner + n - 1) / n;
      const int64_t lo = std::min<int64_t>(inner, t * chunk), hi = std::min<int64_t>(inner, lo + chunk);
      if (hi > lo) innerLoop<Op>(va ? a + lo : a, vb ? b + lo : b, o + lo, hi - lo, va, vb);
    }
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t chunk = (outer + n - 1) / n;
    const int64_t lo = std::min<int64_t>(outer, t * chunk), hi = std::min<int64_t>(outer, lo + chunk);
    if (hi > lo) {
      int64_t idx[kMaxRank];
      int64_t offA = 0, offB = 0, rem = lo;
      for (int i = last - 1; i >= 0; i--) {
        idx[i] = rem % p.dims[i];
        rem /= p.dims[i];
        offA += idx[i] * p.sa[i];
        offB += idx[i] * p.sb[i];
      }
      for (int64_t k = lo; k < hi; k++) {
        innerLoop<Op>(a + offA, b + offB, o + k * inner, inner, va, vb);
        for (int i = last - 1; i >= 0; i--) {
          if (++idx[i] < p.dims[i]) {
            offA += p.sa[i];
            offB += p.sb[i];
            break;
          }
          offA -= (p.dims[i] - 1) * p.sa[i];
          offB -= (p.dims[i] - 1) * p.sb[i];
          idx[i] = 0;
        }
      }
    }
  }
}

// Unary op codes shared with src/native.ts (UNARY).
enum UnaryOp {
  kRelu = 0, kRelu6, kStep, kSqrt, kSquare, kExp, kLog, kNeg, kFloor, kAbs, kSigmoid, kTanh, kRsqrt,
  kReciprocal, kLeakyRelu, kElu, kClip, kCeil, kSign, kLog1p, kExpm1, kSoftplus
};

template <class F>
void mapUnary(const float* __restrict x, float* __restrict y, int64_t n, F f) {
  const int nt = threadsFor(static_cast<size_t>(n));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; i++) y[i] = f(x[i]);
}

// 4-wide SIMD through GCC vector extensions, for ops whose selects the
// auto-vectoriser leaves as (badly predicted) branches. FV maps a v4sf, FS a
// float (the tail); both must compute the same thing.
typedef float v4sf __attribute__((vector_size(16)));
typedef int32_t v4si __attribute__((vector_size(16)));

inline v4sf splat(float v) { return v4sf{v, v, v, v}; }

template <class FV, class FS>
void mapUnaryV(const float* __restrict x, float* __restrict y, int64_t n, FV fv, FS fs) {
  const int64_t blocks = n / 4;
  const int nt = threadsFor(static_cast<size_t>(n));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t b = 0; b < blocks; b++) {
    v4sf v;
    std::memcpy(&v, x + 4 * b, sizeof v);
    const v4sf r = fv(v);
    std::memcpy(y + 4 * b, &r, sizeof r);
  }
  for (int64_t i = blocks * 4; i < n; i++) y[i] = fs(x[i]);
}

// floor without SSE4.1's roundps (the addon targets baseline x86-64): exact
// for |v| < 2^23, where float can have a fractional part; larger values,
// infinities and NaN are integral (or NaN) already and pass through.
inline v4sf floorV(v4sf v) {
  const v4sf t = __builtin_convertvector(__builtin_convertvector(v, v4si), v4sf);
  const v4sf f = t > v ? t - splat(1.f) : t;
  // Same-size vector casts reinterpret the bits (GCC vector extension semantics).
  const v4sf a = (v4sf)((v4si)v & 0x7fffffff);
  return a < splat(8388608.f) ? f : v;
}

inline float floorS(float v) { return std::floor(v); }

}  // namespace

// binary(a, aShape: Int32Array, b, bShape: Int32Array, out, op)
napi_value binary(const Args& a) {
  size_t na, nb, no, ra, rb;
  const float* x = a.f32(0, &na);
  const int32_t* xs = a.i32(1, &ra);
  const float* y = a.f32(2, &nb);
  const int32_t* ys = a.i32(3, &rb);
  float* o = a.f32(4, &no);
  const int op = a.int32(5);
  Plan p = makePlan(xs, static_cast<int>(ra), ys, static_cast<int>(rb));
  needLen(no, static_cast<size_t>(p.size), "binary output");
  int64_t sizeA = 1, sizeB = 1;
  for (size_t i = 0; i < ra; i++) sizeA *= xs[i];
  for (size_t i = 0; i < rb; i++) sizeB *= ys[i];
  needLen(na, static_cast<size_t>(sizeA), "binary a");
  needLen(nb, static_cast<size_t>(sizeB), "binary b");
  if (p.size == 0) return undefinedValue(a.env);
  switch (op) {
    case kAdd: runBinary<OpAdd>(x, y, o, p); break;
    case kSub: runBinary<OpSub>(x, y, o, p); break;
    case kMul: runBinary<OpMul>(x, y, o, p); break;
    case kDiv: runBinary<OpDiv>(x, y, o, p); break;
    case kMax: runBinary<OpMax>(x, y, o, p); break;
    case kMin: runBinary<OpMin>(x, y, o, p); break;
    case kSquaredDiff: runBinary<OpSqDiff>(x, y, o, p); break;
    case kPow: runBinary<OpPow>(x, y, o, p); break;
    default: throw ArgError("binary: unknown op " + std::to_string(op));
  }
  return undefinedValue(a.env);
}

// unary(x, out, op, alpha, beta)
napi_value unary(const Args& a) {
  size_t nx, ny;
  const float* x = a.f32(0, &nx);
  float* y = a.f32(1, &ny);
  const int op = a.int32(2);
  const float alpha = a.argc > 3 ? static_cast<float>(a.num(3)) : 0.f;
  const float beta = a.argc > 4 ? static_cast<float>(a.num(4)) : 0.f;
  needLen(ny, nx, "unary output");
  const int64_t n = static_cast<int64_t>(nx);
  // Transcendentals go through double like Math.* in the cpu backend.
  switch (op) {
    case kRelu: mapUnary(x, y, n, [](float v) { return v != v ? v : (v > 0.f ? v : 0.f); }); break;
    case kRelu6: mapUnary(x, y, n, [](float v) { return v != v ? v : std::min(std::max(v, 0.f), 6.f); }); break;
    case kStep:
      mapUnaryV(
          x, y, n,
          [alpha](v4sf v) {
            const v4sf r = v > splat(0.f) ? splat(1.f) : splat(alpha);
            return v != v ? v : r;
          },
          [alpha](float v) { return v != v ? v : (v > 0.f ? 1.f : alpha); });
      break;
    case kSqrt: mapUnary(x, y, n, [](float v) { return std::sqrt(v); }); break;
    case kSquare: mapUnary(x, y, n, [](float v) { return v * v; }); break;
    case kExp: mapUnary(x, y, n, [](float v) { return static_cast<float>(std::exp(double(v))); }); break;
    case kLog: mapUnary(x, y, n, [](float v) { return static_cast<float>(std::log(double(v))); }); break;
    case kNeg: mapUnary(x, y, n, [](float v) { return -v; }); break;
    case kFloor: mapUnaryV(x, y, n, floorV, floorS); break;
    case kAbs: mapUnary(x, y, n, [](float v) { return std::fabs(v); }); break;
    case kSigmoid:
      mapUnary(x, y, n, [](float v) { return static_cast<float>(1.0 / (1.0 + std::exp(-double(v)))); });
      break;
    case kTanh: mapUnary(x, y, n, [](float v) { return static_cast<float>(std::tanh(double(v))); }); break;
    case kRsqrt: mapUnary(x, y, n, [](float v) { return static_cast<float>(1.0 / std::sqrt(double(v))); }); break;
    case kReciprocal: mapUnary(x, y, n, [](float v) { return 1.f / v; }); break;
    case kLeakyRelu:
      mapUnaryV(
          x, y, n, [alpha](v4sf v) { return v < splat(0.f) ? v * splat(alpha) : v; },
          [alpha](float v) { return v < 0.f ? alpha * v : v; });
      break;
    case kElu:
      mapUnary(x, y, n, [](float v) { return v >= 0.f ? v : static_cast<float>(std::exp(double(v)) - 1.0); });
      break;
    case kClip:
      mapUnary(x, y, n, [alpha, beta](float v) { return v > beta ? beta : (v < alpha ? alpha : v); });
      break;
    case kCeil:
      mapUnaryV(x, y, n, [](v4sf v) { return -floorV(-v); }, [](float v) { return std::ceil(v); });
      break;
    case kSign: mapUnary(x, y, n, [](float v) { return v < 0.f ? -1.f : (v > 0.f ? 1.f : 0.f); }); break;
    case kLog1p: mapUnary(x, y, n, [](float v) { return static_cast<float>(std::log1p(double(v))); }); break;
    case kExpm1: mapUnary(x, y, n, [](float v) { return static_cast<float>(std::expm1(double(v))); }); break;
    case kSoftplus:
      // Matches tfjs cpu Softplus (threshold log(eps) + 2).
      mapUnary(x, y, n, [](float v) {
        const double e = 1.1920928955078125e-7, th = std::log(e) + 2.0, xd = v;
        if (xd > -th) return v;
        if (xd < th) return static_cast<float>(std::exp(xd));
        return static_cast<float>(std::log(std::exp(xd) + 1.0));
      });
      break;
    default: throw ArgError("unary: unknown op " + std::to_string(op));
  }
  return undefinedValue(a.env);
}

// addN(out, x0, x1, ...) — element-wise sum of equally sized arrays.
napi_value addN(const Args& a) {
  size_t no;
  float* o = a.f32(0, &no);
  std::vector<const float*> xs;
  for (size_t i = 1; i < a.argc; i++) {
    size_t n;
    xs.push_back(a.f32(i, &n));
    needLen(n, no, "addN input");
  }
  const int64_t n = static_cast<int64_t>(no);
  const int nt = threadsFor(no * std::max<size_t>(1, xs.size()));
  const size_t k = xs.size();
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float s = k ? xs[0][i] : 0.f;
    for (size_t j = 1; j < k; j++) s += xs[j][i];
    o[i] = s;
  }
  return undefinedValue(a.env);
}

// Rows [lo, hi) of reluGrad: dx = dy * step(y) (NaN y propagates, as tfjs' Step does), and the
// per-channel sums of dx added into bacc (float sums over blocks of rows, then double). Compiled for
// AVX-512 / AVX2 too: a per-element double accumulation here cost ~1.7 ns/element.
__attribute__((target_clones("avx512f", "avx2", "default"))) void reluGradRows(const float* __restrict dy,
                                                                                 const float* __restrict y,
                                                                                 float* __restrict dx,
                                                                                 double* __restrict bacc, int64_t lo,
                                                                                 int64_t hi, int64_t C) {
  constexpr int64_t kBlock = 64;
  float facc[512];
  const bool block = bacc != nullptr && C <= 512;
  for (int64_t r0 = lo; r0 < hi; r0 += kBlock) {
    const int64_t r1 = std::min(hi, r0 + kBlock);
    if (block) std::fill(facc, facc + C, 0.f);
    for (int64_t r = r0; r < r1; r++) {
      const float* yr = y + r * C;
      const float* dyr = dy + r * C;
      float* dxr = dx + r * C;
#pragma omp simd
      for (int64_t c = 0; c < C; c++) {
        const float v = yr[c];
        const float s0 = v > 0.f ? 1.f : 0.f;
        const float s = v != v ? v : s0;
        dxr[c] = dyr[c] * s;
      }
      if (block) {
#pragma omp simd
        for (int64_t c = 0; c < C; c++) facc[c] += dxr[c];
      } else if (bacc) {
        for (int64_t c = 0; c < C; c++) bacc[c] += dxr[c];
      }
    }
    if (block) {
      for (int64_t c = 0; c < C; c++) bacc[c] += facc[c];
    }
  }
}

// reluGrad(dy, y, dx, dbias|null, channels): dx = dy * step(y) where y is the
// relu output (y > 0 exactly where the relu input was), computed as tfjs'
// Relu gradient does (mul(dy, step(x))) so results are bit-identical; dbias,
// when given, receives the sum of dx over all but the last (channel) axis
// (per-thread partials added in thread order: deterministic).
napi_value reluGrad(const Args& a) {
  size_t ndy, ny, ndx, nb = 0;
  const float* dy = a.f32(0, &ndy);
  const float* y = a.f32(1, &ny);
  float* dx = a.f32(2, &ndx);
  float* dbias = a.f32OrNull(3, &nb);
  const int64_t channels = a.int32(4);
  needLen(ny, ndy, "reluGrad y");
  needLen(ndx, ndy, "reluGrad dx");
  if (channels <= 0 || ndy % channels != 0) throw ArgError("reluGrad: size is not a multiple of channels");
  if (dbias) needLen(nb, static_cast<size_t>(channels), "reluGrad dbias");
  const int64_t n = static_cast<int64_t>(ndy);
  const int64_t rows = n / channels;
  const int nt = threadsFor(ndy);
  std::vector<double> part(dbias ? static_cast<size_t>(channels) * nt : 0, 0.0);
#pragma omp parallel num_threads(nt)
  {
    const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t chunk = (rows + T - 1) / T;
    const int64_t lo = std::min(rows, t * chunk), hi = std::min(rows, lo + chunk);
    if (hi > lo) reluGradRows(dy, y, dx, dbias ? part.data() + t * channels : nullptr, lo, hi, channels);
  }
  if (dbias) {
    for (int64_t c = 0; c < channels; c++) {
      double total = 0;
      for (int t = 0; t < nt; t++) total += part[static_cast<size_t>(t * channels + c)];
      dbias[c] = static_cast<float>(total);
    }
  }
  return undefinedValue(a.env);
}

// gather(x, indices: Int32Array, out, outer, dim, inner): out[o, j, :] =
// x[o, indices[j], :] for 4-byte elements (float32 or int32). Indices must be
// in [0, dim) (checked; the caller falls back to tfjs for its error message).
napi_value gather(const Args& a) {
  size_t nx, ni, no;
  const uint32_t* x = a.words(0, &nx);
  const int32_t* idx = a.i32(1, &ni);
  uint32_t* out = a.words(2, &no);
  const int64_t outer = a.int32(3), dim = a.int32(4), inner = a.int32(5);
  needLen(nx, static_cast<size_t>(outer * dim * inner), "gather x");
  needLen(no, static_cast<size_t>(outer * static_cast<int64_t>(ni) * inner), "gather out");
  for (size_t j = 0; j < ni; j++) {
    if (idx[j] < 0 || idx[j] >= dim) throw ArgError("gather: index out of range");
  }
  const int64_t rows = outer * static_cast<int64_t>(ni);
  const int nt = threadsFor(static_cast<size_t>(rows * inner));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const int64_t o = r / static_cast<int64_t>(ni), j = r % static_cast<int64_t>(ni);
    std::memcpy(out + r * inner, x + (o * dim + idx[j]) * inner, static_cast<size_t>(inner) * 4);
  }
  return undefinedValue(a.env);
}

// adam(value, m, v, g, outValue, outM, outV, scalars: Float32Array[9]) — one
// Adam step exactly as tfjs' AdamOptimizer computes it, op by op in float32:
// scalars = [beta1, 1-beta1, beta2, 1-beta2, 1-accBeta1, 1-accBeta2, epsilon,
// -learningRate, unused], each already rounded to float32.
napi_value adam(const Args& a) {
  size_t nw, nm, nv, ng, now_, nom, nov, ns;
  const float* W = a.f32(0, &nw);
  const float* M = a.f32(1, &nm);
  const float* V = a.f32(2, &nv);
  const float* G = a.f32(3, &ng);
  float* OW = a.f32(4, &now_);
  float* OM = a.f32(5, &nom);
  float* OV = a.f32(6, &nov);
  const float* sc = a.f32(7, &ns);
  needLen(ns, 8, "adam scalars");
  for (size_t len : {nm, nv, ng, now_, nom, nov}) needLen(len, nw, "adam buffers");
  const float b1 = sc[0], omb1 = sc[1], b2 = sc[2], omb2 = sc[3], omab1 = sc[4], omab2 = sc[5], eps = sc[6],
              negLr = sc[7];
  const int64_t n = static_cast<int64_t>(nw);
  const int nt = threadsFor(nw * 8);
  // Distinct buffers (fresh outputs): `simd` lets the compiler vectorise
  // without runtime alias checks between the seven arrays.
#pragma omp parallel for simd num_threads(nt) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float g = G[i];
    const float m1 = M[i] * b1;
    const float m2 = g * omb1;
    const float mn = m1 + m2;
    const float g2 = g * g;
    const float v1 = V[i] * b2;
    const float v2 = g2 * omb2;
    const float vn = v1 + v2;
    const float mh = mn / omab1;
    const float vh = vn / omab2;
    const float d = std::sqrt(vh) + eps;
    const float q = mh / d;
    const float u = q * negLr;
    OW[i] = u + W[i];
    OM[i] = mn;
    OV[i] = vn;
  }
  return undefinedValue(a.env);
}

// softmax(x, out, rows, cols) over the last axis.
napi_value softmax(const Args& a) {
  size_t nx, ny;
  const float* x = a.f32(0, &nx);
  float* y = a.f32(1, &ny);
  const int64_t rows = a.int32(2), cols = a.int32(3);
  needLen(nx, static_cast<size_t>(rows * cols), "softmax x");
  needLen(ny, static_cast<size_t>(rows * cols), "softmax output");
  const int nt = threadsFor(static_cast<size_t>(rows * cols));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; r++) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    float m = -INFINITY;
    for (int64_t c = 0; c < cols; c++) m = std::max(m, xr[c]);
    double s = 0;
    for (int64_t c = 0; c < cols; c++) {
      const float e = static_cast<float>(std::exp(double(xr[c] - m)));
      yr[c] = e;
      s += e;
    }
    const float sf = static_cast<float>(s);
    for (int64_t c = 0; c < cols; c++) yr[c] = yr[c] / sf;
  }
  return undefinedValue(a.env);
}

}  // namespace odnn

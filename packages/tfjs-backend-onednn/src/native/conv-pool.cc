// Fused Conv2D + ReLU + max pooling for the whole-step path: see conv-pool.h for why.
//
// Written with GCC vector types, 8 channels per AVX2 register, for output channel counts that are
// multiples of 8 (up to 64), as a template on the number of registers so a position's channels
// stay in registers; other shapes, and CPUs without AVX2 + FMA, take the unfused primitives.
//
// The addon is compiled with -ffp-contract=off (the seeded Dropout must match the JS masks bit for
// bit); these loops are plain sums of products, where a fused multiply-add is both faster and
// closer to the exact result, so they opt back in. (And a patch's copy loops stay loops: as memcpy
// calls they cost more than the convolution.)
#pragma GCC optimize("fp-contract=fast", "no-tree-loop-distribute-patterns")
#include "conv-pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include <immintrin.h>

#include "common.h"

#define ODNN_AVX2 __attribute__((target("avx2,fma")))

namespace odnn {

namespace {

constexpr int kMaxPatch = 128;
constexpr int kMaxVectors = 8;  // 64 channels

typedef float vf __attribute__((vector_size(32)));
typedef int32_t vi __attribute__((vector_size(32)));
typedef uint32_t vu __attribute__((vector_size(32)));

ODNN_AVX2 inline vf load(const float* p) {
  vf v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
ODNN_AVX2 inline void store(float* p, vf v) { std::memcpy(p, &v, sizeof v); }
ODNN_AVX2 inline vf splat(float f) { return vf{f, f, f, f, f, f, f, f}; }
ODNN_AVX2 inline vi splatI(int32_t i) { return vi{i, i, i, i, i, i, i, i}; }
// A channel's argmax is a byte: 8 of them widened to the 8 lanes, and back.
ODNN_AVX2 inline vi loadArg(const uint8_t* p) {
  return (vi)_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}
ODNN_AVX2 inline void storeArg(uint8_t* p, vi v) {
  // The low byte of each 32-bit lane, packed into the low 4 bytes of each 128-bit half.
  const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i b = _mm256_shuffle_epi8((__m256i)v, pick);
  const uint32_t lo = uint32_t(_mm256_extract_epi32(b, 0)), hi = uint32_t(_mm256_extract_epi32(b, 4));
  std::memcpy(p, &lo, 4);
  std::memcpy(p + 4, &hi, 4);
}
ODNN_AVX2 inline vu splatU(uint32_t i) { return vu{i, i, i, i, i, i, i, i}; }
// step.cc's mix32, lane by lane.
ODNN_AVX2 inline vu mix32v(vu h) {
  h ^= h >> 16;
  h *= 0x7feb352du;
  h ^= h >> 15;
  h *= 0x846ca68bu;
  h ^= h >> 16;
  return h;
}

constexpr uint8_t kNoGradient = 255;

// Where 8 channels (8v..8v+7) of pooled position `pos` (py · pow + px) of an image lie in y.
inline size_t outAt(const ConvPoolShape& s, const ConvPoolOut& out, int pos, int v) {
  const int c = 8 * v;
  if (out.block == 0) return size_t(pos) * s.oc + c;
  return (size_t(c / out.block) * s.poh * s.pow + pos) * out.block + c % out.block;
}

ODNN_AVX2 inline float hsum(vf v) { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); }

// Where a position's patch values are: every patch lies inside the image, or inside a zero-padded
// copy of it (padding, or windows past the edge), so a patch is its top-left value's address plus
// fixed offsets, in hwio kernel order.
struct Patches {
  int K = 0;
  bool padded = false;
  int hv = 0, wv = 0;  // the (padded) image's height and width
  int off[kMaxPatch];
  explicit Patches(const ConvPoolShape& s) : K(s.kh * s.kw * s.ic) {
    const int needH = (s.oh - 1) * s.sh + s.kh, needW = (s.ow - 1) * s.sw + s.kw;
    padded = s.pt > 0 || s.pl > 0 || needH > s.ih || needW > s.iw;
    hv = padded ? needH : s.ih;
    wv = padded ? needW : s.iw;
    int k = 0;
    for (int i = 0; i < s.kh; i++) {
      for (int j = 0; j < s.kw; j++) {
        for (int ch = 0; ch < s.ic; ch++) off[k++] = (i * wv + j) * s.ic + ch;
      }
    }
  }
  size_t imageSize(const ConvPoolShape& s) const { return size_t(hv) * wv * s.ic; }
  // The image as the patches read it: itself, or its zero-padded copy in `buf`.
  const float* image(const ConvPoolShape& s, const float* x, float* buf) const {
    if (!padded) return x;
    std::fill(buf, buf + imageSize(s), 0.f);
    for (int y = 0; y < s.ih; y++) {
      const int yy = y + s.pt;
      if (yy < 0 || yy >= hv) continue;
      for (int xx0 = 0; xx0 < s.iw; xx0++) {
        const int xx = xx0 + s.pl;
        if (xx < 0 || xx >= wv) continue;
        for (int ch = 0; ch < s.ic; ch++) buf[(size_t(yy) * wv + xx) * s.ic + ch] = x[(size_t(y) * s.iw + xx0) * s.ic + ch];
      }
    }
    return buf;
  }
  // The top-left value of the patch of output (oy, ox).
  const float* at(const ConvPoolShape& s, const float* img, int oy, int ox) const {
    return img + (size_t(oy) * s.sh * wv + size_t(ox) * s.sw) * s.ic;
  }
};

// acc[v] = bias + Σ_k patch[k] · w[k, 8v..8v+7], patch[k] = at[off[k]]
template <int NV>
ODNN_AVX2 inline void convolve(const float* at, const int* off, const float* w, const float* bias, int K, vf* acc) {
  for (int v = 0; v < NV; v++) acc[v] = bias ? load(bias + 8 * v) : splat(0.f);
  for (int k = 0; k < K; k++) {
    const vf p = splat(at[off[k]]);
    const float* wk = w + size_t(k) * NV * 8;
    for (int v = 0; v < NV; v++) acc[v] += p * load(wk + 8 * v);
  }
}

// The same for two positions at once, sharing each weight load between them.
template <int NV>
ODNN_AVX2 inline void convolve2(const float* pa, const float* pb, const int* off, const float* w, const float* bias, int K, vf* a,
                                vf* b) {
  for (int v = 0; v < NV; v++) a[v] = b[v] = bias ? load(bias + 8 * v) : splat(0.f);
  for (int k = 0; k < K; k++) {
    const vf sa = splat(pa[off[k]]), sb = splat(pb[off[k]]);
    const float* wk = w + size_t(k) * NV * 8;
    for (int v = 0; v < NV; v++) {
      const vf wv = load(wk + 8 * v);
      a[v] += sa * wv;
      b[v] += sb * wv;
    }
  }
}

template <int NV>
ODNN_AVX2 void forwardImage(const ConvPoolShape& s, const ConvPoolOut& out, const Patches& P, const float* img, const float* w,
                            const float* bias, float* y, uint8_t* arg, uint32_t first) {
  const int K = P.K;
  const vf zero = splat(0.f), scale = splat(out.scale);
  const vu lanes = vu{0, 1, 2, 3, 4, 5, 6, 7}, key = splatU(out.key), threshold = splatU(out.threshold);
  const vi none = splatI(kNoGradient);
  for (int py = 0; py < s.poh; py++) {
    for (int px = 0; px < s.pow; px++) {
      vf best[NV];
      vi bq[NV];
      for (int v = 0; v < NV; v++) {
        best[v] = splat(-INFINITY);
        bq[v] = splatI(0);
      }
      // Folds one position's ReLU output into the running maximum. Strictly greater: the first
      // maximum in row-major window order wins, as in oneDNN and tfjs.
      auto fold = [&](const vf* acc, int q) __attribute__((always_inline)) {
        const vi qv = splatI(q);
        for (int v = 0; v < NV; v++) {
          const vf a = acc[v] > zero ? acc[v] : zero;
          const vi more = a > best[v];
          best[v] = more ? a : best[v];
          bq[v] = more ? qv : bq[v];
        }
      };
      for (int dy = 0; dy < s.ph; dy++) {
        const int oy = py * s.ph + dy;
        int dx = 0;
        for (; dx + 1 < s.pw; dx += 2) {
          vf a[NV], b[NV];
          convolve2<NV>(P.at(s, img, oy, px * s.pw + dx), P.at(s, img, oy, px * s.pw + dx + 1), P.off, w, bias, K, a, b);
          fold(a, dy * s.pw + dx);
          fold(b, dy * s.pw + dx + 1);
        }
        if (dx < s.pw) {
          vf a[NV];
          convolve<NV>(P.at(s, img, oy, px * s.pw + dx), P.off, w, bias, K, a);
          fold(a, dy * s.pw + dx);
        }
      }
      const int pos = py * s.pow + px;
      for (int v = 0; v < NV; v++) {
        const size_t o = size_t(pos) * NV * 8 + 8 * v;  // NHWC within the image
        vi q = best[v] > zero ? bq[v] : none;
        vf value = best[v];
        if (out.drop) {
          // x · multiplier (not a select), as dropoutForward computes it: bit for bit the same.
          const vi keep = mix32v(key ^ mix32v(splatU(first + uint32_t(o)) + lanes)) >= threshold;
          value = value * (keep ? scale : zero);
          q = keep ? q : none;
        }
        store(y + outAt(s, out, pos, v), value);
        storeArg(arg + o, q);
      }
    }
  }
}

// Scratch for one thread: the padded image, and a row's patches and gradients w.r.t. the convolution output.
struct Scratch {
  std::vector<float> image;
  std::vector<const float*> at;
  std::vector<float> gz;
};

// One image's contribution, added into dW (K x C floats), dB (C), sa, sq.
template <int NV>
ODNN_AVX2 void backwardImage(const ConvPoolShape& s, const ConvPoolOut& out, const Patches& P, const float* img, const float* w,
                             const float* bias, const uint8_t* arg, const float* g, float* dW, float* dB, bool activity, float a1, float a2,
                             double& sa, double& sq, Scratch& scratch) {
  constexpr int C = NV * 8;
  const int K = P.K;
  const vf zero = splat(0.f), one = splat(1.f), va1 = splat(a1), va2 = splat(a2), scale = splat(out.scale);
  const float** ats = scratch.at.data();
  float* gzRow = scratch.gz.data();
  for (int oy = 0; oy < s.oh; oy++) {
    const int py = oy / s.ph;
    // Outputs past the last full pooling window reach the loss only through the activity penalty.
    const bool rowCovered = py < s.poh;
    if (!rowCovered && !activity) continue;
    vf ra = zero, rq = zero;
    int n = 0;  // positions of this row with a gradient
    for (int ox = 0; ox < s.ow; ox++) {
      const int px = ox / s.pw;
      const bool covered = rowCovered && px < s.pow;
      if (!covered && !activity) continue;
      const float* at = ats[n] = P.at(s, img, oy, ox);
      float* gz = gzRow + size_t(n) * C;
      n++;
      const vi qv = splatI((oy - py * s.ph) * s.pw + (ox - px * s.pw));
      const int pos = covered ? py * s.pow + px : 0;
      const size_t o = size_t(pos) * C;
      if (activity) {
        vf acc[NV];
        convolve<NV>(at, P.off, w, bias, K, acc);
        for (int v = 0; v < NV; v++) {
          const vf a = acc[v] > zero ? acc[v] : zero;
          const vf gq = covered ? (loadArg(arg + o + 8 * v) == qv ? load(g + outAt(s, out, pos, v)) * scale : zero) : zero;
          const vi pos = a > zero;
          const vf sgn = pos ? one : zero;  // a >= 0 after the ReLU
          const vf t = gq + (va1 * sgn + va2 * a);
          store(gz + 8 * v, pos ? t : zero);
          ra += a;
          rq += a * a;
        }
      } else {
        for (int v = 0; v < NV; v++) {
          // The dropout's backward (g · scale), the pooling's (to the argmax) and the ReLU's (255: none).
          store(gz + 8 * v, loadArg(arg + o + 8 * v) == qv ? load(g + outAt(s, out, pos, v)) * scale : zero);
        }
      }
    }
    if (activity) {
      sa += hsum(ra);
      sq += hsum(rq);
    }
    // dB += Σ gz, dW[k] += Σ patch[k] · gz over the row's positions, each sum in registers.
    {
      vf acc[NV];
      for (int v = 0; v < NV; v++) acc[v] = zero;
      for (int i = 0; i < n; i++) {
        for (int v = 0; v < NV; v++) acc[v] += load(gzRow + size_t(i) * C + 8 * v);
      }
      for (int v = 0; v < NV; v++) store(dB + 8 * v, load(dB + 8 * v) + acc[v]);
    }
    for (int k = 0; k < K; k++) {
      vf acc[NV];
      for (int v = 0; v < NV; v++) acc[v] = zero;
      const int ok = P.off[k];
      for (int i = 0; i < n; i++) {
        const vf p = splat(ats[i][ok]);
        for (int v = 0; v < NV; v++) acc[v] += p * load(gzRow + size_t(i) * C + 8 * v);
      }
      float* dk = dW + size_t(k) * C;
      for (int v = 0; v < NV; v++) store(dk + 8 * v, load(dk + 8 * v) + acc[v]);
    }
  }
}

using ForwardFn = void (*)(const ConvPoolShape&, const ConvPoolOut&, const Patches&, const float*, const float*, const float*, float*,
                           uint8_t*, uint32_t);
using BackwardFn = void (*)(const ConvPoolShape&, const ConvPoolOut&, const Patches&, const float*, const float*, const float*,
                            const uint8_t*, const float*, float*, float*, bool, float, float, double&, double&, Scratch&);

template <int... NV>
struct Table {
  static constexpr ForwardFn fwd[] = {forwardImage<NV>...};
  static constexpr BackwardFn bwd[] = {backwardImage<NV>...};
};
using Kernels = Table<1, 2, 3, 4, 5, 6, 7, 8>;

// Images [lo, hi) of thread t of T.
inline void span(int B, int t, int T, int& lo, int& hi) {
  const int chunk = (B + T - 1) / T;
  lo = std::min(B, t * chunk);
  hi = std::min(B, lo + chunk);
}

}  // namespace

bool convPoolSupported(const ConvPoolShape& s) {
  static const bool cpu = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return cpu && s.kh * s.kw * s.ic <= kMaxPatch && s.oc % 8 == 0 && s.oc / 8 >= 1 && s.oc / 8 <= kMaxVectors &&
         s.ph * s.pw < kNoGradient && s.poh >= 1 && s.pow >= 1 && s.poh * s.ph <= s.oh && s.pow * s.pw <= s.ow;
}

void convPoolForward(const ConvPoolShape& s, const ConvPoolOut& out, const float* x, const float* w, const float* bias,
                     float* y, uint8_t* arg) {
  const size_t inImage = size_t(s.ih) * s.iw * s.ic, outImage = size_t(s.poh) * s.pow * s.oc;
  const ForwardFn f = Kernels::fwd[s.oc / 8 - 1];
  const Patches P(s);
  const int nt = threadsFor(size_t(s.B) * s.oh * s.ow * s.oc);
#pragma omp parallel num_threads(nt)
  {
    int lo, hi;
    span(s.B, omp_get_thread_num(), omp_get_num_threads(), lo, hi);
    std::vector<float> buf(P.padded ? P.imageSize(s) : 0);
    for (int b = lo; b < hi; b++) {
      f(s, out, P, P.image(s, x + b * inImage, buf.data()), w, bias, y + b * outImage, arg + b * outImage,
        static_cast<uint32_t>(b * outImage));
    }
  }
}

void convPoolBackward(const ConvPoolShape& s, const ConvPoolOut& out, const float* x, const float* w, const float* bias,
                      const uint8_t* arg, const float* g, float* dW, float* dBias, bool activity, float a1, float a2,
                      double& sa, double& sq) {
  const size_t inImage = size_t(s.ih) * s.iw * s.ic, outImage = size_t(s.poh) * s.pow * s.oc;
  const size_t K = size_t(s.kh) * s.kw * s.ic, C = size_t(s.oc);
  const BackwardFn f = Kernels::bwd[s.oc / 8 - 1];
  const Patches P(s);
  const int nt = threadsFor(size_t(s.B) * s.oh * s.ow * s.oc);
  // Per thread: K·C kernel sums, C bias sums, Σ|y|, Σy² (double), added in thread order afterwards,
  // so a rerun gives the same bits.
  const size_t stride = K * C + C + 2;
  std::vector<double> part(size_t(nt) * stride, 0.0);
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    int lo, hi;
    span(s.B, t, omp_get_num_threads(), lo, hi);
    double* mine = part.data() + size_t(t) * stride;
    Scratch scratch{std::vector<float>(P.padded ? P.imageSize(s) : 0), std::vector<const float*>(size_t(s.ow)),
                    std::vector<float>(size_t(s.ow) * C)};
    // One image at a time in float (row sums in registers), then into the thread's doubles.
    std::vector<float> fw(K * C), fb(C);
    for (int b = lo; b < hi; b++) {
      std::fill(fw.begin(), fw.end(), 0.f);
      std::fill(fb.begin(), fb.end(), 0.f);
      double da = 0, dq = 0;
      f(s, out, P, P.image(s, x + b * inImage, scratch.image.data()), w, bias, arg + b * outImage, g + b * outImage, fw.data(), fb.data(),
        activity, a1, a2, da, dq, scratch);
      for (size_t i = 0; i < K * C; i++) mine[i] += fw[i];
      for (size_t c = 0; c < C; c++) mine[K * C + c] += fb[c];
      mine[K * C + C] += da;
      mine[K * C + C + 1] += dq;
    }
  }
  std::vector<double> total(stride, 0.0);
  for (int t = 0; t < nt; t++) {
    const double* p = part.data() + size_t(t) * stride;
    for (size_t i = 0; i < stride; i++) total[i] += p[i];
  }
  for (size_t i = 0; i < K * C; i++) dW[i] = static_cast<float>(total[i]);
  if (dBias) {
    for (size_t c = 0; c < C; c++) dBias[c] = static_cast<float>(total[K * C + c]);
  }
  sa = total[K * C + C];
  sq = total[K * C + C + 1];
}

}  // namespace odnn

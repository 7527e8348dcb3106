// One native call for the forward pass, the loss and the backward pass of a
// Sequential stack (Conv2D / MaxPooling2D / Dropout / Flatten / Dense, last
// layer Dense + softmax with the cross-entropy taken from its logits), with
// Keras' weight and activity penalties. The weights stay in the tfjs
// variables (read in place); the gradients are written into buffers the
// caller turns into tensors for the optimizer.
//
// Why: through tfjs a step is ~60 kernels plus tape bookkeeping (several ms
// of serial JS per step on top of the convolutions), and the penalties are
// extra passes over the largest activations. Here the activity penalty's
// value and gradient ride on the activation's backward pass (one pass over
// the activation instead of four), the bias gradient too, and the only JS
// left per step is the optimizer.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common.h"
#include "conv-pool.h"

namespace odnn {

namespace {

enum Kind { kConv = 0, kPool = 1, kDrop = 2, kFlat = 3, kDense = 4 };
enum Act { aLinear = 0, aRelu = 1, aSoftmax = 2 };

// Plan layout shared with src/step.ts: kRow numbers per layer.
// [kind, inH, inW, inC, outH, outW, outC, kh, kw, sh, sw, pt, pl, pb, pr, act, hasBias,
//  kernelL1, kernelL2, biasL1, biasL2, activityL1, activityL2, dropThreshold, dropScale]
constexpr int kRow = 25;

struct Layer {
  int kind, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, pt, pl, pb, pr, act;
  bool hasBias;
  float kL1, kL2, bL1, bL2, aL1, aL2;
  uint32_t threshold;
  float scale;
  int var = -1;  // index of the kernel among the weights; the bias follows when hasBias
  // A ReLU convolution, the max pooling after it and the Dropout after that, if any, that run as
  // one fused kernel (conv-pool.h): `fused` on the convolution, `fusedInto` on the others, and
  // `fusedEnd` (on the convolution) the index of the last of them.
  bool fused = false, fusedInto = false;
  int fusedEnd = -1;
  size_t inSize() const { return size_t(ih) * iw * ic; }
  size_t outSize() const { return size_t(oh) * ow * oc; }
  size_t kernelSize() const { return kind == kConv ? size_t(kh) * kw * ic * oc : size_t(ic) * oc; }
  bool weighted() const { return kind == kConv || kind == kDense; }
  bool activity() const { return aL1 != 0.f || aL2 != 0.f; }
};

struct ConvPrims {
  dnnl::convolution_forward::primitive_desc fpd;
  dnnl::convolution_forward fwd;
  bool fReorder = false;
  dnnl::reorder fReorderPrim;
  memory fW;
  bool hasBwdData = false;
  dnnl::convolution_backward_data::primitive_desc dpd;
  dnnl::convolution_backward_data bwdData;
  bool dReorder = false;
  dnnl::reorder dReorderPrim;
  memory dW;
  dnnl::convolution_backward_weights::primitive_desc wpd;
  dnnl::convolution_backward_weights bwdWeights;
  bool wReorder = false;
  dnnl::reorder wReorderPrim;
  memory diffW;
  memory::desc src, dst, userW, bias;
  // When the primitives chose their own (blocked) activation layout, activations and their
  // gradients are reordered in and out of it around the convolution.
  bool blocked = false;
  // The fused kernel before this convolution writes its blocked input (srcP) and reads the
  // gradient w.r.t. it from dxP: no reorder on that side.
  bool srcFilled = false;
  // The max pooling after it reads dstP and gives the gradient in that layout: no reorder on
  // that side either. dstBlock: that layout's channel block (nChw16c: 16, nChw8c: 8).
  bool dstToPool = false;
  int dstBlock = 0;
  memory srcP, dstP, gzP, dxP;
  dnnl::reorder srcIn, dstOut, gzIn, dxOut;
};

struct PoolPrims {
  dnnl::pooling_forward::primitive_desc fpd;
  dnnl::pooling_forward fwd;
  dnnl::pooling_backward::primitive_desc bpd;
  dnnl::pooling_backward bwd;
  memory::desc src, dst;
  // After a convolution whose primitives chose a blocked output: the pooling runs on that layout,
  // reading the convolution's dstP in place and writing the gradient w.r.t. it as the
  // convolution's backward reads it (gSrc); only the small pooled tensor and its gradient are
  // reordered to and from NHWC (dstB -> out, g -> gB).
  bool blocked = false;
  memory dstB, gB, gSrc;
  dnnl::reorder dstOut, gIn;
};

struct DensePrims {
  dnnl::matmul fwd, dW, dX;
  memory::desc x, w, bias, y, xT, gz, dw, wT, dx;
  bool hasDx = false;
};

// Buffers and primitives for one batch size.
struct Instance {
  int B = 0;
  std::vector<std::vector<float>> out;    // per layer: its output (after the activation; logits for softmax)
  std::vector<std::vector<float>> gIn;    // per layer: gradient w.r.t. its input (when needed)
  std::vector<std::vector<float>> gz;     // weighted layers: gradient w.r.t. the pre-activation
  std::vector<std::vector<uint8_t>> aux;  // pool workspace / dropout keep mask / fused argmax
  std::vector<int> block;                 // fused convolutions: their output's layout (ConvPoolOut::block)
  std::vector<std::unique_ptr<ConvPrims>> conv;
  std::vector<std::unique_ptr<PoolPrims>> pool;
  std::vector<std::unique_ptr<DensePrims>> dense;
  std::vector<float> probs;
};

struct Net {
  std::vector<Layer> layers;
  int nWeights = 0;
  std::unordered_map<int, std::unique_ptr<Instance>> inst;
  // ONEDNN_STEP_PROFILE=1: process CPU ms and wall ms per layer (forward, backward) and for the loss,
  // summed over runs. CPU over wall is how well a part uses the threads.
  bool profile = false;
  std::vector<double> fwdMs, bwdMs, fwdWall, bwdWall;
  double lossMs = 0, lossWall = 0;
  int runs = 0;
  // Bytes of buffers held, as reported to V8 (napi_adjust_external_memory): a run's ~100 MB of
  // activations hang off a small JS object, which V8 would otherwise collect lazily.
  int64_t reportedBytes = 0;
  int lastB = 0;  // the batch size of the last run
};

int64_t instanceBytes(const Instance& in) {
  int64_t b = int64_t(in.probs.size()) * 4;
  for (const auto& v : in.out) b += int64_t(v.size()) * 4;
  for (const auto& v : in.gIn) b += int64_t(v.size()) * 4;
  for (const auto& v : in.gz) b += int64_t(v.size()) * 4;
  for (const auto& v : in.aux) b += int64_t(v.size());
  for (const auto& c : in.conv) {
    if (c && c->blocked) {
      b += int64_t(c->srcP.get_desc().get_size()) * (c->hasBwdData ? 2 : 1);
      b += int64_t(c->dstP.get_desc().get_size()) * 2;
    }
  }
  return b;
}

double wallMs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

double cpuMs() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

inline uint32_t mix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x7feb352du;
  h ^= h >> 15;
  h *= 0x846ca68bu;
  h ^= h >> 16;
  return h;
}

ConvPoolShape convPoolShape(const Layer& c, const Layer& p, int B) {
  return ConvPoolShape{B, c.ih, c.iw, c.ic, c.oh, c.ow, c.oc, c.kh, c.kw, c.sh, c.sw, c.pt, c.pl, p.kh, p.kw, p.oh, p.ow};
}

// The gradient w.r.t. the input of layer i is needed when a weighted layer comes before it.
bool needsInputGrad(const Net& net, size_t i) {
  for (size_t j = 0; j < i; j++) {
    if (net.layers[j].weighted()) return true;
  }
  return false;
}

// ONEDNN_STEP_CONV: "winograd" (default: Winograd F(4x4, 3x3) in the primitives' blocked layout for
// 3x3 stride-1 layers with channel counts that are multiples of 16, reordered in and out; the other
// layers direct on NHWC), "nhwc" (every convolution direct on the NHWC tensors), "blocked" (direct,
// in the preferred layout for layers with >= 16 input channels) or "auto" (oneDNN's choice).
// Measured on the tutorial's 32->64 conv (2-core AVX-512 EPYC, busy machine, process CPU time per
// step): Winograd 36.7-38.7 ms vs 40.6-41.3 ms direct NHWC on 1 thread, 42.4-43.4 vs 44.4-47.5 on 2.
int convMode() {
  static const int mode = [] {
    const char* e = std::getenv("ONEDNN_STEP_CONV");
    const std::string v = e ? e : "";
    return v == "nhwc" ? 0 : v == "blocked" ? 1 : v == "auto" ? 3 : 2;
  }();
  return mode;
}

void buildConv(Instance& in, const Layer& L, size_t i, bool needDx) {
  auto& eng = engine();
  auto p = std::make_unique<ConvPrims>();
  const int B = in.B;
  p->src = memory::desc({B, L.ic, L.ih, L.iw}, dt::f32, tag::nhwc);
  p->dst = memory::desc({B, L.oc, L.oh, L.ow}, dt::f32, tag::nhwc);
  p->userW = memory::desc({L.oc, L.ic, L.kh, L.kw}, dt::f32, tag::hwio);
  p->bias = memory::desc({L.oc}, dt::f32, tag::x);
  memory::desc anyW({L.oc, L.ic, L.kh, L.kw}, dt::f32, tag::any);
  const memory::dims strides{L.sh, L.sw}, dil{0, 0}, padL{L.pt, L.pl}, padR{L.pb, L.pr};
  const int mode = convMode();
  const bool block = mode != 0 && L.ic >= 16;
  const bool wino = mode == 2 && L.kh == 3 && L.kw == 3 && L.sh == 1 && L.sw == 1 && L.ic % 16 == 0 && L.oc % 16 == 0;
  dnnl::algorithm alg = wino ? dnnl::algorithm::convolution_winograd
                        : mode == 3 && block ? dnnl::algorithm::convolution_auto
                                             : dnnl::algorithm::convolution_direct;
  const memory::desc srcA = block ? memory::desc({B, L.ic, L.ih, L.iw}, dt::f32, tag::any) : p->src;
  const memory::desc dstA = block ? memory::desc({B, L.oc, L.oh, L.ow}, dt::f32, tag::any) : p->dst;
  dnnl::primitive_attr attr;
  if (L.act == aRelu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(ops);
  }
  auto fwdPd = [&](dnnl::algorithm a) {
    auto fd = L.hasBias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, a, srcA, anyW, p->bias, dstA,
                                                          strides, dil, padL, padR)
                        : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, a, srcA, anyW, dstA, strides,
                                                          dil, padL, padR);
    return firstSafeImpl(dnnl::convolution_forward::primitive_desc(fd, attr, eng));
  };
  try {
    p->fpd = fwdPd(alg);
  } catch (const dnnl::error&) {
    alg = dnnl::algorithm::convolution_direct;  // e.g. no Winograd implementation for this case
    p->fpd = fwdPd(alg);
  }
  p->fwd = dnnl::convolution_forward(p->fpd);
  const memory::desc pSrc = p->fpd.src_desc(), pDst = p->fpd.dst_desc();
  p->blocked = pSrc != p->src || pDst != p->dst;
  p->fReorder = p->fpd.weights_desc() != p->userW;
  if (p->fReorder) {
    p->fW = memory(p->fpd.weights_desc(), eng);
    memory user(p->userW, eng, nullptr);
    p->fReorderPrim = dnnl::reorder(user, p->fW);
  }
  const std::string tagI = " " + std::to_string(i) + " B" + std::to_string(B);
  noteImpl("step conv fwd" + tagI, p->fpd.impl_info_str());
  auto hint = p->fpd;
  auto tryAlg = [&](auto make) {
    try {
      return make(alg);
    } catch (const dnnl::error&) {
      return make(dnnl::algorithm::convolution_direct);
    }
  };
  if (needDx) {
    p->dpd = tryAlg([&](dnnl::algorithm a) {
      dnnl::convolution_backward_data::desc d(a, pSrc, anyW, pDst, strides, dil, padL, padR);
      return firstSafeImpl(dnnl::convolution_backward_data::primitive_desc(d, eng, hint));
    });
    p->bwdData = dnnl::convolution_backward_data(p->dpd);
    p->hasBwdData = true;
    p->dReorder = p->dpd.weights_desc() != p->userW;
    if (p->dReorder) {
      p->dW = memory(p->dpd.weights_desc(), eng);
      memory user(p->userW, eng, nullptr);
      p->dReorderPrim = dnnl::reorder(user, p->dW);
    }
    noteImpl("step conv bwd_data" + tagI, p->dpd.impl_info_str());
  }
  p->wpd = tryAlg([&](dnnl::algorithm a) {
    dnnl::convolution_backward_weights::desc wd(a, pSrc, anyW, pDst, strides, dil, padL, padR);
    return firstSafeImpl(dnnl::convolution_backward_weights::primitive_desc(wd, eng, hint));
  });
  p->bwdWeights = dnnl::convolution_backward_weights(p->wpd);
  p->wReorder = p->wpd.diff_weights_desc() != p->userW;
  if (p->wReorder) {
    p->diffW = memory(p->wpd.diff_weights_desc(), eng);
    memory user(p->userW, eng, nullptr);
    p->wReorderPrim = dnnl::reorder(p->diffW, user);
  }
  noteImpl("step conv bwd_weights" + tagI, p->wpd.impl_info_str());
  if (p->blocked) {
    memory userSrc(p->src, eng, nullptr), userDst(p->dst, eng, nullptr);
    p->srcP = memory(pSrc, eng);
    p->dstP = memory(pDst, eng);
    p->gzP = memory(pDst, eng);
    p->srcIn = dnnl::reorder(userSrc, p->srcP);
    p->dstOut = dnnl::reorder(p->dstP, userDst);
    p->gzIn = dnnl::reorder(userDst, p->gzP);
    if (needDx) {
      p->dxP = memory(pSrc, eng);
      p->dxOut = dnnl::reorder(p->dxP, userSrc);
    }
  }
  in.conv[i] = std::move(p);
}

// layout: tag::nhwc, or the blocked layout of the convolution before it (PoolPrims::blocked).
void buildPool(Instance& in, const Layer& L, size_t i, tag layout = tag::nhwc) {
  auto& eng = engine();
  auto p = std::make_unique<PoolPrims>();
  const int B = in.B;
  p->blocked = layout != tag::nhwc;
  p->src = memory::desc({B, L.ic, L.ih, L.iw}, dt::f32, layout);
  p->dst = memory::desc({B, L.oc, L.oh, L.ow}, dt::f32, layout);
  dnnl::pooling_forward::desc fd(dnnl::prop_kind::forward_training, dnnl::algorithm::pooling_max, p->src, p->dst,
                                 {L.sh, L.sw}, {L.kh, L.kw}, {L.pt, L.pl}, {L.pb, L.pr});
  p->fpd = dnnl::pooling_forward::primitive_desc(fd, eng);
  p->fwd = dnnl::pooling_forward(p->fpd);
  if (p->blocked) {
    const memory::desc nhwc({B, L.oc, L.oh, L.ow}, dt::f32, tag::nhwc);
    p->dstB = memory(p->dst, eng);
    p->gB = memory(p->dst, eng);
    p->gSrc = memory(p->src, eng);
    p->dstOut = dnnl::reorder(p->dstB, memory(nhwc, eng, nullptr));
    p->gIn = dnnl::reorder(memory(nhwc, eng, nullptr), p->gB);
  }
  dnnl::pooling_backward::desc bd(dnnl::algorithm::pooling_max, p->src, p->dst, {L.sh, L.sw}, {L.kh, L.kw}, {L.pt, L.pl},
                                  {L.pb, L.pr});
  p->bpd = dnnl::pooling_backward::primitive_desc(bd, eng, p->fpd);
  p->bwd = dnnl::pooling_backward(p->bpd);
  in.aux[i].resize(p->fpd.workspace_desc().get_size());
  in.pool[i] = std::move(p);
}

dnnl::matmul makeMatmul(const memory::desc& a, const memory::desc& b, const memory::desc* bias, const memory::desc& c, int act,
                        const std::string& what) {
  auto& eng = engine();
  dnnl::primitive_attr attr;
  if (act == aRelu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    attr.set_post_ops(ops);
  }
  auto d = bias ? dnnl::matmul::desc(a, b, *bias, c) : dnnl::matmul::desc(a, b, c);
  auto pd = firstSafeImpl(dnnl::matmul::primitive_desc(d, attr, eng));
  noteImpl(what, pd.impl_info_str());
  return dnnl::matmul(pd);
}

void buildDense(Instance& in, const Layer& L, size_t i, bool needDx) {
  auto p = std::make_unique<DensePrims>();
  const int64_t B = in.B, K = L.ic, N = L.oc;
  const std::string tagI = " " + std::to_string(i) + " B" + std::to_string(B);
  p->x = memory::desc({B, K}, dt::f32, memory::dims{K, 1});
  p->w = memory::desc({K, N}, dt::f32, memory::dims{N, 1});
  p->bias = memory::desc({1, N}, dt::f32, memory::dims{N, 1});
  p->y = memory::desc({B, N}, dt::f32, memory::dims{N, 1});
  p->fwd = makeMatmul(p->x, p->w, L.hasBias ? &p->bias : nullptr, p->y, L.act == aRelu ? aRelu : aLinear, "step dense fwd" + tagI);
  // dW[K,N] = x^T[K,B] · gz[B,N]
  p->xT = memory::desc({K, B}, dt::f32, memory::dims{1, K});
  p->gz = memory::desc({B, N}, dt::f32, memory::dims{N, 1});
  p->dw = memory::desc({K, N}, dt::f32, memory::dims{N, 1});
  p->dW = makeMatmul(p->xT, p->gz, nullptr, p->dw, aLinear, "step dense dW" + tagI);
  if (needDx) {
    // dx[B,K] = gz[B,N] · W^T[N,K]
    p->wT = memory::desc({N, K}, dt::f32, memory::dims{1, N});
    p->dx = memory::desc({B, K}, dt::f32, memory::dims{K, 1});
    p->dX = makeMatmul(p->gz, p->wT, nullptr, p->dx, aLinear, "step dense dX" + tagI);
    p->hasDx = true;
  }
  in.dense[i] = std::move(p);
}

Instance& instanceFor(Net& net, int B) {
  auto it = net.inst.find(B);
  if (it != net.inst.end()) return *it->second;
  if (net.inst.size() >= 4) net.inst.clear();  // batch sizes seen: normally the batch and the last, smaller one
  auto in = std::make_unique<Instance>();
  in->B = B;
  const size_t n = net.layers.size();
  in->out.resize(n);
  in->gIn.resize(n);
  in->gz.resize(n);
  in->aux.resize(n);
  in->conv.resize(n);
  in->pool.resize(n);
  in->dense.resize(n);
  for (size_t i = 0; i < n; i++) {
    const Layer& L = net.layers[i];
    const bool needDx = needsInputGrad(net, i);
    if (L.fused) {
      // Neither the activation nor its gradient exist: the fused output and the argmax are all.
      in->aux[i].resize(size_t(B) * net.layers[i + 1].outSize());
      continue;
    }
    if (L.fusedInto) {
      // Only the last fused layer's output exists (NHWC, unless the next convolution takes it blocked).
      if (i == size_t(net.layers[i - (L.kind == kDrop ? 2 : 1)].fusedEnd)) in->out[i].resize(size_t(B) * L.outSize());
      continue;  // its gradient passes through to the fused convolution
    }
    if (L.kind != kFlat) in->out[i].resize(size_t(B) * L.outSize());
    if (needDx && L.kind != kFlat) in->gIn[i].resize(size_t(B) * L.inSize());
    switch (L.kind) {
      case kConv:
        buildConv(*in, L, i, needDx);
        in->gz[i].resize(size_t(B) * L.outSize());
        break;
      case kDense:
        buildDense(*in, L, i, needDx);
        in->gz[i].resize(size_t(B) * L.outSize());
        break;
      case kPool: buildPool(*in, L, i); break;
      case kDrop: in->aux[i].resize(size_t(B) * L.outSize()); break;
      default: break;
    }
  }
  // A fused kernel writes the blocked input of the convolution after it directly, where that
  // convolution's primitives chose nChw8c / nChw16c.
  in->block.assign(n, 0);
  for (size_t i = 0; i < n; i++) {
    const Layer& L = net.layers[i];
    const size_t j = size_t(L.fusedEnd) + 1;
    if (!L.fused || j >= n || net.layers[j].kind != kConv || !in->conv[j] || !in->conv[j]->blocked) continue;
    ConvPrims& c = *in->conv[j];
    const Layer& J = net.layers[j];
    for (const auto& [bs, t] : {std::pair{16, tag::nChw16c}, std::pair{8, tag::nChw8c}}) {
      if (J.ic % bs == 0 && c.fpd.src_desc() == memory::desc({B, J.ic, J.ih, J.iw}, dt::f32, t)) {
        in->block[i] = bs;
        c.srcFilled = true;
        in->gIn[j] = {};  // the gradient w.r.t. its input stays in dxP
        in->out[size_t(L.fusedEnd)] = {};
        break;
      }
    }
  }
  // A max pooling after a convolution with a blocked nChw8c / nChw16c output runs on that layout.
  for (size_t j = 0; j + 1 < n; j++) {
    const Layer& L = net.layers[j];
    const Layer& P = net.layers[j + 1];
    if (L.kind != kConv || L.fused || P.kind != kPool || P.fusedInto || !in->conv[j] || !in->conv[j]->blocked) continue;
    ConvPrims& c = *in->conv[j];
    for (const auto& [bs, t] : {std::pair{16, tag::nChw16c}, std::pair{8, tag::nChw8c}}) {
      if (c.fpd.dst_desc() != memory::desc({B, L.oc, L.oh, L.ow}, dt::f32, t)) continue;
      buildPool(*in, P, j + 1, t);
      c.dstToPool = true;
      c.dstBlock = bs;
      in->out[j] = {};  // the convolution's output stays in dstP, its gradient goes to gzP
      in->gz[j] = {};
      in->gIn[j + 1] = {};
      break;
    }
  }
  in->probs.resize(size_t(B) * net.layers.back().oc);
  Instance& ref = *in;
  net.inst[B] = std::move(in);
  return ref;
}

void destroyNet(napi_env env, void* data, void*) {
  Net* net = static_cast<Net*>(data);
  int64_t ignored;
  if (net->reportedBytes) napi_adjust_external_memory(env, -net->reportedBytes, &ignored);
  delete net;
}

Net* netOf(const Args& a, size_t i) {
  void* data = nullptr;
  if (napi_get_value_external(a.env, a.at(i), &data) != napi_ok || !data) throw ArgError("argument 0 must be a step handle");
  return static_cast<Net*>(data);
}

float* f32Element(napi_env env, napi_value arr, uint32_t i, size_t need, const char* what) {
  napi_value v;
  if (napi_get_element(env, arr, i, &v) != napi_ok) throw ArgError(std::string(what) + ": not an array");
  bool isTyped = false;
  napi_is_typedarray(env, v, &isTyped);
  if (!isTyped) throw ArgError(std::string(what) + " " + std::to_string(i) + " must be a Float32Array");
  napi_typedarray_type t;
  size_t n;
  void* data;
  napi_value ab;
  size_t off;
  napi_get_typedarray_info(env, v, &t, &n, &data, &ab, &off);
  if (t != napi_float32_array) throw ArgError(std::string(what) + " " + std::to_string(i) + " must be a Float32Array");
  needLen(n, need, what);
  return static_cast<float*>(data);
}

// Σ|w|, Σw² of a weight and its penalty gradient added into g: l1·sign(w) + 2·l2·w (sign(0) = 0).
// Float sums over blocks, then double; compiled for AVX-512 / AVX2 too.
__attribute__((target_clones("avx512f", "avx2", "default"))) void penaltyRange(const float* __restrict w,
                                                                                 float* __restrict g, size_t lo, size_t hi,
                                                                                 float l1, float l2x2, double& sa,
                                                                                 double& sq) {
  constexpr size_t kBlock = 4096;
  for (size_t b0 = lo; b0 < hi; b0 += kBlock) {
    const size_t b1 = std::min(hi, b0 + kBlock);
    float fa = 0.f, fq = 0.f;
#pragma omp simd reduction(+ : fa, fq)
    for (size_t i = b0; i < b1; i++) {
      const float v = w[i];
      const float s = v > 0.f ? 1.f : (v < 0.f ? -1.f : 0.f);
      g[i] += l1 * s + l2x2 * v;
      fa += std::fabs(v);
      fq += v * v;
    }
    sa += fa;
    sq += fq;
  }
}

double weightPenalty(const float* w, float* g, size_t n, float l1, float l2) {
  if (l1 == 0.f && l2 == 0.f) return 0.0;
  const float l2x2 = 2.f * l2;
  const int nt = threadsFor(n);
  // Per-thread partial sums added in thread order: the same result on every run (bit-for-bit reruns).
  std::vector<double> part(size_t(nt) * 2, 0.0);
#pragma omp parallel num_threads(nt)
  {
    const size_t t = size_t(omp_get_thread_num()), T = size_t(omp_get_num_threads());
    const size_t chunk = (n + T - 1) / T;
    const size_t lo = std::min(n, t * chunk), hi = std::min(n, lo + chunk);
    if (hi > lo) penaltyRange(w, g, lo, hi, l1, l2x2, part[2 * t], part[2 * t + 1]);
  }
  double sa = 0, sq = 0;
  for (int t = 0; t < nt; t++) {
    sa += part[2 * t];
    sq += part[2 * t + 1];
  }
  return double(l1) * sa + double(l2) * sq;
}

// The backward pass of a layer's activation (relu or linear) fused with its activity penalty and
// its bias gradient, over rows [lo, hi) of C channels:
//   gz = (g + a1·sign(y) + a2·y) · act'(y),  bacc[c] += Σ_rows gz,  sa += Σ|y|,  sq += Σy².
// Sums run in float over blocks of rows, then in double. Compiled for AVX-512 / AVX2 too.
__attribute__((target_clones("avx512f", "avx2", "default"))) void activationRows(
    const float* __restrict g, const float* __restrict y, float* __restrict gz, double* __restrict bacc, int64_t lo,
    int64_t hi, int64_t C, bool relu, bool activity, float a1, float a2, double& sa, double& sq) {
  constexpr int64_t kBlock = 64;
  float facc[512];
  const bool bias = bacc != nullptr && C <= 512;
  for (int64_t r0 = lo; r0 < hi; r0 += kBlock) {
    const int64_t r1 = std::min(hi, r0 + kBlock);
    if (bias) std::fill(facc, facc + C, 0.f);
    float ra = 0.f, rq = 0.f;
    for (int64_t r = r0; r < r1; r++) {
      const float* yr = y + r * C;
      const float* gr = g + r * C;
      float* zr = gz + r * C;
      if (activity) {
#pragma omp simd reduction(+ : ra, rq)
        for (int64_t c = 0; c < C; c++) {
          const float v = yr[c];
          const float sgn = v > 0.f ? 1.f : (v < 0.f ? -1.f : 0.f);
          float t = gr[c] + (a1 * sgn + a2 * v);
          if (relu) t = v > 0.f ? t : 0.f;
          zr[c] = t;
          ra += std::fabs(v);
          rq += v * v;
        }
      } else if (relu) {
#pragma omp simd
        for (int64_t c = 0; c < C; c++) zr[c] = yr[c] > 0.f ? gr[c] : 0.f;
      } else {
#pragma omp simd
        for (int64_t c = 0; c < C; c++) zr[c] = gr[c];
      }
      if (bias) {
#pragma omp simd
        for (int64_t c = 0; c < C; c++) facc[c] += zr[c];
      } else if (bacc) {
        for (int64_t c = 0; c < C; c++) bacc[c] += zr[c];
      }
    }
    if (bias) {
      for (int64_t c = 0; c < C; c++) bacc[c] += facc[c];
    }
    sa += ra;
    sq += rq;
  }
}

// Runs rows(lo, hi, mine) over [0, items) split statically between the threads, each with its own
// partial sums `mine` — C bias sums, then Σ|y|, Σy² — and adds them in thread order (the same bits
// on every run): dbias (when not null), sa and sq.
template <typename Rows>
void activationParts(int64_t items, size_t work, int64_t C, float* dbias, double& sa, double& sq, Rows rows) {
  const int nt = threadsFor(work);
  const size_t stride = size_t(C) + 2;
  std::vector<double> part(size_t(nt) * stride, 0.0);
#pragma omp parallel num_threads(nt)
  {
    const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t per = (items + T - 1) / T;
    const int64_t lo = std::min(items, t * per), hi = std::min(items, lo + per);
    if (hi > lo) rows(lo, hi, part.data() + size_t(t) * stride);
  }
  sa = 0;
  sq = 0;
  std::vector<double> total(size_t(C), 0.0);
  for (int t = 0; t < nt; t++) {
    const double* p = part.data() + size_t(t) * stride;
    for (int64_t c = 0; c < C; c++) total[c] += p[c];
    sa += p[C];
    sq += p[C + 1];
  }
  if (dbias) {
    for (int64_t c = 0; c < C; c++) dbias[c] = static_cast<float>(total[c]);
  }
}

void activationBackward(const float* g, const float* y, float* gz, float* dbias, int64_t rows, int64_t C, bool relu,
                        bool activity, float a1, float a2, double& sa, double& sq) {
  activationParts(rows, size_t(rows * C), C, dbias, sa, sq, [&](int64_t lo, int64_t hi, double* mine) {
    activationRows(g, y, gz, dbias ? mine : nullptr, lo, hi, C, relu, activity, a1, a2, mine[C], mine[C + 1]);
  });
}

// activationBackward on a blocked nChw{bs}c tensor of B images, C channels, hw positions: chunk
// (n, cb) holds hw rows of bs channels cb·bs … cb·bs + bs − 1.
void activationBackwardBlocked(const float* g, const float* y, float* gz, float* dbias, int64_t B, int64_t C, int64_t hw,
                               int bs, bool relu, bool activity, float a1, float a2, double& sa, double& sq) {
  const int64_t CB = C / bs, chunk = hw * bs;
  activationParts(B * CB, size_t(B * C * hw), C, dbias, sa, sq, [&](int64_t lo, int64_t hi, double* mine) {
    for (int64_t k = lo; k < hi; k++) {
      const int64_t off = k * chunk, cb = k % CB;
      activationRows(g + off, y + off, gz + off, dbias ? mine + cb * bs : nullptr, 0, hw, bs, relu, activity, a1, a2, mine[C],
                     mine[C + 1]);
    }
  });
}

struct LossOut {
  double loss = 0, correct = 0, pa = 0, pq = 0;
};

// Softmax cross-entropy from logits z against labels y (rows of B): loss_b = Σ_j y_j (lse − z_j),
// gz = (p·Σy − y)/B, plus an activity penalty on the probabilities (a1, a2 already divided by B):
// gz += p ⊙ (gp − Σ_k p_k gp_k) with gp = a1·sign(p) + 2·a2·p.
LossOut softmaxLoss(const float* z, const float* y, float* p, float* gz, int64_t B, int64_t K, bool activity, float a1,
                    float a2) {
  LossOut o;
  const float invB = 1.f / static_cast<float>(B);
  // Per-row sums, added in row order afterwards (deterministic whatever the thread count).
  const size_t nb = static_cast<size_t>(B);
  std::vector<double> rowLoss(nb, 0.0), rowCorrect(nb, 0.0), rowA(nb, 0.0), rowQ(nb, 0.0);
  const int nt = threadsFor(size_t(B * K * 8));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t b = 0; b < B; b++) {
    const float* zr = z + b * K;
    const float* yr = y + b * K;
    float* pr = p + b * K;
    float* gr = gz + b * K;
    float m = -INFINITY;
    for (int64_t j = 0; j < K; j++) m = std::max(m, zr[j]);
    double s = 0;
    for (int64_t j = 0; j < K; j++) s += std::exp(double(zr[j]) - m);
    const double lse = double(m) + std::log(s);
    double sumY = 0, l = 0;
    int64_t ap = 0, ay = 0;
    for (int64_t j = 0; j < K; j++) {
      pr[j] = static_cast<float>(std::exp(double(zr[j]) - lse));
      sumY += yr[j];
      l += double(yr[j]) * (lse - zr[j]);
      if (zr[j] > zr[ap]) ap = j;  // argmax of the logits (first maximum), as the tfjs step counts
      if (yr[j] > yr[ay]) ay = j;
    }
    rowLoss[b] = l;
    rowCorrect[b] = ap == ay ? 1 : 0;
    const float sy = static_cast<float>(sumY);
    for (int64_t j = 0; j < K; j++) gr[j] = (pr[j] * sy - yr[j]) * invB;
    if (activity) {
      double dot = 0, ra = 0, rq = 0;
      for (int64_t j = 0; j < K; j++) {
        const float v = pr[j];
        const float gp = a1 * (v > 0.f ? 1.f : (v < 0.f ? -1.f : 0.f)) + 2.f * a2 * v;
        dot += double(v) * gp;
        ra += std::fabs(v);
        rq += double(v) * v;
      }
      for (int64_t j = 0; j < K; j++) {
        const float v = pr[j];
        const float gp = a1 * (v > 0.f ? 1.f : (v < 0.f ? -1.f : 0.f)) + 2.f * a2 * v;
        gr[j] += v * (gp - static_cast<float>(dot));
      }
      rowA[b] = ra;
      rowQ[b] = rq;
    }
  }
  double loss = 0, correct = 0, pa = 0, pq = 0;
  for (int64_t b = 0; b < B; b++) {
    loss += rowLoss[b];
    correct += rowCorrect[b];
    pa += rowA[b];
    pq += rowQ[b];
  }
  o.loss = loss / double(B);
  o.correct = correct;
  o.pa = pa;
  o.pq = pq;
  return o;
}

// The hash loops are compiled for AVX-512 / AVX2 too (32-bit multiplies vectorise there, not on
// baseline x86-64) and the best one is picked at load time.
__attribute__((target_clones("avx512f", "avx2", "default"))) void dropoutRange(const float* x, float* y, uint8_t* keep,
                                                                                 size_t lo, size_t hi, uint32_t key,
                                                                                 uint32_t threshold, float scale) {
  for (size_t i = lo; i < hi; i++) {
    const uint32_t u = mix32(key ^ mix32(static_cast<uint32_t>(i)));
    const bool k = u >= threshold;
    if (keep) keep[i] = k;
    // x · multiplier (not a select): a dropped −x gives −0 and NaN stays NaN, bit for bit as the JS
    // reference (x times a 0 / scale mask) computes it.
    y[i] = x[i] * (k ? scale : 0.f);
  }
}

void dropoutForward(const float* x, float* y, uint8_t* keep, size_t n, uint32_t key, uint32_t threshold, float scale) {
  const int nt = threadsFor(n);
#pragma omp parallel num_threads(nt)
  {
    const size_t t = size_t(omp_get_thread_num()), T = size_t(omp_get_num_threads());
    const size_t chunk = (n + T - 1) / T;
    const size_t lo = std::min(n, t * chunk), hi = std::min(n, lo + chunk);
    if (hi > lo) dropoutRange(x, y, keep, lo, hi, key, threshold, scale);
  }
}

void dropoutBackward(const float* g, float* dx, const uint8_t* keep, size_t n, float scale) {
  const int nt = threadsFor(n);
#pragma omp parallel for simd num_threads(nt) schedule(static)
  for (size_t i = 0; i < n; i++) dx[i] = g[i] * (keep[i] ? scale : 0.f);
}

// The output of fused convolution i: its layout, and the Dropout after its pooling.
ConvPoolOut fusedOut(const Instance& in, const Net& net, size_t i, const double* keys) {
  ConvPoolOut o;
  o.block = in.block[i];
  const size_t e = size_t(net.layers[i].fusedEnd);
  const Layer& E = net.layers[e];
  if (E.kind == kDrop) {
    o.drop = true;
    o.key = static_cast<uint32_t>(keys[e]);
    o.threshold = E.threshold;
    o.scale = E.scale;
  }
  return o;
}

// Marks each ReLU convolution that needs no input gradient and is followed by a non-overlapping max
// pooling with no padding (and maybe a Dropout), where the fused kernel handles the shape (conv-pool.h).
// ONEDNN_STEP_FUSE=0 turns the fusion off (for before/after measurements and the differential tests).
void planFusion(Net& net) {
  const char* e = std::getenv("ONEDNN_STEP_FUSE");
  if (e && std::string(e) == "0") return;
  for (size_t i = 0; i + 1 < net.layers.size(); i++) {
    Layer& c = net.layers[i];
    Layer& p = net.layers[i + 1];
    if (c.kind != kConv || c.act != aRelu || needsInputGrad(net, i)) continue;
    if (p.kind != kPool || p.kh != p.sh || p.kw != p.sw || p.pt != 0 || p.pl != 0 || p.pb != 0 || p.pr != 0) continue;
    if (!convPoolSupported(convPoolShape(c, p, 1))) continue;
    c.fused = true;
    p.fusedInto = true;
    c.fusedEnd = int(i + 1);
    if (i + 2 < net.layers.size() && net.layers[i + 2].kind == kDrop) {
      net.layers[i + 2].fusedInto = true;
      c.fusedEnd = int(i + 2);
    }
  }
}

}  // namespace

// stepCreate(plan: Float64Array) -> handle
napi_value stepCreate(const Args& a) {
  size_t n;
  void* data;
  {
    bool isTyped = false;
    napi_is_typedarray(a.env, a.at(0), &isTyped);
    napi_typedarray_type t;
    napi_value ab;
    size_t off;
    if (!isTyped || napi_get_typedarray_info(a.env, a.at(0), &t, &n, &data, &ab, &off) != napi_ok || t != napi_float64_array) {
      throw ArgError("stepCreate: plan must be a Float64Array");
    }
  }
  const double* p = static_cast<const double*>(data);
  if (n == 0 || n % kRow != 0) throw ArgError("stepCreate: plan length is not a multiple of the row size");
  auto net = std::make_unique<Net>();
  for (size_t r = 0; r < n / kRow; r++) {
    const double* q = p + r * kRow;
    Layer L;
    int* f = &L.kind;
    for (int k = 0; k < 16; k++) f[k] = static_cast<int>(q[k]);
    L.hasBias = q[16] != 0;
    L.kL1 = static_cast<float>(q[17]);
    L.kL2 = static_cast<float>(q[18]);
    L.bL1 = static_cast<float>(q[19]);
    L.bL2 = static_cast<float>(q[20]);
    L.aL1 = static_cast<float>(q[21]);
    L.aL2 = static_cast<float>(q[22]);
    L.threshold = static_cast<uint32_t>(q[23]);
    L.scale = static_cast<float>(q[24]);
    if (L.kind < kConv || L.kind > kDense) throw ArgError("stepCreate: unknown layer kind");
    if (L.weighted()) {
      L.var = net->nWeights;
      net->nWeights += L.hasBias ? 2 : 1;
    }
    net->layers.push_back(L);
  }
  planFusion(*net);
  const char* prof = std::getenv("ONEDNN_STEP_PROFILE");
  net->profile = prof && std::string(prof) == "1";
  net->fwdMs.assign(net->layers.size(), 0.0);
  net->bwdMs.assign(net->layers.size(), 0.0);
  net->fwdWall.assign(net->layers.size(), 0.0);
  net->bwdWall.assign(net->layers.size(), 0.0);
  const Layer& last = net->layers.back();
  if (last.kind != kDense || last.act != aSoftmax) throw ArgError("stepCreate: the last layer must be Dense + softmax");
  for (size_t i = 0; i + 1 < net->layers.size(); i++) {
    if (net->layers[i].act == aSoftmax) throw ArgError("stepCreate: softmax only on the last layer");
  }
  napi_value handle;
  Net* raw = net.release();
  if (napi_create_external(a.env, raw, destroyNet, nullptr, &handle) != napi_ok) {
    delete raw;
    throw ArgError("stepCreate: napi_create_external failed");
  }
  return handle;
}

// stepRun(handle, x, labels, batch, weights: Float32Array[], grads: Float32Array[], keys: Float64Array, out: Float64Array[5])
// out = [dataLoss, kernelPenalty, biasPenalty, activityPenalty, correct]
napi_value stepRun(const Args& a) {
  Net& net = *netOf(a, 0);
  const int B = a.int32(3);
  if (B <= 0) throw ArgError("stepRun: batch must be positive");
  const Layer& first = net.layers.front();
  const Layer& last = net.layers.back();
  size_t nx, ny, nk, no;
  const float* x = a.f32(1, &nx);
  const float* labels = a.f32(2, &ny);
  needLen(nx, size_t(B) * first.inSize(), "stepRun x");
  needLen(ny, size_t(B) * last.oc, "stepRun labels");
  napi_value weightsArr = a.at(4), gradsArr = a.at(5);
  bool isTyped = false;
  void* kd;
  {
    napi_typedarray_type t;
    napi_value ab;
    size_t off;
    napi_is_typedarray(a.env, a.at(6), &isTyped);
    if (!isTyped || napi_get_typedarray_info(a.env, a.at(6), &t, &nk, &kd, &ab, &off) != napi_ok || t != napi_float64_array) {
      throw ArgError("stepRun: keys must be a Float64Array");
    }
  }
  const double* keys = static_cast<const double*>(kd);
  needLen(nk, net.layers.size(), "stepRun keys");
  double* out;
  {
    napi_typedarray_type t;
    napi_value ab;
    size_t off;
    void* od;
    napi_is_typedarray(a.env, a.at(7), &isTyped);
    if (!isTyped || napi_get_typedarray_info(a.env, a.at(7), &t, &no, &od, &ab, &off) != napi_ok || t != napi_float64_array) {
      throw ArgError("stepRun: out must be a Float64Array");
    }
    needLen(no, 5, "stepRun out");
    out = static_cast<double*>(od);
  }
  const size_t nL = net.layers.size();
  std::vector<float*> W(net.nWeights), G(net.nWeights);
  for (size_t i = 0; i < nL; i++) {
    const Layer& L = net.layers[i];
    if (!L.weighted()) continue;
    W[L.var] = f32Element(a.env, weightsArr, L.var, L.kernelSize(), "stepRun weight");
    G[L.var] = f32Element(a.env, gradsArr, L.var, L.kernelSize(), "stepRun grad");
    if (L.hasBias) {
      W[L.var + 1] = f32Element(a.env, weightsArr, L.var + 1, L.oc, "stepRun weight");
      G[L.var + 1] = f32Element(a.env, gradsArr, L.var + 1, L.oc, "stepRun grad");
    }
  }

  const bool fresh = net.inst.find(B) == net.inst.end();
  net.lastB = B;
  Instance& in = instanceFor(net, B);
  if (fresh) {
    int64_t bytes = 0, ignored;
    for (const auto& kv : net.inst) bytes += instanceBytes(*kv.second);
    napi_adjust_external_memory(a.env, bytes - net.reportedBytes, &ignored);
    net.reportedBytes = bytes;
  }
  // The profile leaves out a batch size's first run (primitive creation, first touch of buffers).
  const bool profiling = net.profile && !fresh;
  auto& eng = engine();
  auto& s = stream();

  // Forward.
  std::vector<const float*> inputOf(nL), outputOf(nL);
  const float* cur = x;
  double t0 = profiling ? cpuMs() : 0, w0 = profiling ? wallMs() : 0;
  auto lap = [&](double& acc, double& wacc) {
    if (!profiling) return;
    const double t = cpuMs(), w = wallMs();
    acc += t - t0;
    wacc += w - w0;
    t0 = t;
    w0 = w;
  };
  for (size_t i = 0; i < nL; i++) {
    const Layer& L = net.layers[i];
    inputOf[i] = cur;
    if (L.fused) {
      const ConvPoolOut o = fusedOut(in, net, i, keys);
      float* y = o.block ? static_cast<float*>(in.conv[size_t(L.fusedEnd) + 1]->srcP.get_data_handle())
                         : in.out[size_t(L.fusedEnd)].data();
      convPoolForward(convPoolShape(L, net.layers[i + 1], B), o, cur, W[L.var], L.hasBias ? W[L.var + 1] : nullptr, y,
                      in.aux[i].data());
      outputOf[i] = nullptr;  // never stored
      cur = y;  // blocked: only the convolution after it reads it, from srcP
      lap(net.fwdMs[i], net.fwdWall[i]);
      continue;
    }
    if (L.fusedInto) {
      outputOf[i] = cur;  // written by the fused convolution before it
      lap(net.fwdMs[i], net.fwdWall[i]);
      continue;
    }
    float* y = L.kind == kFlat ? nullptr : in.out[i].data();
    switch (L.kind) {
      case kConv: {
        ConvPrims& p = *in.conv[i];
        memory wu(p.userW, eng, W[L.var]);
        memory xu(p.src, eng, const_cast<float*>(cur)), yu(p.dst, eng, y);
        if (p.blocked && !p.srcFilled) p.srcIn.execute(s, xu, p.srcP);
        std::unordered_map<int, memory> args{{DNNL_ARG_SRC, p.blocked ? p.srcP : xu}, {DNNL_ARG_DST, p.blocked ? p.dstP : yu}};
        if (p.fReorder) {
          p.fReorderPrim.execute(s, wu, p.fW);
          args.emplace(DNNL_ARG_WEIGHTS, p.fW);
        } else {
          args.emplace(DNNL_ARG_WEIGHTS, wu);
        }
        if (L.hasBias) args.emplace(DNNL_ARG_BIAS, memory(p.bias, eng, W[L.var + 1]));
        p.fwd.execute(s, args);
        if (p.blocked && !p.dstToPool) p.dstOut.execute(s, p.dstP, yu);
        s.wait();
        break;
      }
      case kPool: {
        PoolPrims& p = *in.pool[i];
        const memory ws(p.fpd.workspace_desc(), eng, in.aux[i].data());
        if (p.blocked) {
          p.fwd.execute(s, {{DNNL_ARG_SRC, in.conv[i - 1]->dstP}, {DNNL_ARG_DST, p.dstB}, {DNNL_ARG_WORKSPACE, ws}});
          memory yu(memory::desc({B, L.oc, L.oh, L.ow}, dt::f32, tag::nhwc), eng, y);
          p.dstOut.execute(s, p.dstB, yu);
        } else {
          p.fwd.execute(s, {{DNNL_ARG_SRC, memory(p.src, eng, const_cast<float*>(cur))}, {DNNL_ARG_DST, memory(p.dst, eng, y)}, {DNNL_ARG_WORKSPACE, ws}});
        }
        s.wait();
        break;
      }
      case kDrop:
        dropoutForward(cur, y, in.aux[i].data(), size_t(B) * L.outSize(), static_cast<uint32_t>(keys[i]), L.threshold, L.scale);
        break;
      case kFlat: y = const_cast<float*>(cur); break;
      case kDense: {
        DensePrims& p = *in.dense[i];
        std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(p.x, eng, const_cast<float*>(cur))},
                                             {DNNL_ARG_WEIGHTS, memory(p.w, eng, W[L.var])},
                                             {DNNL_ARG_DST, memory(p.y, eng, y)}};
        if (L.hasBias) args.emplace(DNNL_ARG_BIAS, memory(p.bias, eng, W[L.var + 1]));
        p.fwd.execute(s, args);
        s.wait();
        break;
      }
    }
    outputOf[i] = y;
    cur = y;
    lap(net.fwdMs[i], net.fwdWall[i]);
  }

  // Loss and the gradient w.r.t. the logits.
  const float invB = 1.f / static_cast<float>(B);
  const size_t li = nL - 1;
  LossOut lo = softmaxLoss(in.out[li].data(), labels, in.probs.data(), in.gz[li].data(), B, last.oc, last.activity(),
                           last.aL1 * invB, last.aL2 * invB);
  double kernelPen = 0, biasPen = 0, activityPen = 0;
  if (last.activity()) activityPen += (double(last.aL1) * lo.pa + double(last.aL2) * lo.pq) / B;

  lap(net.lossMs, net.lossWall);

  // Backward.
  const float* g = nullptr;  // gradient w.r.t. the output of layer i
  for (size_t ii = nL; ii-- > 0;) {
    const Layer& L = net.layers[ii];
    const bool needDx = needsInputGrad(net, ii);
    if (L.fusedInto) {
      // The fused convolution below takes the gradient w.r.t. the pooled output as it is.
      lap(net.bwdMs[ii], net.bwdWall[ii]);
      continue;
    }
    if (L.fused) {
      float* dB = L.hasBias ? G[L.var + 1] : nullptr;
      double sa = 0, sq = 0;
      convPoolBackward(convPoolShape(L, net.layers[ii + 1], B), fusedOut(in, net, ii, keys), inputOf[ii], W[L.var],
                       L.hasBias ? W[L.var + 1] : nullptr, in.aux[ii].data(), g, G[L.var], dB, L.activity(), L.aL1 * invB,
                       2.f * L.aL2 * invB, sa, sq);
      if (L.activity()) activityPen += (double(L.aL1) * sa + double(L.aL2) * sq) / B;
      kernelPen += weightPenalty(W[L.var], G[L.var], L.kernelSize(), L.kL1, L.kL2);
      if (dB) biasPen += weightPenalty(W[L.var + 1], dB, size_t(L.oc), L.bL1, L.bL2);
      lap(net.bwdMs[ii], net.bwdWall[ii]);
      break;  // the fused convolution needs no input gradient: nothing below needs one either
    }
    float* dx = needDx && L.kind != kFlat ? in.gIn[ii].data() : nullptr;
    switch (L.kind) {
      case kConv:
      case kDense: {
        const bool toPool = L.kind == kConv && in.conv[ii]->dstToPool;
        float* gz = toPool ? static_cast<float*>(in.conv[ii]->gzP.get_data_handle()) : in.gz[ii].data();
        float* dW = G[L.var];
        float* dB = L.hasBias ? G[L.var + 1] : nullptr;
        const int64_t C = L.oc, rows = int64_t(B) * L.oh * L.ow;
        if (toPool) {
          // g, y and gz in the convolution's blocked layout.
          const ConvPrims& p = *in.conv[ii];
          double sa = 0, sq = 0;
          activationBackwardBlocked(g, static_cast<const float*>(p.dstP.get_data_handle()), gz, dB, B, C, int64_t(L.oh) * L.ow, p.dstBlock,
                                    L.act == aRelu, L.activity(), L.aL1 * invB, 2.f * L.aL2 * invB, sa, sq);
          if (L.activity()) activityPen += (double(L.aL1) * sa + double(L.aL2) * sq) / B;
        } else if (ii != li) {
          double sa = 0, sq = 0;
          activationBackward(g, outputOf[ii], gz, dB, rows, C, L.act == aRelu, L.activity(), L.aL1 * invB, 2.f * L.aL2 * invB,
                             sa, sq);
          if (L.activity()) activityPen += (double(L.aL1) * sa + double(L.aL2) * sq) / B;
        } else if (dB) {
          std::vector<double> acc(size_t(C), 0.0);
          for (int64_t r = 0; r < rows; r++) {
            for (int64_t c = 0; c < C; c++) acc[c] += gz[r * C + c];
          }
          for (int64_t c = 0; c < C; c++) dB[c] = static_cast<float>(acc[c]);
        }
        if (L.kind == kConv) {
          ConvPrims& p = *in.conv[ii];
          memory dwu(p.userW, eng, dW);
          memory gzu(p.dst, eng, gz);
          if (p.blocked && !p.dstToPool) p.gzIn.execute(s, gzu, p.gzP);
          const memory& gzm = p.blocked ? p.gzP : gzu;
          p.bwdWeights.execute(s, {{DNNL_ARG_SRC, p.blocked ? p.srcP : memory(p.src, eng, const_cast<float*>(inputOf[ii]))},
                                   {DNNL_ARG_DIFF_DST, gzm},
                                   {DNNL_ARG_DIFF_WEIGHTS, p.wReorder ? p.diffW : dwu}});
          if (p.wReorder) p.wReorderPrim.execute(s, p.diffW, dwu);
          if (needDx) {
            memory wu(p.userW, eng, W[L.var]);
            memory dxu(p.src, eng, dx);
            if (p.dReorder) p.dReorderPrim.execute(s, wu, p.dW);
            p.bwdData.execute(s, {{DNNL_ARG_DIFF_DST, gzm},
                                  {DNNL_ARG_WEIGHTS, p.dReorder ? p.dW : wu},
                                  {DNNL_ARG_DIFF_SRC, p.blocked ? p.dxP : dxu}});
            if (p.srcFilled) {
              dx = static_cast<float*>(p.dxP.get_data_handle());  // the fused kernel below reads it blocked
            } else if (p.blocked) {
              p.dxOut.execute(s, p.dxP, dxu);
            }
          }
          s.wait();
        } else {
          DensePrims& p = *in.dense[ii];
          p.dW.execute(s, {{DNNL_ARG_SRC, memory(p.xT, eng, const_cast<float*>(inputOf[ii]))},
                           {DNNL_ARG_WEIGHTS, memory(p.gz, eng, gz)},
                           {DNNL_ARG_DST, memory(p.dw, eng, dW)}});
          if (dx) {
            p.dX.execute(s, {{DNNL_ARG_SRC, memory(p.gz, eng, gz)},
                             {DNNL_ARG_WEIGHTS, memory(p.wT, eng, W[L.var])},
                             {DNNL_ARG_DST, memory(p.dx, eng, dx)}});
          }
          s.wait();
        }
        kernelPen += weightPenalty(W[L.var], dW, L.kernelSize(), L.kL1, L.kL2);
        if (dB) biasPen += weightPenalty(W[L.var + 1], dB, size_t(L.oc), L.bL1, L.bL2);
        break;
      }
      case kPool:
        if (needDx) {
          PoolPrims& p = *in.pool[ii];
          const memory ws(p.bpd.workspace_desc(), eng, in.aux[ii].data());
          if (p.blocked) {
            memory gu(memory::desc({B, L.oc, L.oh, L.ow}, dt::f32, tag::nhwc), eng, const_cast<float*>(g));
            p.gIn.execute(s, gu, p.gB);
            p.bwd.execute(s, {{DNNL_ARG_DIFF_DST, p.gB}, {DNNL_ARG_DIFF_SRC, p.gSrc}, {DNNL_ARG_WORKSPACE, ws}});
            dx = static_cast<float*>(p.gSrc.get_data_handle());  // the convolution below reads it blocked
          } else {
            p.bwd.execute(s, {{DNNL_ARG_DIFF_DST, memory(p.dst, eng, const_cast<float*>(g))}, {DNNL_ARG_DIFF_SRC, memory(p.src, eng, dx)}, {DNNL_ARG_WORKSPACE, ws}});
          }
          s.wait();
        }
        break;
      case kDrop:
        if (dx) dropoutBackward(g, dx, in.aux[ii].data(), size_t(B) * L.outSize(), L.scale);
        break;
      case kFlat: dx = const_cast<float*>(g); break;
    }
    lap(net.bwdMs[ii], net.bwdWall[ii]);
    if (!needDx) break;  // nothing below needs a gradient
    g = dx;
  }
  if (profiling) net.runs++;
  out[0] = lo.loss;
  out[1] = kernelPen;
  out[2] = biasPen;
  out[3] = activityPen;
  out[4] = lo.correct;
  return undefinedValue(a.env);
}

// stepProfile(handle) -> "layer kind fwd bwd" lines, process CPU ms and wall ms per run (ONEDNN_STEP_PROFILE=1).
napi_value stepProfile(const Args& a) {
  Net& net = *netOf(a, 0);
  static const char* kinds[] = {"conv", "pool", "dropout", "flatten", "dense"};
  std::string out = "layer kind fwd_cpu_ms bwd_cpu_ms fwd_wall_ms bwd_wall_ms (per step, " + std::to_string(net.runs) + " steps)\n";
  const double n = net.runs > 0 ? net.runs : 1;
  char buf[200];
  double cpu = net.lossMs, wall = net.lossWall;
  for (size_t i = 0; i < net.layers.size(); i++) {
    const char* kind = net.layers[i].fused ? "conv+relu+pool" : net.layers[i].fusedInto ? "(fused)" : kinds[net.layers[i].kind];
    snprintf(buf, sizeof buf, "%zu %s %.2f %.2f %.2f %.2f\n", i, kind, net.fwdMs[i] / n, net.bwdMs[i] / n, net.fwdWall[i] / n,
             net.bwdWall[i] / n);
    out += buf;
    cpu += net.fwdMs[i] + net.bwdMs[i];
    wall += net.fwdWall[i] + net.bwdWall[i];
  }
  snprintf(buf, sizeof buf, "loss %.2f cpu, %.2f wall\nstep %.2f cpu, %.2f wall\n", net.lossMs / n, net.lossWall / n, cpu / n, wall / n);
  out += buf;
  return makeString(a.env, out);
}

// stepFused(handle) -> [{layer, output}] for each convolution that runs fused with the max pooling
// (and Dropout) after it; output: the layout the last run wrote ("nhwc", "nChw8c", "nChw16c").
napi_value stepFused(const Args& a) {
  Net& net = *netOf(a, 0);
  napi_value arr;
  napi_create_array(a.env, &arr);
  auto it = net.inst.find(net.lastB);
  uint32_t n = 0;
  for (size_t i = 0; i < net.layers.size(); i++) {
    if (!net.layers[i].fused) continue;
    const int block = it != net.inst.end() ? it->second->block[i] : 0;
    napi_value o, layer, output;
    napi_create_object(a.env, &o);
    napi_create_uint32(a.env, static_cast<uint32_t>(i), &layer);
    output = makeString(a.env, block == 16 ? "nChw16c" : block == 8 ? "nChw8c" : "nhwc");
    napi_set_named_property(a.env, o, "layer", layer);
    napi_set_named_property(a.env, o, "output", output);
    napi_set_element(a.env, arr, n++, o);
  }
  return arr;
}

// seededDropout(x, out, key, threshold, scale): Regula's seeded Keras dropout (src/engine/dropout.ts).
napi_value seededDropout(const Args& a) {
  size_t nx, ny;
  const float* x = a.f32(0, &nx);
  float* y = a.f32(1, &ny);
  needLen(ny, nx, "seededDropout out");
  const uint32_t key = static_cast<uint32_t>(a.num(2));
  const uint32_t threshold = static_cast<uint32_t>(a.num(3));
  const float scale = static_cast<float>(a.num(4));
  dropoutForward(x, y, nullptr, nx, key, threshold, scale);
  return undefinedValue(a.env);
}

}  // namespace odnn

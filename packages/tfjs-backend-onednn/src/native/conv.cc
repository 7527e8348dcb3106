// 2-D convolution (NHWC activations, HWIO filters, as tfjs stores them):
// forward (optionally with bias and a fused activation), backward data and
// backward weights, each a oneDNN primitive cached by shape.
#include <memory>
#include <unordered_map>

#include "common.h"

namespace odnn {

namespace {

// Parameter block layout shared with src/native.ts (CONV_PARAMS).
struct ConvParams {
  int n, h, w, ic, oc, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl, pb, pr, hasBias, act;
  static constexpr int kCount = 19;
  explicit ConvParams(const int32_t* p) { readParams(&n, p, kCount); }
  std::string key(const char* kind, float alpha) const {
    std::string k = paramsKey(kind, &n, kCount);
    if (act) k += ",a" + std::to_string(alpha);
    return k;
  }
  memory::desc srcMd() const { return {{n, ic, h, w}, dt::f32, tag::nhwc}; }
  memory::desc dstMd() const { return {{n, oc, oh, ow}, dt::f32, tag::nhwc}; }
  memory::desc userWeightsMd() const { return {{oc, ic, kh, kw}, dt::f32, tag::hwio}; }
  memory::desc anyWeightsMd() const { return {{oc, ic, kh, kw}, dt::f32, tag::any}; }
  memory::desc biasMd() const { return {{oc}, dt::f32, tag::x}; }
  memory::dims strides() const { return {sh, sw}; }
  memory::dims dilates() const { return {dh - 1, dw - 1}; }
  memory::dims padL() const { return {pt, pl}; }
  memory::dims padR() const { return {pb, pr}; }
  size_t srcSize() const { return size_t(n) * h * w * ic; }
  size_t dstSize() const { return size_t(n) * oh * ow * oc; }
  size_t weightsSize() const { return size_t(kh) * kw * ic * oc; }
};

dnnl::convolution_forward::desc fwdDesc(const ConvParams& p, dnnl::prop_kind prop, bool withBias) {
  if (withBias) {
    return {prop, dnnl::algorithm::convolution_direct, p.srcMd(), p.anyWeightsMd(), p.biasMd(), p.dstMd(),
            p.strides(), p.dilates(), p.padL(), p.padR()};
  }
  return {prop, dnnl::algorithm::convolution_direct, p.srcMd(), p.anyWeightsMd(), p.dstMd(),
          p.strides(), p.dilates(), p.padL(), p.padR()};
}

}  // namespace

// Activation codes shared with src/native.ts (ACT).
void appendActivation(dnnl::post_ops& ops, int act, float alpha) {
  switch (act) {
    case 0: break;
    case 1: ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f); break;
    case 2: ops.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, 0.f, 6.f); break;
    case 3: ops.append_eltwise(1.f, dnnl::algorithm::eltwise_elu, 1.f, 0.f); break;
    case 4: ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, alpha, 0.f); break;
    case 5: ops.append_eltwise(1.f, dnnl::algorithm::eltwise_logistic, 0.f, 0.f); break;
    default: throw ArgError("unsupported fused activation code " + std::to_string(act));
  }
}

namespace {

struct FwdEntry {
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward prim;
  bool reorderWeights;
  dnnl::reorder weightsReorder;
  memory weights;  // blocked copy of the filter when reorderWeights
};

struct BwdDataEntry {
  dnnl::convolution_backward_data::primitive_desc pd;
  dnnl::convolution_backward_data prim;
  bool reorderWeights;
  dnnl::reorder weightsReorder;
  memory weights;
};

struct BwdWeightsEntry {
  dnnl::convolution_backward_weights::primitive_desc pd;
  dnnl::convolution_backward_weights prim;
  bool reorderWeights;
  dnnl::reorder weightsReorder;  // from the primitive's layout back to HWIO
  memory diffWeights;
};

/**
 * Forward and backward-data read the filter: where the primitive wants another layout than tfjs'
 * HWIO, the entry keeps a reorder into a blocked copy.
 */
template <typename Entry>
void prepareWeights(Entry& ent, const ConvParams& p, dnnl::engine& eng) {
  ent.reorderWeights = ent.pd.weights_desc() != p.userWeightsMd();
  if (ent.reorderWeights) {
    ent.weights = memory(ent.pd.weights_desc(), eng);
    memory user(p.userWeightsMd(), eng, nullptr);
    ent.weightsReorder = dnnl::reorder(user, ent.weights);
  }
}

/** Passes the filter `wu` (HWIO) to the primitive, reordered first where the entry needs it. */
template <typename Entry>
void bindWeights(Entry& e, dnnl::stream& s, memory& wu, std::unordered_map<int, memory>& args) {
  if (e.reorderWeights) {
    e.weightsReorder.execute(s, wu, e.weights);
    args.emplace(DNNL_ARG_WEIGHTS, e.weights);
  } else {
    args.emplace(DNNL_ARG_WEIGHTS, wu);
  }
}

/** Reads the parameter block at argument i. */
ConvParams params(const Args& a, size_t i) {
  size_t np;
  const int32_t* raw = a.i32(i, &np);
  needLen(np, ConvParams::kCount, "conv params");
  return ConvParams(raw);
}

/** The convolution forward primitive that backward primitives take as their hint. */
dnnl::convolution_forward::primitive_desc hint(const ConvParams& p, dnnl::engine& eng) {
  return dnnl::convolution_forward::primitive_desc(fwdDesc(p, dnnl::prop_kind::forward_training, false), eng);
}

}  // namespace

// convForward(x, filter, bias|null, out, params: Int32Array, alpha)
napi_value convForward(const Args& a) {
  ConvParams p = params(a, 4);
  float* x = a.f32(0, p.srcSize(), "conv x");
  float* w = a.f32(1, p.weightsSize(), "conv filter");
  size_t nb = 0;
  float* b = a.f32OrNull(2, &nb);
  float* y = a.f32(3, p.dstSize(), "conv output");
  const float alpha = a.argc > 5 ? static_cast<float>(a.num(5)) : 0.f;
  const bool withBias = p.hasBias && b != nullptr;
  if (withBias) needLen(nb, p.oc, "conv bias");

  thread_local Cache<FwdEntry> cache;
  const std::string key = p.key(withBias ? "fwdb" : "fwd", alpha);
  FwdEntry* e = lookup(cache, key);
  auto& eng = engine();
  if (!e) {
    auto d = fwdDesc(p, dnnl::prop_kind::forward_training, withBias);
    dnnl::primitive_attr attr;
    if (p.act) {
      dnnl::post_ops ops;
      appendActivation(ops, p.act, alpha);
      attr.set_post_ops(ops);
    }
    auto ent = std::make_unique<FwdEntry>();
    ent->pd = firstSafeImpl(dnnl::convolution_forward::primitive_desc(d, attr, eng));
    ent->prim = dnnl::convolution_forward(ent->pd);
    prepareWeights(*ent, p, eng);
    noteImpl("conv fwd " + key, ent->pd.impl_info_str());
    e = insert(cache, key, std::move(ent));
  }
  auto& s = stream();
  memory xm(p.srcMd(), eng, x), ym(p.dstMd(), eng, y), wu(p.userWeightsMd(), eng, w);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, xm}, {DNNL_ARG_DST, ym}};
  bindWeights(*e, s, wu, args);
  if (withBias) args.emplace(DNNL_ARG_BIAS, memory(p.biasMd(), eng, b));
  e->prim.execute(s, args);
  s.wait();
  return undefinedValue(a.env);
}

// convBackwardData(dy, filter, dx, params)
napi_value convBackwardData(const Args& a) {
  ConvParams p = params(a, 3);
  float* dy = a.f32(0, p.dstSize(), "conv dy");
  float* w = a.f32(1, p.weightsSize(), "conv filter");
  float* dx = a.f32(2, p.srcSize(), "conv dx");

  thread_local Cache<BwdDataEntry> cache;
  const std::string key = p.key("bwd_data", 0.f);
  BwdDataEntry* e = lookup(cache, key);
  auto& eng = engine();
  if (!e) {
    dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, p.srcMd(), p.anyWeightsMd(),
                                            p.dstMd(), p.strides(), p.dilates(), p.padL(), p.padR());
    auto ent = std::make_unique<BwdDataEntry>();
    ent->pd = firstSafeImpl(dnnl::convolution_backward_data::primitive_desc(d, eng, hint(p, eng)));
    ent->prim = dnnl::convolution_backward_data(ent->pd);
    prepareWeights(*ent, p, eng);
    noteImpl("conv bwd_data " + key, ent->pd.impl_info_str());
    e = insert(cache, key, std::move(ent));
  }
  auto& s = stream();
  memory dym(p.dstMd(), eng, dy), dxm(p.srcMd(), eng, dx), wu(p.userWeightsMd(), eng, w);
  std::unordered_map<int, memory> args{{DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_DIFF_SRC, dxm}};
  bindWeights(*e, s, wu, args);
  e->prim.execute(s, args);
  s.wait();
  return undefinedValue(a.env);
}

// convBackwardWeights(x, dy, dw, params)
napi_value convBackwardWeights(const Args& a) {
  ConvParams p = params(a, 3);
  float* x = a.f32(0, p.srcSize(), "conv x");
  float* dy = a.f32(1, p.dstSize(), "conv dy");
  float* dw = a.f32(2, p.weightsSize(), "conv dw");

  thread_local Cache<BwdWeightsEntry> cache;
  const std::string key = p.key("bwd_weights", 0.f);
  BwdWeightsEntry* e = lookup(cache, key);
  auto& eng = engine();
  if (!e) {
    dnnl::convolution_backward_weights::desc d(dnnl::algorithm::convolution_direct, p.srcMd(), p.anyWeightsMd(),
                                               p.dstMd(), p.strides(), p.dilates(), p.padL(), p.padR());
    auto ent = std::make_unique<BwdWeightsEntry>();
    ent->pd = firstSafeImpl(dnnl::convolution_backward_weights::primitive_desc(d, eng, hint(p, eng)));
    ent->prim = dnnl::convolution_backward_weights(ent->pd);
    ent->reorderWeights = ent->pd.diff_weights_desc() != p.userWeightsMd();
    if (ent->reorderWeights) {
      ent->diffWeights = memory(ent->pd.diff_weights_desc(), eng);
      memory user(p.userWeightsMd(), eng, nullptr);
      ent->weightsReorder = dnnl::reorder(ent->diffWeights, user);
    }
    noteImpl("conv bwd_weights " + key, ent->pd.impl_info_str());
    e = insert(cache, key, std::move(ent));
  }
  auto& s = stream();
  memory xm(p.srcMd(), eng, x), dym(p.dstMd(), eng, dy), dwu(p.userWeightsMd(), eng, dw);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_DST, dym}};
  args.emplace(DNNL_ARG_DIFF_WEIGHTS, e->reorderWeights ? e->diffWeights : dwu);
  e->prim.execute(s, args);
  if (e->reorderWeights) e->weightsReorder.execute(s, e->diffWeights, dwu);
  s.wait();
  return undefinedValue(a.env);
}

}  // namespace odnn

// 2-D max / average pooling in NHWC. Max pooling in training mode writes
// oneDNN's workspace (argmax per output) so the backward pass can scatter
// without recomputing.
#include <memory>
#include <unordered_map>

#include "common.h"

namespace odnn {

namespace {

// Parameter block layout shared with src/native.ts (POOL_PARAMS).
struct PoolParams {
  int n, h, w, c, oh, ow, kh, kw, sh, sw, pt, pl, pb, pr, alg;
  static constexpr int kCount = 15;
  explicit PoolParams(const int32_t* p) { readParams(&n, p, kCount); }
  std::string key(const char* kind) const { return paramsKey(kind, &n, kCount); }
  dnnl::algorithm algorithm() const {
    // 1: average over the in-bounds window (tfjs AvgPool); 2: divide by the
    // full window size (what tfjs' AvgPoolGrad does on every backend).
    return alg == 0   ? dnnl::algorithm::pooling_max
           : alg == 1 ? dnnl::algorithm::pooling_avg_exclude_padding
                      : dnnl::algorithm::pooling_avg_include_padding;
  }
  memory::desc srcMd() const { return {{n, c, h, w}, dt::f32, tag::nhwc}; }
  memory::desc dstMd() const { return {{n, c, oh, ow}, dt::f32, tag::nhwc}; }
  size_t srcSize() const { return size_t(n) * h * w * c; }
  size_t dstSize() const { return size_t(n) * oh * ow * c; }
  dnnl::pooling_forward::desc fwdDesc(dnnl::prop_kind prop) const {
    return {prop, algorithm(), srcMd(), dstMd(), {sh, sw}, {kh, kw}, {pt, pl}, {pb, pr}};
  }
};

struct FwdEntry {
  dnnl::pooling_forward::primitive_desc pd;
  dnnl::pooling_forward prim;
};

struct BwdEntry {
  dnnl::pooling_forward::primitive_desc hint;
  dnnl::pooling_backward::primitive_desc pd;
  dnnl::pooling_backward prim;
};

PoolParams params(const Args& a, size_t i) {
  size_t np;
  const int32_t* raw = a.i32(i, &np);
  needLen(np, PoolParams::kCount, "pool params");
  return PoolParams(raw);
}

FwdEntry* fwdEntry(const PoolParams& p, bool training) {
  thread_local Cache<FwdEntry> cache;
  const std::string key = p.key(training ? "train" : "infer");
  if (FwdEntry* e = lookup(cache, key)) return e;
  auto ent = std::make_unique<FwdEntry>();
  ent->pd = dnnl::pooling_forward::primitive_desc(
      p.fwdDesc(training ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference), engine());
  ent->prim = dnnl::pooling_forward(ent->pd);
  noteImpl("pool fwd " + key, ent->pd.impl_info_str());
  return insert(cache, key, std::move(ent));
}

/** Max pooling's workspace (argument i, a Uint8Array of the primitive's workspace size) into `args`. */
void bindWorkspace(const Args& a, size_t i, const memory::desc& wsMd, std::unordered_map<int, memory>& args) {
  size_t nws;
  uint8_t* ws = a.u8(i, &nws);
  needLen(nws, wsMd.get_size(), "pool workspace");
  args.emplace(DNNL_ARG_WORKSPACE, memory(wsMd, engine(), ws));
}

}  // namespace

// poolWorkspaceSize(params) -> bytes of the max-pooling workspace (0 for avg).
napi_value poolWorkspaceSize(const Args& a) {
  PoolParams p = params(a, 0);
  if (p.alg != 0) return makeNumber(a.env, 0);
  return makeNumber(a.env, static_cast<double>(fwdEntry(p, true)->pd.workspace_desc().get_size()));
}

// poolForward(x, y, params, ws: Uint8Array|null)
napi_value poolForward(const Args& a) {
  PoolParams p = params(a, 2);
  float* x = a.f32(0, p.srcSize(), "pool x");
  float* y = a.f32(1, p.dstSize(), "pool y");
  const bool training = p.alg == 0 && !a.isNullish(3);
  FwdEntry* e = fwdEntry(p, training);
  auto& eng = engine();
  auto& s = stream();
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(p.srcMd(), eng, x)},
                                       {DNNL_ARG_DST, memory(p.dstMd(), eng, y)}};
  if (training) bindWorkspace(a, 3, e->pd.workspace_desc(), args);
  e->prim.execute(s, args);
  s.wait();
  return undefinedValue(a.env);
}

// poolBackward(dy, ws: Uint8Array|null, dx, params)
napi_value poolBackward(const Args& a) {
  PoolParams p = params(a, 3);
  float* dy = a.f32(0, p.dstSize(), "pool dy");
  float* dx = a.f32(2, p.srcSize(), "pool dx");
  thread_local Cache<BwdEntry> cache;
  const std::string key = p.key("bwd");
  auto& eng = engine();
  BwdEntry* e = lookup(cache, key);
  if (!e) {
    auto ent = std::make_unique<BwdEntry>();
    ent->hint = fwdEntry(p, true)->pd;
    dnnl::pooling_backward::desc d(p.algorithm(), p.srcMd(), p.dstMd(), {p.sh, p.sw}, {p.kh, p.kw}, {p.pt, p.pl},
                                   {p.pb, p.pr});
    ent->pd = dnnl::pooling_backward::primitive_desc(d, eng, ent->hint);
    ent->prim = dnnl::pooling_backward(ent->pd);
    noteImpl("pool bwd " + key, ent->pd.impl_info_str());
    e = insert(cache, key, std::move(ent));
  }
  auto& s = stream();
  std::unordered_map<int, memory> args{{DNNL_ARG_DIFF_DST, memory(p.dstMd(), eng, dy)},
                                       {DNNL_ARG_DIFF_SRC, memory(p.srcMd(), eng, dx)}};
  if (p.alg == 0) bindWorkspace(a, 1, e->pd.workspace_desc(), args);
  e->prim.execute(s, args);
  s.wait();
  return undefinedValue(a.env);
}

}  // namespace odnn

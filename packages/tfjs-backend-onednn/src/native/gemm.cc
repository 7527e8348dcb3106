// (Batched) matrix multiplication as a oneDNN matmul primitive (brgemm
// kernels), with an optional bias (per column or scalar) and activation as
// post-ops. oneDNN's sgemm / gemm-based implementations are avoided: in
// Debian's oneDNN 2.6.3 they corrupt the heap when a signal handler runs on
// the calling thread mid-call (e.g. under `node --cpu-prof`).
#include <memory>
#include <unordered_map>

#include "common.h"

namespace odnn {

namespace {

struct Entry {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
  memory::desc a, b, c, bias;
};

}  // namespace

// matmul(a, b, out, params: [batchA, batchB, M, N, K, transA, transB], bias|null, act, alpha)
// a is [batchA, M, K] (or [batchA, K, M] when transA), b is [batchB, K, N]
// (or [batchB, N, K] when transB); out is [max(batchA, batchB), M, N].
napi_value matmul(const Args& a) {
  size_t na, nb, no, np, nbias = 0;
  const float* A = a.f32(0, &na);
  const float* B = a.f32(1, &nb);
  float* C = a.f32(2, &no);
  const int32_t* p = a.i32(3, &np);
  needLen(np, 7, "matmul params");
  const float* bias = a.f32OrNull(4, &nbias);
  const int act = a.argc > 5 ? a.int32(5) : 0;
  const float alpha = a.argc > 6 ? static_cast<float>(a.num(6)) : 0.f;
  const int64_t batchA = p[0], batchB = p[1], M = p[2], N = p[3], K = p[4];
  const bool tA = p[5] != 0, tB = p[6] != 0;
  if (batchA != batchB && batchA != 1 && batchB != 1) throw ArgError("matmul: batch dims do not broadcast");
  if (M <= 0 || N <= 0 || K <= 0) throw ArgError("matmul: empty dimensions are not supported natively");
  const int64_t batch = std::max(batchA, batchB);
  needLen(na, static_cast<size_t>(batchA * M * K), "matmul a");
  needLen(nb, static_cast<size_t>(batchB * K * N), "matmul b");
  needLen(no, static_cast<size_t>(batch * M * N), "matmul out");
  if (bias && nbias != 1 && static_cast<int64_t>(nbias) != N) throw ArgError("matmul: bias must have N or 1 elements");

  std::string key;
  for (int i = 0; i < 7; i++) key += std::to_string(p[i]) + ",";
  key += bias ? (nbias == 1 ? "b1," : "bN,") : "b0,";
  key += std::to_string(act) + "," + std::to_string(alpha);

  thread_local Cache<Entry> cache;
  auto& eng = engine();
  Entry* e = lookup(cache, key);
  if (!e) {
    auto ent = std::make_unique<Entry>();
    ent->a = memory::desc({batchA, M, K}, dt::f32, tA ? memory::dims{M * K, 1, M} : memory::dims{M * K, K, 1});
    ent->b = memory::desc({batchB, K, N}, dt::f32, tB ? memory::dims{K * N, 1, K} : memory::dims{K * N, N, 1});
    ent->c = memory::desc({batch, M, N}, dt::f32, memory::dims{M * N, N, 1});
    dnnl::primitive_attr attr;
    if (act) {
      dnnl::post_ops ops;
      appendActivation(ops, act, alpha);
      attr.set_post_ops(ops);
    }
    std::unique_ptr<dnnl::matmul::desc> d;
    if (bias) {
      const int64_t bn = nbias == 1 ? 1 : N;
      ent->bias = memory::desc({1, 1, bn}, dt::f32, memory::dims{bn, bn, 1});
      d = std::make_unique<dnnl::matmul::desc>(ent->a, ent->b, ent->bias, ent->c);
    } else {
      d = std::make_unique<dnnl::matmul::desc>(ent->a, ent->b, ent->c);
    }
    ent->pd = firstSafeImpl(dnnl::matmul::primitive_desc(*d, attr, eng));
    ent->prim = dnnl::matmul(ent->pd);
    noteImpl("matmul " + key, ent->pd.impl_info_str());
    e = insert(cache, key, std::move(ent));
  }
  auto& s = stream();
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory(e->a, eng, const_cast<float*>(A))},
                                       {DNNL_ARG_WEIGHTS, memory(e->b, eng, const_cast<float*>(B))},
                                       {DNNL_ARG_DST, memory(e->c, eng, C)}};
  if (bias) args.emplace(DNNL_ARG_BIAS, memory(e->bias, eng, const_cast<float*>(bias)));
  e->prim.execute(s, args);
  s.wait();
  return undefinedValue(a.env);
}

}  // namespace odnn

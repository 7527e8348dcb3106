// N-API module registration, thread control and diagnostics.
#include <map>
#include <mutex>

#include "common.h"

namespace odnn {

namespace {
int g_threads = 1;
thread_local int t_applied = -1;
std::mutex g_implMutex;
std::map<std::string, std::string> g_impls;
}  // namespace

int threads() { return g_threads; }

void setThreads(int n) {
  g_threads = n < 1 ? 1 : n;
  applyThreads();
}

void applyThreads() {
  if (t_applied != g_threads) {
    omp_set_num_threads(g_threads);
    t_applied = g_threads;
  }
}

dnnl::engine& engine() {
  thread_local dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

napi_value undefinedValue(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

napi_value makeString(napi_env env, const std::string& s) {
  napi_value v;
  napi_create_string_utf8(env, s.c_str(), s.size(), &v);
  return v;
}

napi_value makeNumber(napi_env env, double d) {
  napi_value v;
  napi_create_double(env, d, &v);
  return v;
}

void noteImpl(const std::string& kind, const std::string& impl) {
  std::lock_guard<std::mutex> lock(g_implMutex);
  g_impls[kind] = impl;
}

napi_value describe(const Args& a) {
  std::string out;
  {
    std::lock_guard<std::mutex> lock(g_implMutex);
    for (const auto& kv : g_impls) out += kv.first + " -> " + kv.second + "\n";
  }
  return makeString(a.env, out);
}

namespace {

napi_value setThreadsFn(const Args& a) {
  setThreads(a.int32(0));
  return makeNumber(a.env, g_threads);
}

napi_value getThreadsFn(const Args& a) { return makeNumber(a.env, g_threads); }

napi_value infoFn(const Args& a) {
  const dnnl_version_t* v = dnnl_version();
  std::string isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_core_amx: isa = "avx512_core_amx"; break;
    case dnnl::cpu_isa::avx512_core_bf16: isa = "avx512_core_bf16"; break;
    case dnnl::cpu_isa::avx512_core_vnni: isa = "avx512_core_vnni"; break;
    case dnnl::cpu_isa::avx512_core: isa = "avx512_core"; break;
    case dnnl::cpu_isa::avx2_vnni: isa = "avx2_vnni"; break;
    case dnnl::cpu_isa::avx2: isa = "avx2"; break;
    case dnnl::cpu_isa::avx: isa = "avx"; break;
    case dnnl::cpu_isa::sse41: isa = "sse41"; break;
    default: isa = "other"; break;
  }
  std::string s = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                  std::to_string(v->patch) + " cpu_runtime=" +
                  (v->cpu_runtime == DNNL_RUNTIME_OMP ? "omp" : v->cpu_runtime == DNNL_RUNTIME_TBB ? "tbb" : "other") +
                  " isa=" + isa + " omp_max_threads=" + std::to_string(omp_get_max_threads());
  return makeString(a.env, s);
}

struct Export {
  const char* name;
  napi_callback cb;
};

napi_value Init(napi_env env, napi_value exports) {
  static const Export table[] = {
      {"setThreads", wrap<setThreadsFn>},
      {"getThreads", wrap<getThreadsFn>},
      {"info", wrap<infoFn>},
      {"describe", wrap<describe>},
      {"convForward", wrap<convForward>},
      {"convBackwardData", wrap<convBackwardData>},
      {"convBackwardWeights", wrap<convBackwardWeights>},
      {"poolForward", wrap<poolForward>},
      {"poolBackward", wrap<poolBackward>},
      {"poolWorkspaceSize", wrap<poolWorkspaceSize>},
      {"matmul", wrap<matmul>},
      {"binary", wrap<binary>},
      {"unary", wrap<unary>},
      {"reduce", wrap<reduce>},
      {"softmax", wrap<softmax>},
      {"reluGrad", wrap<reluGrad>},
      {"gather", wrap<gather>},
      {"adam", wrap<adam>},
      {"addN", wrap<addN>},
      {"dropoutMask", wrap<dropoutMask>},
      {"dropoutMaskSegments", wrap<dropoutMaskSegments>},
      {"uniform", wrap<uniform>},
      {"stepCreate", wrap<stepCreate>},
      {"stepRun", wrap<stepRun>},
      {"stepProfile", wrap<stepProfile>},
      {"stepFused", wrap<stepFused>},
      {"seededDropout", wrap<seededDropout>},
  };
  for (const auto& e : table) {
    napi_value fn;
    napi_create_function(env, e.name, NAPI_AUTO_LENGTH, e.cb, nullptr, &fn);
    napi_set_named_property(env, exports, e.name, fn);
  }
  return exports;
}

}  // namespace
}  // namespace odnn

NAPI_MODULE(NODE_GYP_MODULE_NAME, odnn::Init)

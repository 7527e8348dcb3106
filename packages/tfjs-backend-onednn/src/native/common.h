// Shared helpers for the oneDNN N-API addon: argument access (zero-copy views
// of JS typed arrays), the thread-local oneDNN engine/stream, and the thread
// count applied to OpenMP before every native call.
#pragma once

#include <node_api.h>
#include <omp.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace odnn {

// oneDNN's memory and its descriptors' vocabulary, as every translation unit spells them.
using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/** Requires `got >= need` elements, naming the argument in the error. */
inline void needLen(size_t got, size_t need, const char* what) {
  if (got < need) {
    throw ArgError(std::string(what) + ": buffer has " + std::to_string(got) + " elements, needs " + std::to_string(need));
  }
}

constexpr size_t kMaxArgs = 12;

struct Args {
  napi_env env;
  size_t argc = kMaxArgs;
  napi_value argv[kMaxArgs];
  Args(napi_env e, napi_callback_info info) : env(e) {
    if (napi_get_cb_info(e, info, &argc, argv, nullptr, nullptr) != napi_ok) {
      throw ArgError("napi_get_cb_info failed");
    }
  }
  napi_value at(size_t i) const {
    if (i >= argc) throw ArgError("missing argument " + std::to_string(i));
    return argv[i];
  }
  bool isNullish(size_t i) const {
    if (i >= argc) return true;
    napi_valuetype t;
    napi_typeof(env, argv[i], &t);
    return t == napi_null || t == napi_undefined;
  }
  /** Argument i's typed-array view: its data, element type and length (`what` names it in the error). */
  void* typedInfo(size_t i, napi_typedarray_type* t, size_t* n, const char* what) const {
    bool isTyped = false;
    napi_is_typedarray(env, at(i), &isTyped);
    if (!isTyped) throw ArgError(std::string("argument ") + std::to_string(i) + " must be a " + what);
    void* data;
    napi_value ab;
    size_t off;
    napi_get_typedarray_info(env, argv[i], t, n, &data, &ab, &off);
    return data;
  }
  void* typed(size_t i, napi_typedarray_type want, size_t* len, const char* what) const {
    napi_typedarray_type t;
    size_t n;
    void* data = typedInfo(i, &t, &n, what);
    if (t != want) throw ArgError(std::string("argument ") + std::to_string(i) + " must be a " + what);
    if (len) *len = n;
    return data;
  }
  float* f32(size_t i, size_t* len = nullptr) const {
    return static_cast<float*>(typed(i, napi_float32_array, len, "Float32Array"));
  }
  /** Argument i as a Float32Array of at least `need` elements (`what` names it in the error). */
  float* f32(size_t i, size_t need, const char* what) const {
    size_t n;
    float* p = f32(i, &n);
    needLen(n, need, what);
    return p;
  }
  float* f32OrNull(size_t i, size_t* len = nullptr) const { return isNullish(i) ? nullptr : f32(i, len); }
  int32_t* i32(size_t i, size_t* len = nullptr) const {
    return static_cast<int32_t*>(typed(i, napi_int32_array, len, "Int32Array"));
  }
  uint8_t* u8(size_t i, size_t* len = nullptr) const {
    return static_cast<uint8_t*>(typed(i, napi_uint8_array, len, "Uint8Array"));
  }
  /** Any typed array of 4-byte elements (float32 / int32 / uint32), as raw words. */
  uint32_t* words(size_t i, size_t* len = nullptr) const {
    napi_typedarray_type t;
    size_t n;
    void* data = typedInfo(i, &t, &n, "typed array");
    if (t != napi_float32_array && t != napi_int32_array && t != napi_uint32_array) {
      throw ArgError("argument " + std::to_string(i) + " must hold 4-byte elements");
    }
    if (len) *len = n;
    return static_cast<uint32_t*>(data);
  }
  uint32_t* u32(size_t i, size_t* len = nullptr) const {
    return static_cast<uint32_t*>(typed(i, napi_uint32_array, len, "Uint32Array"));
  }
  double num(size_t i) const {
    double v;
    if (napi_get_value_double(env, at(i), &v) != napi_ok) throw ArgError("argument " + std::to_string(i) + " must be a number");
    return v;
  }
  int32_t int32(size_t i) const {
    int32_t v;
    if (napi_get_value_int32(env, at(i), &v) != napi_ok) throw ArgError("argument " + std::to_string(i) + " must be an integer");
    return v;
  }
};

int threads();
void setThreads(int n);
/** Applies the configured thread count to the calling thread's OpenMP ICV. */
void applyThreads();
/**
 * Threads to use for a loop over `work` elements: 1 below ~1 MB of floats,
 * where waking a sleeping OpenMP worker (passive wait policy) costs about as
 * much as the loop, and a busy machine can delay that worker by milliseconds.
 */
inline int threadsFor(size_t work) { return work < (1u << 18) ? 1 : threads(); }

dnnl::engine& engine();
dnnl::stream& stream();

napi_value undefinedValue(napi_env env);
napi_value makeString(napi_env env, const std::string& s);
napi_value makeNumber(napi_env env, double v);

using Fn = napi_value (*)(const Args&);

/** Wraps a native function: parses args, applies threads, maps C++ errors to JS errors. */
template <Fn F>
napi_value wrap(napi_env env, napi_callback_info info) {
  try {
    Args args(env, info);
    applyThreads();
    return F(args);
  } catch (const dnnl::error& e) {
    napi_throw_error(env, "ONEDNN_ERROR", (std::string("oneDNN: ") + e.what()).c_str());
  } catch (const ArgError& e) {
    napi_throw_type_error(env, "ONEDNN_ARG", e.what());
  } catch (const std::exception& e) {
    napi_throw_error(env, "ONEDNN_NATIVE", e.what());
  }
  return nullptr;
}

// Entry points implemented in the other translation units.
napi_value convForward(const Args& a);
napi_value convBackwardData(const Args& a);
napi_value convBackwardWeights(const Args& a);
napi_value poolForward(const Args& a);
napi_value poolBackward(const Args& a);
napi_value poolWorkspaceSize(const Args& a);
napi_value matmul(const Args& a);
napi_value binary(const Args& a);
napi_value unary(const Args& a);
napi_value reduce(const Args& a);
napi_value softmax(const Args& a);
napi_value reluGrad(const Args& a);
napi_value gather(const Args& a);
napi_value adam(const Args& a);
napi_value addN(const Args& a);
napi_value dropoutMask(const Args& a);
napi_value dropoutMaskSegments(const Args& a);
napi_value uniform(const Args& a);
napi_value describe(const Args& a);
napi_value stepCreate(const Args& a);
napi_value stepRun(const Args& a);
napi_value stepProfile(const Args& a);
napi_value stepFused(const Args& a);
napi_value seededDropout(const Args& a);

/** Appends a fused activation (codes of ACT in src/native.ts) to post-ops. */
void appendActivation(dnnl::post_ops& ops, int act, float alpha);

/**
 * Skips oneDNN implementations built on its gemm kernels ("gemm:*"): in
 * oneDNN 2.6.3 they corrupt the heap when a signal handler interrupts them.
 * Keeps the first implementation when no other exists.
 */
template <typename PD>
PD firstSafeImpl(PD pd) {
  PD first = pd;
  do {
    const std::string name = pd.impl_info_str();
    if (name.rfind("gemm:", 0) != 0) return pd;
  } while (pd.next_impl());
  return first;
}

/** Records "kind: impl" lines for describe(). */
void noteImpl(const std::string& kind, const std::string& impl);

/** A per-thread cache of oneDNN primitives (and what goes with them), by shape key. */
template <typename T>
using Cache = std::unordered_map<std::string, std::unique_ptr<T>>;

template <typename T>
T* lookup(Cache<T>& cache, const std::string& key) {
  auto it = cache.find(key);
  return it == cache.end() ? nullptr : it->second.get();
}

/** Stores a new entry; a cache that reached 256 shapes starts over (an odd workload must not grow it forever). */
template <typename T>
T* insert(Cache<T>& cache, const std::string& key, std::unique_ptr<T> e) {
  if (cache.size() >= 256) cache.clear();
  T* raw = e.get();
  cache[key] = std::move(e);
  return raw;
}

/**
 * A parameter block shared with src/native.ts: `count` int32s copied, in order, into the int fields
 * of a struct starting at `first`.
 */
inline void readParams(int* first, const int32_t* p, int count) {
  for (int i = 0; i < count; i++) first[i] = p[i];
}

/** A cache key: `kind`, then every field of a parameter block. */
inline std::string paramsKey(const char* kind, const int* first, int count) {
  std::string k(kind);
  for (int i = 0; i < count; i++) k += "," + std::to_string(first[i]);
  return k;
}

}  // namespace odnn

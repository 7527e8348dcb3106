// A dependency-free addon that sets process environment variables for real
// (setenv), so that libgomp — loaded with the main addon — reads them at its
// initialisation even when the backend is loaded from a worker thread, whose
// process.env is only a copy. Used for OMP_WAIT_POLICY.
#include <node_api.h>

#include <cstdlib>
#include <string>

namespace {

std::string str(napi_env env, napi_value v) {
  size_t len = 0;
  napi_get_value_string_utf8(env, v, nullptr, 0, &len);
  std::string s(len, '\0');
  napi_get_value_string_utf8(env, v, s.data(), len + 1, &len);
  return s;
}

// setDefault(name, value): sets name=value unless name is already set; returns the value in effect.
napi_value setDefault(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 2) {
    napi_throw_type_error(env, nullptr, "setDefault(name, value)");
    return nullptr;
  }
  const std::string name = str(env, argv[0]), value = str(env, argv[1]);
  setenv(name.c_str(), value.c_str(), 0);
  const char* now = getenv(name.c_str());
  napi_value out;
  napi_create_string_utf8(env, now ? now : "", NAPI_AUTO_LENGTH, &out);
  return out;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "setDefault", NAPI_AUTO_LENGTH, setDefault, nullptr, &fn);
  napi_set_named_property(env, exports, "setDefault", fn);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)

{
  "targets": [
    {
      "target_name": "tfjs_onednn",
      "sources": [
        "src/native/addon.cc",
        "src/native/conv.cc",
        "src/native/pool.cc",
        "src/native/gemm.cc",
        "src/native/eltwise.cc",
        "src/native/reduce.cc",
        "src/native/random.cc",
        "src/native/step.cc",
        "src/native/conv-pool.cc"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-fopenmp", "-fno-math-errno", "-ffp-contract=off", "-Wall", "-Wno-unknown-pragmas"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-ldnnl"]
    },
    {
      "target_name": "tfjs_onednn_env",
      "sources": ["src/native/env.cc"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-std=c++17", "-O2"]
    }
  ]
}

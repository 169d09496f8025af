// gsmlp_cuda_selfcheck: the CUDA kernels through the C ABI, with no torch, the way the TensorRT plugins'
// enqueue calls them (device pointers, a workspace of exactly gsmlp_cuda_workspace_size() bytes, a stream
// of its own, active_blocks == NULL), checked against a double-precision reference of docs/op_spec.md:
// GatedSparseMLP, then MultiScaleDeformableAttention (device level tables as TensorRT passes them, host ones
// as ONNX Runtime does, and a table inconsistent with value that must read nothing outside it).
//
// Every buffer is its own cudaMalloc of its exact size, so compute-sanitizer's memcheck sees an access one
// element past any of them; scripts/gpu_check.sh runs this program natively and under memcheck and racecheck.
//
// Exit status: 0 every case matches, 1 a mismatch or a CUDA/library error, 2 bad arguments,
// 3 no CUDA device (nothing was checked).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gsmlp/gated_sparse_mlp.h"
#include "gsmlp/multi_scale_deformable_attention.h"

namespace {

struct Case {
  const char* name;
  int64_t tokens, d_model, hidden, block_size, rank, x_row_stride;
  bool gated;
  double sparsity;  // target fraction of inactive (token, block) pairs when gated
  gsmlp_dtype dtype;
};

// Small enough to run in seconds under racecheck; each crosses a 64-row tile and ends in a partial block.
const Case kCases[] = {
    {"fp32 gated", 130, 64, 200, 32, 8, 64, true, 0.5, GSMLP_FP32},
    {"fp16 gated", 130, 64, 200, 32, 8, 64, true, 0.5, GSMLP_FP16},
    {"fp32 gated, strided rows", 70, 64, 96, 16, 4, 80, true, 0.7, GSMLP_FP32},
    {"fp32 dense (no gate)", 70, 48, 136, 32, 0, 48, false, 0.0, GSMLP_FP32},
    {"fp16 dense (no gate)", 70, 48, 136, 32, 0, 48, false, 0.0, GSMLP_FP16},
};

int g_failures = 0;
constexpr int kCpuThreads = 1;

bool cuda_ok(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return true;
  std::printf("FAIL %s: %s (%s)\n", what, cudaGetErrorString(e), cudaGetErrorName(e));
  ++g_failures;
  return false;
}

// `values` in the case's dtype, in host memory or in a device allocation of its exact size.
struct Buffer {
  std::vector<unsigned char> host;
  void* device = nullptr;
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() {
    if (device) cudaFree(device);
  }
  void* ptr() { return device ? device : (host.empty() ? nullptr : host.data()); }
};

bool allocate(Buffer& buffer, size_t bytes, bool on_device) {
  if (!on_device) {
    buffer.host.assign(bytes, 0);
    return true;
  }
  return cuda_ok(cudaMalloc(&buffer.device, bytes), "cudaMalloc");
}

bool upload(Buffer& buffer, const std::vector<double>& values, gsmlp_dtype dtype, bool on_device) {
  if (values.empty()) return true;
  std::vector<unsigned char> bytes;
  if (dtype == GSMLP_FP16) {
    std::vector<__half> h(values.size());
    for (size_t i = 0; i < values.size(); ++i) h[i] = __double2half(values[i]);
    bytes.resize(h.size() * sizeof(__half));
    std::memcpy(bytes.data(), h.data(), bytes.size());
  } else {
    std::vector<float> f(values.begin(), values.end());
    bytes.resize(f.size() * sizeof(float));
    std::memcpy(bytes.data(), f.data(), bytes.size());
  }
  if (!on_device) {
    buffer.host = std::move(bytes);
    return true;
  }
  return allocate(buffer, bytes.size(), true) &&
         cuda_ok(cudaMemcpy(buffer.device, bytes.data(), bytes.size(), cudaMemcpyHostToDevice), "cudaMemcpy to device");
}

// The value the kernel sees: rounded to the storage type.
double stored(double v, gsmlp_dtype dtype) {
  return dtype == GSMLP_FP16 ? static_cast<double>(__half2float(__double2half(v))) : static_cast<double>(float(v));
}

std::vector<double> uniform(std::mt19937& rng, size_t n, double bound, gsmlp_dtype dtype) {
  std::uniform_real_distribution<double> dist(-bound, bound);
  std::vector<double> v(n);
  for (double& x : v) x = stored(dist(rng), dtype);
  return v;
}

// The threshold in the widest gap between sorted logits near the target quantile, so that a different fp32
// summation order on the GPU cannot move a logit across it. Returns the gap's half-width in `margin`.
double threshold_for(std::vector<double> logits, double sparsity, double* margin) {
  std::sort(logits.begin(), logits.end());
  const int64_t n = static_cast<int64_t>(logits.size());
  const int64_t k = std::clamp<int64_t>(static_cast<int64_t>(sparsity * n), 1, n - 1);
  const int64_t window = std::max<int64_t>(1, n / 50);
  int64_t best = k;
  for (int64_t i = std::max<int64_t>(1, k - window); i <= std::min(n - 1, k + window); ++i)
    if (logits[i] - logits[i - 1] > logits[best] - logits[best - 1]) best = i;
  *margin = (logits[best] - logits[best - 1]) / 2;
  return (logits[best] + logits[best - 1]) / 2;
}

bool run_case(const Case& c, bool on_device, cudaStream_t stream) {
  std::mt19937 rng(1234 + static_cast<unsigned>(c.tokens * 7 + c.hidden));
  const int64_t T = c.tokens, D = c.d_model, H = c.hidden, B = c.block_size, R = c.rank, S = c.x_row_stride;
  const int64_t NB = (H + B - 1) / B;
  // torch.nn.Linear's initialisation bounds; x in [-1, 1].
  std::vector<double> x = uniform(rng, static_cast<size_t>(T * S), 1.0, c.dtype);
  std::vector<double> w1 = uniform(rng, static_cast<size_t>(H * D), 1.0 / std::sqrt(double(D)), c.dtype);
  std::vector<double> b1 = uniform(rng, static_cast<size_t>(H), 1.0 / std::sqrt(double(D)), c.dtype);
  std::vector<double> w2 = uniform(rng, static_cast<size_t>(D * H), 1.0 / std::sqrt(double(H)), c.dtype);
  std::vector<double> b2 = uniform(rng, static_cast<size_t>(D), 1.0 / std::sqrt(double(H)), c.dtype);
  std::vector<double> gd, gu, gb;
  if (c.gated) {
    gd = uniform(rng, static_cast<size_t>(R * D), 1.0 / std::sqrt(double(D)), c.dtype);
    gu = uniform(rng, static_cast<size_t>(NB * R), 1.0 / std::sqrt(double(R)), c.dtype);
    gb = uniform(rng, static_cast<size_t>(NB), 1.0 / std::sqrt(double(R)), c.dtype);
  }

  // Reference: gate logits, then per token the active blocks' neurons only.
  std::vector<double> logits(static_cast<size_t>(T * NB), 0.0);
  double threshold = -INFINITY, margin = INFINITY;
  if (c.gated) {
    for (int64_t t = 0; t < T; ++t) {
      std::vector<double> z(static_cast<size_t>(R), 0.0);
      for (int64_t r = 0; r < R; ++r)
        for (int64_t k = 0; k < D; ++k) z[r] += gd[r * D + k] * x[t * S + k];
      for (int64_t j = 0; j < NB; ++j) {
        double l = gb[j];
        for (int64_t r = 0; r < R; ++r) l += gu[j * R + r] * z[r];
        logits[t * NB + j] = l;
      }
    }
    threshold = threshold_for(logits, c.sparsity, &margin);
    threshold = static_cast<double>(static_cast<float>(threshold));  // the ABI carries a float
  }
  std::vector<double> ref(static_cast<size_t>(T * D));
  std::vector<int32_t> ref_active(static_cast<size_t>(T), 0);
  for (int64_t t = 0; t < T; ++t) {
    std::vector<double> h(static_cast<size_t>(H), 0.0);
    for (int64_t j = 0; j < NB; ++j) {
      if (c.gated && logits[t * NB + j] <= threshold) continue;
      ++ref_active[t];
      for (int64_t i = j * B; i < std::min(H, (j + 1) * B); ++i) {
        double acc = b1[i];
        for (int64_t k = 0; k < D; ++k) acc += w1[i * D + k] * x[t * S + k];
        h[i] = std::max(acc, 0.0);
      }
    }
    for (int64_t o = 0; o < D; ++o) {
      double acc = b2[o];
      for (int64_t i = 0; i < H; ++i) acc += w2[o * H + i] * h[i];
      ref[t * D + o] = acc;
    }
  }

  Buffer dx, dw1, db1, dw2, db2, dgd, dgu, dgb, dy, dactive, dws;
  if (!upload(dx, x, c.dtype, on_device) || !upload(dw1, w1, c.dtype, on_device) ||
      !upload(db1, b1, c.dtype, on_device) || !upload(dw2, w2, c.dtype, on_device) ||
      !upload(db2, b2, c.dtype, on_device) || !upload(dgd, gd, c.dtype, on_device) ||
      !upload(dgu, gu, c.dtype, on_device) || !upload(dgb, gb, c.dtype, on_device))
    return false;
  const size_t element = c.dtype == GSMLP_FP16 ? 2 : 4, y_bytes = static_cast<size_t>(T * D) * element;
  if (!allocate(dy, y_bytes, on_device) || !allocate(dactive, static_cast<size_t>(T) * sizeof(int32_t), on_device))
    return false;

  gsmlp_problem problem{T, D, H, B, R, static_cast<float>(threshold), c.dtype};
  const size_t workspace_bytes =
      on_device ? gsmlp_cuda_workspace_size(&problem) : gsmlp_cpu_workspace_size(&problem, kCpuThreads);
  if (workspace_bytes == 0 || !allocate(dws, workspace_bytes, on_device)) {
    std::printf("FAIL %s: workspace of %zu bytes\n", c.name, workspace_bytes);
    ++g_failures;
    return false;
  }
  gsmlp_tensors tensors{};
  tensors.x = dx.ptr();
  tensors.x_row_stride = S;
  tensors.w1 = dw1.ptr();
  tensors.b1 = db1.ptr();
  tensors.w2 = dw2.ptr();
  tensors.b2 = db2.ptr();
  tensors.gate_down_w = c.gated ? dgd.ptr() : nullptr;
  tensors.gate_up_w = c.gated ? dgu.ptr() : nullptr;
  tensors.gate_up_b = c.gated ? dgb.ptr() : nullptr;
  tensors.y = dy.ptr();

  const double atol = c.dtype == GSMLP_FP16 ? 2e-3 : 1e-4, rtol = atol;
  bool ok = true;
  // First with active_blocks (sparsity accounting, as the torch op calls it), then with NULL (as enqueue does).
  for (int pass = 0; pass < 2; ++pass) {
    tensors.active_blocks = pass == 0 ? static_cast<int32_t*>(dactive.ptr()) : nullptr;
    int status;
    if (on_device) {
      if (!cuda_ok(cudaMemsetAsync(dy.device, 0xff, y_bytes, stream), "memset y")) return false;
      status = gsmlp_cuda_forward(&problem, &tensors, dws.ptr(), workspace_bytes, stream);
    } else {
      std::memset(dy.host.data(), 0xff, y_bytes);
      status = gsmlp_cpu_forward(&problem, &tensors, dws.ptr(), workspace_bytes, kCpuThreads);
    }
    if (status != GSMLP_OK) {
      std::printf("FAIL %s: gsmlp_%s_forward: %s: %s\n", c.name, on_device ? "cuda" : "cpu",
                  gsmlp_status_string(status), gsmlp_last_error());
      ++g_failures;
      return false;
    }
    if (on_device && !cuda_ok(cudaStreamSynchronize(stream), "kernels")) return false;
    std::vector<unsigned char> y_bytes_host(y_bytes);
    std::vector<int32_t> active(static_cast<size_t>(T));
    if (on_device) {
      if (!cuda_ok(cudaMemcpy(y_bytes_host.data(), dy.device, y_bytes, cudaMemcpyDeviceToHost), "copy y") ||
          !cuda_ok(cudaMemcpy(active.data(), dactive.device, active.size() * 4, cudaMemcpyDeviceToHost), "copy active"))
        return false;
    } else {
      y_bytes_host = dy.host;
      std::memcpy(active.data(), dactive.host.data(), active.size() * 4);
    }
    std::vector<double> y(static_cast<size_t>(T * D));
    for (size_t i = 0; i < y.size(); ++i) {
      if (c.dtype == GSMLP_FP16) {
        __half v;
        std::memcpy(&v, y_bytes_host.data() + i * 2, 2);
        y[i] = __half2float(v);
      } else {
        float v;
        std::memcpy(&v, y_bytes_host.data() + i * 4, 4);
        y[i] = v;
      }
    }
    double worst = 0.0;
    int64_t bad = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      const double err = std::fabs(y[i] - ref[i]);
      worst = std::max(worst, std::isnan(err) ? INFINITY : err);
      if (!(err <= atol + rtol * std::fabs(ref[i]))) ++bad;
    }
    int64_t active_total = 0, active_wrong = 0;
    for (int64_t t = 0; t < T; ++t) active_total += ref_active[t];
    if (pass == 0)
      for (int64_t t = 0; t < T; ++t) active_wrong += active[t] != ref_active[t];
    const bool case_ok = bad == 0 && active_wrong == 0;
    std::printf("%s %s %-26s tokens %3lld d_model %3lld hidden %3lld block %2lld stride %3lld active_blocks %s: "
                "sparsity %.3f (gate margin %.2e), max |y - ref| %.2e (tolerance %.0e + %.0e |ref|), "
                "%lld outside, %lld active counts wrong\n",
                case_ok ? "ok  " : "FAIL", on_device ? "cuda" : "cpu ", c.name, static_cast<long long>(T), static_cast<long long>(D),
                static_cast<long long>(H), static_cast<long long>(B), static_cast<long long>(S),
                pass == 0 ? "out " : "NULL", 1.0 - double(active_total) / double(T * NB), margin, worst, atol, rtol,
                static_cast<long long>(bad), static_cast<long long>(active_wrong));
    if (!case_ok) {
      ++g_failures;
      ok = false;
    }
  }
  return ok;
}


// ---------------------------------------------------------------- MultiScaleDeformableAttention

struct MsdaCase {
  const char* name;
  int64_t batch, queries, heads, head_dim, points;
  std::vector<std::pair<int32_t, int32_t>> levels;  // (H, W)
  double low, high;  // sampling locations uniform in [low, high]; low == high: pixel borders and centres
  gsmlp_dtype dtype;
  bool host_levels;   // gsmlp_msda_cuda_forward_host_levels (ONNX Runtime's CPU-side tables)
  int64_t start_shift;  // > 0: level_start_index of the last level pushed past value (device tables only)
};

// Levels with a 1x1 one; D 40 and 13 cross the 32-channel warps; the R50 encoder's widths at few queries.
const MsdaCase kMsdaCases[] = {
    {"msda fp32, outside [0,1]", 2, 37, 3, 40, 3, {{12, 10}, {6, 5}, {3, 3}, {1, 1}}, -0.3, 1.3, GSMLP_FP32, false, 0},
    {"msda fp32, host levels", 2, 37, 3, 40, 3, {{12, 10}, {6, 5}, {3, 3}, {1, 1}}, -0.3, 1.3, GSMLP_FP32, true, 0},
    {"msda fp16, outside [0,1]", 2, 37, 3, 13, 3, {{12, 10}, {6, 5}, {1, 1}}, -0.3, 1.3, GSMLP_FP16, false, 0},
    {"msda fp32, pixel borders", 1, 64, 2, 32, 4, {{4, 8}, {2, 4}, {1, 1}}, 0.0, 0.0, GSMLP_FP32, false, 0},
    {"msda fp32, R50 widths", 1, 50, 8, 32, 4, {{100, 100}, {50, 50}, {25, 25}, {13, 13}}, 0.0, 1.0, GSMLP_FP32,
     false, 0},
    {"msda fp32, no queries", 2, 0, 3, 8, 2, {{4, 4}, {2, 2}}, 0.0, 1.0, GSMLP_FP32, false, 0},
    {"msda fp32, bad device table", 1, 20, 2, 8, 2, {{4, 4}, {2, 2}}, -0.1, 1.1, GSMLP_FP32, false, 3},
};

bool upload_ints(Buffer& buffer, const std::vector<int32_t>& values, bool on_device) {
  const size_t bytes = values.size() * sizeof(int32_t);
  if (!on_device) {
    buffer.host.assign(reinterpret_cast<const unsigned char*>(values.data()),
                       reinterpret_cast<const unsigned char*>(values.data()) + bytes);
    return true;
  }
  return allocate(buffer, bytes, true) &&
         cuda_ok(cudaMemcpy(buffer.device, values.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device");
}

// docs/op_spec.md in double precision; a row outside value (the bad-table case) contributes 0, as the kernel
// promises for tables it cannot check.
std::vector<double> msda_reference(const MsdaCase& c, int64_t s, const std::vector<double>& value,
                                   const std::vector<int32_t>& starts, const std::vector<double>& loc,
                                   const std::vector<double>& weights) {
  const int64_t L = static_cast<int64_t>(c.levels.size()), M = c.heads, D = c.head_dim, P = c.points;
  std::vector<double> out(static_cast<size_t>(c.batch * c.queries * M * D), 0.0);
  for (int64_t n = 0; n < c.batch; ++n)
    for (int64_t q = 0; q < c.queries; ++q)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t l = 0; l < L; ++l)
          for (int64_t p = 0; p < P; ++p) {
            const int64_t sample = (((n * c.queries + q) * M + m) * L + l) * P + p;
            const int64_t h = c.levels[l].first, w = c.levels[l].second;
            const double x = loc[2 * sample] * w - 0.5, y = loc[2 * sample + 1] * h - 0.5;
            const double x0 = std::floor(x), y0 = std::floor(y);
            for (int dy = 0; dy < 2; ++dy)
              for (int dx = 0; dx < 2; ++dx) {
                const int64_t yy = static_cast<int64_t>(y0) + dy, xx = static_cast<int64_t>(x0) + dx;
                if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
                const int64_t row = starts[l] + yy * w + xx;
                if (row < 0 || row >= s) continue;
                const double corner = (dy ? y - y0 : 1 - (y - y0)) * (dx ? x - x0 : 1 - (x - x0));
                for (int64_t ch = 0; ch < D; ++ch)
                  out[((n * c.queries + q) * M + m) * D + ch] +=
                      weights[sample] * corner * value[((n * s + row) * M + m) * D + ch];
              }
          }
  return out;
}

bool run_msda_case(const MsdaCase& c, bool on_device, cudaStream_t stream) {
  if (!on_device && (c.host_levels || c.start_shift > 0)) return true;  // CUDA entry points only
  std::mt19937 rng(99 + static_cast<unsigned>(c.queries * 3 + c.head_dim));
  const int64_t L = static_cast<int64_t>(c.levels.size()), M = c.heads, D = c.head_dim, P = c.points;
  std::vector<int32_t> shapes, starts;
  int64_t s = 0;
  for (const auto& [h, w] : c.levels) {
    shapes.push_back(h);
    shapes.push_back(w);
    starts.push_back(static_cast<int32_t>(s));
    s += static_cast<int64_t>(h) * w;
  }
  starts.back() += static_cast<int32_t>(c.start_shift);
  const size_t samples = static_cast<size_t>(c.batch * c.queries * M * L * P);
  std::vector<double> value = uniform(rng, static_cast<size_t>(c.batch * s * M * D), 1.0, c.dtype);
  std::vector<double> loc(2 * samples), weights(samples);
  for (size_t i = 0; i < samples; ++i) {
    const int64_t level = static_cast<int64_t>(i / P) % L;
    for (int axis = 0; axis < 2; ++axis) {
      double v;
      if (c.low == c.high) {  // x * W - 0.5 an integer or a half, also just outside: exact in fp32 and fp16
        const int64_t size = axis == 0 ? c.levels[level].second : c.levels[level].first;
        v = static_cast<double>(std::uniform_int_distribution<int64_t>(-2, 2 * size + 2)(rng)) / (2.0 * size);
      } else {
        v = std::uniform_real_distribution<double>(c.low, c.high)(rng);
      }
      loc[2 * i + axis] = stored(v, c.dtype);
    }
    weights[i] = stored(std::uniform_real_distribution<double>(0.0, 2.0 / (L * P))(rng), c.dtype);
  }
  const std::vector<double> ref = msda_reference(c, s, value, starts, loc, weights);

  Buffer dvalue, dshapes, dstarts, dloc, dweights, dout;
  const bool tables_on_device = on_device && !c.host_levels;
  if (!upload(dvalue, value, c.dtype, on_device) || !upload(dloc, loc, c.dtype, on_device) ||
      !upload(dweights, weights, c.dtype, on_device) || !upload_ints(dshapes, shapes, tables_on_device) ||
      !upload_ints(dstarts, starts, tables_on_device))
    return false;
  const size_t element = c.dtype == GSMLP_FP16 ? 2 : 4, out_bytes = ref.size() * element;
  if (!ref.empty() && !allocate(dout, out_bytes, on_device)) return false;
  const gsmlp_msda_problem problem{c.batch, s, M, D, L, c.queries, P, c.dtype};
  const gsmlp_msda_tensors tensors{dvalue.ptr(), static_cast<const int32_t*>(dshapes.ptr()),
                                   static_cast<const int32_t*>(dstarts.ptr()), dloc.ptr(), dweights.ptr(),
                                   dout.ptr()};
  int status;
  if (on_device) {
    if (!ref.empty() && !cuda_ok(cudaMemsetAsync(dout.device, 0xff, out_bytes, stream), "memset out")) return false;
    status = c.host_levels ? gsmlp_msda_cuda_forward_host_levels(&problem, &tensors, stream)
                           : gsmlp_msda_cuda_forward(&problem, &tensors, stream);
  } else {
    std::memset(dout.host.data(), 0xff, out_bytes);
    status = gsmlp_msda_cpu_forward(&problem, &tensors, kCpuThreads, nullptr);
  }
  if (status != GSMLP_OK) {
    std::printf("FAIL %s: %s: %s\n", c.name, gsmlp_status_string(status), gsmlp_last_error());
    ++g_failures;
    return false;
  }
  if (on_device && !cuda_ok(cudaStreamSynchronize(stream), "msda kernel")) return false;
  std::vector<unsigned char> out_host(out_bytes);
  if (on_device && !ref.empty()) {
    if (!cuda_ok(cudaMemcpy(out_host.data(), dout.device, out_bytes, cudaMemcpyDeviceToHost), "copy out")) return false;
  } else if (!ref.empty()) {
    out_host = dout.host;
  }
  // fp32: the contract's 1e-5. fp16: the output's one rounding (2^-11 relative) on top.
  const double atol = 1e-5, rtol = c.dtype == GSMLP_FP16 ? std::ldexp(1.0, -11) : 0.0;
  double worst = 0.0;
  int64_t bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    double y;
    if (c.dtype == GSMLP_FP16) {
      __half v;
      std::memcpy(&v, out_host.data() + i * 2, 2);
      y = __half2float(v);
    } else {
      float v;
      std::memcpy(&v, out_host.data() + i * 4, 4);
      y = v;
    }
    const double err = std::fabs(y - ref[i]);
    worst = std::max(worst, std::isnan(err) ? INFINITY : err);
    if (!(err <= atol + rtol * std::fabs(ref[i]))) ++bad;
  }
  std::printf("%s %s %-30s N %lld Lq %3lld M %lld D %2lld L %lld P %lld: max |out - ref| %.2e (tolerance %.0e + %.1e "
              "|ref|), %lld outside\n",
              bad == 0 ? "ok  " : "FAIL", on_device ? "cuda" : "cpu ", c.name, static_cast<long long>(c.batch),
              static_cast<long long>(c.queries), static_cast<long long>(M), static_cast<long long>(D),
              static_cast<long long>(L), static_cast<long long>(P), worst, atol, rtol, static_cast<long long>(bad));
  if (bad != 0) ++g_failures;
  return bad == 0;
}

}  // namespace

int main(int argc, char** argv) {
  const bool cpu = argc == 2 && std::strcmp(argv[1], "--cpu") == 0;
  if (argc > 2 || (argc == 2 && !cpu)) {
    std::printf("usage: %s [--cpu]\n"
                "Runs fixed small cases through gsmlp_cuda_forward and gsmlp_msda_cuda_forward[_host_levels]\n"
                "(or, with --cpu, gsmlp_cpu_forward and gsmlp_msda_cpu_forward, which checks this program's\n"
                "references on a machine without a GPU).\n"
                "Exit status: 0 pass, 1 fail, 2 usage, 3 no CUDA device.\n",
                argv[0]);
    return argc == 2 && std::strcmp(argv[1], "--help") == 0 ? 0 : 2;
  }
  cudaStream_t stream = nullptr;
  if (!cpu) {
    int devices = 0;
    const cudaError_t e = cudaGetDeviceCount(&devices);
    if (e != cudaSuccess || devices == 0 || !gsmlp_cuda_available()) {
      std::printf("no CUDA device: cudaGetDeviceCount says %s, %d device(s); nothing was checked\n",
                  cudaGetErrorString(e), devices);
      return 3;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
      std::printf("device 0: %s, compute capability %d.%d\n", prop.name, prop.major, prop.minor);
    if (!cuda_ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate")) return 1;
  }
  for (const Case& c : kCases) run_case(c, !cpu, stream);
  for (const MsdaCase& c : kMsdaCases) run_msda_case(c, !cpu, stream);
  if (stream) cudaStreamDestroy(stream);
  std::printf("%s: %d failure(s)\n", g_failures == 0 ? "PASS" : "FAIL", g_failures);
  return g_failures == 0 ? 0 : 1;
}

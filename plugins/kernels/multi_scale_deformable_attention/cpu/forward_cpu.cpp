// CPU MultiScaleDeformableAttention. Threads take chunks of output rows (n, q); per row and head, one pass
// computes every sample's position, its four corners and their weights (times the attention weight), and a
// second applies them to all D channels with vector instructions (accumulate.h). transformers' grid_sample
// form instead re-derives each sample's corners for every channel and writes an [N*M, D, Lq, L*P] tensor of
// samples before the weighted sum (docs/PERFORMANCE.md measures both).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "../checks.h"
#include "accumulate.h"
#include "common/fp16.h"
#include "common/parallel.h"
#include "common/status.h"

namespace gsmlp::msda::cpu {
namespace {

// Rows per job: enough jobs for the shared counter to balance a slow core, few enough to cost nothing.
constexpr int64_t kMaxRowsPerJob = 32;

inline float to_float(float v) { return v; }
inline float to_float(uint16_t v) { return gsmlp::cpu::half_to_float(v); }

float element(const void* data, int64_t i, bool fp16) {
  return fp16 ? gsmlp::cpu::half_to_float(static_cast<const uint16_t*>(data)[i]) : static_cast<const float*>(data)[i];
}

struct Problem {
  int64_t n, s, m, d, l, q, p;
  bool fp16;
  const gsmlp_msda_tensors& t;

  int64_t value_offset(int64_t batch, int64_t row, int64_t head) const { return ((batch * s + row) * m + head) * d; }
};

// One worker's buffers and the two passes for one (n, q, m).
class HeadSampler {
 public:
  explicit HeadSampler(const Problem& p)
      : p_(p), accumulate_(best_accumulate(p.fp16)), corners_(static_cast<size_t>(4 * p.l * p.p)),
        acc_(static_cast<size_t>(p.d)) {}

  void run_row(int64_t row) {
    const int64_t batch = row / p_.q;
    for (int64_t head = 0; head < p_.m; ++head) {
      const int64_t sample0 = (row * p_.m + head) * p_.l * p_.p;  // index of (n, q, head, 0, 0)
      float* out = p_.fp16 ? acc_.data() : static_cast<float*>(p_.t.output) + (row * p_.m + head) * p_.d;
      int64_t count = 0;
      if (gather(batch, head, sample0, count)) {
        accumulate_(corners_.data(), count, p_.t.value, p_.d, out);
      } else {
        exact(batch, head, sample0, out);
      }
      if (p_.fp16)
        gsmlp::cpu::float_to_half_row(out, static_cast<uint16_t*>(p_.t.output) + (row * p_.m + head) * p_.d, p_.d);
    }
  }

 private:
  float location(int64_t sample, int axis) const { return element(p_.t.sampling_locations, 2 * sample + axis, p_.fp16); }
  float weight(int64_t sample) const { return element(p_.t.attention_weights, sample, p_.fp16); }

  // The in-grid corners of every sample and their weights. False where a position or an attention weight is
  // not finite: exact() then follows the reference's order, in which NaN and Inf propagate.
  bool gather(int64_t batch, int64_t head, int64_t sample0, int64_t& count) {
    return p_.fp16 ? gather_as<uint16_t>(batch, head, sample0, count) : gather_as<float>(batch, head, sample0, count);
  }

  template <typename T>
  bool gather_as(int64_t batch, int64_t head, int64_t sample0, int64_t& count) {
    const T* locations = static_cast<const T*>(p_.t.sampling_locations) + 2 * sample0;
    const T* weights = static_cast<const T*>(p_.t.attention_weights) + sample0;
    const int64_t row_stride = p_.m * p_.d;
    for (int64_t l = 0; l < p_.l; ++l) {
      const int32_t height = p_.t.spatial_shapes[2 * l], width = p_.t.spatial_shapes[2 * l + 1];
      const float h = static_cast<float>(height), w = static_cast<float>(width);
      const int64_t base = p_.value_offset(batch, p_.t.level_start_index[l], head);
      for (int64_t k = 0; k < p_.p; ++k, locations += 2, ++weights) {
        const float x = to_float(locations[0]) * w - 0.5f;
        const float y = to_float(locations[1]) * h - 0.5f;
        const float a = to_float(*weights);
        if (!std::isfinite(x) || !std::isfinite(y) || !std::isfinite(a)) return false;
        // Wholly outside the grid (every corner 0); compared as floats, so huge positions never overflow.
        if (!(x >= -1.0f && y >= -1.0f && x < w && y < h)) continue;
        // floor() by truncation: x >= -1 here, so truncation rounds up only for x in (-1, 0).
        int64_t cx = static_cast<int64_t>(x), cy = static_cast<int64_t>(y);
        cx -= static_cast<float>(cx) > x;
        cy -= static_cast<float>(cy) > y;
        const float fx = x - static_cast<float>(cx), fy = y - static_cast<float>(cy);
        const float wy[2] = {a * (1.0f - fy), a * fy}, wx[2] = {1.0f - fx, fx};
        const bool in_y[2] = {cy >= 0, cy + 1 < height}, in_x[2] = {cx >= 0, cx + 1 < width};
        for (int dy = 0; dy < 2; ++dy) {
          if (!in_y[dy]) continue;
          for (int dx = 0; dx < 2; ++dx) {
            if (!in_x[dx]) continue;
            // An in-grid corner of weight 0 still counts: 0 x Inf is NaN in the reference too.
            corners_[static_cast<size_t>(count++)] = {base + ((cy + dy) * width + cx + dx) * row_stride, wy[dy] * wx[dx]};
          }
        }
      }
    }
    return true;
  }

  // The reference's order, channel by channel: sample = sum of corner weight x value (a non-finite position
  // gives NaN, as grid_sample does on the CPU), then out += attention weight x sample.
  void exact(int64_t batch, int64_t head, int64_t sample0, float* out) const {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int64_t c = 0; c < p_.d; ++c) out[c] = 0.0f;
    for (int64_t l = 0; l < p_.l; ++l) {
      const int32_t height = p_.t.spatial_shapes[2 * l], width = p_.t.spatial_shapes[2 * l + 1];
      const int64_t base = p_.value_offset(batch, p_.t.level_start_index[l], head);
      for (int64_t k = 0; k < p_.p; ++k) {
        const int64_t sample = sample0 + l * p_.p + k;
        const float x = location(sample, 0) * static_cast<float>(width) - 0.5f;
        const float y = location(sample, 1) * static_cast<float>(height) - 0.5f;
        const float a = weight(sample);
        const bool finite = std::isfinite(x) && std::isfinite(y);
        const float x0 = finite ? std::floor(x) : 0.0f, y0 = finite ? std::floor(y) : 0.0f;
        const bool near = finite && x0 >= -1.0f && y0 >= -1.0f && x0 <= static_cast<float>(width - 1) &&
                          y0 <= static_cast<float>(height - 1);
        for (int64_t c = 0; c < p_.d; ++c) {
          float s = finite ? 0.0f : nan;
          if (near) {
            const float fx = x - x0, fy = y - y0;
            const int64_t cx = static_cast<int64_t>(x0), cy = static_cast<int64_t>(y0);
            for (int dy = 0; dy < 2; ++dy)
              for (int dx = 0; dx < 2; ++dx) {
                const int64_t yy = cy + dy, xx = cx + dx;
                if (yy < 0 || yy >= height || xx < 0 || xx >= width) continue;
                const float w = (dy ? fy : 1.0f - fy) * (dx ? fx : 1.0f - fx);
                s += w * element(p_.t.value, base + (yy * width + xx) * p_.m * p_.d + c, p_.fp16);
              }
          }
          out[c] += a * s;
        }
      }
    }
  }

  const Problem& p_;
  AccumulateFn accumulate_;
  std::vector<Corner> corners_;
  std::vector<float> acc_;  // fp16 output: the fp32 row before its one rounding
};

void run(const Problem& p, int threads, const gsmlp_parallel* host) {
  const int64_t rows = p.n * p.q;
  const int workers = std::max(1, threads);
  const int64_t per_job = std::clamp<int64_t>(rows / (4 * workers), 1, kMaxRowsPerJob);
  const int64_t jobs = (rows + per_job - 1) / per_job;
  gsmlp::cpu::parallel_for(jobs, workers, host, [&](int64_t job, int /*worker*/) {
    HeadSampler sampler(p);
    const int64_t end = std::min(rows, (job + 1) * per_job);
    for (int64_t row = job * per_job; row < end; ++row) sampler.run_row(row);
  });
}

}  // namespace
}  // namespace gsmlp::msda::cpu

extern "C" int gsmlp_msda_cpu_forward(const gsmlp_msda_problem* problem, const gsmlp_msda_tensors* tensors,
                                      int num_threads, const gsmlp_parallel* parallel) {
  using namespace gsmlp;
  clear_error();
  if (const int status = msda::check_arguments(problem, tensors); status != GSMLP_OK) return status;
  if (const int status = msda::check_levels(*problem, tensors->spatial_shapes, tensors->level_start_index);
      status != GSMLP_OK)
    return status;
  if (msda::rows(*problem) == 0) return GSMLP_OK;
  const msda::cpu::Problem p{problem->batch, problem->value_len, problem->heads,  problem->head_dim,
                             problem->levels, problem->queries,  problem->points, problem->dtype == GSMLP_FP16,
                             *tensors};
  const int threads = num_threads > 0 ? num_threads : cpu::hardware_threads();
  msda::cpu::run(p, threads, parallel);
  return GSMLP_OK;
}

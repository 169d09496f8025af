// Weight packing: the torch.nn.Linear layouts -> the zero-padded, 16-column panels the row GEMM reads.
#include "pack.h"

#include <algorithm>
#include <cstdint>

#include "common/parallel.h"
#include "row_gemm.h"

namespace gsmlp::cpu {
namespace {

// Reads element i of an fp32 or fp16 array as float.
struct Reader {
  const void* data;
  bool fp16;
  float operator[](int64_t i) const {
    if (!fp16) return static_cast<const float*>(data)[i];
    return half_to_float(static_cast<const uint16_t*>(data)[i]);
  }
};

// W1 [h, d] -> per group a d x ld_group panel (transposed), zero-padded; b1 likewise.
void pack_fc1(const Plan& p, const gsmlp_tensors& t, void* ws, int64_t g) {
  const Reader w1{t.w1, p.fp16}, b1{t.b1, p.fp16};
  float* panel = at(ws, p.w1p) + g * p.d * p.ld_group;
  float* bias = at(ws, p.b1f) + g * p.ld_group;
  std::fill(panel, panel + p.d * p.ld_group, 0.0f);
  std::fill(bias, bias + p.ld_group, 0.0f);
  const int64_t first = g * p.group, cols = std::min(p.group, p.h - first);
  for (int64_t n = 0; n < cols; ++n) {
    bias[n] = b1[first + n];
    for (int64_t k = 0; k < p.d; ++k) panel[k * p.ld_group + n] = w1[(first + n) * p.d + k];
  }
}

// W2 [d, h] -> per group an ld_group x ld_d panel (rows = hidden neurons), zero-padded.
void pack_fc2(const Plan& p, const gsmlp_tensors& t, void* ws, int64_t g) {
  const Reader w2{t.w2, p.fp16};
  float* panel = at(ws, p.w2p) + g * p.ld_group * p.ld_d;
  std::fill(panel, panel + p.ld_group * p.ld_d, 0.0f);
  const int64_t first = g * p.group, cols = std::min(p.group, p.h - first);
  for (int64_t dd = 0; dd < p.d; ++dd)
    for (int64_t n = 0; n < cols; ++n) panel[n * p.ld_d + dd] = w2[dd * p.h + first + n];
}

// out[k * ld + n] = src[n * cols_in + k]: a [rows, cols_in] Linear weight as a transposed panel.
void pack_transposed(const Reader& src, int64_t rows, int64_t cols_in, float* out, int64_t ld) {
  std::fill(out, out + cols_in * ld, 0.0f);
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t k = 0; k < cols_in; ++k) out[k * ld + n] = src[n * cols_in + k];
}

void pack_small(const Plan& p, const gsmlp_tensors& t, void* ws) {
  const Reader b2{t.b2, p.fp16};
  float* b2f = at(ws, p.b2f);
  std::fill(b2f, b2f + p.ld_d, 0.0f);
  for (int64_t i = 0; i < p.d; ++i) b2f[i] = b2[i];
  if (!p.gated) return;
  pack_transposed({t.gate_down_w, p.fp16}, p.rank, p.d, at(ws, p.gdp), p.ld_rank);
  pack_transposed({t.gate_up_w, p.fp16}, p.nb, p.rank, at(ws, p.gup), p.ld_nb);
  float* gb = at(ws, p.gbf);
  std::fill(gb, gb + p.ld_nb, 0.0f);
  const Reader gate_b{t.gate_up_b, p.fp16};
  for (int64_t j = 0; j < p.nb; ++j) gb[j] = gate_b[j];
}

}  // namespace

void pack_weights(const Plan& p, const gsmlp_tensors& t, void* ws) {
  parallel_for(2 * p.num_groups + 1, p.threads, [&](int64_t job, int) {
    if (job < p.num_groups) {
      pack_fc1(p, t, ws, job);
    } else if (job < 2 * p.num_groups) {
      pack_fc2(p, t, ws, job - p.num_groups);
    } else {
      pack_small(p, t, ws);
    }
  });
}

}  // namespace gsmlp::cpu

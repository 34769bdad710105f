// Fused per-row central moments for Moment Channel Attention.
//
// A (B, C, H, W) feature map is viewed as R = B*C contiguous rows of N = H*W values.
// Each row is small enough to stay in L1/L2 between its two sweeps (mean, then central
// powers), so the feature map is streamed from memory once: the same traffic as the plain
// mean that ECA pools. Accumulation is in opmath (float for half/bfloat16/float).
#include <torch/extension.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <cmath>
#include <vector>

namespace {

// `omp simd reduction` lets the compiler keep vector accumulators (reassociating the sums)
// without -ffast-math, so NaN/Inf semantics stay intact.
template <typename scalar_t, typename acc_t>
void row_moments(const scalar_t* x, int64_t n, int64_t order, acc_t* out) {
  acc_t sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += static_cast<acc_t>(x[i]);
  const acc_t mu = sum / static_cast<acc_t>(n);

  acc_t m2 = 0, m3 = 0, m4 = 0;
  if (order >= 4) {
#pragma omp simd reduction(+ : m2, m3, m4)
    for (int64_t i = 0; i < n; ++i) {
      const acc_t d = static_cast<acc_t>(x[i]) - mu, d2 = d * d;
      m2 += d2; m3 += d2 * d; m4 += d2 * d2;
    }
  } else if (order == 3) {
#pragma omp simd reduction(+ : m2, m3)
    for (int64_t i = 0; i < n; ++i) {
      const acc_t d = static_cast<acc_t>(x[i]) - mu, d2 = d * d;
      m2 += d2; m3 += d2 * d;
    }
  } else {
#pragma omp simd reduction(+ : m2)
    for (int64_t i = 0; i < n; ++i) {
      const acc_t d = static_cast<acc_t>(x[i]) - mu;
      m2 += d * d;
    }
  }
  const acc_t inv_n = acc_t(1) / static_cast<acc_t>(n);
  out[0] = mu; out[1] = m2 * inv_n; out[2] = m3 * inv_n; out[3] = m4 * inv_n;
}

// float32, the hot case: explicit 8-wide vectors with several independent accumulators,
// because one accumulator chain is bound by add latency, not by memory.
typedef float v8f __attribute__((vector_size(32)));

inline v8f load8(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline float hsum(v8f v) {
  float s = 0.f;
  for (int l = 0; l < 8; ++l) s += v[l];
  return s;
}

template <int ORDER>
void row_moments_f32(const float* x, int64_t n, float* out) {
  v8f a0 = {}, a1 = {}, a2 = {}, a3 = {};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 += load8(x + i); a1 += load8(x + i + 8); a2 += load8(x + i + 16); a3 += load8(x + i + 24);
  }
  for (; i + 8 <= n; i += 8) a0 += load8(x + i);
  float sum = hsum((a0 + a1) + (a2 + a3));
  for (; i < n; ++i) sum += x[i];
  const float mu = sum / static_cast<float>(n);

  v8f s2a = {}, s2b = {}, s3a = {}, s3b = {}, s4a = {}, s4b = {};
  i = 0;
  if (ORDER >= 2) {
    for (; i + 16 <= n; i += 16) {
      const v8f d0 = load8(x + i) - mu, d1 = load8(x + i + 8) - mu;
      const v8f q0 = d0 * d0, q1 = d1 * d1;
      s2a += q0; s2b += q1;
      if (ORDER >= 3) { s3a += q0 * d0; s3b += q1 * d1; }
      if (ORDER >= 4) { s4a += q0 * q0; s4b += q1 * q1; }
    }
  }
  float m2 = hsum(s2a + s2b), m3 = hsum(s3a + s3b), m4 = hsum(s4a + s4b);
  if (ORDER >= 2) {
    for (; i < n; ++i) {
      const float d = x[i] - mu, q = d * d;
      m2 += q;
      if (ORDER >= 3) m3 += q * d;
      if (ORDER >= 4) m4 += q * q;
    }
  }
  const float inv_n = 1.f / static_cast<float>(n);
  out[0] = mu; out[1] = m2 * inv_n; out[2] = m3 * inv_n; out[3] = m4 * inv_n;
}

template <>
void row_moments<float, float>(const float* x, int64_t n, int64_t order, float* out) {
  switch (order) {
    case 1: row_moments_f32<1>(x, n, out); break;
    case 2: row_moments_f32<2>(x, n, out); break;
    case 3: row_moments_f32<3>(x, n, out); break;
    default: row_moments_f32<4>(x, n, out); break;
  }
}

// The statistics named by `codes` (visionattn.layers.moments.MOMENT_NAMES order: 0 mean,
// 1 std, 2 var, 3 skew, 4 kurt) of one row, written to out[0], out[stride], ...
template <typename scalar_t, typename acc_t>
void named_stats(const scalar_t* x, int64_t n, const std::vector<int64_t>& codes, int64_t order,
                 double eps, double var_floor, acc_t* out, int64_t stride) {
  acc_t mom[4];
  row_moments<scalar_t, acc_t>(x, n, order, mom);
  const acc_t sd = std::sqrt(std::max(mom[1], static_cast<acc_t>(var_floor)));
  for (size_t k = 0; k < codes.size(); ++k) {
    acc_t v = 0;
    switch (codes[k]) {
      case 0: v = mom[0]; break;
      case 1: v = sd; break;
      case 2: v = mom[1]; break;
      case 3: v = mom[2] / (sd * sd * sd + static_cast<acc_t>(eps)); break;
      case 4: v = mom[3] / (mom[1] * mom[1] + static_cast<acc_t>(eps)); break;
    }
    out[k * stride] = v;
  }
}

// Pragmas cannot sit inside the AT_DISPATCH macro's lambda, hence a function of its own.
template <typename scalar_t, typename acc_t>
void scale_row(const scalar_t* x, scalar_t* out, int64_t n, acc_t g) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<scalar_t>(static_cast<acc_t>(x[i]) * g);
}

template <typename scalar_t, typename acc_t>
void row_moments_grad(const scalar_t* x, scalar_t* grad, int64_t n, acc_t mu, const acc_t* c) {
  const acc_t c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3];
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const acc_t d = static_cast<acc_t>(x[j]) - mu;
    grad[j] = static_cast<scalar_t>(c0 + d * (c1 + d * (c2 + d * c3)));
  }
}

}  // namespace

// x: contiguous (R, N). Returns (R, 4) in opmath dtype: mean, M2, M3, M4 (central moments,
// population normalisation). Only moments up to `order` are computed; the rest are zero.
torch::Tensor central_moments_forward(torch::Tensor x, int64_t order) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && x.device().is_cpu(),
              "central_moments_forward expects a contiguous 2-D CPU tensor");
  const int64_t rows = x.size(0), n = x.size(1);
  TORCH_CHECK(n > 0, "central_moments_forward: rows must not be empty");
  torch::Tensor out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "central_moments_forward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    out = torch::zeros({rows, 4}, x.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    const scalar_t* xp = x.data_ptr<scalar_t>();
    acc_t* op = out.data_ptr<acc_t>();
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) row_moments<scalar_t, acc_t>(xp + r * n, n, order, op + r * 4);
    });
  });
  return out;
}

// Inputs of the (B, C, H, W) entry points: contiguous, on the CPU, planes not empty, and at
// least one statistic named.
static void check_feature_map(const torch::Tensor& x, const std::vector<int64_t>& codes, const char* fn) {
  TORCH_CHECK(x.dim() == 4 && x.is_contiguous() && x.device().is_cpu(), fn, " expects a contiguous 4-D CPU tensor");
  TORCH_CHECK(x.size(2) * x.size(3) > 0 && !codes.empty(), fn, ": empty planes or no statistics requested");
}

// Inference path: the named statistics straight from x (B, C, H, W) into (B, m, C) opmath, the
// Cross Moment Convolution's layout, skipping the autograd bookkeeping and the handful of
// small tensor ops that otherwise dominate the cost at late stages. `codes` follows
// visionattn.layers.moments.MOMENT_NAMES: 0 mean, 1 std, 2 var, 3 skew, 4 kurt.
torch::Tensor channel_stats_forward(torch::Tensor x, std::vector<int64_t> codes, int64_t order,
                                    double eps, double var_floor) {
  check_feature_map(x, codes, "channel_stats_forward");
  const int64_t b = x.size(0), c = x.size(1), n = x.size(2) * x.size(3);
  const int64_t m = static_cast<int64_t>(codes.size());
  torch::Tensor out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "channel_stats_forward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    out = torch::empty({b, m, c}, x.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    const scalar_t* xp = x.data_ptr<scalar_t>();
    acc_t* op = out.data_ptr<acc_t>();
    at::parallel_for(0, b * c, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        const int64_t bi = r / c, ci = r % c;
        named_stats<scalar_t, acc_t>(xp + r * n, n, codes, order, eps, var_floor, op + bi * m * c + ci, c);
      }
    });
  });
  return out;
}

// The whole block at inference, x (B, C, H, W) -> x * sigmoid(CMC(stats(x))), in one sweep of
// memory. Channels are visited in order; once the statistics of channel j + p are known
// (p = (k - 1) / 2, the CMC half-width), channel j's gate is complete and its plane, read a
// few planes ago and still in L1/L2, is scaled and written. The module path reads the map
// twice from memory (statistics, then the product); this reads it once.
//
// `inplace` writes the result over x instead of a new tensor. Allocating a fresh output the
// size of the feature map is what most of an attention block's cost is at inference (page
// faults on first touch), so the saving is large; it is only safe where nothing else reads x
// afterwards, which is the caller's promise.
//
// Work is split over (sample, channel block) tasks. A block needs the statistics of the p
// channels on each side that its neighbours own and, in place, may already have overwritten,
// so those edge statistics are computed first, in a pass of their own.
torch::Tensor channel_attention_forward(torch::Tensor x, torch::Tensor weight, double bias,
                                        std::vector<int64_t> codes, int64_t order, double eps,
                                        double var_floor, bool inplace) {
  check_feature_map(x, codes, "channel_attention_forward");
  const int64_t b = x.size(0), c = x.size(1), n = x.size(2) * x.size(3);
  const int64_t m = static_cast<int64_t>(codes.size());
  TORCH_CHECK(weight.dim() == 2 && weight.size(0) == m && weight.size(1) % 2 == 1,
              "channel_attention_forward: weight must be (moments, odd kernel size)");
  const int64_t k = weight.size(1), p = (k - 1) / 2;
  // A few tasks per thread, so that a batch of one still uses every core.
  const int64_t blocks = std::min(c, std::max<int64_t>(1, (4 * at::get_num_threads() + b - 1) / b));
  const int64_t block = (c + blocks - 1) / blocks;
  auto out = inplace ? x : torch::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "channel_attention_forward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto w = weight.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
    const acc_t* wp = w.data_ptr<acc_t>();
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    const bool halos = blocks > 1 && p > 0;
    std::vector<acc_t> edge(halos ? b * c * m : 0);  // edge[(bi * c + ci) * m + s], edge channels only
    if (halos) {
      at::parallel_for(0, b * blocks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t task = begin; task < end; ++task) {
          const int64_t bi = task / blocks, c0 = (task % blocks) * block, c1 = std::min(c, c0 + block);
          for (int64_t ci = c0; ci < c1; ++ci) {
            if (ci >= c0 + p && ci < c1 - p) ci = c1 - p;  // skip to the trailing edge
            named_stats<scalar_t, acc_t>(xp + (bi * c + ci) * n, n, codes, order, eps, var_floor,
                                         &edge[(bi * c + ci) * m], 1);
          }
        }
      });
    }
    at::parallel_for(0, b * blocks, 1, [&](int64_t begin, int64_t end) {
      std::vector<acc_t> stats(m * (block + 2 * p));  // stats[(ci - lo) * m + s], lo = c0 - p
      for (int64_t task = begin; task < end; ++task) {
        const int64_t bi = task / blocks, c0 = (task % blocks) * block, c1 = std::min(c, c0 + block);
        if (c0 >= c1) continue;
        const int64_t lo = c0 - p;
        const scalar_t* xs = xp + bi * c * n;
        scalar_t* os = op + bi * c * n;
        for (int64_t ci = lo; ci < c1 + p; ++ci) {
          if (ci >= 0 && ci < c) {
            acc_t* dst = &stats[(ci - lo) * m];
            if (ci >= c0 && ci < c1) {
              named_stats<scalar_t, acc_t>(xs + ci * n, n, codes, order, eps, var_floor, dst, 1);
            } else {
              std::copy_n(&edge[(bi * c + ci) * m], m, dst);
            }
          }
          const int64_t j = ci - p;
          if (j < c0) continue;
          acc_t z = static_cast<acc_t>(bias);
          for (int64_t t = 0; t < k; ++t) {
            const int64_t cj = j - p + t;
            if (cj < 0 || cj >= c) continue;  // the CMC's zero padding
            for (int64_t s = 0; s < m; ++s) z += wp[s * k + t] * stats[(cj - lo) * m + s];
          }
          // Rounded to x's dtype before the product, as the module path's `.to(x.dtype)` does.
          const acc_t g = static_cast<acc_t>(static_cast<scalar_t>(acc_t(1) / (acc_t(1) + std::exp(-z))));
          scale_row<scalar_t, acc_t>(xs + j * n, os + j * n, n, g);
        }
      }
    });
  });
  return out;
}

// grad_x[r, j] = c0 + d (c1 + d (c2 + d c3)), d = x[r, j] - mean[r]: the gradient of
// (mean, M2, M3, M4) is a cubic in the centred value, with per-row coefficients
// `coef` (R, 4) prepared by the caller.
torch::Tensor central_moments_backward(torch::Tensor x, torch::Tensor mean, torch::Tensor coef) {
  TORCH_CHECK(x.dim() == 2 && x.is_contiguous() && x.device().is_cpu(),
              "central_moments_backward expects a contiguous 2-D CPU tensor");
  const int64_t rows = x.size(0), n = x.size(1);
  auto grad = torch::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "central_moments_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto mean_c = mean.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
    auto coef_c = coef.to(c10::CppTypeToScalarType<acc_t>::value).contiguous();
    const scalar_t* xp = x.data_ptr<scalar_t>();
    scalar_t* gp = grad.data_ptr<scalar_t>();
    const acc_t* mp = mean_c.data_ptr<acc_t>();
    const acc_t* cp = coef_c.data_ptr<acc_t>();
    at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        row_moments_grad<scalar_t, acc_t>(xp + r * n, gp + r * n, n, mp[r], cp + 4 * r);
      }
    });
  });
  return grad;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &central_moments_forward, "Per-row mean and central moments M2..M4");
  m.def("stats", &channel_stats_forward, "Named per-channel statistics (B, m, C), no autograd");
  m.def("attend", &channel_attention_forward, "Moment channel attention block at inference");
  m.def("backward", &central_moments_backward, "Gradient of per-row central moments");
}

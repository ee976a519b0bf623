#pragma once
// Finite-difference gradient checks for doctest suites.
//
// Usage: compute the analytic gradient once (forward, backward with dL/dy = r), then call
// check_gradient with the values being differentiated, that gradient, and a closure that reruns the
// forward pass from the current values and returns the loss. The helper perturbs one coordinate at
// a time, restores it bit for bit afterwards, and reports the worst coordinate through INFO/CHECK.
//
// The loss should be a random projection, loss = sum(y * r) for a fixed random r (see `project`):
// then dL/dy = r exactly, every output element takes part, and no output gradient is special.
//
// Why eps = 1e-2 and these tolerances. The library computes in float32 and only the loss is summed
// in double. Moving one coordinate changes the rounding of every output it feeds, which puts noise
// of roughly 1e-7 * |y| * |r| * sqrt(#outputs it feeds) into the loss; the central difference
// divides that by 2 * eps. With eps = 1e-2 and values of order 1 this is ~1e-4 of a typical
// gradient component, while the truncation error eps^2 * f''' of smooth layers is of the same size
// (and zero for piecewise-linear ones). A smaller eps (1e-3) raises the rounding noise tenfold; a
// larger one lets a ReLU or max-pool switch more often inside the step. The step actually applied
// is float(x +- eps) - x, which is what the difference is divided by. A coordinate passes when
//   |analytic - numeric| <= rtol * max(|analytic|, |numeric|) + scale_tol * G + atol,
// G = the largest |analytic| over the whole tensor: rtol = 1e-2 catches any real error (a missed
// term, a wrong index or factor shows up as tens of percent), and scale_tol = 1e-3 forgives the
// rounding noise above on components that are tiny compared with the tensor's scale.
//
// Kinks (ReLU at 0, a max-pool argmax changing) are where the function is not differentiable; a
// central difference straddling one is wrong by half the change of slope, whatever the analytic
// gradient. Away from a kink at least one of the one-sided differences (f(x+h) - f(x)) / h and
// (f(x) - f(x-h)) / h is free of it, so when the central difference disagrees the check accepts
// agreement with a one-sided one instead, and counts the coordinate as "at a kink". Only forward
// values decide this, so a wrong backward cannot hide behind it; but the one-sided test is only
// accurate for piecewise-linear losses, so more than `max_kink_fraction` of such coordinates fails
// the check (then choose inputs further from the kinks, or a smaller eps). In a small layer a
// weight or bias feeds every pixel of its channel, so kinks are common (with eps = 1e-2 ~40% of a
// 3x3 ReLU conv's weights straddled one, some on both sides): test_layers_gradcheck.cpp therefore
// draws inputs whose pre-activations all clear the step and checks strictly (allow_one_sided =
// false). In whole models one kink is a small share of a gradient summed over many pixels.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "random_tensors.hpp"
#include "unetsrnn/core/rng.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn::testing {

struct GradCheckOptions {
  double eps = 1e-2;             // absolute step; suits values of order 0.01..10
  double rtol = 1e-2;            // relative tolerance against max(|analytic|, |numeric|)
  double scale_tol = 1e-3;       // times the tensor's largest |analytic| component
  double atol = 1e-6;            // absolute floor, for a gradient that is zero everywhere
  std::size_t max_coords = 200;  // check every coordinate up to this count, else a random sample
  std::uint64_t seed = 12345;    // chooses the sample
  bool allow_one_sided = true;   // accept one-sided agreement at kinks (see the header comment)
  double max_kink_fraction = 0.25;
};

struct GradCheckResult {
  bool ok = true;
  std::size_t checked = 0, at_kinks = 0;
  std::size_t worst_index = 0;
  double worst_analytic = 0, worst_numeric = 0;
  double worst_ratio = 0;  // |analytic - numeric| / tolerance; the check fails above 1
};

// Coordinates to check: all of them when few, otherwise a fixed random sample that always includes
// the largest analytic component (where a scale error shows most).
inline std::vector<std::size_t> gradcheck_coordinates(const float* analytic, std::size_t count,
                                                      const GradCheckOptions& opt) {
  std::vector<std::size_t> all(count);
  for (std::size_t i = 0; i < count; ++i) all[i] = i;
  if (count <= opt.max_coords) return all;
  std::size_t largest = 0;
  for (std::size_t i = 1; i < count; ++i)
    if (std::fabs(analytic[i]) > std::fabs(analytic[largest])) largest = i;
  std::swap(all[0], all[largest]);
  Rng rng(opt.seed);
  for (std::size_t i = 1; i < opt.max_coords; ++i)  // partial Fisher-Yates over the rest
    std::swap(all[i], all[i + rng.below(count - i)]);
  all.resize(opt.max_coords);
  return all;
}

// Checks analytic_grad against central finite differences of loss() over `values`. loss() must be
// a deterministic function of the current contents of `values` (and whatever else it reads).
inline GradCheckResult check_gradient(const std::string& name, float* values,
                                      const float* analytic_grad, std::size_t count,
                                      const std::function<double()>& loss,
                                      const GradCheckOptions& opt = {}) {
  GradCheckResult res;
  double largest = 0.0;
  for (std::size_t i = 0; i < count; ++i)
    largest = std::max(largest, double(std::fabs(analytic_grad[i])));
  const double abs_floor = opt.atol + opt.scale_tol * largest;
  const double f0 = loss();
  for (std::size_t idx : gradcheck_coordinates(analytic_grad, count, opt)) {
    const float original = values[idx];
    const float plus = static_cast<float>(original + opt.eps);
    const float minus = static_cast<float>(original - opt.eps);
    values[idx] = plus;
    const double f_plus = loss();
    values[idx] = minus;
    const double f_minus = loss();
    values[idx] = original;

    const double h_plus = double(plus) - original, h_minus = double(original) - minus;
    const double central = (f_plus - f_minus) / (h_plus + h_minus);
    const double analytic = analytic_grad[idx];
    const auto tolerance = [&](double numeric) {
      return abs_floor + opt.rtol * std::max(std::fabs(analytic), std::fabs(numeric));
    };
    double numeric = central;
    double ratio = std::fabs(analytic - central) / tolerance(central);
    if (!(ratio <= 1.0) && opt.allow_one_sided) {
      for (double one_sided : {(f_plus - f0) / h_plus, (f0 - f_minus) / h_minus}) {
        const double r = std::fabs(analytic - one_sided) / tolerance(one_sided);
        if (r <= 1.0 && r < ratio) {
          ratio = r;
          numeric = one_sided;
        }
      }
      if (ratio <= 1.0) ++res.at_kinks;
    }
    if (!std::isfinite(analytic) || !std::isfinite(central))
      ratio = std::numeric_limits<double>::infinity();
    ++res.checked;
    if (res.checked == 1 || !(ratio <= res.worst_ratio)) {
      res.worst_ratio = ratio;
      res.worst_index = idx;
      res.worst_analytic = analytic;
      res.worst_numeric = numeric;
    }
  }
  const bool too_many_kinks =
      res.checked > 0 && double(res.at_kinks) > opt.max_kink_fraction * double(res.checked);
  res.ok = res.worst_ratio <= 1.0 && !too_many_kinks;

  INFO("gradient of ", name, ": worst coordinate ", res.worst_index, " of ", count, ", analytic ",
       res.worst_analytic, ", numeric ", res.worst_numeric,
       ", |error| / tolerance = ", res.worst_ratio, "; ", res.checked, " checked, ", res.at_kinks,
       " accepted one-sided at a kink (eps ", opt.eps, ", rtol ", opt.rtol, ", absolute floor ",
       abs_floor, ")");
  CHECK(res.ok);
  return res;
}

inline GradCheckResult check_gradient(const std::string& name, Tensor<Cpu>& values,
                                      const Tensor<Cpu>& analytic_grad,
                                      const std::function<double()>& loss,
                                      const GradCheckOptions& opt = {}) {
  check_shape("check_gradient", values.shape(), analytic_grad.shape());
  return check_gradient(name, values.data(), analytic_grad.data(), values.size(), loss, opt);
}

// The random-projection loss sum(y * r), in double; y may be a strided view, r has y's shape.
inline double project(CView<Cpu> y, const Tensor<Cpu>& r) {
  check_shape("project", r.shape(), y.shape);
  double sum = 0.0;
  const CView<Cpu> rv = r.cview();
  for (int n = 0; n < y.shape.n; ++n) {
    const float* a = y.image(n);
    const float* b = rv.image(n);
    for (std::size_t k = 0; k < y.shape.image_size(); ++k) sum += double(a[k]) * b[k];
  }
  return sum;
}

}  // namespace unetsrnn::testing

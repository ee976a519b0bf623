#pragma once
// Optimisers (Adam, SGD with momentum) and learning-rate schedules (ReduceLROnPlateau, cosine).
//
// Optimisers keep per-parameter state (Adam: m, v; SGD: velocity) keyed by the order of the
// ParamList, allocated as zeros on the first step. `step` applies one update from each parameter's
// grad and leaves the grads alone (the trainer zeroes them, e.g. with zero_grad). Both follow Keras
// 2 (legacy optimisers), including its time decay of the base rate:
//   lr_now = lr / (1 + decay * iterations)   (iterations = steps done before this one)
// Adam then steps with lr_t = lr_now * sqrt(1 - beta2^t) / (1 - beta1^t), t = iterations + 1
// (ops::adam_update); SGD with vel = momentum * vel - lr_now * g; p += vel (ops::sgd_update).
// `lr()` / `set_lr()` are the base rate (what Keras' ReduceLROnPlateau reads and writes).
//
// Resume: save_state / load_state write and read the whole optimiser (kind, hyperparameters, base
// rate, iteration count, every state tensor with its parameter's name and shape) so that a restored
// optimiser continues bit for bit. Binary format, version 1, integers unsigned little-endian,
// floating point as IEEE 754 bit patterns (f64: 8 bytes, f32: 4 bytes) little-endian:
//   8   magic "USRNNOPT"
//   4   format version = 1
//   4+K kind name ("adam" or "sgd"), length-prefixed
//   4   hyperparameter count H, then H f64 (adam: beta1, beta2, epsilon, decay; sgd: momentum,
//   decay) 8   base learning rate (f64) 8   iterations (u64) 4   parameter count P (0 before the
//   first step), 4 state tensors per parameter S (adam 2, sgd 1) P times: name (4 + bytes), dims N,
//   C, H, W (4 x u32), then S x N*C*H*W f32 values 4   CRC-32 (zlib's) of every byte before it
// load_state reads and checks everything before changing the optimiser, so a failed load leaves it
// as it was; malformed or mismatched state (a zero dimension, a NaN or infinite value included)
// throws unetsrnn::FormatError saying what differs. The overloads taking a path write atomically
// and name the file in every error.
//
// Schedules compute the next base rate and are serialisable too (one text line, exact doubles).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <istream>
#include <limits>
#include <memory>
#include <numbers>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "unetsrnn/core/error.hpp"
#include "unetsrnn/io/atomic_file.hpp"
#include "unetsrnn/io/binary_codec.hpp"
#include "unetsrnn/io/crc32.hpp"
#include "unetsrnn/layers/param.hpp"
#include "unetsrnn/ops/cpu/backend.hpp"
#include "unetsrnn/ops/ops.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn {

namespace optim_detail {

inline constexpr char kMagic[8] = {'U', 'S', 'R', 'N', 'N', 'O', 'P', 'T'};
inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::uint32_t kMaxNameLength = 1u << 16;

// Little-endian reader; a short read is reported as truncation of `what`.
class Reader {
 public:
  explicit Reader(std::istream& in) : in_(in) {}
  void bytes(void* data, std::size_t size, const char* what) {
    if (size == 0) return;
    in_.read(static_cast<char*>(data), static_cast<std::streamsize>(size));
    if (static_cast<std::size_t>(in_.gcount()) != size)
      fail_format("optimiser state: truncated stream (", what, " needs ", size, " bytes, got ",
                  in_.gcount(), ")");
    crc_ = crc32_update(crc_, data, size);
  }
  std::uint32_t u32(const char* what) { return static_cast<std::uint32_t>(get(4, what)); }
  std::uint64_t u64(const char* what) { return get(8, what); }
  double f64(const char* what) { return std::bit_cast<double>(u64(what)); }
  std::string string(const char* what) {
    const std::uint32_t length = u32(what);
    if (length > kMaxNameLength)
      fail_format("optimiser state: ", what, " length ", length,
                  " is implausible (corrupt stream)");
    std::string s(length, '\0');
    bytes(s.data(), length, what);
    return s;
  }
  // Reads `count` floats in chunks, so a corrupt count cannot allocate more than the stream holds.
  void floats(std::vector<float>& out, std::size_t count, const char* what) {
    constexpr std::size_t kChunk = 4096;
    unsigned char buffer[kChunk * 4];
    out.clear();
    for (std::size_t start = 0; start < count; start += kChunk) {
      const std::size_t n = std::min(kChunk, count - start);
      bytes(buffer, 4 * n, what);
      out.resize(start + n);
      detail::decode_floats(buffer, out.data() + start, n);
    }
  }
  std::uint32_t crc() const { return crc_; }

 private:
  std::uint64_t get(int size, const char* what) {
    unsigned char b[8];
    bytes(b, static_cast<std::size_t>(size), what);
    return detail::get_le(b, size);
  }
  std::istream& in_;
  std::uint32_t crc_ = 0;
};

template <class Dev>
Tensor<Cpu> to_host(const Tensor<Dev>& t) {
  if constexpr (std::is_same_v<Dev, Cpu>) {
    return t;
  } else {
    Tensor<Cpu> host(t.shape());
    t.copy_to_host(host);
    return host;
  }
}
template <class Dev>
Tensor<Dev> from_host(const Shape& shape, const float* values) {
  Tensor<Cpu> host(shape);
  std::copy(values, values + shape.size(), host.data());
  if constexpr (std::is_same_v<Dev, Cpu>) {
    return host;
  } else {
    Tensor<Dev> t(shape);
    t.copy_from_host(host);
    return t;
  }
}

}  // namespace optim_detail

// What Adam and Sgd share: base rate, iteration count, per-parameter state, (de)serialisation.
template <class Dev = Cpu>
class Optimizer {
 public:
  virtual ~Optimizer() = default;

  // "adam" or "sgd", as written in the state stream.
  virtual std::string_view kind() const = 0;
  // One update of every parameter from its grad; grads are left as they are.
  virtual void step(ParamList<Dev>& params) = 0;

  void zero_grad(ParamList<Dev>& params) const { unetsrnn::zero_grad(params); }
  std::uint64_t iterations() const { return iterations_; }
  double lr() const { return lr_; }  // base rate, before time decay
  void set_lr(double lr) {
    if (!(lr >= 0.0) || !std::isfinite(lr))
      fail_argument(kind(), ": learning rate must be finite and >= 0, got ", lr);
    lr_ = lr;
  }
  double decay() const { return decay_; }
  // The rate the next step uses before Adam's bias correction: lr / (1 + decay * iterations).
  double decayed_lr() const { return lr_ / (1.0 + decay_ * static_cast<double>(iterations_)); }
  // Whether per-parameter state exists (after the first step or a load that carried some).
  bool has_state() const { return !names_.empty(); }
  // State tensor `slot` of parameter `index` (Adam: 0 = m, 1 = v; SGD: 0 = velocity).
  const Tensor<Dev>& state_tensor(std::size_t index, int slot) const {
    return slots_.at(index * slots_per_param_ + static_cast<std::size_t>(slot));
  }

  void save_state(std::ostream& out) const {
    detail::ChecksummedWriter w(out);
    w.bytes(optim_detail::kMagic, 8);
    w.u32(optim_detail::kVersion);
    w.string(kind());
    const std::vector<double> hyper = hyperparameters();
    w.u32(static_cast<std::uint32_t>(hyper.size()));
    for (double h : hyper) w.f64(h);
    w.f64(lr_);
    w.u64(iterations_);
    w.u32(static_cast<std::uint32_t>(names_.size()));
    w.u32(static_cast<std::uint32_t>(slots_per_param_));
    for (std::size_t i = 0; i < names_.size(); ++i) {
      w.string(names_[i]);
      const Shape s = shapes_[i];
      for (int d : {s.n, s.c, s.h, s.w}) w.u32(static_cast<std::uint32_t>(d));
      for (std::size_t slot = 0; slot < slots_per_param_; ++slot) {
        const Tensor<Cpu> host = optim_detail::to_host(slots_[i * slots_per_param_ + slot]);
        w.floats(host.data(), host.size());
      }
    }
    w.crc_trailer();
    if (!out)
      throw std::runtime_error(
          str_cat(kind(), ": writing the optimiser state to the stream failed"));
  }
  // Writes the state to `path` atomically; errors name the file and the reason.
  void save_state(const std::filesystem::path& path) const {
    write_file_atomic(path, [&](std::ostream& out) { save_state(out); });
  }

  // Restores a state written by save_state. If this optimiser already holds state, the stream's
  // parameter names and shapes must match it; otherwise the next step checks them against its
  // parameters. Hyperparameters, base rate and iteration count come from the stream.
  void load_state(std::istream& in) { load_impl(in, nullptr); }
  // The same, checked against `params` (the usual resume: fresh optimiser, model's parameters).
  void load_state(std::istream& in, const ParamList<Dev>& params) { load_impl(in, &params); }
  // The same from a file; every error names it.
  void load_state(const std::filesystem::path& path, const ParamList<Dev>& params) {
    errno = 0;
    std::ifstream in(path, std::ios::binary);
    if (!in)
      fail_format("cannot open optimiser state '", path.string(),
                  "': ", detail::last_os_error(errno));
    try {
      load_impl(in, &params);
    } catch (const FormatError& e) {
      fail_format("'", path.string(), "': ", e.what());
    }
  }

 protected:
  Optimizer(double lr, double decay, std::size_t slots_per_param)
      : lr_(lr), decay_(decay), slots_per_param_(slots_per_param) {}

  // The kind's hyperparameters in stream order (decay last; the base rate is stored apart).
  virtual std::vector<double> hyperparameters() const = 0;
  virtual void set_hyperparameters(const std::vector<double>& values) = 0;

  // Allocates zero state on first use; afterwards the parameters must be the same list.
  void ensure_state(const ParamList<Dev>& params) {
    if (!has_state() && !params.empty()) {
      for (const auto& named : params) {
        names_.push_back(named.name);
        shapes_.push_back(named.param->value.shape());
        for (std::size_t slot = 0; slot < slots_per_param_; ++slot)
          slots_.emplace_back(named.param->value.shape(), 0.0f);
      }
      state_from_stream_ = false;
      return;
    }
    const std::string mismatch = describe_mismatch(names_, shapes_, params);
    if (mismatch.empty()) return;
    if (state_from_stream_)
      fail_format(kind(), ": the loaded optimiser state does not match the parameters: ", mismatch);
    fail_argument(kind(), ": step called with other parameters than before: ", mismatch);
  }
  Tensor<Dev>& slot(std::size_t index, std::size_t s) {
    return slots_[index * slots_per_param_ + s];
  }

  double lr_;
  double decay_;
  std::uint64_t iterations_ = 0;

 private:
  // Empty when `params` has exactly these names and shapes, in this order.
  static std::string describe_mismatch(const std::vector<std::string>& names,
                                       const std::vector<Shape>& shapes,
                                       const ParamList<Dev>& params) {
    if (names.size() != params.size())
      return str_cat("state for ", names.size(), " parameters, but ", params.size(),
                     " parameters given");
    for (std::size_t i = 0; i < names.size(); ++i) {
      const Shape got = params[i].param->value.shape();
      if (names[i] != params[i].name || !(shapes[i] == got))
        return str_cat("parameter ", i, " is '", names[i], "' ", shapes[i].str(),
                       " in the state but '", params[i].name, "' ", got.str(), " here");
    }
    return {};
  }

  void load_impl(std::istream& in, const ParamList<Dev>* params) {
    optim_detail::Reader r(in);
    char magic[8];
    r.bytes(magic, 8, "magic");
    if (!std::equal(magic, magic + 8, optim_detail::kMagic))
      fail_format("optimiser state: not an optimiser state stream (bad magic)");
    const std::uint32_t version = r.u32("version");
    if (version != optim_detail::kVersion)
      fail_format("optimiser state: format version ", version, " is not supported (expected ",
                  optim_detail::kVersion, ")");
    const std::string stream_kind = r.string("kind");
    if (stream_kind != kind())
      fail_format("optimiser state: the stream holds '", stream_kind, "' state, not '", kind(),
                  "'");
    const std::uint32_t hyper_count = r.u32("hyperparameter count");
    if (hyper_count != hyperparameters().size())
      fail_format("optimiser state: ", hyper_count, " hyperparameters for '", kind(),
                  "', expected ", hyperparameters().size());
    std::vector<double> hyper(hyper_count);
    for (double& h : hyper) h = r.f64("hyperparameter");
    const double lr = r.f64("learning rate");
    const std::uint64_t iterations = r.u64("iterations");
    const std::uint32_t count = r.u32("parameter count");
    const std::uint32_t slots = r.u32("state tensors per parameter");
    if (slots != slots_per_param_)
      fail_format("optimiser state: ", slots, " state tensors per parameter, expected ",
                  slots_per_param_);

    std::vector<std::string> names;
    std::vector<Shape> shapes;
    std::vector<std::vector<float>> values;
    for (std::uint32_t i = 0; i < count; ++i) {
      names.push_back(r.string("parameter name"));
      Shape s;
      for (int* d : {&s.n, &s.c, &s.h, &s.w}) {
        const std::uint32_t dim = r.u32("parameter shape");
        if (dim == 0 || dim > static_cast<std::uint32_t>(std::numeric_limits<int>::max()))
          fail_format("optimiser state: parameter '", names.back(), "' has dimension ", dim,
                      " (must be 1 to ", std::numeric_limits<int>::max(), ")");
        *d = static_cast<int>(dim);
      }
      shapes.push_back(s);
      // Check against what we already know before reading (possibly many) values.
      if (params && (i >= params->size() || names[i] != (*params)[i].name ||
                     !(s == (*params)[i].param->value.shape())))
        fail_format("optimiser state does not match the parameters: ",
                    i >= params->size()
                        ? str_cat("the stream has more than ", params->size(), " parameters")
                        : str_cat("parameter ", i, " is '", names[i], "' ", s.str(),
                                  " in the stream but '", (*params)[i].name, "' ",
                                  (*params)[i].param->value.shape().str(), " here"));
      for (std::uint32_t slot = 0; slot < slots; ++slot) {
        values.emplace_back();
        r.floats(values.back(), s.size(), "state values");
      }
    }
    const std::uint32_t computed = r.crc();
    const std::uint32_t stored = r.u32("checksum");
    if (computed != stored)
      fail_format("optimiser state: checksum mismatch (stored ", stored, ", computed ", computed,
                  "); the stream is corrupt");
    // Checked after the checksum: a NaN here was written so, not a corruption.
    for (std::size_t i = 0; i < values.size(); ++i) {
      const auto bad = std::find_if(values[i].begin(), values[i].end(),
                                    [](float v) { return !std::isfinite(v); });
      if (bad != values[i].end())
        fail_format("optimiser state: state tensor ", i % slots, " of parameter '",
                    names[i / slots], "' holds ", std::isnan(*bad) ? "NaN" : "infinity",
                    " at index ", bad - values[i].begin(), " (from a diverged training)");
    }
    if (params && count != params->size())
      fail_format("optimiser state does not match the parameters: state for ", count,
                  " parameters, but ", params->size(), " parameters given");
    if (!params && has_state()) {
      if (names.size() != names_.size())
        fail_format("optimiser state: the stream has state for ", names.size(),
                    " parameters, this optimiser holds ", names_.size());
      for (std::size_t i = 0; i < names.size(); ++i)
        if (names[i] != names_[i] || !(shapes[i] == shapes_[i]))
          fail_format("optimiser state: parameter ", i, " is '", names[i], "' ", shapes[i].str(),
                      " in the stream but '", names_[i], "' ", shapes_[i].str(), " here");
    }
    if (!(lr >= 0.0) || !std::isfinite(lr))
      fail_format("optimiser state: invalid learning rate ", lr);

    // Everything checked: commit.
    std::vector<Tensor<Dev>> new_slots;
    for (std::size_t i = 0; i < values.size(); ++i)
      new_slots.push_back(optim_detail::from_host<Dev>(shapes[i / slots], values[i].data()));
    set_hyperparameters(hyper);
    lr_ = lr;
    iterations_ = iterations;
    names_ = std::move(names);
    shapes_ = std::move(shapes);
    slots_ = std::move(new_slots);
    state_from_stream_ = true;
  }

  std::size_t slots_per_param_;
  std::vector<std::string> names_;
  std::vector<Shape> shapes_;
  std::vector<Tensor<Dev>> slots_;  // slots_per_param_ consecutive tensors per parameter
  bool state_from_stream_ = false;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;
  double decay = 0.0;  // Keras time decay of the base rate

  // The original's training run: lr 1e-5, eps 1e-8, time decay 1.99e-7.
  static AdamOptions seed_protocol() { return {1e-5, 0.9, 0.999, 1e-8, 1.99e-7}; }
};

// Adam as in Keras 2 (legacy), see the header comment.
template <class Dev = Cpu>
class Adam final : public Optimizer<Dev> {
 public:
  explicit Adam(const AdamOptions& o = {})
      : Optimizer<Dev>(o.lr, o.decay, 2), beta1_(o.beta1), beta2_(o.beta2), epsilon_(o.epsilon) {
    validate(o);
  }

  std::string_view kind() const override { return "adam"; }
  AdamOptions options() const { return {this->lr_, beta1_, beta2_, epsilon_, this->decay_}; }

  void step(ParamList<Dev>& params) override {
    this->ensure_state(params);
    // The betas as the update op (and Keras' float32 variables) hold them, for the bias correction.
    const double beta1 = static_cast<float>(beta1_), beta2 = static_cast<float>(beta2_);
    const double t = static_cast<double>(this->iterations_) + 1.0;
    const double lr_t =
        this->decayed_lr() * std::sqrt(1.0 - std::pow(beta2, t)) / (1.0 - std::pow(beta1, t));
    for (std::size_t i = 0; i < params.size(); ++i) {
      Param<Dev>& p = *params[i].param;
      ops::adam_update<Dev>(p.value.view(), p.grad.cview(), this->slot(i, 0).view(),
                            this->slot(i, 1).view(), static_cast<float>(lr_t),
                            static_cast<float>(beta1_), static_cast<float>(beta2_),
                            static_cast<float>(epsilon_));
    }
    ++this->iterations_;
  }

 protected:
  std::vector<double> hyperparameters() const override {
    return {beta1_, beta2_, epsilon_, this->decay_};
  }
  void set_hyperparameters(const std::vector<double>& h) override {
    AdamOptions o{this->lr_, h[0], h[1], h[2], h[3]};
    try {
      validate(o);
    } catch (const std::invalid_argument& e) {
      fail_format("optimiser state: ", e.what());
    }
    beta1_ = o.beta1;
    beta2_ = o.beta2;
    epsilon_ = o.epsilon;
    this->decay_ = o.decay;
  }

 private:
  static void validate(const AdamOptions& o) {
    if (!(o.lr >= 0.0) || !std::isfinite(o.lr)) fail_argument("adam: lr must be >= 0, got ", o.lr);
    if (!(o.beta1 >= 0.0 && o.beta1 < 1.0))
      fail_argument("adam: beta1 must be in [0, 1), got ", o.beta1);
    if (!(o.beta2 >= 0.0 && o.beta2 < 1.0))
      fail_argument("adam: beta2 must be in [0, 1), got ", o.beta2);
    if (!(o.epsilon >= 0.0) || !std::isfinite(o.epsilon))
      fail_argument("adam: epsilon must be finite and >= 0, got ", o.epsilon);
    if (!(o.decay >= 0.0) || !std::isfinite(o.decay))
      fail_argument("adam: decay must be finite and >= 0, got ", o.decay);
  }
  double beta1_, beta2_, epsilon_;
};

struct SgdOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double decay = 0.0;  // Keras time decay of the base rate
};

// SGD with (non-Nesterov) momentum as in Keras 2 (legacy).
template <class Dev = Cpu>
class Sgd final : public Optimizer<Dev> {
 public:
  explicit Sgd(const SgdOptions& o = {}) : Optimizer<Dev>(o.lr, o.decay, 1), momentum_(o.momentum) {
    validate(o);
  }

  std::string_view kind() const override { return "sgd"; }
  double momentum() const { return momentum_; }

  void step(ParamList<Dev>& params) override {
    this->ensure_state(params);
    const float lr = static_cast<float>(this->decayed_lr());
    for (std::size_t i = 0; i < params.size(); ++i) {
      Param<Dev>& p = *params[i].param;
      ops::sgd_update<Dev>(p.value.view(), p.grad.cview(), this->slot(i, 0).view(), lr,
                           static_cast<float>(momentum_));
    }
    ++this->iterations_;
  }

 protected:
  std::vector<double> hyperparameters() const override { return {momentum_, this->decay_}; }
  void set_hyperparameters(const std::vector<double>& h) override {
    try {
      validate(SgdOptions{this->lr_, h[0], h[1]});
    } catch (const std::invalid_argument& e) {
      fail_format("optimiser state: ", e.what());
    }
    momentum_ = h[0];
    this->decay_ = h[1];
  }

 private:
  static void validate(const SgdOptions& o) {
    if (!(o.lr >= 0.0) || !std::isfinite(o.lr)) fail_argument("sgd: lr must be >= 0, got ", o.lr);
    if (!(o.momentum >= 0.0 && o.momentum < 1.0))
      fail_argument("sgd: momentum must be in [0, 1), got ", o.momentum);
    if (!(o.decay >= 0.0) || !std::isfinite(o.decay))
      fail_argument("sgd: decay must be finite and >= 0, got ", o.decay);
  }
  double momentum_;
};

// ------------------------------------------------------------------ learning-rate schedules

namespace optim_detail {
// One line "tag v1 value value ..." with doubles printed to round-trip exactly.
inline void write_schedule_line(std::ostream& out, const char* tag,
                                const std::vector<double>& values) {
  std::ostringstream line;
  line.precision(17);
  line << tag << " v1";
  for (double v : values) line << ' ' << v;
  out << line.str() << '\n';
  if (!out) throw std::runtime_error(str_cat(tag, ": writing the schedule state failed"));
}
inline std::vector<double> read_schedule_line(std::istream& in, const char* tag,
                                              std::size_t count) {
  std::string line;
  if (!std::getline(in, line)) fail_format(tag, ": schedule state missing (stream ended)");
  std::istringstream tokens(line);
  std::string got_tag, version;
  tokens >> got_tag >> version;
  if (got_tag != tag) fail_format(tag, ": not a ", tag, " state line: '", line, "'");
  if (version != "v1") fail_format(tag, ": unsupported state version '", version, "'");
  std::vector<double> values;
  std::string token;
  while (tokens >> token) {
    char* end = nullptr;
    const double v = std::strtod(token.c_str(), &end);
    if (end == token.c_str() || *end != '\0')
      fail_format(tag, ": '", token, "' is not a number in state line '", line, "'");
    values.push_back(v);
  }
  if (values.size() != count)
    fail_format(tag, ": state line has ", values.size(), " values, expected ", count);
  return values;
}
}  // namespace optim_detail

struct ReduceLROnPlateauOptions {
  double factor = 0.1;
  int patience = 10;
  double min_lr = 0.0;
  double min_delta = 1e-4;  // absolute, as Keras
  int cooldown = 0;
  bool maximise = false;  // Keras mode 'min' (a loss) unless set

  // The original's callback on the validation loss (inert there: min_lr equals the initial lr).
  static ReduceLROnPlateauOptions seed_protocol() { return {0.8, 3, 1e-5, 1e-4, 0, false}; }
};

// Keras' ReduceLROnPlateau: call on_epoch_end with the monitored value and the current base rate
// at the end of each epoch; it returns the rate to use from now on.
class ReduceLROnPlateau {
 public:
  explicit ReduceLROnPlateau(const ReduceLROnPlateauOptions& o = {}) : o_(o) {
    if (!(o.factor < 1.0 && o.factor >= 0.0))
      fail_argument("ReduceLROnPlateau: factor must be in [0, 1), got ", o.factor);
    if (o.patience < 0 || o.cooldown < 0)
      fail_argument("ReduceLROnPlateau: patience and cooldown must be >= 0");
    if (!(o.min_delta >= 0.0) || !(o.min_lr >= 0.0))
      fail_argument("ReduceLROnPlateau: min_delta and min_lr must be >= 0");
    reset();
  }

  void reset() {
    best_ = o_.maximise ? -std::numeric_limits<double>::infinity()
                        : std::numeric_limits<double>::infinity();
    wait_ = 0;
    cooldown_counter_ = 0;
  }

  double on_epoch_end(double value, double current_lr) {
    if (in_cooldown()) {
      --cooldown_counter_;
      wait_ = 0;
    }
    const bool improved = o_.maximise ? value > best_ + o_.min_delta : value < best_ - o_.min_delta;
    if (improved) {
      best_ = value;
      wait_ = 0;
    } else if (!in_cooldown()) {
      ++wait_;
      if (wait_ >= o_.patience && current_lr > o_.min_lr) {
        cooldown_counter_ = o_.cooldown;
        wait_ = 0;
        return std::max(current_lr * o_.factor, o_.min_lr);
      }
    }
    return current_lr;
  }
  // Convenience: reads and sets an optimiser's base rate; true when it was reduced.
  template <class Dev>
  bool on_epoch_end(double value, Optimizer<Dev>& optimizer) {
    const double old_lr = optimizer.lr();
    const double new_lr = on_epoch_end(value, old_lr);
    optimizer.set_lr(new_lr);
    return new_lr != old_lr;
  }

  const ReduceLROnPlateauOptions& options() const { return o_; }
  double best() const { return best_; }
  int wait() const { return wait_; }
  int cooldown_counter() const { return cooldown_counter_; }
  bool in_cooldown() const { return cooldown_counter_ > 0; }

  void save_state(std::ostream& out) const {
    optim_detail::write_schedule_line(
        out, "ReduceLROnPlateau",
        {o_.factor, static_cast<double>(o_.patience), o_.min_lr, o_.min_delta,
         static_cast<double>(o_.cooldown), o_.maximise ? 1.0 : 0.0, best_,
         static_cast<double>(wait_), static_cast<double>(cooldown_counter_)});
  }
  void load_state(std::istream& in) {
    const std::vector<double> v = optim_detail::read_schedule_line(in, "ReduceLROnPlateau", 9);
    for (int i : {1, 4, 7, 8})
      if (v[i] < 0 || v[i] != std::floor(v[i]) || v[i] > std::numeric_limits<int>::max())
        fail_format("ReduceLROnPlateau: state value ", v[i], " is not a count");
    ReduceLROnPlateauOptions o{v[0], static_cast<int>(v[1]), v[2],
                               v[3], static_cast<int>(v[4]), v[5] != 0.0};
    try {
      *this = ReduceLROnPlateau(o);
    } catch (const std::invalid_argument& e) {
      fail_format("ReduceLROnPlateau: state holds invalid options: ", e.what());
    }
    best_ = v[6];
    wait_ = static_cast<int>(v[7]);
    cooldown_counter_ = static_cast<int>(v[8]);
  }

 private:
  ReduceLROnPlateauOptions o_;
  double best_ = 0.0;
  int wait_ = 0;
  int cooldown_counter_ = 0;
};

// lr(epoch) = lr_min + (lr_max - lr_min) (1 + cos(pi epoch / epochs)) / 2, epoch clamped to
// [0, epochs]: lr_max at epoch 0, lr_min from epoch `epochs` on. Stateless; save/load keep the
// configuration so a resumed run can check it continues the same schedule.
class CosineSchedule {
 public:
  CosineSchedule(double lr_max, double lr_min, int epochs)
      : lr_max_(lr_max), lr_min_(lr_min), epochs_(epochs) {
    if (epochs < 1) fail_argument("CosineSchedule: epochs must be >= 1, got ", epochs);
    if (!(lr_min >= 0.0) || !(lr_max >= lr_min))
      fail_argument("CosineSchedule: need 0 <= lr_min <= lr_max, got lr_min ", lr_min, ", lr_max ",
                    lr_max);
  }

  double lr(int epoch) const {
    const double e = std::clamp(epoch, 0, epochs_);
    return lr_min_ + 0.5 * (lr_max_ - lr_min_) * (1.0 + std::cos(std::numbers::pi * e / epochs_));
  }
  double lr_max() const { return lr_max_; }
  double lr_min() const { return lr_min_; }
  int epochs() const { return epochs_; }

  void save_state(std::ostream& out) const {
    optim_detail::write_schedule_line(out, "CosineSchedule",
                                      {lr_max_, lr_min_, static_cast<double>(epochs_)});
  }
  void load_state(std::istream& in) {
    const std::vector<double> v = optim_detail::read_schedule_line(in, "CosineSchedule", 3);
    if (!(v[2] >= 1 && v[2] == std::floor(v[2]) && v[2] <= std::numeric_limits<int>::max()))
      fail_format("CosineSchedule: state epochs ", v[2], " is not a positive count");
    try {
      *this = CosineSchedule(v[0], v[1], static_cast<int>(v[2]));
    } catch (const std::invalid_argument& e) {
      fail_format("CosineSchedule: state holds invalid options: ", e.what());
    }
  }

 private:
  double lr_max_, lr_min_;
  int epochs_;
};

}  // namespace unetsrnn

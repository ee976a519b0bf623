#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <unetsrnn/io/weights.hpp>
#include <unetsrnn/unetsrnn.hpp>
#include <vector>

#include "random_tensors.hpp"

// Numerical parity with PyTorch: the same weights, input and output gradient go through our model
// and through benchmarks/torch_peer.py (the same graph built from torch ops, the Spatial RNN
// computed literally step by step); logits and every parameter gradient must agree to float32
// accuracy. Skipped, with a message, where no python3 with torch is installed.

#ifndef UNETSRNN_SOURCE_DIR
#error "define UNETSRNN_SOURCE_DIR (the repository root; tests/CMakeLists.txt does)"
#endif

using namespace unetsrnn;
using testing::random_tensor;
using testing::set_strong_srnn_weights;
namespace fs = std::filesystem;

namespace {

const std::string kPeerScript = UNETSRNN_SOURCE_DIR "/benchmarks/torch_peer.py";

// The first python3 that can import torch: Debian's python3-torch lives in /usr/bin/python3, which
// a pyenv or venv python3 earlier on PATH would hide.
const std::optional<std::string>& python_with_torch() {
  static const std::optional<std::string> found = []() -> std::optional<std::string> {
    // find_spec looks for the package without importing it (an import takes seconds).
    for (const char* python : {"/usr/bin/python3", "python3"}) {
      const std::string probe = std::string(python) +
                                " -c 'import importlib.util, sys; "
                                "sys.exit(importlib.util.find_spec(\"torch\") is None)' "
                                ">/dev/null 2>&1";
      if (std::system(probe.c_str()) == 0) return std::string(python);
    }
    return std::nullopt;
  }();
  return found;
}

bool skip_without_torch() {
  if (python_with_torch()) return false;
  MESSAGE("torch parity SKIPPED: no python3 with torch (apt-get install python3-torch)");
  return true;
}

// A fresh directory for the files exchanged with the peer, removed at exit.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("unetsrnn_parity_" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

void put_u32(std::ofstream& out, std::uint32_t v) {
  const unsigned char b[4] = {static_cast<unsigned char>(v), static_cast<unsigned char>(v >> 8),
                              static_cast<unsigned char>(v >> 16),
                              static_cast<unsigned char>(v >> 24)};
  out.write(reinterpret_cast<const char*>(b), 4);
}

// The peer's tensor file: 4 x u32 dims (N, C, H, W), then float32 values (x86 is little-endian).
void write_tensor(const std::string& path, const Tensor<>& t) {
  std::ofstream out(path, std::ios::binary);
  const Shape s = t.shape();
  for (int d : {s.n, s.c, s.h, s.w}) put_u32(out, static_cast<std::uint32_t>(d));
  out.write(reinterpret_cast<const char*>(t.data()), static_cast<std::streamsize>(t.size() * 4));
  if (!out.good()) throw std::runtime_error("cannot write " + path);
}

// The peer's output: magic "USRNNP\0\0", u32 count, then per tensor u32 element count + float32s.
std::vector<std::vector<float>> read_peer_outputs(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) throw std::runtime_error("the torch peer wrote no output file " + path);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto malformed = [&] { return std::runtime_error("malformed peer output " + path); };
  std::size_t pos = 0;
  auto u32 = [&]() {
    if (pos + 4 > bytes.size()) throw malformed();
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<unsigned char>(bytes[pos + i]);
    pos += 4;
    return v;
  };
  if (bytes.compare(0, 8, std::string("USRNNP\0\0", 8)) != 0) throw malformed();
  pos = 8;
  std::vector<std::vector<float>> tensors(u32());
  for (auto& t : tensors) {
    const std::size_t count = u32();
    if (pos + 4 * count > bytes.size()) throw malformed();
    t.resize(count);
    std::memcpy(t.data(), bytes.data() + pos, 4 * count);
    pos += 4 * count;
  }
  if (pos != bytes.size()) throw malformed();
  return tensors;
}

std::string quote(const std::string& s) { return "'" + s + "'"; }

// One comparison: our tensors (named) and, after the peer has run, its tensors in the same order.
struct Exchange {
  std::vector<std::string> names;
  std::vector<std::vector<float>> ours, theirs;
  std::string error;  // why our side could not run, if it could not
  std::string out_file;

  void keep(const std::string& name, const float* data, std::size_t count) {
    names.push_back(name);
    ours.emplace_back(data, data + count);
  }
};

// Prepares one model's exchange: weights (strong SRNN weights), input and dL/dlogits to files, our
// logits and parameter gradients for loss = sum(logits * dlogits) to memory. Returns the peer job.
std::string prepare_model(Exchange& ex, const TempDir& dir, const std::string& name, Shape shape) {
  const std::string tag = name + "_" + std::to_string(shape.n);
  auto model = make_model(name);
  model->init(7);
  auto params = model->parameters();
  for (std::size_t i = 0; i < params.size(); ++i)
    if (params[i].name.find(".srnn.") != std::string::npos)
      set_strong_srnn_weights(params[i].param->value, 100 + i);
  const Tensor<> x = random_tensor(shape, 11, 0.0, 1.0);
  const Tensor<> dlogits = random_tensor(Shape{shape.n, 1, shape.h, shape.w}, 12, -1.0, 1.0);
  save_weights(*model, dir / (tag + ".weights"));
  write_tensor(dir / (tag + "_x.bin"), x);
  write_tensor(dir / (tag + "_g.bin"), dlogits);
  ex.out_file = dir / (tag + "_out.bin");

  model->zero_grad();
  const CView<> logits = model->forward(x);
  ex.keep("logits", logits.data, logits.shape.size());
  model->backward(dlogits);
  for (auto& p : params) ex.keep("grad " + p.name, p.param->grad.data(), p.param->grad.size());
  return "parity --model " + name + " --weights " + quote(dir / (tag + ".weights")) + " --input " +
         quote(dir / (tag + "_x.bin")) + " --dlogits " + quote(dir / (tag + "_g.bin")) + " --out " +
         quote(ex.out_file);
}

constexpr int kSrnnChannels = 3;

// The seed SRNN layer alone on x in [-1, 1] (both signs), strong weights of both signs, y, dx, dw.
std::string prepare_srnn(Exchange& ex, const TempDir& dir, int length) {
  const std::string tag = "srnn" + std::to_string(length);
  const Shape shape{2, kSrnnChannels, 7, 9};
  using Layer = SpatialRnn<kSrnnChannels>;
  Layer layer(SrnnConfig{SrnnRule::Seed, SrnnAct::Relu, length});
  set_strong_srnn_weights(layer.weight.value, 20 + length);
  const Tensor<> x = random_tensor(shape, 21, -1.0, 1.0);
  const Tensor<> dy = random_tensor(Layer::output_shape(shape), 22, -1.0, 1.0);
  write_tensor(dir / (tag + "_x.bin"), x);
  write_tensor(dir / (tag + "_w.bin"), layer.weight.value);
  write_tensor(dir / (tag + "_dy.bin"), dy);
  ex.out_file = dir / (tag + "_out.bin");

  Tensor<> y(Layer::output_shape(shape)), dy_work = dy, dx(shape);
  layer.weight.grad.zero();
  layer.forward(x, y);
  layer.backward(dy_work, dx, false);
  ex.keep("y", y.data(), y.size());
  ex.keep("dx", dx.data(), dx.size());
  ex.keep("dw", layer.weight.grad.data(), layer.weight.grad.size());
  return "srnn --input " + quote(dir / (tag + "_x.bin")) + " --srnn-weight " +
         quote(dir / (tag + "_w.bin")) + " --length " + std::to_string(length) + " --dy " +
         quote(dir / (tag + "_dy.bin")) + " --out " + quote(ex.out_file);
}

struct ModelCase {
  std::string name;
  Shape input;
};
const std::vector<ModelCase> kModelCases = {
    {"unet2d_lw", Shape{1, 3, 32, 48}},
    {"unet2d_res_lw", Shape{1, 3, 32, 48}},
    {"crunet_res_lw", Shape{2, 3, 32, 32}},
    {"crunet_res_hw", Shape{1, 3, 32, 48}},
};
const std::vector<int> kSrnnLengths = {1, 3, 12};  // 12 > W = 9: the chain runs off the image

// Every exchange, prepared on first use, with the peer run once for all of them: importing torch
// takes seconds, far more than the small models' passes.
std::map<std::string, Exchange>& exchanges() {
  static TempDir dir;
  static std::map<std::string, Exchange> all = [] {
    std::map<std::string, Exchange> result;
    std::string jobs;
    auto add = [&](const std::string& key, auto&& prepare) {
      Exchange& ex = result[key];
      try {
        jobs += prepare(ex) + "\n";
      } catch (const std::exception& e) {
        ex.error = e.what();
      }
    };
    for (const auto& c : kModelCases)
      add(c.name, [&](Exchange& ex) { return prepare_model(ex, dir, c.name, c.input); });
    for (int length : kSrnnLengths)
      add("srnn" + std::to_string(length),
          [&](Exchange& ex) { return prepare_srnn(ex, dir, length); });
    {
      std::ofstream out(dir / "jobs.txt");
      out << jobs;
    }
    const std::string log = dir / "peer.log";
    const std::string command = *python_with_torch() + " " + quote(kPeerScript) + " jobs " +
                                quote(dir / "jobs.txt") + " --threads 1 >" + quote(log) + " 2>&1";
    const int status = std::system(command.c_str());
    std::string peer_failure;
    if (status != 0) {
      std::ifstream in(log);
      peer_failure = "torch peer failed (status " + std::to_string(status) + "): " + command +
                     "\n" + std::string(std::istreambuf_iterator<char>(in), {});
    }
    // A failed job leaves no output file; the others' results still count.
    for (auto& [key, ex] : result) {
      if (!ex.error.empty()) continue;
      try {
        ex.theirs = read_peer_outputs(ex.out_file);
      } catch (const std::exception& e) {
        ex.error = std::string(e.what()) + "\n" + peer_failure;
      }
    }
    return result;
  }();
  return all;
}

// max|ours - theirs| <= 1e-4 * max(1, max|theirs|); returns the ratio to that bound (<= 1 passes).
double mismatch(const std::vector<float>& ours, const std::vector<float>& theirs) {
  double diff = 0.0, scale = 1.0;
  for (std::size_t i = 0; i < theirs.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(ours[i]) - theirs[i]));
    scale = std::max(scale, std::abs(static_cast<double>(theirs[i])));
  }
  return diff / (1e-4 * scale);
}

void check_exchange(const std::string& key) {
  CAPTURE(key);
  const Exchange& ex = exchanges().at(key);
  if (!ex.error.empty()) FAIL(ex.error);
  REQUIRE(ex.theirs.size() == ex.ours.size());
  double worst = 0.0;
  std::string worst_name;
  for (std::size_t i = 0; i < ex.ours.size(); ++i) {
    CAPTURE(ex.names[i]);
    REQUIRE(ex.theirs[i].size() == ex.ours[i].size());
    const double ratio = mismatch(ex.ours[i], ex.theirs[i]);
    CHECK_MESSAGE(ratio <= 1.0, "max|ours - torch| is ", ratio,
                  " x the bound 1e-4 * max(1, max|torch|)");
    if (ratio >= worst) worst = ratio, worst_name = ex.names[i];
  }
  MESSAGE(key, ": ", ex.ours.size(), " tensors agree; worst is ", worst_name, " at ", worst,
          " x the bound 1e-4 * max(1, max|torch|)");
}

}  // namespace

TEST_CASE("torch parity: unet2d_lw logits and parameter gradients") {
  if (!skip_without_torch()) check_exchange("unet2d_lw");
}

TEST_CASE("torch parity: unet2d_res_lw (level-4 skip quirk) logits and parameter gradients") {
  if (!skip_without_torch()) check_exchange("unet2d_res_lw");
}

TEST_CASE("torch parity: crunet_res_lw (SRNN skips), batch 2, logits and parameter gradients") {
  if (!skip_without_torch()) check_exchange("crunet_res_lw");
}

TEST_CASE("torch parity: crunet_res_hw logits and parameter gradients") {
  if (!skip_without_torch()) check_exchange("crunet_res_hw");
}

TEST_CASE("torch parity: seed Spatial RNN layer alone, both signs, L = 1, 3, 12 (past the edge)") {
  if (skip_without_torch()) return;
  for (int length : kSrnnLengths) check_exchange("srnn" + std::to_string(length));
}

// Data parallel without MPI: the backward pass's gradient-ready reports, and the GradientReducer
// overlapping the gradient sums with the backward pass, checked on the order of events (no timing)
// with a recording communicator (recording_communicator.hpp). tests/mpi/ runs the real transport.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <unetsrnn/data/synthetic.hpp>
#include <unetsrnn/train/trainer.hpp>
#include <vector>

#include "random_tensors.hpp"
#include "recording_communicator.hpp"
#include "test_support.hpp"

using namespace unetsrnn;
using testing::CommEvent;
using testing::RecordingCommunicator;
using testing::RecordingHook;

namespace {

using Grads = std::vector<std::vector<float>>;

Grads grads_of(const ParamList<Cpu>& params) {
  Grads g;
  for (const auto& p : params) g.emplace_back(p.param->grad.begin(), p.param->grad.end());
  return g;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// A backward pass's reports: the ranges in order, and each reported gradient as it was then.
struct Reports final : GradientReadyHook {
  explicit Reports(ParamList<Cpu>& params) : params(params), at_report(params.size()) {}
  void gradients_ready(std::size_t first, std::size_t count) override {
    ranges.push_back({first, count});
    for (std::size_t i = first; i < first + count && i < params.size(); ++i)
      at_report[i].assign(params[i].param->grad.begin(), params[i].param->grad.end());
  }
  ParamList<Cpu>& params;
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  Grads at_report;
};

struct Step {
  Tensor<Cpu> x, dlogits;
};
Step random_step(int in_channels, int size, std::uint64_t seed) {
  Rng rng(seed);
  Step s;
  s.x = testing::random_tensor(Shape{2, in_channels, size, size}, rng, -1.0, 1.0);
  s.dlogits = testing::random_tensor(Shape{2, 1, size, size}, rng, -1e-2, 1e-2);
  return s;
}

}  // namespace

TEST_CASE("backward reports every parameter once, final when reported, same gradients") {
  for (const auto& name : model_names()) {
    CAPTURE(name);
    auto model = make_model(name);
    model->init(3);
    ParamList<Cpu> params = model->parameters();
    const Step s = random_step(3, 16, 5);

    model->zero_grad();
    model->forward(s.x.cview());
    model->backward(s.dlogits.cview());
    const Grads plain = grads_of(params);

    model->zero_grad();
    model->forward(s.x.cview());
    Reports reports(params);
    model->backward(s.dlogits.cview(), reports);
    const Grads hooked = grads_of(params);

    CHECK(hooked == plain);  // the report changes nothing
    std::vector<int> times(params.size(), 0);
    for (const auto& [first, count] : reports.ranges) {
      REQUIRE(first + count <= params.size());
      for (std::size_t i = first; i < first + count; ++i) ++times[i];
    }
    CHECK(std::all_of(times.begin(), times.end(), [](int t) { return t == 1; }));
    CHECK(reports.at_report == hooked);  // nothing was added after a report
    // Decoder side first (out, then dec1 ...), the encoders last, enc1 at the very end.
    REQUIRE(reports.ranges.size() >= 2);
    CHECK(starts_with(params[reports.ranges.front().first].name, "out"));
    CHECK(starts_with(params[reports.ranges.back().first].name, "enc1."));
  }
}

TEST_CASE("a model without reports: the hook hears nothing, the gradients are the same") {
  // AnyModel's default backward(dlogits, hook) for models that cannot tell.
  struct Plain final : AnyModel<Cpu> {
    std::string name() const override { return inner->name(); }
    ParamList<Cpu> parameters() override { return inner->parameters(); }
    void init(std::uint64_t seed) override { inner->init(seed); }
    CView<Cpu> forward(CView<Cpu> x) override { return inner->forward(x); }
    void backward(CView<Cpu> dlogits) override { inner->backward(dlogits); }
    using AnyModel<Cpu>::backward;
    std::unique_ptr<AnyModel<Cpu>> inner = make_model("unet2d_lw");
  } model;
  model.init(1);
  ParamList<Cpu> params = model.parameters();
  const Step s = random_step(3, 16, 2);
  model.zero_grad();
  model.forward(s.x.cview());
  model.backward(s.dlogits.cview());
  const Grads plain = grads_of(params);
  model.zero_grad();
  model.forward(s.x.cview());
  Reports reports(params);
  AnyModel<Cpu>& any = model;
  any.backward(s.dlogits.cview(), reports);
  CHECK(reports.ranges.empty());
  CHECK(grads_of(params) == plain);

  // Its data-parallel sum is then the whole reduction at finish(), with the same bits.
  RecordingCommunicator comm(2);
  GradientReducer<Cpu> reducer(4096);
  model.zero_grad();
  model.forward(s.x.cview());
  reducer.begin(comm, params);
  any.backward(s.dlogits.cview(), reducer);
  reducer.finish();
  CHECK(reducer.buckets_started_early() == 0);
  Grads twice = plain;
  for (auto& g : twice)
    for (float& v : g) v *= 2.0f;
  CHECK(grads_of(params) == twice);
}

namespace {

// Sums started in one reduction, as (offset from the first one, floats).
std::vector<std::pair<std::size_t, std::size_t>> sums_of(const std::vector<CommEvent>& events) {
  std::vector<std::pair<std::size_t, std::size_t>> sums;
  const float* base = nullptr;
  for (const auto& e : events)
    if (e.kind == CommEvent::StartSum) {
      if (!base) base = e.data;
      sums.emplace_back(static_cast<std::size_t>(e.data - base), e.count);
    }
  return sums;
}

}  // namespace

TEST_CASE("the gradient sums overlap the backward pass, in a fixed order, with the same bits") {
  for (const char* name : {"unet2d_lw", "crunet_res_lw"}) {  // plain skips; SRNN skip links
    CAPTURE(name);
    auto model = make_model(name);
    model->init(4);
    ParamList<Cpu> params = model->parameters();
    const Step s = random_step(3, 32, 6);
    constexpr std::size_t bucket = 4096;

    // Not overlapped: backward, then the whole reduction.
    RecordingCommunicator plain_comm(2);
    GradientReducer<Cpu> plain_reducer(bucket);
    model->zero_grad();
    model->forward(s.x.cview());
    model->backward(s.dlogits.cview());
    const Grads local = grads_of(params);
    plain_reducer.reduce(plain_comm, params);
    const Grads plain = grads_of(params);

    // Overlapped: the reducer hears the backward pass's reports.
    RecordingCommunicator comm(2);
    GradientReducer<Cpu> reducer(bucket);
    model->zero_grad();
    model->forward(s.x.cview());
    reducer.begin(comm, params);
    RecordingHook hook(comm, reducer);
    model->backward(s.dlogits.cview(), hook);
    reducer.finish();
    const Grads overlapped = grads_of(params);

    // The same bits, and they are the sums (twice the local gradient with 2 equal ranks).
    CHECK(overlapped == plain);
    Grads twice = local;
    for (auto& g : twice)
      for (float& v : g) v *= 2.0f;
    CHECK(overlapped == twice);

    // The same buckets in the same order: contiguous, one after another, the whole buffer.
    const auto sums = sums_of(comm.events);
    CHECK(sums == sums_of(plain_comm.events));
    REQUIRE(sums.size() == reducer.buckets());
    REQUIRE(sums.size() > 3);
    std::size_t end = 0;
    for (const auto& [offset, count] : sums) {
      CHECK(offset == end);
      CHECK(count <= bucket);
      end = offset + count;
    }
    CHECK(end == count_parameters(params));

    // Where in the pass each sum started. Parameter i lies at [offset[i], offset[i] + size[i])
    // of the buffer (packed last first). A sum starts only once every parameter it covers was
    // reported, and the first one before the first encoder level's backward pass ran (the
    // encoders report last, so: before any encoder's report).
    const std::size_t n = params.size();
    std::vector<std::size_t> offset(n), size(n);
    for (std::size_t i = n, o = 0; i-- > 0;) {
      size[i] = params[i].param->grad.size();
      offset[i] = o;
      o += size[i];
    }
    std::vector<char> reported(n, 0);
    std::size_t sum_index = 0, first_sum_event = 0, first_encoder_report = 0, event = 0;
    bool saw_encoder = false, all_covered = true;
    for (const auto& e : comm.events) {
      ++event;
      if (e.kind == CommEvent::Ready) {
        for (std::size_t i = e.first; i < e.first + e.count; ++i) reported[i] = 1;
        if (!saw_encoder && starts_with(params[e.first].name, "enc")) {
          saw_encoder = true;
          first_encoder_report = event;
        }
      } else if (e.kind == CommEvent::StartSum) {
        if (sum_index == 0) first_sum_event = event;
        const auto [begin, count] = sums[sum_index++];
        for (std::size_t i = 0; i < n; ++i)
          if (offset[i] < begin + count && begin < offset[i] + size[i]) all_covered &= reported[i];
      }
    }
    CHECK(all_covered);
    REQUIRE(saw_encoder);
    CHECK(first_sum_event > 0);
    CHECK(first_sum_event < first_encoder_report);
    CHECK(reducer.buckets_started_early() >= 1);
    CHECK(comm.events.back().kind == CommEvent::WaitAll);  // finish() waits for every sum
  }
}

TEST_CASE("one rank: the reducer neither sums nor changes the gradients") {
  auto model = make_model("unet2d_lw");
  model->init(2);
  ParamList<Cpu> params = model->parameters();
  const Step s = random_step(3, 16, 3);
  RecordingCommunicator comm(1);
  GradientReducer<Cpu> reducer(4096);
  model->zero_grad();
  model->forward(s.x.cview());
  reducer.begin(comm, params);
  model->backward(s.dlogits.cview(), reducer);
  const Grads before = grads_of(params);
  reducer.finish();
  CHECK(comm.events.empty());
  CHECK(grads_of(params) == before);
}

TEST_CASE("the Trainer starts the first gradient sum of every step before the encoders' backward") {
  test_support::TempDir dir("overlap");
  const std::vector<Sample> samples = generate_synthetic(12, 32, 32, 3);
  Split split;
  for (std::size_t i = 0; i < 8; ++i) split.train.push_back(i);
  split.val = {8, 9};
  split.test = {10, 11};
  TrainOptions o;
  o.model = "unet2d_lw";
  o.epochs = 1;
  o.batch = 4;  // 2 steps, 2 images per rank
  o.out_dir = dir.path / "run";
  auto model = make_model(o.model);
  ParamList<Cpu> params = model->parameters();
  RecordingCommunicator comm(2);
  Trainer<Cpu> trainer(o, *model, samples, split, &comm);
  trainer.gradient_reducer().set_bucket_floats(4096);

  // Probe at each step's first sum: have the encoders' gradients been touched yet (zero_grad ran
  // before the step)? After the step they must be non-zero, or the probe proves nothing.
  auto encoders_zero = [&] {
    for (const auto& p : params)
      if (starts_with(p.name, "enc"))
        for (float v : p.param->grad)
          if (v != 0.0f) return false;
    return true;
  };
  int steps = 0, first_sums = 0, first_sums_before_encoders = 0, steps_with_encoder_grads = 0;
  bool in_step = false;
  comm.on_start_sum = [&] {
    if (in_step) return;
    in_step = true;
    ++first_sums;
    first_sums_before_encoders += encoders_zero();
  };
  trainer.on_step = [&](const TrainStep&) {
    ++steps;
    in_step = false;
    steps_with_encoder_grads += !encoders_zero();
  };
  trainer.run();
  CHECK(steps == 2);
  CHECK(first_sums == 2);
  CHECK(first_sums_before_encoders == 2);
  CHECK(steps_with_encoder_grads == 2);
  // A UNet reports enc1 as its backward pass's last act: every bucket starts during the pass.
  CHECK(trainer.gradient_reducer().buckets() > 3);
  CHECK(trainer.gradient_reducer().buckets_started_early() == trainer.gradient_reducer().buckets());
}

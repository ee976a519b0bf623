// A warm training step (zero_grad, forward, backward, Adam; data parallel also the gradient sums
// overlapping the backward pass) must not touch the heap: every op
// reuses the workspaces it grew on the first step. This executable interposes the C allocator
// (malloc and friends, which operator new and std::aligned_alloc go through) and counts the calls
// made while a step runs.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <atomic>
#include <cstddef>
#include <unetsrnn/train/communicator.hpp>
#include <unetsrnn/train/optim.hpp>
#include <unetsrnn/unetsrnn.hpp>

#include "random_tensors.hpp"
#include "recording_communicator.hpp"

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
}

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
void note_allocation() {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1);
}
}  // namespace

extern "C" {
void* malloc(std::size_t n) {
  note_allocation();
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t size) {
  note_allocation();
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t n) {
  note_allocation();
  return __libc_realloc(p, n);
}
void* aligned_alloc(std::size_t alignment, std::size_t n) {
  note_allocation();
  return __libc_memalign(alignment, n);
}
void* memalign(std::size_t alignment, std::size_t n) {
  note_allocation();
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t n) {
  note_allocation();
  *out = __libc_memalign(alignment, n);
  return *out ? 0 : 12;  // ENOMEM
}
}

using namespace unetsrnn;

namespace {

// Allocations made by one training step of `model` on x, after two warm steps. Data parallel
// (`comm`): the backward pass reports to a GradientReducer, which sums the gradients over the
// recording communicator's two ranks, buckets starting during the pass (the Trainer's step).
long allocations_in_step(AnyModel<Cpu>& model, const Tensor<>& x, const Tensor<>& dlogits,
                         testing::RecordingCommunicator* comm = nullptr) {
  model.init(7);
  ParamList<Cpu> params = model.parameters();
  Adam<Cpu> adam;
  GradientReducer<Cpu> reducer(std::size_t{1} << 15);
  if (comm) comm->events.reserve(4096);
  auto step = [&] {
    adam.zero_grad(params);
    model.forward(x);
    if (comm) {
      comm->clear();
      reducer.begin(*comm, params);
      model.backward(dlogits, reducer);
      reducer.finish();
      REQUIRE(reducer.buckets_started_early() > 0);
    } else {
      model.backward(dlogits);
    }
    adam.step(params);
  };
  step();
  step();
  allocations.store(0);
  counting.store(true);
  step();
  counting.store(false);
  return allocations.load();
}

}  // namespace

TEST_CASE("the allocation counter sees allocations") {
  counting.store(true);
  allocations.store(0);
  {
    std::vector<float> v(1000);
    Tensor<> t(Shape{1, 2, 3, 4});
    v[0] = t.shape().c;
  }
  counting.store(false);
  CHECK(allocations.load() >= 2);
}

namespace {
// On every CPU path this machine runs (ops/cpu/isa.hpp); the others are registered as skipped.
// With the default convolution algorithm (auto: Winograd on some layers), then with Winograd on
// every 3x3 convolution, F(2x2) and F(4x4) (ops/cpu/conv_algo.hpp).
void check_every_model(cpu::Isa isa) {
  Rng rng(3);
  const Tensor<> x = testing::random_tensor(Shape{2, 3, 32, 48}, rng, -1.0, 1.0);
  const Tensor<> dlogits = testing::random_tensor(Shape{2, 1, 32, 48}, rng, -1e-3, 1e-3);
  const cpu::Isa saved = cpu::active_isa();
  const cpu::ConvAlgo saved_algo = cpu::conv_algorithm();
  cpu::set_isa(isa);
  for (const auto& name : model_names()) {
    CAPTURE(name);
    auto model = make_model(name);
    CHECK(allocations_in_step(*model, x, dlogits) == 0);
    testing::RecordingCommunicator two_ranks(2);
    CHECK(allocations_in_step(*model, x, dlogits, &two_ranks) == 0);
    for (cpu::ConvAlgo algo : {cpu::ConvAlgo::Winograd, cpu::ConvAlgo::Winograd4}) {
      cpu::set_conv_algorithm(algo);
      CHECK(allocations_in_step(*model, x, dlogits) == 0);
    }
    cpu::set_conv_algorithm(saved_algo);
  }
  cpu::set_isa(saved);
}
}  // namespace

TEST_CASE("a warm training step allocates nothing, for every model [portable]") {
  check_every_model(cpu::Isa::Portable);
}
TEST_CASE("a warm training step allocates nothing, for every model [avx2]" *
          doctest::skip(!cpu::isa_supported(cpu::Isa::Avx2))) {
  check_every_model(cpu::Isa::Avx2);
}
TEST_CASE("a warm training step allocates nothing, for every model [avx512]" *
          doctest::skip(!cpu::isa_supported(cpu::Isa::Avx512))) {
  check_every_model(cpu::Isa::Avx512);
}

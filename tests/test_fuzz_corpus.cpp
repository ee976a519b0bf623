// Replays the fuzzers' seed corpus and regression inputs (tests/fuzz/{corpus,regressions}/<target>)
// through the fuzz targets with the project's compiler, so that every input once found to crash
// stays fixed even where clang (and so libFuzzer) is absent. Also checks that the seeds are what
// they claim: each is accepted by its reader.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/fuzz_targets.hpp"

namespace fs = std::filesystem;

namespace {

const fs::path kFuzz = fs::path(UNETSRNN_SOURCE_DIR) / "tests" / "fuzz";

std::vector<std::string> inputs(const std::string& kind, const std::string& target) {
  std::vector<std::string> out;
  const fs::path dir = kFuzz / kind / target;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    out.push_back(std::string(std::istreambuf_iterator<char>(in), {}));
  }
  return out;
}

template <class Target>
void replay(const std::string& target, Target&& fuzz) {
  for (const char* kind : {"corpus", "regressions"})
    for (const std::string& bytes : inputs(kind, target))
      fuzz(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace

TEST_CASE("fuzz inputs replay without failure") {
  CHECK(inputs("corpus", "image").size() >= 8);
  replay("image", unetsrnn_fuzz::fuzz_image);
  replay("weights", unetsrnn_fuzz::fuzz_weights);
  replay("optimiser_state", unetsrnn_fuzz::fuzz_optimiser_state);
  replay("checkpoint", unetsrnn_fuzz::fuzz_checkpoint);
}

TEST_CASE("the seeds are valid inputs of their readers") {
  using namespace unetsrnn;
  for (const std::string& bytes : inputs("corpus", "image"))
    CHECK_NOTHROW(
        decode_pixels(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "seed"));
  int loaded = 0;
  for (const std::string& bytes : inputs("corpus", "weights")) {
    const auto parsed = detail::parse_weights(bytes, "seed.weights");
    if (parsed.header.model_name == "fuzz_net") {
      unetsrnn_fuzz::FuzzModel model;
      detail::load_parsed_weights(model, parsed, "seed.weights");
      ++loaded;
    }
  }
  CHECK(loaded == 1);
  for (const std::string& bytes : inputs("corpus", "optimiser_state")) {
    std::istringstream in(bytes);
    const bool adam = bytes.find("adam") != std::string::npos;
    unetsrnn_fuzz::FuzzModel model;  // what the stepped states were written for
    if (adam)
      CHECK_NOTHROW(Adam<Cpu>().load_state(in));
    else
      CHECK_NOTHROW(Sgd<Cpu>().load_state(in, model.parameters()));
  }
  int checkpoints = 0;
  for (const std::string& bytes : inputs("corpus", "checkpoint"))
    if (bytes.rfind("unetsrnn checkpoint", 0) == 0) {
      CHECK_NOTHROW(parse_checkpoint(bytes, "seed"));
      ++checkpoints;
    }
  CHECK(checkpoints == 2);
}

// One libFuzzer harness; UNETSRNN_FUZZ_TARGET names the target (fuzz_targets.hpp). Built by
// tests/fuzz/CMakeLists.txt with clang -fsanitize=fuzzer,address,undefined. stb is compiled into
// the harness (not linked from libstb) so that the sanitizers and the coverage see its decoders.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return unetsrnn_fuzz::UNETSRNN_FUZZ_TARGET(data, size);
}

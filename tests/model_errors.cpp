// Declarations the UNet template must reject with a message that names the bad parameter. Each
// CASE is built by its own CTest test (tests/CMakeLists.txt), which passes when the compiler's
// output carries the expected static_assert message.
#include <unetsrnn/unetsrnn.hpp>

using namespace unetsrnn;

#if CASE == 1  // one skip policy too few
using Model = UNet<ResBlock, Widths<8, 16, 32>, Skips<skip::Plain>>;
#elif CASE == 2  // not a skip policy
using Model = UNet<ResBlock, Widths<8, 16, 32>, Skips<skip::Plain, int>>;
#elif CASE == 3  // a level without filters
using Model = UNet<ResBlock, Widths<8, 0, 32>, Skips<skip::Plain, skip::Plain>>;
#elif CASE == 4  // a block that does not model EncoderBlock
template <int In, int F, class Dev>
struct NotABlock {
  explicit NotABlock(Init) {}
  static constexpr int in_channels = In, out_channels = F;
};
using Model = UNet<NotABlock, Widths<8, 16>, Skips<skip::Plain>>;
#elif CASE == 5  // a Spatial RNN of length 0
using Model = UNet<ResBlock, Widths<8, 16>, Skips<skip::Srnn<SrnnRule::Seed, 0>>>;
#elif CASE == 6  // widths not given as Widths<...>
using Model = UNet<ResBlock, int, Skips<>>;
#endif

int main() {
  Model model;
  return static_cast<int>(model.parameters().size());
}

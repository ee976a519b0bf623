// The demo: generates the library's procedural synthetic nail dataset, trains the light-weight
// CR-UNet on it, evaluates on its held-out test split and writes overlays. No files needed.
#include "demo_program.hpp"

int main(int argc, char** argv) {
  using namespace examples;
  return program_main<DemoArgs>(argc, argv, "demo", kDemoSummary, add_demo_options,
                                demo_body<unetsrnn::Cpu>);
}

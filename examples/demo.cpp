// The demo: generates the library's procedural synthetic nail dataset, trains the light-weight
// CR-UNet on it, evaluates on its held-out test split and writes overlays. No files needed.
#include "demo_program.hpp"

int main(int argc, char** argv) {
  cli::Parser p = examples::demo_parser();
  p.parse(argc, argv);
  return examples::run_on_device("demo", examples::Program::Demo, p,
                                 [&] { return examples::demo_body<unetsrnn::Cpu>(p); });
}

// The demo: generates the library's procedural synthetic nail dataset, trains the light-weight
// CR-UNet on it, evaluates on its held-out test split and writes overlays. No files needed.
#include "demo_program.hpp"

int main(int argc, char** argv) {
  examples::DemoArgs args;
  app::Command command("demo", examples::kDemoSummary);
  examples::add_demo_options(command, args);
  command.parse(argc, argv);
  return examples::run_on_device("demo", args,
                                 [&] { return examples::demo_body<unetsrnn::Cpu>(args); });
}

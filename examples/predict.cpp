// Segments image files with saved weights and writes mask and overlay PNGs at the original size.
#include "predict_program.hpp"

int main(int argc, char** argv) {
  examples::PredictArgs args;
  app::Command command("predict", examples::kPredictSummary);
  examples::add_predict_options(command, args);
  command.parse(argc, argv);
  return examples::run_on_device("predict", args,
                                 [&] { return examples::predict_body<unetsrnn::Cpu>(args); });
}

// Segments image files with saved weights and writes mask and overlay PNGs at the original size.
#include "predict_program.hpp"

int main(int argc, char** argv) {
  cli::Parser p = examples::predict_parser();
  p.parse(argc, argv);
  return examples::run_on_device("predict", examples::Program::Predict, p,
                                 [&] { return examples::predict_body<unetsrnn::Cpu>(p); });
}

// Segments image files with saved weights and writes mask and overlay PNGs at the original size.
#include "predict_program.hpp"

int main(int argc, char** argv) {
  using namespace examples;
  return program_main<PredictArgs>(argc, argv, "predict", kPredictSummary, add_predict_options,
                                   predict_body<unetsrnn::Cpu>);
}

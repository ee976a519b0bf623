// Evaluates saved weights on image/mask folders and prints the metrics as JSON; see --help.
#include "evaluate_program.hpp"

int main(int argc, char** argv) {
  using namespace examples;
  return program_main<EvaluateArgs>(argc, argv, "evaluate", kEvaluateSummary, add_evaluate_options,
                                    evaluate_body<unetsrnn::Cpu>);
}

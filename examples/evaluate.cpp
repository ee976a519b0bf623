// Evaluates saved weights on image/mask folders and prints the metrics as JSON; see --help.
#include "evaluate_program.hpp"

int main(int argc, char** argv) {
  cli::Parser p = examples::evaluate_parser();
  p.parse(argc, argv);
  return examples::run_on_device("evaluate", examples::Program::Evaluate, p,
                                 [&] { return examples::evaluate_body<unetsrnn::Cpu>(p); });
}

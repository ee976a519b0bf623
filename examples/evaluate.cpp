// Evaluates saved weights on image/mask folders and prints the metrics as JSON; see --help.
#include "evaluate_program.hpp"

int main(int argc, char** argv) {
  examples::EvaluateArgs args;
  app::Command command("evaluate", examples::kEvaluateSummary);
  examples::add_evaluate_options(command, args);
  command.parse(argc, argv);
  return examples::run_on_device("evaluate", args,
                                 [&] { return examples::evaluate_body<unetsrnn::Cpu>(args); });
}

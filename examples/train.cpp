// Trains one of the models on image/mask folders; see --help.
#include "train_program.hpp"

int main(int argc, char** argv) {
  examples::TrainArgs args;
  app::Command command("train", examples::kTrainSummary);
  examples::add_train_options(command, args);
  command.parse(argc, argv);
  return examples::run_on_device("train", args,
                                 [&] { return examples::train_body<unetsrnn::Cpu>(args); });
}

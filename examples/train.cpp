// Trains one of the models on image/mask folders; see --help.
#include "train_program.hpp"

int main(int argc, char** argv) {
  using namespace examples;
  return program_main<TrainArgs>(argc, argv, "train", kTrainSummary, add_train_options,
                                 train_body<unetsrnn::Cpu>);
}

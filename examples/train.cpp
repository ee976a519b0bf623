// Trains one of the models on image/mask folders; see --help.
#include "train_program.hpp"

int main(int argc, char** argv) {
  cli::Parser p = examples::train_parser();
  p.parse(argc, argv);
  return examples::run_on_device("train", examples::Program::Train, p,
                                 [&] { return examples::train_body<unetsrnn::Cpu>(p); });
}

// End-to-end tests of the example programs: bad input gives a clear message, a non-zero exit and no
// partial output (test_cli_hardening.cpp has more; test_fault_injection.cpp kills and resumes).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace test_support;

TEST_CASE("--help works and unknown options are rejected") {
  TempDir tmp("help");
  for (const char* program : {"train", "evaluate", "predict", "demo", "chart"}) {
    CAPTURE(program);
    const Run help = run(program, {"--help"}, tmp.path);
    CHECK(help.exit_code == 0);
    CHECK(help.out.find(std::string("usage: ") + program) != std::string::npos);
    const Run bad = run(program, {"--no-such-option"}, tmp.path);
    CHECK(bad.exit_code == 2);
    CHECK(bad.err.find("unknown option '--no-such-option'") != std::string::npos);
    const Run stray = run(program, {"stray"}, tmp.path);
    CHECK(stray.exit_code == 2);
    CHECK(stray.err.find("unexpected argument 'stray'") != std::string::npos);
  }
  expect_failure(run("train", {"--epochs", "many", "--out", "x"}, tmp.path), "needs an integer");
  // The defaults are in the help.
  const Run help = run("train", {"--help"}, tmp.path);
  CHECK(help.out.find("--batch N") != std::string::npos);
  CHECK(help.out.find("images per batch (default: 2)") != std::string::npos);
  CHECK(help.out.find("crunet_res_lw") != std::string::npos);
}

TEST_CASE("every program: a bad command line exits 2 naming the option, before reading anything") {
  TempDir tmp("usage");
  make_dataset(tmp.path / "d", 4);
  // A corrupt image: had the data been read first, it would be the error.
  write_bytes(tmp.path / "d/image/synth_00001.png", "corrupt");
  const std::string d = (tmp.path / "d").string(), out = (tmp.path / "out").string();
  const std::string image = (tmp.path / "d/image/synth_00000.png").string();
  struct Case {
    std::string program;
    std::vector<std::string> args;
    std::string option;  // the message names it
  };
  const std::vector<Case> cases{
      {"train", {"--data", d, "--out", out, "--seed", "-1"}, "--seed"},
      {"train", {"--data", d, "--out", out, "--device", "gpu"}, "--device"},
      {"train", {"--data", d, "--out", out, "--protocol", "keras"}, "--protocol"},
      {"train", {"--data", d, "--out", out, "--mask-mode", "grey"}, "--mask-mode"},
      {"train", {"--data", d, "--out", out, "--val-fraction", "1"}, "--val-fraction"},
      {"train", {"--data", d, "--out", out, "--min-lr", "-0.1"}, "--min-lr"},
      {"train", {"--data", d, "--out", out, "--folds", "3", "--fold", "3"}, "--fold"},
      {"train", {"--data", d}, "--out"},
      {"train", {"--data", d, "--out"}, "--out"},
      {"evaluate", {"--data", d}, "--weights"},
      {"evaluate", {"--data", d, "--weights", "w", "--part", "all"}, "--part"},
      {"evaluate", {"--data", d, "--weights", "w", "--loss", "l2"}, "--loss"},
      {"predict", {"--input", image, "--out", out, "--threshold", "1"}, "--threshold"},
      {"predict", {"--input", image, "--out", out, "--width", "0"}, "--width"},
      {"predict", {"--input", image}, "--out"},
      {"predict", {"--out", out}, "--input"},
      {"demo", {"--out", out, "--images", "5"}, "--images"},
      {"demo", {"--out", out, "--model", "resnet"}, "--model"},
      {"demo", {"--out", out, "--lr", "0"}, "--lr"},
      {"chart", {"--csv", "c.csv", "--out", "c.png", "--y-min", "low"}, "--y-min"},
      {"chart", {"--out", "c.png"}, "--csv"},
  };
  for (const Case& c : cases) {
    const Run r = run(c.program, c.args, tmp.path);
    INFO(c.program, " ", c.option, ": ", r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.rfind(c.program + ": ", 0) == 0);
    CHECK(r.err.find(c.option) != std::string::npos);
    CHECK(r.err.find("(see " + c.program + " --help)") != std::string::npos);
    CHECK(r.err.find("synth_00001") == std::string::npos);
    CHECK(!fs::exists(out));
  }
}

TEST_CASE("train rejects bad datasets by name, with no output written") {
  TempDir tmp("baddata");
  const fs::path out = tmp.path / "out";
  auto train = [&](const fs::path& data, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"--data",   data.string(), "--out",    out.string(),
                                  "--epochs", "1",           "--height", "32",
                                  "--width",  "32",          "--model",  "unet2d_lw"};
    args.insert(args.end(), extra.begin(), extra.end());
    const Run r = run("train", args, tmp.path);
    CHECK(files_in(out).empty());
    return r;
  };

  SUBCASE("corrupt image") {
    make_dataset(tmp.path / "d", 4);
    write_bytes(tmp.path / "d/image/synth_00001.png", "this is not a png");
    expect_failure(train(tmp.path / "d"), "synth_00001.png");
  }
  SUBCASE("image without mask and mask without image") {
    make_dataset(tmp.path / "d", 4);
    fs::remove(tmp.path / "d/mask/synth_00002.png");
    fs::remove(tmp.path / "d/image/synth_00003.png");
    const Run r = train(tmp.path / "d");
    expect_failure(r, "synth_00002.png");
    CHECK(r.err.find("synth_00003.png") != std::string::npos);
  }
  SUBCASE("empty dataset") {
    fs::create_directories(tmp.path / "e/image");
    fs::create_directories(tmp.path / "e/mask");
    expect_failure(train(tmp.path / "e"), "e");
  }
  SUBCASE("missing folder") { expect_failure(train(tmp.path / "nowhere"), "nowhere"); }
  SUBCASE("mask that is not binary-like") {
    make_dataset(tmp.path / "d", 4);
    unetsrnn::Image grey(32, 32, 1, 0.5f);  // all mid grey
    unetsrnn::save_png(tmp.path / "d/mask/synth_00001.png", grey);
    expect_failure(train(tmp.path / "d", {"--mask-mode", "threshold"}), "synth_00001.png");
  }
  SUBCASE("image smaller than 16 px") {
    make_dataset(tmp.path / "d", 4);
    unetsrnn::save_png(tmp.path / "d/image/synth_00001.png", unetsrnn::Image(8, 8, 3, 0.3f));
    unetsrnn::save_png(tmp.path / "d/mask/synth_00001.png", unetsrnn::Image(8, 8, 1, 1.0f));
    expect_failure(train(tmp.path / "d"), "synth_00001.png");
  }
  SUBCASE("size not divisible by 16") {
    make_dataset(tmp.path / "d", 4);
    expect_failure(train(tmp.path / "d", {"--height", "40"}), "16");
  }
  SUBCASE("unknown model and loss") {
    make_dataset(tmp.path / "d", 4);
    expect_failure(train(tmp.path / "d", {"--model", "resnet"}), "unknown model 'resnet'");
    expect_failure(train(tmp.path / "d", {"--loss", "hinge"}), "hinge");
  }
}

TEST_CASE("output folder that cannot be created is reported") {
  TempDir tmp("badout");
  make_dataset(tmp.path / "d", 6);
  write_bytes(tmp.path / "file",
              "x");  // a regular file where a folder is needed (fails as root too)
  const Run r = run("train",
                    {"--data", (tmp.path / "d").string(), "--out", (tmp.path / "file/out").string(),
                     "--epochs", "1", "--height", "32", "--width", "32", "--model", "unet2d_lw"},
                    tmp.path);
  expect_failure(r, (tmp.path / "file/out").string());
}

TEST_CASE("train, evaluate and predict work together; weights errors are clear") {
  TempDir tmp("flow");
  make_dataset(tmp.path / "d", 12);
  const fs::path out = tmp.path / "run";
  const Run t = run("train",
                    {"--data", (tmp.path / "d").string(), "--out", out.string(), "--epochs", "2",
                     "--height", "32", "--width", "32", "--model", "unet2d_lw", "--quiet"},
                    tmp.path);
  INFO("stdout: ", t.out, "\nstderr: ", t.err);
  REQUIRE(t.exit_code == 0);
  CHECK(t.out.find("test Dice") != std::string::npos);
  for (const char* f : {"log.csv", "curve.png", "best.weights", "last.weights", "split.txt",
                        "result.json", "checkpoint.txt"})
    CHECK_MESSAGE(fs::exists(out / f), f);
  CHECK(slurp(out / "log.csv").find("\n2,") != std::string::npos);
  // result.json, parsed back: what experiments/run.py reads from it.
  const nlohmann::json result = nlohmann::json::parse(slurp(out / "result.json"));
  CHECK(result["model"] == "unet2d_lw");
  CHECK(result["epochs"] == 2);
  for (const char* key : {"best_epoch", "best_val_dice", "train_images", "val_images",
                          "test_images", "train_seconds"})
    CHECK_MESSAGE(result.contains(key), key);
  CHECK(result["test"]["per_image"].size() == result["test_images"].get<std::size_t>());
  for (const char* key : {"dice", "dice_at_0.3", "iou"}) {
    CHECK_MESSAGE(result["test"].contains(key), key);
    CHECK_MESSAGE(result["test_best_weights"].contains(key), key);
  }
  // No temporary files are left behind.
  for (const auto& f : files_in(out)) CHECK_MESSAGE(f.find(".tmp.") == std::string::npos, f);

  const Run e =
      run("evaluate",
          {"--weights", (out / "last.weights").string(), "--data", (tmp.path / "d").string(),
           "--split", (out / "split.txt").string(), "--height", "32", "--width", "32"},
          tmp.path);
  INFO("evaluate stderr: ", e.err);
  CHECK(e.exit_code == 0);
  CHECK(e.out.find("\"model\": \"unet2d_lw\"") != std::string::npos);
  // Its JSON (after the dataset's summary line), parsed back: the test part of split.txt, the
  // same numbers as result.json's.
  const nlohmann::json metrics = nlohmann::json::parse(e.out.substr(e.out.find('{')));
  CHECK(metrics["images"] == result["test_images"]);
  CHECK(metrics["dice"] == result["test"]["dice"]);
  REQUIRE(metrics["per_image"].size() == result["test"]["per_image"].size());
  for (std::size_t i = 0; i < metrics["per_image"].size(); ++i)
    CHECK(metrics["per_image"][i]["name"] == result["test"]["per_image"][i]["name"]);

  const fs::path pred = tmp.path / "pred";
  const Run p = run("predict",
                    {"--weights", (out / "last.weights").string(), "--input",
                     (tmp.path / "d/image/synth_00000.png").string(), "--out", pred.string(),
                     "--height", "32", "--width", "32"},
                    tmp.path);
  INFO("predict stderr: ", p.err);
  CHECK(p.exit_code == 0);
  const unetsrnn::Image mask = unetsrnn::load_image(pred / "synth_00000.png_mask.png", 1);
  CHECK(mask.width == 32);
  CHECK(fs::exists(pred / "synth_00000.png_overlay.png"));

  // Bad weights: missing, corrupt, wrong model for the run being resumed.
  const fs::path pred2 = tmp.path / "pred2";
  expect_failure(run("predict",
                     {"--weights", (tmp.path / "none.weights").string(), "--input",
                      (tmp.path / "d/image").string(), "--out", pred2.string()},
                     tmp.path),
                 "none.weights");
  write_bytes(tmp.path / "bad.weights", slurp(out / "last.weights").substr(0, 100));
  expect_failure(run("predict",
                     {"--weights", (tmp.path / "bad.weights").string(), "--input",
                      (tmp.path / "d/image").string(), "--out", pred2.string()},
                     tmp.path),
                 "bad.weights");
  CHECK(files_in(pred2).empty());
  const Run wrong =
      run("train",
          {"--data", (tmp.path / "d").string(), "--out", out.string(), "--epochs", "3", "--height",
           "32", "--width", "32", "--model", "crunet_res_lw", "--resume", "--quiet"},
          tmp.path);
  expect_failure(wrong, "unet2d_lw");
}

TEST_CASE(
    "train --folds K --fold F tests fold F of each dataset; --schedule cosine anneals per epoch") {
  TempDir tmp("folds");
  make_dataset(tmp.path / "a", 10);
  make_dataset(tmp.path / "b", 6);
  const fs::path out = tmp.path / "run";
  auto args = [&](std::vector<std::string> extra) {
    std::vector<std::string> a{"--data",   (tmp.path / "a").string(),
                               "--data",   (tmp.path / "b").string(),
                               "--out",    out.string(),
                               "--height", "32",
                               "--width",  "32",
                               "--model",  "unet2d_lw",
                               "--quiet",  "--lr",
                               "0.002",    "--min-lr",
                               "0.0004"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  expect_failure(run("train", args({"--folds", "1"}), tmp.path), "--folds");
  expect_failure(run("train", args({"--folds", "5", "--fold", "5"}), tmp.path), "--fold");
  expect_failure(run("train", args({"--schedule", "step"}), tmp.path), "--schedule");
  CHECK(files_in(out).empty());

  const Run r =
      run("train", args({"--folds", "2", "--fold", "1", "--epochs", "3", "--schedule", "cosine"}),
          tmp.path);
  INFO("stdout: ", r.out, "\nstderr: ", r.err);
  REQUIRE(r.exit_code == 0);
  // Fold 1 of 2: 5 of the 10 images of a and 3 of the 6 of b are the test part.
  const std::string split = slurp(out / "split.txt");
  std::size_t test_a = 0, test_b = 0;
  for (std::size_t at = split.find("\ntest\t"); at != std::string::npos;
       at = split.find("\ntest\t", at + 1))
    (split.compare(at + 6, 2, "a\t") == 0 ? test_a : test_b) += 1;
  CHECK(test_a == 5);
  CHECK(test_b == 3);
  // Cosine from 0.002 to 0.0004 over 3 epochs: epoch e starts at the rate of step e - 1.
  const std::string log = slurp(out / "log.csv");
  CHECK(log.find("\n1,") != std::string::npos);
  const double pi = 3.14159265358979323846;
  for (int e = 1; e <= 3; ++e) {
    const double lr = 0.0004 + 0.5 * (0.002 - 0.0004) * (1 + std::cos(pi * (e - 1) / 3));
    const std::size_t row = log.find("\n" + std::to_string(e) + ",");
    REQUIRE(row != std::string::npos);
    std::string line = log.substr(row + 1, log.find('\n', row + 1) - row - 1);
    // Columns: epoch,train_loss,train_dice,val_loss,val_dice,lr,seconds
    std::vector<std::string> cells;
    for (std::size_t s = 0, c; s <= line.size(); s = c + 1) {
      c = line.find(',', s);
      if (c == std::string::npos) c = line.size();
      cells.push_back(line.substr(s, c - s));
    }
    REQUIRE(cells.size() == 7);
    CHECK(std::stod(cells[5]) == doctest::Approx(lr).epsilon(1e-6));
  }
}

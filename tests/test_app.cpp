// The engine's observer interface (train/observer.hpp) and the example programs' application side
// (examples/app): what a TrainObserver is told and when, the run report's files (log.csv restored
// on resume, result.json parsed back with nlohmann-json), the JSON and command-line helpers, the
// chart renderer. The programs' command lines end to end are in test_cli*.cpp.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "app/cli.hpp"
#include "app/json.hpp"
#include "app/plot.hpp"
#include "app/run_report.hpp"
#include "app/training_log.hpp"
#include "test_support.hpp"
#include "unetsrnn/data/synthetic.hpp"
#include "unetsrnn/train/trainer.hpp"

using namespace unetsrnn;
using test_support::contains;
using test_support::error_of;
using test_support::slurp;
using test_support::TempDir;
namespace fs = std::filesystem;

namespace {

// 10 synthetic 32 x 32 pairs: 6 train, 2 val, 2 test.
struct TinyRun {
  std::vector<Sample> samples = generate_synthetic(10, 32, 32, 5);
  Split split = split_indices(samples.size(), 0.2, 3, 0.25);
  TrainOptions options(const fs::path& out, int epochs, bool resume = false) const {
    TrainOptions o;
    o.model = "unet2d_lw";
    o.epochs = epochs;
    o.batch = 4;  // 6 training images: batches of 4 and 2
    o.seed = 7;
    o.adam.lr = 1e-2;
    o.out_dir = out;
    o.resume = resume;
    return o;
  }
  // A run into `out` (resumed from its checkpoint when `resume`) told to `observers`.
  TrainResult train(const fs::path& out, int epochs, bool resume,
                    std::initializer_list<TrainObserver*> observers) const {
    auto model = make_model<Cpu>("unet2d_lw");
    Trainer<Cpu> trainer(options(out, epochs, resume), *model, samples, split);
    for (TrainObserver* o : observers) trainer.add_observer(*o);
    return trainer.run();
  }
};

// Records what it is told, in order.
struct Recorder : TrainObserver {
  std::vector<std::string> events;
  int first_epoch = 0;
  std::vector<TrainStep> steps;
  std::vector<EpochRecord> epochs;
  std::optional<TrainResult> result;
  void on_start(const TrainStart& s) override {
    first_epoch = s.first_epoch;
    events.push_back(str_cat("start ", s.first_epoch));
  }
  void on_batch(const TrainStep& s) override {
    steps.push_back(s);
    events.push_back(str_cat("batch ", s.epoch, ".", s.batch));
  }
  void on_epoch_end(const EpochRecord& r) override {
    epochs.push_back(r);
    events.push_back(str_cat("epoch ", r.epoch));
  }
  void on_checkpoint(int epoch, const CheckpointFiles& files) override {
    CHECK(fs::is_directory(files.folder()));
    events.push_back(str_cat("checkpoint ", epoch));
  }
  void on_finish(const TrainResult& r) override {
    result = r;
    events.push_back("finish");
  }
  std::vector<std::string> warnings;
  void on_warning(const std::string& message) override { warnings.push_back(message); }
};

bool same_record(const EpochRecord& a, const EpochRecord& b) {
  auto same = [](double x, double y) { return x == y || (std::isnan(x) && std::isnan(y)); };
  return a.epoch == b.epoch && same(a.train_loss, b.train_loss) &&
         same(a.train_dice, b.train_dice) && same(a.val_loss, b.val_loss) &&
         same(a.val_dice, b.val_dice) && same(a.lr, b.lr) && same(a.seconds, b.seconds);
}

// log.csv without its seconds column (the one value a rerun does not repeat).
std::vector<std::string> log_rows_without_seconds(const std::string& csv) {
  std::vector<std::string> rows;
  for (const auto& line : train_detail::split_lines(csv))
    rows.emplace_back(line.substr(0, line.rfind(',')));
  return rows;
}

}  // namespace

TEST_CASE("a TrainObserver sees every step and epoch in order, each checkpoint, and the result") {
  TempDir tmp("observer");
  TinyRun data;
  const fs::path out = tmp.path / "run";
  Recorder seen;
  const TrainResult r = data.train(out, 3, false, {&seen});

  std::vector<std::string> expected{"start 1"};
  for (int e = 1; e <= 3; ++e) {
    for (int b = 0; b < 2; ++b) expected.push_back(str_cat("batch ", e, ".", b));
    expected.push_back(str_cat("epoch ", e));
    expected.push_back(str_cat("checkpoint ", e));
  }
  expected.push_back("finish");
  CHECK(seen.events == expected);

  // Steps count on over the run; each tells how far its epoch is.
  REQUIRE(seen.steps.size() == 6);
  for (std::size_t i = 0; i < seen.steps.size(); ++i) {
    const TrainStep& s = seen.steps[i];
    CHECK(s.step == i + 1);
    CHECK(s.epoch_images == data.split.train.size());
    CHECK(s.epoch_images_done == (s.batch == 0 ? 4u : 6u));
    CHECK(std::isfinite(s.loss));
    CHECK(s.epoch_seconds >= 0.0);
  }
  CHECK(seen.steps[1].epoch_loss ==
        doctest::Approx((4 * seen.steps[0].loss + 2 * seen.steps[1].loss) / 6));

  // The result run() returns is the one on_finish saw, its epochs those on_epoch_end saw.
  REQUIRE(seen.result);
  CHECK(r.model == "unet2d_lw");
  CHECK(r.first_epoch == 1);
  REQUIRE(r.epochs.size() == 3);
  REQUIRE(seen.epochs.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(r.epochs[i].epoch == static_cast<int>(i) + 1);
    CHECK(same_record(r.epochs[i], seen.epochs[i]));
    CHECK(same_record(r.epochs[i], seen.result->epochs[i]));
    CHECK(std::isfinite(r.epochs[i].val_dice));
  }
  CHECK(r.best_epoch >= 1);
  CHECK(r.best_epoch <= 3);
  CHECK(r.best_dice == r.epochs[static_cast<std::size_t>(r.best_epoch) - 1].val_dice);
  CHECK(r.test.images == data.split.test.size());
  CHECK(r.test.per_image_dice.size() == data.split.test.size());
  CHECK(r.test.dice == seen.result->test.dice);
  REQUIRE(r.test_best);
  CHECK(r.test_best->images == data.split.test.size());

  // The engine writes what a resume needs, and no report of its own.
  for (const char* f : {"checkpoint.txt", "split.txt", "best.weights", "last.weights"})
    CHECK_MESSAGE(fs::exists(out / f), f);
  for (const char* f : {"log.csv", "curve.png", "result.json"})
    CHECK_MESSAGE(!fs::exists(out / f), f);
}

TEST_CASE("RunReport: a resumed run restores log.csv and reports the whole run exactly") {
  TempDir tmp("report");
  TinyRun data;
  // Uninterrupted: 3 epochs.
  const fs::path straight = tmp.path / "straight";
  app::RunReport straight_report(false);
  data.train(straight, 3, false, {&straight_report});
  // 2 epochs, then resumed to 3.
  const fs::path cut = tmp.path / "cut";
  app::RunReport first_report(false);
  data.train(cut, 2, false, {&first_report});
  CHECK(first_report.history().size() == 2);
  const std::string log_after_2 = slurp(cut / "log.csv");
  app::RunReport report(false);
  Recorder seen;
  const TrainResult r = data.train(cut, 3, true, {&report, &seen});

  CHECK(seen.first_epoch == 3);
  CHECK(r.first_epoch == 3);
  REQUIRE(r.epochs.size() == 1);
  CHECK(r.epochs[0].epoch == 3);
  REQUIRE(report.history().size() == 3);
  // The first two rows come back from log.csv unchanged, byte for byte.
  const std::string log = slurp(cut / "log.csv");
  CHECK(log.substr(0, log_after_2.size()) == log_after_2);
  CHECK(same_record(report.history()[2], r.epochs[0]));
  // And the resumed run is the uninterrupted one: every number but the seconds.
  CHECK(log_rows_without_seconds(log) == log_rows_without_seconds(slurp(straight / "log.csv")));
  CHECK(slurp(cut / "last.weights") == slurp(straight / "last.weights"));
  CHECK(fs::file_size(cut / "curve.png") > 1000);

  // result.json covers the whole run: its seconds are all three epochs'.
  const app::Json json = app::Json::parse(slurp(cut / "result.json"));
  double seconds = 0.0;
  for (const auto& e : report.history()) seconds += e.seconds;
  CHECK(json["train_seconds"].get<double>() == doctest::Approx(seconds).epsilon(1e-5));
  const app::Json again = app::Json::parse(slurp(straight / "result.json"));
  CHECK(json["best_epoch"] == again["best_epoch"]);
  CHECK(json["best_val_dice"] == again["best_val_dice"]);
  CHECK(json["test"] == again["test"]);
  CHECK(json["test_best_weights"] == again["test_best_weights"]);
}

TEST_CASE("result.json: the keys experiments/run.py reads, values as the trainer returned them") {
  TempDir tmp("result");
  TinyRun data;
  const fs::path out = tmp.path / "run";
  app::RunReport report(false);
  const TrainResult r = data.train(out, 2, false, {&report});

  const app::Json j = app::Json::parse(slurp(out / "result.json"));
  std::vector<std::string> keys;
  for (const auto& [key, value] : j.items()) keys.push_back(key);
  CHECK(keys == std::vector<std::string>{"model", "loss", "epochs", "batch", "lr", "seed",
                                         "train_images", "val_images", "test_images",
                                         "train_seconds", "best_epoch", "best_val_dice",
                                         "test_threshold", "test", "test_best_weights"});
  CHECK(j["model"] == "unet2d_lw");
  CHECK(j["loss"] == "bce");
  CHECK(j["epochs"] == 2);
  CHECK(j["batch"] == 4);
  CHECK(j["lr"].get<double>() == 1e-2);
  CHECK(j["seed"] == 7);
  CHECK(j["train_images"] == data.split.train.size());
  CHECK(j["val_images"] == data.split.val.size());
  CHECK(j["test_images"] == data.split.test.size());
  CHECK(j["best_epoch"] == r.best_epoch);
  CHECK(j["best_val_dice"].get<double>() == doctest::Approx(r.best_dice).epsilon(1e-5));
  CHECK(j["test_threshold"].get<double>() == 0.5);
  for (const char* part : {"test", "test_best_weights"}) {
    CAPTURE(part);
    const app::Json& m = j[part];
    const EvalResult& e = std::string(part) == "test" ? r.test : *r.test_best;
    std::vector<std::string> metric_keys;
    for (const auto& [key, value] : m.items()) metric_keys.push_back(key);
    CHECK(metric_keys == std::vector<std::string>{"images", "loss", "dice", "dice_at_0.3", "iou",
                                                  "precision", "recall", "mean_image_dice",
                                                  "per_image"});
    CHECK(m["images"] == e.images);
    CHECK(m["dice"].get<double>() == doctest::Approx(e.dice).epsilon(1e-5));
    CHECK(m["dice_at_0.3"].get<double>() == doctest::Approx(e.dice_at_03).epsilon(1e-5));
    REQUIRE(m["per_image"].size() == data.split.test.size());
    for (std::size_t i = 0; i < data.split.test.size(); ++i) {
      const Sample& s = data.samples[data.split.test[i]];
      CHECK(m["per_image"][i]["dataset"] == s.dataset);
      CHECK(m["per_image"][i]["name"] == s.name);
      CHECK(m["per_image"][i]["dice"].get<double>() ==
            doctest::Approx(e.per_image_dice[i]).epsilon(1e-5));
    }
  }
  // log.csv: the header and one row per epoch, as RunReport::history() holds them.
  const auto rows = app::read_log_csv(out / "log.csv", 2);
  REQUIRE(rows.size() == 2);
  CHECK(rows[1].train_loss == doctest::Approx(r.epochs[1].train_loss).epsilon(1e-7));
}

TEST_CASE("an observer's checkpoint files are part of the checkpoint; its errors stop the run") {
  TempDir tmp("observer_fail");
  TinyRun data;

  // Writes notes.txt with every checkpoint, and fails while the first one is written: the fresh
  // run has committed nothing, so it leaves nothing (notes.txt included).
  struct FailsInCheckpoint : TrainObserver {
    void on_checkpoint(int, const CheckpointFiles& files) override {
      files.write("notes.txt",
                  [](const fs::path& path) { write_file_atomic(path, std::string("notes")); });
      CHECK(fs::exists(files.folder() / "notes.txt"));
      throw std::runtime_error("observer failed");
    }
  } fails;
  const fs::path out = tmp.path / "run";
  CHECK(error_of([&] { data.train(out, 2, false, {&fails}); }) == "observer failed");
  CHECK(!fs::exists(out));

  // A resume whose log.csv is damaged fails before training, naming the file; nothing changes.
  const fs::path run = tmp.path / "kept";
  app::RunReport first(false);
  data.train(run, 1, false, {&first});
  test_support::write_bytes(run / "log.csv", "not a log\n");
  const std::string checkpoint = slurp(run / "checkpoint.txt");
  app::RunReport report(false);
  const std::string message = error_of([&] { data.train(run, 2, true, {&report}); });
  CHECK(contains(message, (run / "log.csv").string()));
  CHECK(contains(message, "is not a training log"));
  CHECK(slurp(run / "checkpoint.txt") == checkpoint);
}

TEST_CASE("a resume that cannot be checked (checkpoint v1) is a warning to the observers") {
  TempDir tmp("warning");
  TinyRun data;
  const fs::path out = tmp.path / "run";
  app::RunReport first(false);
  data.train(out, 1, false, {&first});
  // The same checkpoint as version 1 wrote it: no fingerprint.
  CheckpointState state = parse_checkpoint(slurp(out / "checkpoint.txt"), "checkpoint.txt");
  state.fingerprint.reset();
  std::string v1 = format_checkpoint(state);
  v1.replace(v1.find("v2"), 2, "v1");
  test_support::write_bytes(out / "checkpoint.txt", v1.substr(0, v1.find("fingerprint")));
  Recorder seen;
  const TrainResult r = data.train(out, 2, true, {&seen});
  CHECK(r.first_epoch == 2);
  REQUIRE(seen.warnings.size() == 1);
  CHECK(contains(seen.warnings[0], "(checkpoint v1) has no fingerprint"));
  CHECK(seen.events.front() == "start 2");
}

TEST_CASE("JSON: numbers to 6 significant digits, null for non-finite, metrics in order") {
  CHECK(app::json_number(0.123456789).dump() == "0.123457");
  CHECK(app::json_number(1e-3).dump() == "0.001");
  CHECK(app::json_number(2.0).dump() == "2.0");
  CHECK(app::json_number(std::nan("")).is_null());
  CHECK(app::json_number(-INFINITY).is_null());
  const std::vector<Sample> samples = generate_synthetic(3, 16, 16, 1);
  EvalResult r;
  r.images = 2;
  r.loss = 0.25;
  r.dice = 0.5;
  r.per_image_dice = {0.75, std::nan("")};
  const app::Json j = app::metrics_json(r, samples, {2, 0}, false);
  const app::Json back = app::Json::parse(app::json_text(j));
  CHECK(back == j);
  CHECK(back["per_image"][0]["name"] == samples[2].name);
  CHECK(!back["per_image"][0].contains("dataset"));
  CHECK(back["per_image"][1]["dice"].is_null());
  CHECK(app::json_text(j).back() == '\n');
}

TEST_CASE("command-line validators say what is wrong with a value") {
  auto check = [](CLI::Validator v, std::string text) { return v(text); };
  CHECK(check(app::integer_in(1), "3").empty());
  CHECK(check(app::integer_in(1), "0") == "must be an integer >= 1, got '0'");
  CHECK(check(app::integer_in(0, 4), "5") == "must be an integer in 0..4, got '5'");
  CHECK(check(app::integer_in(1), "2x") == "needs an integer, got '2x'");
  CHECK(check(app::integer_in(1), "") == "needs an integer, got ''");
  CHECK(check(app::number_in(0.0, 1.0, true), "1").empty());
  CHECK(check(app::number_in(0.0, 1.0, true), "0") == "must be a finite number in (0, 1], got '0'");
  CHECK(check(app::number_in(0.0), "nan") == "must be a finite number >= 0, got 'nan'");
  CHECK(check(app::number_in(0.0), "inf") == "must be a finite number >= 0, got 'inf'");
  CHECK(check(app::number_in(0.0), "1e-3x") == "needs a number, got '1e-3x'");
  CHECK(check(app::one_of({"a", "b", "c"}), "b").empty());
  CHECK(check(app::one_of({"a", "b", "c"}), "d") == "must be a, b or c, got 'd'");
  CHECK(contains(check(app::parsed_by(parse_loss), "hinge"), "hinge"));
  CHECK(check(app::parsed_by(parse_loss), "bce").empty());

  // Parsing: values stored, a repeated single-value option takes the last, --data each.
  app::Command c("prog", "A test.");
  int n = 1;
  std::optional<double> rate;
  std::vector<std::string> dirs;
  bool flag = false;
  c.option("--n", n, "N", "a count")->check(app::integer_in(1));
  c.option("--rate", rate, "R", "a rate", "automatic")->check(app::number_in(0.0));
  c.repeated("--data", dirs, "DIR", "folders");
  c.flag("--flag", flag, "a flag");
  std::vector<std::string> args{"prog", "--n",    "2", "--n=5", "--data",
                                "a",    "--data", "b", "--flag"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  c.parse(static_cast<int>(argv.size()), argv.data());
  CHECK(n == 5);
  CHECK(!rate);
  CHECK(dirs == std::vector<std::string>{"a", "b"});
  CHECK(flag);
  CHECK(c.given("--n"));
  CHECK(!c.given("--rate"));
  const std::string help = c.cli().help();
  CHECK(contains(help, "usage: prog"));
  CHECK(contains(help, "--n N"));
  CHECK(contains(help, "a count (default: 1)"));
  CHECK(contains(help, "a rate (default: automatic)"));
}

TEST_CASE("the library includes neither CLI11 nor nlohmann-json (the examples' dependencies)") {
  std::size_t headers = 0;
  for (const auto& e :
       fs::recursive_directory_iterator(fs::path(UNETSRNN_SOURCE_DIR) / "include" / "unetsrnn")) {
    if (!e.is_regular_file()) continue;
    ++headers;
    const std::string text = slurp(e.path());
    CHECK_MESSAGE(!contains(text, "#include <CLI/"), e.path().string());
    CHECK_MESSAGE(!contains(text, "#include <nlohmann/"), e.path().string());
  }
  CHECK(headers > 40);
}

TEST_CASE("plot: writes a readable, non-blank chart") {
  TempDir dir("plot");
  using app::PlotOptions;
  using app::PlotSeries;
  using app::render_line_chart;
  PlotSeries loss{"train loss", {0.9, 0.6, 0.45, 0.4, 0.38}, {}, {}};
  PlotSeries val{"val loss", {1.0, 0.7, std::nan(""), 0.5, 0.49}, {}, {}};
  PlotSeries dice{"val Dice", {0.2, 0.5, 0.7, 0.8, 0.85}, {}, Rgb{0.1f, 0.7f, 0.1f}};
  PlotOptions o;
  o.width = 480;
  o.height = 320;
  o.title = "training";
  o.y_label = "loss / dice";
  app::save_line_chart(dir.path / "chart.png", {loss, val, dice}, o);
  const Image img = load_image(dir.path / "chart.png");
  CHECK(img.width == 480);
  CHECK(img.height == 320);
  std::size_t non_white = 0;
  std::set<std::array<int, 3>> colours;
  for (std::size_t p = 0; p < img.pixels(); ++p) {
    const std::array<int, 3> c = {static_cast<int>(img.data[p * 3] * 255 + 0.5f),
                                  static_cast<int>(img.data[p * 3 + 1] * 255 + 0.5f),
                                  static_cast<int>(img.data[p * 3 + 2] * 255 + 0.5f)};
    non_white += c != std::array<int, 3>{255, 255, 255};
    colours.insert(c);
  }
  CHECK(non_white > 2000);
  CHECK(non_white < img.pixels() / 2);
  CHECK(colours.count({26, 179, 26}) == 1);  // the explicit series colour is drawn
  CHECK(colours.size() >= 5);

  // Degenerate input still renders (constant series, empty series).
  CHECK_NOTHROW(render_line_chart({{"flat", {1, 1, 1}, {}, {}}}));
  CHECK_NOTHROW(render_line_chart({}));
  CHECK_THROWS_AS(render_line_chart({{"bad", {1, 2}, {1}, {}}}), std::invalid_argument);
}

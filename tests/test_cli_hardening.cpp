// End-to-end tests of issue 10 (hardening), one TEST_CASE per numbered item: bounded memory on
// large images, one writer per run folder, resumes that check their run, predict over a folder,
// non-finite weights, errors that name the file and the reason, no leftovers, options checked
// before any data is read.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bit>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <unetsrnn/io/crc32.hpp>
#include <unetsrnn/io/run_folder.hpp>
#include <unetsrnn/io/weights.hpp>
#include <vector>

#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace test_support;

namespace {

std::string be32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}
std::string le32(std::uint32_t v) {
  return {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
          static_cast<char>(v >> 24)};
}
std::string png_chunk(const std::string& type, const std::string& data) {
  const std::string body = type + data;
  return be32(static_cast<std::uint32_t>(data.size())) + body + be32(unetsrnn::crc32(body));
}

// An 8-bit PNG whose pixel rows (filter byte 0 each) are stored uncompressed: quick to write
// and to decode, whatever the size. pixel(y, x, k) gives the samples.
template <class Pixel>
std::string stored_png(int width, int height, int channels, Pixel&& pixel) {
  std::string raw;
  raw.reserve(static_cast<std::size_t>(height) * (width * channels + 1));
  for (int y = 0; y < height; ++y) {
    raw += '\0';
    for (int x = 0; x < width; ++x)
      for (int k = 0; k < channels; ++k) raw += static_cast<char>(pixel(y, x, k));
  }
  std::string zlib = "\x78\x01";
  std::uint32_t a = 1, b = 0;  // Adler-32
  for (unsigned char ch : raw) {
    a = (a + ch) % 65521;
    b = (b + a) % 65521;
  }
  for (std::size_t pos = 0; pos < raw.size() || pos == 0; pos += 65535) {
    const std::size_t n = std::min<std::size_t>(65535, raw.size() - pos);
    const bool last = pos + n >= raw.size();
    zlib += static_cast<char>(last ? 1 : 0);
    zlib += {static_cast<char>(n & 0xFF), static_cast<char>(n >> 8), static_cast<char>(~n & 0xFF),
             static_cast<char>((~n >> 8) & 0xFF)};
    zlib.append(raw, pos, n);
    if (last) break;
  }
  zlib += be32((b << 16) | a);
  const char colour_type = channels == 1 ? 0 : 2;
  const std::string ihdr = be32(static_cast<std::uint32_t>(width)) +
                           be32(static_cast<std::uint32_t>(height)) +
                           std::string{'\x08', colour_type, '\0', '\0', '\0'};
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", zlib) +
         png_chunk("IEND", "");
}

// A PNG header claiming width x height with almost no data behind it: the "decompression bomb"
// that a loader must refuse from its header.
std::string header_only_png(std::uint32_t width, std::uint32_t height) {
  const std::string ihdr = be32(width) + be32(height) + std::string{'\x08', '\x02', 0, 0, 0};
  const std::string zlib("\x78\x01\x01\x00\x00\xff\xff\x00\x00\x00\x01", 11);
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) + png_chunk("IDAT", zlib) +
         png_chunk("IEND", "");
}

// `jpeg` with an APP1 Exif segment (big-endian TIFF, one IFD entry: orientation) after its SOI.
std::string with_exif_orientation(const std::string& jpeg, int orientation) {
  std::string tiff = std::string("MM\0\x2a", 4) + be32(8);  // header, IFD at 8
  tiff += std::string("\0\x01", 2);                         // one entry
  tiff += std::string("\x01\x12\0\x03", 4) + be32(1);       // orientation, SHORT, count 1
  tiff += std::string{'\0', static_cast<char>(orientation), '\0', '\0'};
  tiff += be32(0);  // no next IFD
  const std::string payload = std::string("Exif\0\0", 6) + tiff;
  const std::size_t length = payload.size() + 2;
  const std::string app1 = std::string("\xff\xe1", 2) +
                           std::string{static_cast<char>(length >> 8), static_cast<char>(length)} +
                           payload;
  return jpeg.substr(0, 2) + app1 + jpeg.substr(2);
}

// Offset of the first tensor's values, and of its first dimension, in a weights file.
struct FirstTensor {
  std::size_t dims = 0, values = 0;
};
FirstTensor first_tensor(const std::string& w) {
  auto u32 = [&](std::size_t at) {
    return static_cast<std::uint32_t>(static_cast<unsigned char>(w[at])) |
           static_cast<std::uint32_t>(static_cast<unsigned char>(w[at + 1])) << 8 |
           static_cast<std::uint32_t>(static_cast<unsigned char>(w[at + 2])) << 16 |
           static_cast<std::uint32_t>(static_cast<unsigned char>(w[at + 3])) << 24;
  };
  std::size_t pos = 12;
  pos += 4 + u32(pos);  // model name
  pos += 4;             // tensor count
  pos += 4 + u32(pos);  // tensor name
  pos += 4;             // rank
  return {pos, pos + 16};
}
// The weights file with its first value replaced and the checksum made valid again.
std::string with_first_value(std::string w, float value) {
  const std::size_t at = first_tensor(w).values;
  const std::string bits = le32(std::bit_cast<std::uint32_t>(value));
  w.replace(at, 4, bits);
  w.replace(w.size() - 4, 4, le32(unetsrnn::crc32(w.data(), w.size() - 4)));
  return w;
}

std::vector<std::string> train_args(const fs::path& data, const fs::path& out,
                                    std::vector<std::string> extra = {}) {
  std::vector<std::string> a{"--data",  data.string(), "--out",  out.string(), "--epochs",
                             "2",       "--height",    "32",     "--width",    "32",
                             "--model", "unet2d_lw",   "--quiet"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// A trained run in tmp/run on tmp/d (12 pairs of 32 x 32); returns its last.weights.
fs::path trained_run(const TempDir& tmp) {
  make_dataset(tmp.path / "d", 12);
  const Run t = run("train", train_args(tmp.path / "d", tmp.path / "run"), tmp.path);
  INFO("train stderr: ", t.err);
  REQUIRE(t.exit_code == 0);
  return tmp.path / "run" / "last.weights";
}

// One trained run shared by the test cases (training is the slow part): shared().path / "d" and
// "run". A case that changes the run works on copy_run's copy (resumed with --data on shared d).
const TempDir& shared() {
  static const TempDir dir("shared");
  static const fs::path weights = trained_run(dir);
  return dir;
}
fs::path shared_weights() { return shared().path / "run" / "last.weights"; }
fs::path shared_data() { return shared().path / "d"; }
fs::path copy_run(const TempDir& tmp) {
  fs::copy(shared().path / "run", tmp.path / "run", fs::copy_options::recursive);
  return tmp.path / "run";
}

}  // namespace

TEST_CASE(
    "1. memory is bounded on large images: a pixel limit from the header, then bounded "
    "decoding") {
  TempDir tmp("big");
  const fs::path weights = shared_weights();

  // The bounds below are on top of what each program holds before it reads anything (its shared
  // libraries: a CUDA build maps cuBLAS, an MPI build Open MPI), measured here as a --help run.
  const double predict_base = 1024.0 * run("predict", {"--help"}, tmp.path).max_rss_kb;
  const double evaluate_base = 1024.0 * run("evaluate", {"--help"}, tmp.path).max_rss_kb;
  MESSAGE("program baselines: predict ", predict_base / 1048576, " MiB, evaluate ",
          evaluate_base / 1048576, " MiB");

  // A 16000 x 16000 header with no pixels behind it: refused from the header, at once.
  write_bytes(tmp.path / "bomb.png", header_only_png(16000, 16000));
  const Run bomb = run("predict",
                       {"--weights", weights.string(), "--input", (tmp.path / "bomb.png").string(),
                        "--out", (tmp.path / "p_bomb").string()},
                       tmp.path);
  expect_failure(bomb, "bomb.png");
  CHECK(bomb.err.find("256 megapixels") != std::string::npos);
  CHECK(bomb.err.find("limit of 50 megapixels") != std::string::npos);
  CHECK(bomb.max_rss_kb * 1024.0 < predict_base + 64.0 * 1024 * 1024);
  CHECK(!fs::exists(tmp.path / "p_bomb"));

  // A real 4000 x 3000 photo-sized image (12 megapixels).
  constexpr int W = 4000, H = 3000;
  constexpr double pixels = double(W) * H;
  write_bytes(tmp.path / "big.png", stored_png(W, H, 3, [](int y, int x, int k) {
                return k == 0 ? x * 255 / W : k == 1 ? y * 255 / H : 128;
              }));
  // The limit can be lowered and raised.
  const Run refused =
      run("predict",
          {"--weights", weights.string(), "--input", (tmp.path / "big.png").string(), "--out",
           (tmp.path / "p_small").string(), "--height", "32", "--width", "32", "--max-megapixels",
           "10"},
          tmp.path);
  expect_failure(refused, "limit of 10 megapixels");
  const Run big = run(
      "predict",
      {"--weights", weights.string(), "--input", (tmp.path / "big.png").string(), "--out",
       (tmp.path / "p_big").string(), "--height", "32", "--width", "32", "--max-megapixels", "13"},
      tmp.path);
  INFO("predict stderr: ", big.err, " peak ", big.max_rss_kb / 1024, " MiB");
  REQUIRE(big.exit_code == 0);
  MESSAGE("predict on 12 MP: peak RSS ", big.max_rss_kb / 1024, " MiB, ", big.seconds, " s");
  // README: predict needs about 13 bytes per pixel of its largest image, plus the program.
  CHECK(big.max_rss_kb * 1024.0 < predict_base + 64.0 * 1024 * 1024 + 16.0 * pixels);
  const unetsrnn::Image mask = unetsrnn::load_image(tmp.path / "p_big/big.png_mask.png", 1);
  CHECK(mask.width == W);
  CHECK(mask.height == H);

  // The same image in a dataset (with its mask): decoded at 6 bytes per pixel, then resized.
  fs::create_directories(tmp.path / "bigdata/image");
  fs::create_directories(tmp.path / "bigdata/mask");
  fs::rename(tmp.path / "big.png", tmp.path / "bigdata/image/big.png");
  write_bytes(tmp.path / "bigdata/mask/big.png", stored_png(W, H, 1, [](int y, int x, int) {
                return (x > W / 3 && x < W / 2 && y > H / 3 && y < H / 2) ? 255 : 0;
              }));
  const Run eval = run("evaluate",
                       {"--weights", weights.string(), "--data", (tmp.path / "bigdata").string(),
                        "--height", "32", "--width", "32", "--mask-mode", "threshold"},
                       tmp.path);
  INFO("evaluate stderr: ", eval.err);
  REQUIRE(eval.exit_code == 0);
  MESSAGE("evaluate on a 12 MP pair: peak RSS ", eval.max_rss_kb / 1024, " MiB, ", eval.seconds,
          " s");
  CHECK(eval.max_rss_kb * 1024.0 < evaluate_base + 64.0 * 1024 * 1024 + 8.0 * pixels);
}

TEST_CASE("2. one writer per run folder: a second train, demo or predict fails at once") {
  TempDir tmp("lock");
  const fs::path weights = shared_weights(), data = shared_data();
  const fs::path out = tmp.path / "busy";

  // A real second training into the folder of a running one.
  const pid_t first = spawn("train", train_args(data, out, {"--epochs", "1000"}),
                            tmp.path / "first.out", tmp.path / "first.err");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline && !fs::exists(out / "checkpoint.txt"))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(fs::exists(out / "checkpoint.txt"));
  const std::string split_before = slurp(out / "split.txt");
  const Run second = run("train", train_args(data, out, {"--epochs", "3"}), tmp.path);
  kill(first, SIGKILL);
  waitpid(first, nullptr, 0);
  expect_failure(second, "'" + out.string() + "' is in use by process " + std::to_string(first));
  CHECK(second.seconds < 20);  // at once: before loading data or training
  CHECK(slurp(out / "split.txt") == split_before);

  // Each program refuses a folder another process holds (this test process holds it here).
  const fs::path held = tmp.path / "held";
  {
    const unetsrnn::RunFolder lock = unetsrnn::RunFolder::open(held);
    const std::string needle = "is in use by process " + std::to_string(getpid());
    expect_failure(run("train", train_args(data, held), tmp.path), needle);
    expect_failure(run("demo",
                       {"--out", held.string(), "--images", "10", "--height", "32", "--width", "32",
                        "--epochs", "1", "--quiet"},
                       tmp.path),
                   needle);
    expect_failure(run("predict",
                       {"--weights", weights.string(), "--input", (data / "image").string(),
                        "--out", held.string(), "--height", "32", "--width", "32"},
                       tmp.path),
                   needle);
    CHECK(files_in(held) == std::vector<std::string>{".unetsrnn-lock"});
  }
  CHECK(!fs::exists(held));  // created by the lock, empty: removed again
}

TEST_CASE("3. --resume checks that it resumes the same run") {
  TempDir tmp("resume");
  trained_run(tmp);
  const fs::path out = tmp.path / "run";
  const std::string split_before = slurp(out / "split.txt");
  make_dataset(tmp.path / "other", 14);

  const Run other_data =
      run("train", train_args(tmp.path / "other", out, {"--epochs", "3", "--resume"}), tmp.path);
  expect_failure(other_data, "other data or options");
  CHECK(other_data.err.find("data.1.folder") != std::string::npos);
  CHECK(slurp(out / "split.txt") == split_before);  // the test set stays what it was

  expect_failure(
      run("train", train_args(tmp.path / "d", out, {"--epochs", "3", "--resume", "--lr", "0.01"}),
          tmp.path),
      "lr: '0.001' in the checkpoint, '0.01' now");

  // A data file that changed is named.
  const std::string original = slurp(tmp.path / "d/image/synth_00003.png");
  unetsrnn::save_png(tmp.path / "d/image/synth_00003.png", unetsrnn::Image(32, 32, 3, 0.25f));
  expect_failure(
      run("train", train_args(tmp.path / "d", out, {"--epochs", "3", "--resume"}), tmp.path),
      "data.1.image/synth_00003.png");
  write_bytes(tmp.path / "d/image/synth_00003.png", original);

  // The same run resumes (and may be extended).
  const Run same =
      run("train", train_args(tmp.path / "d", out, {"--epochs", "3", "--resume"}), tmp.path);
  INFO("resume stderr: ", same.err);
  CHECK(same.exit_code == 0);
  CHECK(same.out.find("resumed from epoch 2") != std::string::npos);

  // --resume without a checkpoint is an error, and creates nothing.
  const fs::path fresh = tmp.path / "fresh";
  expect_failure(run("train", train_args(tmp.path / "d", fresh, {"--resume"}), tmp.path),
                 "holds no checkpoint");
  CHECK(!fs::exists(fresh));
}

TEST_CASE("4. predict over a folder: every image tried, failures listed, no collisions, EXIF") {
  TempDir tmp("folder");
  const fs::path weights = shared_weights();
  const fs::path in = tmp.path / "in";
  fs::create_directories(in);
  const unetsrnn::Image photo = unetsrnn::load_image(shared_data() / "image/synth_00001.png");
  unetsrnn::save_png(in / "a.png", photo);
  write_bytes(in / "b.png", "not an image");
  unetsrnn::save_png(in / "c.png", photo);
  unetsrnn::save_jpeg(in / "c.jpg", unetsrnn::load_image(shared_data() / "image/synth_00002.png"));
  // A 48 x 32 (W x H) JPEG whose EXIF says: displayed turned 90 degrees clockwise (32 x 48).
  unetsrnn::Image wide(32, 48, 3, 0.4f);
  write_bytes(in / "e.jpg", with_exif_orientation(unetsrnn::encode_jpeg(wide), 6));

  const fs::path out = tmp.path / "out";
  const Run r = run("predict",
                    {"--weights", weights.string(), "--input", in.string(), "--out", out.string(),
                     "--height", "32", "--width", "32"},
                    tmp.path);
  INFO("stdout: ", r.out, "\nstderr: ", r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("1 of 5 images failed") != std::string::npos);
  CHECK(r.err.find("b.png") != std::string::npos);
  for (const char* name : {"a.png", "c.png", "c.jpg", "e.jpg"}) {
    CHECK_MESSAGE(fs::exists(out / (std::string(name) + "_mask.png")), name);
    CHECK_MESSAGE(fs::exists(out / (std::string(name) + "_overlay.png")), name);
  }
  CHECK(!fs::exists(out / "b.png_mask.png"));
  // c.png and c.jpg kept apart: each mask is its own image's.
  CHECK(unetsrnn::load_image(out / "c.png_overlay.png").data !=
        unetsrnn::load_image(out / "c.jpg_overlay.png").data);
  const unetsrnn::Image upright = unetsrnn::load_image(out / "e.jpg_mask.png", 1);
  CHECK(upright.width == 32);
  CHECK(upright.height == 48);
}

TEST_CASE("5. non-finite weights are refused, naming the tensor") {
  TempDir tmp("nan");
  const fs::path weights = shared_weights(), data = shared_data();
  const std::string first = unetsrnn::read_weights_header(weights).tensors[0].name;
  const fs::path nan = tmp.path / "nan.weights", inf = tmp.path / "inf.weights";
  write_bytes(nan, with_first_value(slurp(weights), std::numeric_limits<float>::quiet_NaN()));
  write_bytes(inf, with_first_value(slurp(weights), -std::numeric_limits<float>::infinity()));

  for (const fs::path& bad : {nan, inf}) {
    const Run e =
        run("evaluate",
            {"--weights", bad.string(), "--data", data.string(), "--height", "32", "--width", "32"},
            tmp.path);
    expect_failure(e, bad.string());
    CHECK(e.err.find("'" + first + "'") != std::string::npos);
    expect_failure(run("predict",
                       {"--weights", bad.string(), "--input", (data / "image").string(), "--out",
                        (tmp.path / "p").string(), "--height", "32", "--width", "32"},
                       tmp.path),
                   first);
    expect_failure(
        run("train", train_args(data, tmp.path / "t", {"--init-weights", bad.string()}), tmp.path),
        first);
  }
  CHECK(!fs::exists(tmp.path / "p"));
  CHECK(!fs::exists(tmp.path / "t"));

  // A training whose logits become non-finite stops with a clear message (see test_hardening for
  // the kept checkpoint).
  const Run diverged = run("train", train_args(data, tmp.path / "div", {"--lr", "1e30"}), tmp.path);
  expect_failure(diverged, "training diverged in epoch 1");
  CHECK(!fs::exists(tmp.path / "div"));
}

TEST_CASE("6. errors name the file and the reason") {
  TempDir tmp("reasons");
  const fs::path out = copy_run(tmp), data = shared_data();

  // A corrupt optimiser state: the file and the checksum.
  const fs::path optim = out / "ckpt/epoch-0002.optim";
  std::string state = slurp(optim);
  state[state.size() / 2] ^= 0x20;
  write_bytes(optim, state);
  const Run corrupt = run("train", train_args(data, out, {"--epochs", "3", "--resume"}), tmp.path);
  expect_failure(corrupt, optim.string());
  CHECK(corrupt.err.find("checksum mismatch") != std::string::npos);

  // A full disk (here: a 3 MB file size limit) while the optimiser state is written.
  const fs::path full = tmp.path / "full";
  const Run no_space = run("train", train_args(data, full), tmp.path, [] {
    signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{3'000'000, 3'000'000};
    setrlimit(RLIMIT_FSIZE, &limit);
  });
  expect_failure(no_space, "epoch-0001.optim': File too large");
  CHECK(files_in(full).empty());

  // A zero dimension in a weights file says so (not "needs 1035073159 more bytes").
  std::string weights = slurp(out / "last.weights");
  weights.replace(first_tensor(weights).dims, 4, le32(0));
  write_bytes(tmp.path / "zero.weights", weights);
  const Run zero = run("predict",
                       {"--weights", (tmp.path / "zero.weights").string(), "--input",
                        (data / "image").string(), "--out", (tmp.path / "p").string()},
                       tmp.path);
  expect_failure(zero, "zero.weights");
  CHECK(zero.err.find("every dimension must be at least 1") != std::string::npos);
}

TEST_CASE("7. no leftovers after a failure") {
  TempDir tmp("leftovers");
  const fs::path weights = shared_weights(), data = shared_data();

  // predict on a bad image creates no --out.
  write_bytes(tmp.path / "bad.png", "garbage");
  expect_failure(run("predict",
                     {"--weights", weights.string(), "--input", (tmp.path / "bad.png").string(),
                      "--out", (tmp.path / "p/q").string()},
                     tmp.path),
                 "bad.png");
  CHECK(!fs::exists(tmp.path / "p"));

  // --init-weights with a bad file creates no --out.
  write_bytes(tmp.path / "bad.weights", "garbage");
  expect_failure(
      run("train",
          train_args(data, tmp.path / "t", {"--init-weights", (tmp.path / "bad.weights").string()}),
          tmp.path),
      "bad.weights");
  CHECK(!fs::exists(tmp.path / "t"));

  // A tab in a file name creates no --out.
  make_dataset(tmp.path / "tabbed", 4);
  for (const char* part : {"image", "mask"})
    fs::copy_file(tmp.path / "tabbed" / part / "synth_00000.png",
                  tmp.path / "tabbed" / part / "tab\there.png");
  expect_failure(run("train", train_args(tmp.path / "tabbed", tmp.path / "t"), tmp.path),
                 "tab or newline");
  CHECK(!fs::exists(tmp.path / "t"));

  // The demo with a bad size writes nothing.
  expect_failure(run("demo", {"--out", (tmp.path / "demo").string(), "--height", "30"}, tmp.path),
                 "30");
  CHECK(!fs::exists(tmp.path / "demo"));

  // Stale temporary files of killed processes go when the run resumes, and so do the
  // checkpoint files of an epoch a kill left behind.
  const fs::path out = copy_run(tmp);
  const std::string dead = std::to_string(dead_pid());
  write_bytes(out / ("checkpoint.txt.tmp." + dead), "half");
  write_bytes(out / ("ckpt/epoch-0003.weights.tmp." + dead), "half");
  write_bytes(out / "ckpt/epoch-0001.optim", "left by a kill before its removal");
  const Run resumed = run("train", train_args(data, out, {"--epochs", "3", "--resume"}), tmp.path);
  INFO("stderr: ", resumed.err);
  CHECK(resumed.exit_code == 0);
  for (const auto& f : files_in(out)) {
    CHECK_MESSAGE(f.find(".tmp.") == std::string::npos, f);
    CHECK_MESSAGE(f.find("epoch-0001") == std::string::npos, f);
  }

  // A mask is never written without its overlay.
  const fs::path pred = tmp.path / "pred";
  fs::create_directories(pred / "synth_00001.png_overlay.png");  // a folder where the file goes
  expect_failure(
      run("predict",
          {"--weights", weights.string(), "--input", (data / "image/synth_00001.png").string(),
           "--out", pred.string(), "--height", "32", "--width", "32"},
          tmp.path),
      "synth_00001.png_overlay.png");
  CHECK(!fs::exists(pred / "synth_00001.png_mask.png"));
}

TEST_CASE("8. options are checked before any data is read; the same --data twice is an error") {
  TempDir tmp("options");
  make_dataset(tmp.path / "d", 4);
  // A corrupt image: had the data been read first, it would be the error.
  write_bytes(tmp.path / "d/image/synth_00001.png", "corrupt");
  const fs::path out = tmp.path / "out";
  for (const auto& [option, value] :
       std::vector<std::pair<std::string, std::string>>{{"--batch", "0"},
                                                        {"--lr", "nan"},
                                                        {"--lr", "-1"},
                                                        {"--epochs", "0"},
                                                        {"--decay", "inf"},
                                                        {"--test-fraction", "1.5"},
                                                        {"--height", "40"},
                                                        {"--mask-threshold", "nan"},
                                                        {"--max-megapixels", "0"}}) {
    const Run r = run("train", train_args(tmp.path / "d", out, {option, value}), tmp.path);
    INFO(option, " ", value, ": ", r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find(option) != std::string::npos);
    CHECK(r.err.find("synth_00001") == std::string::npos);
  }
  const Run twice = run(
      "train", train_args(tmp.path / "d", out, {"--data", (tmp.path / "d/.").string()}), tmp.path);
  INFO(twice.err);
  CHECK(twice.exit_code == 2);
  CHECK(twice.err.find("same folder") != std::string::npos);
  CHECK(!fs::exists(out));
}

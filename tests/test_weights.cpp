#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include <unistd.h>

#include "unetsrnn/io/atomic_file.hpp"
#include "unetsrnn/io/crc32.hpp"
#include "unetsrnn/io/weights.hpp"

#include "test_support.hpp"

using namespace unetsrnn;
using test_support::contains;
using test_support::error_of;
using test_support::slurp;
using test_support::write_bytes;
namespace fs = std::filesystem;

namespace {

// A model with the interface the real models have: name() and parameters().
struct FakeModel {
  std::string model_name = "fake_net";
  Param<Cpu> conv_weight{Shape{2, 3, 3, 3}, Init::GlorotUniform, 27, 18};
  Param<Cpu> conv_bias{Shape{1, 2, 1, 1}, Init::Zeros};
  Param<Cpu> srnn_weight{Shape{1, 1, 1, 3}, Init::SrnnUniform};

  std::string name() const { return model_name; }
  ParamList<Cpu> parameters() {
    return {{"enc1.conv.weight", &conv_weight},
            {"enc1.conv.bias", &conv_bias},
            {"skip1.srnn.weight", &srnn_weight}};
  }
  // Distinct values per seed, covering every parameter.
  void fill(float base) {
    float v = base;
    for (auto& named : parameters())
      for (float& x : named.param->value) {
        v += 0.37f;
        x = static_cast<int>(v) % 2 ? -v : v;
      }
  }
};

// Same name and parameter names as FakeModel, but one tensor has another shape.
struct ReshapedModel : FakeModel {
  Param<Cpu> wider_bias{Shape{1, 3, 1, 1}, Init::Zeros};
  ParamList<Cpu> parameters() {
    return {{"enc1.conv.weight", &conv_weight},
            {"enc1.conv.bias", &wider_bias},
            {"skip1.srnn.weight", &srnn_weight}};
  }
};

struct LongerModel : FakeModel {
  Param<Cpu> extra{Shape{1, 1, 1, 1}, Init::Zeros};
  ParamList<Cpu> parameters() {
    auto list = FakeModel::parameters();
    list.push_back({"head.bias", &extra});
    return list;
  }
};

// The bit patterns of every parameter, to prove a failed load changed nothing.
template <class Model>
std::vector<std::uint32_t> snapshot(Model& m) {
  std::vector<std::uint32_t> bits;
  for (auto& named : m.parameters())
    for (float x : named.param->value) bits.push_back(std::bit_cast<std::uint32_t>(x));
  return bits;
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / str_cat("unetsrnn_test_weights_", ::getpid());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

std::string u32_le(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}
// Replaces the CRC trailer so that a deliberate edit is not caught by the checksum.
std::string with_fixed_crc(std::string bytes) {
  bytes.resize(bytes.size() - 4);
  return bytes + u32_le(crc32(bytes));
}

}  // namespace

TEST_CASE("crc32 matches zlib's known values") {
  CHECK(crc32("") == 0u);
  CHECK(crc32("a") == 0xE8B7BE43u);
  CHECK(crc32("123456789") == 0xCBF43926u);
  CHECK(crc32("The quick brown fox jumps over the lazy dog") == 0x414FA339u);
  const std::string zeros(32, '\0');
  CHECK(crc32(zeros) == 0x190A55ADu);
}

TEST_CASE("crc32_update is incremental at every split point") {
  const std::string text = "The quick brown fox jumps over the lazy dog";
  for (std::size_t cut = 0; cut <= text.size(); ++cut) {
    std::uint32_t c = crc32_update(0, text.data(), cut);
    c = crc32_update(c, text.data() + cut, text.size() - cut);
    CHECK(c == 0x414FA339u);
  }
}

TEST_CASE("write_file_atomic writes bytes and replaces an existing file") {
  TempDir dir;
  const fs::path target = dir.path / "out.bin";
  const std::string first("abc\0def", 7);
  write_file_atomic(target, first);
  CHECK(slurp(target) == first);
  write_file_atomic(target, [](std::ostream& out) { out << "second"; });
  CHECK(slurp(target) == "second");
  write_file_atomic(target, "third", Durability::Flushed);
  CHECK(slurp(target) == "third");
  CHECK(dir.entries() == std::vector<std::string>{"out.bin"});
}

TEST_CASE("write_file_atomic keeps the old file when the writer fails") {
  TempDir dir;
  const fs::path target = dir.path / "keep.txt";
  write_file_atomic(target, std::string("old contents"));

  SUBCASE("the writer throws: its exception propagates unchanged") {
    CHECK_THROWS_WITH_AS(write_file_atomic(target,
                                           [](std::ostream& out) {
                                             out << "partial";
                                             throw std::logic_error("writer gave up");
                                           }),
                         "writer gave up", std::logic_error);
  }
  SUBCASE("the writer leaves the stream failed: runtime_error naming the path") {
    const std::string message = error_of([&] {
      write_file_atomic(target, [](std::ostream& out) {
        out << "partial";
        out.setstate(std::ios::failbit);
      });
    });
    CHECK(contains(message, str_cat("cannot write '", target.string(), "'")));
  }
  CHECK(slurp(target) == "old contents");
  CHECK(dir.entries() == std::vector<std::string>{"keep.txt"});
}

TEST_CASE("write_file_atomic into a path whose parent is a regular file") {
  // Fails for root too, unlike a folder without write permission.
  TempDir dir;
  write_bytes(dir.path / "plain_file", "x");
  const fs::path target = dir.path / "plain_file" / "out.bin";
  const std::string message = error_of([&] { write_file_atomic(target, std::string("data")); });
  CHECK(contains(message, str_cat("cannot write '", target.string(), "': Not a directory")));
  CHECK(dir.entries() == std::vector<std::string>{"plain_file"});
}

TEST_CASE("weights round trip is bit-exact, including special values") {
  TempDir dir;
  const fs::path file = dir.path / "a.weights";
  FakeModel saved;
  saved.fill(0.5f);
  // Values a text format or a careless conversion would lose.
  saved.conv_weight.value[0] = -0.0f;
  saved.conv_weight.value[1] = std::numeric_limits<float>::lowest();
  saved.conv_weight.value[2] = -std::numeric_limits<float>::denorm_min();
  saved.conv_weight.value[3] = std::numeric_limits<float>::denorm_min();
  saved.conv_weight.value[4] = std::numeric_limits<float>::min();
  saved.conv_weight.value[5] = std::numeric_limits<float>::max();
  save_weights(saved, file);
  CHECK(dir.entries() == std::vector<std::string>{"a.weights"});

  FakeModel loaded;
  loaded.fill(100.0f);
  REQUIRE(snapshot(loaded) != snapshot(saved));
  load_weights(loaded, file);
  CHECK(snapshot(loaded) == snapshot(saved));

  // Saving the loaded model reproduces the file byte for byte.
  const fs::path again = dir.path / "b.weights";
  save_weights(loaded, again);
  CHECK(slurp(again) == slurp(file));
}

TEST_CASE("weights file layout matches docs/weights-format.md") {
  TempDir dir;
  const fs::path file = dir.path / "tiny.weights";
  struct Tiny {
    Param<Cpu> w{Shape{1, 2, 1, 1}, Init::Zeros};
    std::string name() const { return "tiny"; }
    ParamList<Cpu> parameters() { return {{"w", &w}}; }
  } tiny;
  tiny.w.value[0] = 1.0f;   // 0x3F800000
  tiny.w.value[1] = -2.5f;  // 0xC0200000
  save_weights(tiny, file);

  std::string expected("USRNNW\0\0", 8);
  expected += u32_le(1);                                      // version
  expected += u32_le(4) + "tiny";                             // model name
  expected += u32_le(1);                                      // tensor count
  expected += u32_le(1) + "w";                                // tensor name
  expected += u32_le(4);                                      // rank
  expected += u32_le(1) + u32_le(2) + u32_le(1) + u32_le(1);  // N, C, H, W
  expected += std::string("\x00\x00\x80\x3F\x00\x00\x20\xC0", 8);
  expected += u32_le(crc32(expected));
  CHECK(slurp(file) == expected);

  const WeightsHeader header = read_weights_header(file);
  CHECK(header.version == 1u);
  CHECK(header.model_name == "tiny");
  REQUIRE(header.tensors.size() == 1);
  CHECK(header.tensors[0].name == "w");
  CHECK(header.tensors[0].shape == Shape{1, 2, 1, 1});
}

TEST_CASE("read_weights_header lists the model's tensors") {
  TempDir dir;
  const fs::path file = dir.path / "a.weights";
  FakeModel model;
  save_weights(model, file);
  const WeightsHeader header = read_weights_header(file);
  CHECK(header.model_name == "fake_net");
  const auto params = model.parameters();
  REQUIRE(header.tensors.size() == params.size());
  for (std::size_t i = 0; i < params.size(); ++i) {
    CHECK(header.tensors[i].name == params[i].name);
    CHECK(header.tensors[i].shape == params[i].param->value.shape());
  }
}

TEST_CASE("load_weights rejects bad files and leaves the model untouched") {
  TempDir dir;
  const fs::path good = dir.path / "good.weights";
  const fs::path bad = dir.path / "bad.weights";
  FakeModel saved;
  saved.fill(0.25f);
  save_weights(saved, good);
  const std::string bytes = slurp(good);

  FakeModel target;
  target.fill(7.0f);
  const auto before = snapshot(target);
  const std::string where = str_cat("'", bad.string(), "': ");
  auto load_error = [&](auto& model) { return error_of([&] { load_weights(model, bad); }); };

  SUBCASE("written for another model") {
    fs::copy_file(good, bad);
    target.model_name = "other_net";
    CHECK(load_error(target) == where + "written for model 'fake_net', not 'other_net'");
  }
  SUBCASE("wrong magic") {
    std::string edited = bytes;
    edited[0] = 'X';
    write_bytes(bad, edited);
    CHECK(contains(load_error(target), where + "not a unetsrnn weights file"));
    CHECK_THROWS_AS(load_weights(target, bad), FormatError);
  }
  SUBCASE("wrong version (with a valid checksum)") {
    std::string edited = bytes;
    edited.replace(8, 4, u32_le(2));
    write_bytes(bad, with_fixed_crc(edited));
    CHECK(load_error(target) == where + "format version 2, but this build reads version 1");
  }
  SUBCASE("a tensor with another shape") {
    ReshapedModel reshaped;
    reshaped.fill(3.0f);
    const auto reshaped_before = snapshot(reshaped);
    fs::copy_file(good, bad);
    CHECK(load_error(reshaped) == where +
                                      "tensor 1 is 'enc1.conv.bias' with shape (1, 2, 1, 1) but "
                                      "the model has 'enc1.conv.bias' with shape (1, 3, 1, 1)");
    CHECK(snapshot(reshaped) == reshaped_before);
  }
  SUBCASE("a tensor with another name") {
    std::string edited = bytes;
    const auto at = edited.find("skip1");
    REQUIRE(at != std::string::npos);
    edited[at] = 'S';
    write_bytes(bad, with_fixed_crc(edited));
    CHECK(load_error(target) == where +
                                    "tensor 2 is 'Skip1.srnn.weight' with shape (1, 1, 1, 3) but "
                                    "the model has 'skip1.srnn.weight' with shape (1, 1, 1, 3)");
  }
  SUBCASE("more tensors in the model than in the file") {
    LongerModel longer;
    longer.fill(2.0f);
    const auto longer_before = snapshot(longer);
    fs::copy_file(good, bad);
    CHECK(load_error(longer) ==
          where + "has 3 tensors but model 'fake_net' has 4 (first missing: 'head.bias')");
    CHECK(snapshot(longer) == longer_before);
  }
  SUBCASE("bytes after the checksum") {
    write_bytes(bad, bytes + "junk");
    CHECK(load_error(target) == where + "4 unexpected bytes after the CRC32 trailer");
  }
  SUBCASE("missing file names the path and the OS reason") {
    const std::string message = load_error(target);
    CHECK(message == str_cat("cannot open '", bad.string(), "': No such file or directory"));
    CHECK_THROWS_AS(read_weights_header(bad), std::runtime_error);
  }
  SUBCASE("a directory instead of a file") {
    fs::create_directory(bad);
    CHECK(load_error(target) == str_cat("cannot read '", bad.string(), "': Is a directory"));
  }
  CHECK(snapshot(target) == before);
}

TEST_CASE("load_weights reports truncation at every cut point") {
  TempDir dir;
  const fs::path good = dir.path / "good.weights";
  const fs::path bad = dir.path / "cut.weights";
  FakeModel saved;
  saved.fill(1.0f);
  save_weights(saved, good);
  const std::string bytes = slurp(good);

  FakeModel target;
  target.fill(9.0f);
  const auto before = snapshot(target);
  int checked = 0;
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    write_bytes(bad, bytes.substr(0, cut));
    const std::string message = error_of([&] { load_weights(target, bad); });
    CAPTURE(cut);
    CAPTURE(message);
    CHECK_THROWS_AS(load_weights(target, bad), FormatError);
    CHECK(contains(message,
                   str_cat("'", bad.string(), "': truncated (file ends at byte ", cut, ", ")));
    CHECK(snapshot(target) == before);
    ++checked;
  }
  CHECK(checked == static_cast<int>(bytes.size()));

  // One message in full: the cut falls inside the first tensor's values.
  const std::size_t first_values = 8 + 4 + (4 + 8) + 4 + (4 + 16) + 4 + 16;
  write_bytes(bad, bytes.substr(0, first_values + 10));
  CHECK(error_of([&] { load_weights(target, bad); }) ==
        str_cat("'", bad.string(), "': truncated (file ends at byte ", first_values + 10,
                ", tensor 0 'enc1.conv.weight' with shape (2, 3, 3, 3) needs ",
                2 * 3 * 3 * 3 * 4 - 10, " more bytes)"));
}

TEST_CASE("any single flipped byte is detected") {
  TempDir dir;
  const fs::path good = dir.path / "good.weights";
  const fs::path bad = dir.path / "flipped.weights";
  FakeModel saved;
  saved.fill(2.0f);
  save_weights(saved, good);
  const std::string bytes = slurp(good);

  FakeModel target;
  target.fill(5.0f);
  const auto before = snapshot(target);
  const std::size_t values_start = bytes.size() - 4 - 3 * 4;  // skip1.srnn.weight: 3 floats
  for (std::size_t at = 0; at < bytes.size(); ++at) {
    for (unsigned char mask : {0x01, 0x80}) {
      std::string edited = bytes;
      edited[at] = static_cast<char>(static_cast<unsigned char>(edited[at]) ^ mask);
      write_bytes(bad, edited);
      const std::string message = error_of([&] { load_weights(target, bad); });
      CAPTURE(at);
      CAPTURE(message);
      CHECK_THROWS_AS(load_weights(target, bad), FormatError);
      // In the last tensor's values and the trailer, nothing but the checksum can notice.
      if (at >= values_start) CHECK(contains(message, "checksum mismatch"));
    }
  }
  CHECK(snapshot(target) == before);
}

TEST_CASE("save_weights into an unwritable place leaves no partial files") {
  TempDir dir;
  write_bytes(dir.path / "not_a_folder", "x");
  const fs::path target = dir.path / "not_a_folder" / "m.weights";
  FakeModel model;
  model.fill(1.0f);
  const auto before = snapshot(model);
  const std::string message = error_of([&] { save_weights(model, target); });
  CHECK(message == str_cat("cannot write '", target.string(), "': Not a directory"));
  CHECK_THROWS_AS(save_weights(model, target), std::runtime_error);
  CHECK(dir.entries() == std::vector<std::string>{"not_a_folder"});
  CHECK(snapshot(model) == before);
}

TEST_CASE("NaN and infinity are refused on saving and on loading, naming the tensor") {
  TempDir dir;
  const fs::path good = dir.path / "good.weights", bad = dir.path / "bad.weights";
  FakeModel saved;
  saved.fill(0.25f);
  save_weights(saved, good);
  const std::string bytes = slurp(good);
  // The first value of the second tensor, 'enc1.conv.bias': after 54 values of the first.
  const std::size_t header = 8 + 4 + 4 + 8 + 4;
  const std::size_t first_values = header + 4 + 16 + 4 + 16;
  const std::size_t bias_values = first_values + 54 * 4 + 4 + 14 + 4 + 16;
  REQUIRE(bytes.substr(bias_values - 16 - 4 - 14, 14) == "enc1.conv.bias");
  for (std::uint32_t bits : {0x7FC00000u, 0xFFC12345u, 0x7F800000u, 0xFF800000u}) {
    std::string edited = bytes;
    edited.replace(bias_values + 4, 4, u32_le(bits));  // index 1
    write_bytes(bad, with_fixed_crc(edited));
    FakeModel target;
    target.fill(3.0f);
    const auto before = snapshot(target);
    const std::string message = error_of([&] { load_weights(target, bad); });
    INFO(message);
    CHECK(contains(message, "'" + bad.string() + "': tensor 1 'enc1.conv.bias' holds "));
    CHECK(contains(message, " at index 1 of 2"));
    CHECK(contains(message, (bits & 0x7FFFFF) ? "NaN" : "infinity"));
    CHECK(snapshot(target) == before);
    CHECK_THROWS_AS(read_weights_header(bad), FormatError);
  }

  FakeModel diverged;
  diverged.fill(0.25f);
  diverged.srnn_weight.value[2] = std::numeric_limits<float>::quiet_NaN();
  const fs::path never = dir.path / "never.weights";
  const std::string message = error_of([&] { save_weights(diverged, never); });
  CHECK(contains(message, "cannot save weights to '" + never.string() +
                              "': tensor 'skip1.srnn.weight' holds NaN at index 2 of 3"));
  CHECK(!fs::exists(never));
  CHECK(dir.entries() == std::vector<std::string>{"bad.weights", "good.weights"});
}

TEST_CASE("a zero dimension is reported as such, not as a huge truncation") {
  TempDir dir;
  const fs::path good = dir.path / "good.weights", bad = dir.path / "bad.weights";
  FakeModel saved;
  saved.fill(0.25f);
  save_weights(saved, good);
  std::string bytes = slurp(good);
  const std::size_t first_dims = 8 + 4 + 4 + 8 + 4 + 4 + 16 + 4;
  REQUIRE(bytes.substr(first_dims, 4) == u32_le(2));  // N of 'enc1.conv.weight' (2, 3, 3, 3)
  bytes.replace(first_dims, 4, u32_le(0));
  write_bytes(bad, bytes);
  const std::string message = error_of([&] { read_weights_header(bad); });
  CHECK(message == "'" + bad.string() +
                       "': tensor 0 'enc1.conv.weight' has shape (0, 3, 3, 3); every dimension "
                       "must be at least 1 (the file is corrupt)");
}

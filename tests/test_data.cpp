#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "unetsrnn/data/dataset.hpp"
#include "unetsrnn/data/synthetic.hpp"
#include "unetsrnn/io/crc32.hpp"
#include "unetsrnn/io/image.hpp"

#ifndef UNETSRNN_SOURCE_DIR
#define UNETSRNN_SOURCE_DIR "."
#endif

#include "test_support.hpp"

using namespace unetsrnn;
using test_support::error_of;
using test_support::slurp;
using test_support::write_bytes;
namespace fs = std::filesystem;

namespace {

// A fresh folder under the system temp directory, removed with everything in it at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() / str_cat("unetsrnn_test_data_", ::getpid(), "_", counter++);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
};

// A dataset folder with image/ and mask/.
struct DatasetDir : TempDir {
  DatasetDir() {
    fs::create_directories(path / "image");
    fs::create_directories(path / "mask");
  }
  fs::path image(const std::string& name) const { return path / "image" / name; }
  fs::path mask(const std::string& name) const { return path / "mask" / name; }
};

// A textured RGB "photo" with no white pixels.
Image photo(int h, int w, int seed = 0) {
  Image img(h, w, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      img.at(y, x, 0) = 0.2f + 0.5f * static_cast<float>((x * 7 + y * 3 + seed) % 17) / 17;
      img.at(y, x, 1) = 0.1f + 0.4f * static_cast<float>((x + 5 * y + seed) % 11) / 11;
      img.at(y, x, 2) = 0.6f + 0.3f * static_cast<float>(y) / h;
    }
  return img;
}

// A binary grey mask with a filled rectangle [y0, y1) x [x0, x1).
Image box_mask(int h, int w, int y0, int y1, int x0, int x1) {
  Image m(h, w, 1);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x) m.at(y, x, 0) = 1.0f;
  return m;
}

DatasetOptions small(MaskMode mode = MaskMode::Auto) {
  DatasetOptions o;
  o.height = 32;
  o.width = 32;
  o.mask_mode = mode;
  return o;
}

// A 16-bit grey PNG built by hand: zlib stream with one stored (uncompressed) deflate block.
std::string png16_grey(const std::vector<std::uint16_t>& row) {
  auto be32 = [](std::uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  auto chunk = [&](const std::string& type, const std::string& data) {
    const std::string body = type + data;
    return be32(static_cast<std::uint32_t>(data.size())) + body + be32(crc32(body));
  };
  std::string raw(1, '\0');  // filter type 0
  for (std::uint16_t v : row) raw += {static_cast<char>(v >> 8), static_cast<char>(v & 0xFF)};
  std::uint32_t a = 1, b = 0;  // Adler-32
  for (unsigned char ch : raw) {
    a = (a + ch) % 65521;
    b = (b + a) % 65521;
  }
  const auto len = static_cast<std::uint16_t>(raw.size());
  std::string zlib = {'\x78',
                      '\x01',
                      '\x01',
                      static_cast<char>(len & 0xFF),
                      static_cast<char>(len >> 8),
                      static_cast<char>(~len & 0xFF),
                      static_cast<char>((~len >> 8) & 0xFF)};
  zlib += raw + be32((b << 16) | a);
  const std::string ihdr = be32(static_cast<std::uint32_t>(row.size())) + be32(1) +
                           std::string{'\x10', '\x00', '\x00', '\x00', '\x00'};  // 16-bit grey
  return std::string("\x89PNG\r\n\x1a\n", 8) + chunk("IHDR", ihdr) + chunk("IDAT", zlib) +
         chunk("IEND", "");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
TEST_CASE("image: PNG round trip, channel conversion and tensor conversion") {
  TempDir dir;
  Image rgb = photo(20, 24);
  save_png(dir / "a.png", rgb);
  const Image back = load_image(dir / "a.png");
  REQUIRE(back.width == 24);
  REQUIRE(back.height == 20);
  REQUIRE(back.channels == 3);
  float worst = 0;
  for (std::size_t i = 0; i < rgb.data.size(); ++i)
    worst = std::max(worst, std::abs(back.data[i] - rgb.data[i]));
  CHECK(worst <= 0.5f / 255 + 1e-6f);  // 8-bit quantisation only

  save_png(dir / "g.png", box_mask(16, 16, 4, 8, 2, 6));
  const Image grey_as_rgb = load_image(dir / "g.png");
  CHECK(grey_as_rgb.channels == 3);
  CHECK(grey_as_rgb.at(5, 3, 0) == 1.0f);
  CHECK(grey_as_rgb.at(5, 3, 2) == 1.0f);
  CHECK(grey_as_rgb.at(0, 0, 1) == 0.0f);
  CHECK(load_image(dir / "g.png", 0).channels == 1);

  const Tensor<Cpu> t = image_to_tensor(rgb);
  CHECK(t.shape() == Shape{1, 3, 20, 24});
  CHECK(t.at(0, 2, 5, 7) == rgb.at(5, 7, 2));
  Tensor<Cpu> batch(Shape{3, 3, 20, 24}, 0.0f);
  image_to_tensor(rgb, batch.view(), 2);
  CHECK(image_from_tensor(batch.cview(), 2).data == rgb.data);
  CHECK_THROWS_AS(image_to_tensor(rgb, batch.view(), 3), std::invalid_argument);
  CHECK_THROWS_AS(image_to_tensor(box_mask(20, 24, 0, 1, 0, 1), batch.view(), 0),
                  std::invalid_argument);
}

TEST_CASE("image: bilinear resize uses half-pixel centres") {
  Image row(1, 2, 1);
  row.data = {0.0f, 1.0f};
  const Image up = resize_bilinear(row, 1, 4);  // source x = (o + 0.5) / 2 - 0.5, clamped
  CHECK(up.data[0] == doctest::Approx(0.0));
  CHECK(up.data[1] == doctest::Approx(0.25));
  CHECK(up.data[2] == doctest::Approx(0.75));
  CHECK(up.data[3] == doctest::Approx(1.0));

  Image four(1, 4, 1);
  four.data = {0.0f, 1.0f, 2.0f, 4.0f};
  const Image down = resize_bilinear(four, 1, 2);  // samples at 0.5 and 2.5
  CHECK(down.data[0] == doctest::Approx(0.5));
  CHECK(down.data[1] == doctest::Approx(3.0));

  const Image p = photo(17, 23);
  CHECK(resize_bilinear(p, 17, 23).data == p.data);  // same size: identity
  CHECK_THROWS_AS(resize_bilinear(p, 0, 4), std::invalid_argument);
}

TEST_CASE("image: rotate90 follows numpy.rot90") {
  Image m(2, 3, 1);
  m.data = {1, 2, 3, 4, 5, 6};  // rows [1 2 3] [4 5 6]
  const Image r = rotate90(m);  // numpy.rot90: [[3 6] [2 5] [1 4]]
  CHECK(r.height == 3);
  CHECK(r.width == 2);
  CHECK(r.data == std::vector<float>{3, 6, 2, 5, 1, 4});
  CHECK(rotate90(m, 2).data == std::vector<float>{6, 5, 4, 3, 2, 1});
  CHECK(rotate90(rotate90(m, 1), -1).data == m.data);
  CHECK(rotate90(m, 4).data == m.data);
}

TEST_CASE("image: overlay tints only the mask") {
  Image img(2, 2, 3, 0.5f);
  Image mask(2, 2, 1);
  mask.data = {1, 0, 0, 0.5f};
  const Image out = overlay(img, mask, {1, 0, 0}, 0.5f);
  CHECK(out.at(0, 0, 0) == doctest::Approx(0.75));
  CHECK(out.at(0, 0, 1) == doctest::Approx(0.25));
  CHECK(out.at(0, 1, 0) == doctest::Approx(0.5));
  CHECK(out.at(1, 1, 1) == doctest::Approx(0.375));
  CHECK_THROWS_AS(overlay(img, Image(3, 2, 1)), std::invalid_argument);
}

TEST_CASE("image: 16-bit PNG loads at full precision") {
  TempDir dir;
  write_bytes(dir / "deep.png", png16_grey({0, 32768, 65535, 257}));
  const Image img = load_image(dir / "deep.png", 0);
  REQUIRE(img.width == 4);
  REQUIRE(img.height == 1);
  REQUIRE(img.channels == 1);
  CHECK(img.data[0] == 0.0f);
  CHECK(img.data[1] ==
        doctest::Approx(32768.0 / 65535).epsilon(1e-7));  // 8 bits would give 128/255
  CHECK(img.data[2] == 1.0f);
  CHECK(img.data[3] == doctest::Approx(257.0 / 65535).epsilon(1e-6));
  CHECK(load_image(dir / "deep.png").channels == 3);
}

TEST_CASE("image: JPEG round trip") {
  TempDir dir;
  Image smooth(32, 48, 3);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 48; ++x) {
      smooth.at(y, x, 0) = x / 47.0f;
      smooth.at(y, x, 1) = y / 31.0f;
      smooth.at(y, x, 2) = 0.5f;
    }
  save_jpeg(dir / "s.jpg", smooth, 95);
  const Image back = load_image(dir / "s.jpg");
  REQUIRE(back.width == 48);
  REQUIRE(back.height == 32);
  double error = 0;
  for (std::size_t i = 0; i < smooth.data.size(); ++i)
    error += std::abs(back.data[i] - smooth.data[i]);
  CHECK(error / smooth.data.size() < 0.02);
}

TEST_CASE("image: corrupt, truncated and missing files name the file") {
  TempDir dir;
  write_bytes(dir / "garbage.png", "this is not a PNG file at all, just bytes");
  std::string message = error_of([&] { load_image(dir / "garbage.png"); });
  CHECK(message.find("garbage.png") != std::string::npos);
  CHECK_THROWS_AS(load_image(dir / "garbage.png"), FormatError);

  const std::string png = encode_png(photo(40, 40));
  write_bytes(dir / "cut.png", png.substr(0, png.size() / 2));
  message = error_of([&] { load_image(dir / "cut.png"); });
  CHECK(message.find("cut.png") != std::string::npos);
  MESSAGE("truncated PNG: ", message);

  message = error_of([&] { load_image(dir / "missing.png"); });
  CHECK(message.find("missing.png") != std::string::npos);
  write_bytes(dir / "empty.png", "");
  CHECK(error_of([&] { load_image(dir / "empty.png"); }).find("empty.png") != std::string::npos);
}

TEST_CASE("image: save_png is atomic") {
  TempDir dir;
  save_png(dir / "out.png", photo(16, 16));
  save_png(dir / "out.png", photo(16, 16, 3));  // overwrite
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path))
    names.push_back(e.path().filename().string());
  CHECK(names == std::vector<std::string>{"out.png"});  // no temporary left behind
  CHECK(load_image(dir / "out.png").data == load_image(dir / "out.png").data);

  // Folder missing: error naming the path, nothing written.
  const fs::path unreachable = dir / "no_such_folder" / "x.png";
  const std::string message = error_of([&] { save_png(unreachable, photo(16, 16)); });
  CHECK(message.find("x.png") != std::string::npos);
  CHECK(!fs::exists(dir / "no_such_folder"));

  // Target is a directory: the rename fails, the temporary is removed, the directory is intact.
  fs::create_directories(dir / "taken.png");
  CHECK_THROWS(save_png(dir / "taken.png", photo(16, 16)));
  CHECK(fs::is_directory(dir / "taken.png"));
  names.clear();
  for (const auto& e : fs::directory_iterator(dir.path))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"out.png", "taken.png"});
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("dataset: pairs by stem across extensions, sorted by name") {
  DatasetDir d;
  save_png(d.image("b.png"), photo(32, 32, 1));
  save_png(d.mask("b.png"), box_mask(32, 32, 0, 8, 0, 8));
  save_jpeg(d.image("a.jpg"), photo(40, 48, 2));
  save_png(d.mask("a.png"), box_mask(40, 48, 10, 20, 10, 20));
  write_bytes(d.image("README.txt"), "ignored: not an image extension");
  write_bytes(d.mask(".hidden.png"), "ignored: hidden");

  FolderDataset ds(d.path, small());
  REQUIRE(ds.size() == 2);
  CHECK(ds[0].name == "a.jpg");
  CHECK(ds[1].name == "b.png");
  CHECK(ds.mask_mode() == MaskMode::Threshold);
  CHECK(ds[0].image.shape() == Shape{1, 3, 32, 32});
  CHECK(ds[0].mask.shape() == Shape{1, 1, 32, 32});
  CHECK(ds[0].source_height == 40);
  CHECK(ds[0].source_width == 48);
  CHECK(ds[1].dataset == d.path.filename().string());
  for (const Sample& s : ds.samples())
    CHECK(
        std::all_of(s.mask.begin(), s.mask.end(), [](float v) { return v == 0.0f || v == 1.0f; }));
  // b's mask covers the top-left 8x8 exactly (no resize at 32x32).
  float sum = 0;
  for (float v : ds[1].mask) sum += v;
  CHECK(sum == 64.0f);
  MESSAGE(ds.summary());
}

TEST_CASE("dataset: unpaired images and masks are listed by name") {
  DatasetDir d;
  save_png(d.image("ok.png"), photo(32, 32));
  save_png(d.mask("ok.png"), box_mask(32, 32, 0, 4, 0, 4));
  save_png(d.image("lonely_image.png"), photo(32, 32));
  save_png(d.mask("lonely_mask.jpg"), box_mask(32, 32, 0, 4, 0, 4));
  const std::string message = error_of([&] { FolderDataset(d.path, small()); });
  MESSAGE(message);
  CHECK(message.find("lonely_image.png") != std::string::npos);
  CHECK(message.find("lonely_mask.jpg") != std::string::npos);
  CHECK(message.find("ok.png") == std::string::npos);
  CHECK_THROWS_AS(FolderDataset(d.path, small()), FormatError);
}

TEST_CASE("dataset: many unpaired files are capped at 10 names") {
  DatasetDir d;
  for (int i = 0; i < 13; ++i) save_png(d.image(str_cat("img", i, ".png")), photo(16, 16));
  const std::string message = error_of([&] { FolderDataset(d.path, small()); });
  CHECK(message.find("13 images have no mask") != std::string::npos);
  CHECK(message.find("and 3 more") != std::string::npos);
}

TEST_CASE("dataset: empty or missing folders") {
  DatasetDir d;
  std::string message = error_of([&] { FolderDataset(d.path, small()); });
  CHECK(message.find("no image files") != std::string::npos);
  TempDir bare;
  message = error_of([&] { FolderDataset(bare.path, small()); });
  CHECK(message.find("does not exist") != std::string::npos);
}

TEST_CASE("dataset: corrupt and truncated images name the file") {
  DatasetDir d;
  save_png(d.image("good.png"), photo(32, 32));
  save_png(d.mask("good.png"), box_mask(32, 32, 0, 4, 0, 4));
  write_bytes(d.image("bad.png"), "garbage garbage garbage");
  save_png(d.mask("bad.png"), box_mask(32, 32, 0, 4, 0, 4));
  std::string message = error_of([&] { FolderDataset(d.path, small()); });
  CHECK(message.find("bad.png") != std::string::npos);

  const std::string png = encode_png(photo(32, 32));
  write_bytes(d.image("bad.png"), png.substr(0, png.size() * 2 / 3));
  message = error_of([&] { FolderDataset(d.path, small()); });
  CHECK(message.find("bad.png") != std::string::npos);
}

TEST_CASE("dataset: images smaller than 16 px and mismatched masks are rejected") {
  DatasetDir d;
  save_png(d.image("tiny.png"), photo(12, 40));
  save_png(d.mask("tiny.png"), box_mask(12, 40, 0, 4, 0, 4));
  std::string message = error_of([&] { FolderDataset(d.path, small()); });
  CHECK(message.find("tiny.png") != std::string::npos);
  CHECK(message.find("at least 16x16") != std::string::npos);

  DatasetDir e;
  save_png(e.image("a.png"), photo(32, 32));
  save_png(e.mask("a.png"), box_mask(32, 16, 0, 4, 0, 4));
  message = error_of([&] { FolderDataset(e.path, small()); });
  CHECK(message.find("a.png") != std::string::npos);
}

TEST_CASE("dataset: target size must be a positive multiple of 16") {
  DatasetOptions o;
  o.height = 150;
  o.width = 192;
  CHECK_THROWS_AS(FolderDataset("/nonexistent", o), std::invalid_argument);
  o.height = 160;
  o.width = 0;
  CHECK_THROWS_AS(FolderDataset("/nonexistent", o), std::invalid_argument);
  CHECK_THROWS_AS(check_target_size(64, 72), std::invalid_argument);
  CHECK_NOTHROW(check_target_size(160, 192));
}

TEST_CASE("dataset: threshold mode rejects a non-binary mask and accepts a lossy JPEG mask") {
  DatasetDir d;
  save_png(d.image("soft.png"), photo(32, 32));
  Image soft(32, 32, 1);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x) soft.at(y, x, 0) = x / 31.0f;  // a ramp: half of it mid-grey
  save_png(d.mask("soft.png"), soft);
  const std::string message = error_of([&] { FolderDataset(d.path, small(MaskMode::Threshold)); });
  MESSAGE(message);
  CHECK(message.find("soft.png") != std::string::npos);
  CHECK(message.find("not binary") != std::string::npos);

  DatasetDir j;
  const Image mask = box_mask(64, 64, 10, 40, 20, 50);
  save_png(j.image("lossy.png"), photo(64, 64));
  save_jpeg(j.mask("lossy.jpg"), mask, 75);
  const Image decoded = to_grey(load_image(j.mask("lossy.jpg")));
  CHECK(std::any_of(decoded.data.begin(), decoded.data.end(),
                    [](float v) { return v > 0.02f && v < 0.98f; }));  // really lossy
  DatasetOptions o = small(MaskMode::Threshold);
  o.height = o.width = 64;
  FolderDataset ds(j.path, o);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].mask.data()[0] == 0.0f);
  std::size_t differing = 0;
  for (std::size_t p = 0; p < mask.data.size(); ++p) differing += ds[0].mask[p] != mask.data[p];
  CHECK(differing <= 8);
}

TEST_CASE("dataset: painted_white mode reads a photo with white paint, drops empty masks") {
  DatasetDir d;
  const Image img = photo(32, 32, 5);
  save_png(d.image("painted.png"), img);
  Image painted = img;
  for (int y = 8; y < 16; ++y)
    for (int x = 4; x < 20; ++x)
      for (int k = 0; k < 3; ++k) painted.at(y, x, k) = 1.0f;
  save_png(d.mask("painted.png"), painted);
  save_png(d.image("unpainted.png"), photo(32, 32, 6));
  save_png(d.mask("unpainted.png"), photo(32, 32, 6));

  for (MaskMode mode : {MaskMode::PaintedWhite, MaskMode::Auto}) {
    CAPTURE(to_string(mode));
    FolderDataset ds(d.path, small(mode));
    CHECK(ds.mask_mode() == MaskMode::PaintedWhite);
    REQUIRE(ds.size() == 1);
    CHECK(ds.pairs_found() == 2);
    CHECK(ds.dropped_empty() == std::vector<std::string>{"unpainted.png"});
    CHECK(ds.summary().find("1 empty mask dropped") != std::string::npos);
    const Tensor<Cpu>& m = ds[0].mask;
    float sum = 0;
    for (float v : m) sum += v;
    CHECK(sum == 8.0f * 16.0f);
    CHECK(m.at(0, 0, 8, 4) == 1.0f);
    CHECK(m.at(0, 0, 7, 4) == 0.0f);
  }

  // In threshold mode the same photo masks are rejected as not binary.
  CHECK_THROWS_AS(FolderDataset(d.path, small(MaskMode::Threshold)), FormatError);
}

TEST_CASE("dataset: threshold mode keeps empty masks") {
  DatasetDir d;
  save_png(d.image("none.png"), photo(32, 32));
  save_png(d.mask("none.png"), Image(32, 32, 1));
  FolderDataset ds(d.path, small(MaskMode::Auto));
  CHECK(ds.mask_mode() == MaskMode::Threshold);
  CHECK(ds.size() == 1);
  CHECK(ds.dropped_empty().empty());
}

TEST_CASE("dataset: auto mode picks per dataset") {
  // Binary masks, some lossy JPEG, some with a stray photo-like mask: threshold.
  DatasetDir bin;
  for (int i = 0; i < 5; ++i) {
    save_png(bin.image(str_cat("b", i, ".png")), photo(48, 48, i));
    const Image m = box_mask(48, 48, 4 * i, 4 * i + 12, 8, 30);
    if (i % 2)
      save_jpeg(bin.mask(str_cat("b", i, ".jpg")), m, 80);
    else
      save_png(bin.mask(str_cat("b", i, ".png")), m);
  }
  FolderDataset b(bin.path, small());
  CHECK(b.mask_mode() == MaskMode::Threshold);
  CHECK(b.photo_like_masks() == 0);
  CHECK(b.size() == 5);

  // Photos with white paint: painted_white.
  DatasetDir pw;
  for (int i = 0; i < 4; ++i) {
    Image img = photo(48, 48, i);
    save_png(pw.image(str_cat("p", i, ".png")), img);
    for (int y = 5; y < 15; ++y)
      for (int x = 5 + i; x < 20 + i; ++x)
        for (int k = 0; k < 3; ++k) img.at(y, x, k) = 1.0f;
    save_png(pw.mask(str_cat("p", i, ".png")), img);
  }
  FolderDataset p(pw.path, small());
  CHECK(p.mask_mode() == MaskMode::PaintedWhite);
  CHECK(p.photo_like_masks() == 4);
  CHECK(p.size() == 4);
  MESSAGE(b.summary());
  MESSAGE(p.summary());
}

TEST_CASE("dataset: portrait images are rotated with their masks") {
  DatasetDir d;
  Image img(32, 16, 3, 0.2f);  // portrait: 16 wide, 32 tall
  img.at(0, 15, 0) = 1.0f;     // top-right marker
  save_png(d.image("tall.png"), img);
  save_png(d.mask("tall.png"), box_mask(32, 16, 0, 4, 12, 16));  // top-right block
  DatasetOptions o = small(MaskMode::Threshold);
  o.height = 16;
  o.width = 32;
  o.rotate_portrait = true;
  FolderDataset ds(d.path, o);
  REQUIRE(ds.size() == 1);
  CHECK(ds[0].rotated);
  CHECK(ds[0].source_height == 32);
  CHECK(ds[0].source_width == 16);
  // Counter-clockwise: the top-right corner moves to the top-left.
  CHECK(ds[0].image.at(0, 0, 0, 0) == doctest::Approx(1.0f));
  CHECK(ds[0].mask.at(0, 0, 0, 0) == 1.0f);
  CHECK(ds[0].mask.at(0, 0, 3, 3) == 1.0f);
  CHECK(ds[0].mask.at(0, 0, 4, 0) == 0.0f);
  CHECK(ds[0].mask.at(0, 0, 0, 4) == 0.0f);

  o.rotate_portrait = false;
  o.height = 32;
  o.width = 16;
  FolderDataset plain(d.path, o);
  CHECK(!plain[0].rotated);
  CHECK(plain[0].mask.at(0, 0, 0, 15) == 1.0f);
}

TEST_CASE("dataset: the fingernail datasets (when present)") {
  const fs::path root = fs::path(UNETSRNN_SOURCE_DIR) / ".." / "shared" / "data" / "fingernails";
  if (!fs::is_directory(root / "dataset1") || !fs::is_directory(root / "dataset2")) {
    MESSAGE("fingernail data not found at ", root.string(), ": real-data checks skipped");
    return;
  }
  DatasetOptions o;  // 160 x 192, auto
  FolderDataset d1(root / "dataset1", o);
  MESSAGE(d1.summary());
  CHECK(d1.mask_mode() == MaskMode::PaintedWhite);
  CHECK(d1.pairs_found() == 174);
  CHECK(d1.size() + d1.dropped_empty().size() == 174);
  CHECK(d1.size() >= 170);

  o.rotate_portrait = true;
  FolderDataset d2(root / "dataset2", o);
  MESSAGE(d2.summary());
  CHECK(d2.mask_mode() == MaskMode::Threshold);
  CHECK(d2.size() == 47);
  CHECK(d2.photo_like_masks() == 0);
  std::size_t rotated = 0;
  for (const Sample& s : d2.samples()) {
    rotated += s.rotated;
    CHECK(std::any_of(s.mask.begin(), s.mask.end(), [](float v) { return v > 0; }));
  }
  MESSAGE("dataset2: ", rotated, " portrait pairs rotated");
  CHECK(rotated > 0);

  // The D1+D2 protocol.
  const Split split = split_datasets({d1.size(), d2.size()}, 0.2, 42, 0.1);
  CHECK(split.train.size() + split.val.size() + split.test.size() == d1.size() + d2.size());
  MESSAGE("D1+D2 split (test 0.2, val 0.1): train ", split.train.size(), ", val ", split.val.size(),
          ", test ", split.test.size());
}

// ---------------------------------------------------------------------------------------------
namespace {

void check_partition(const Split& s, std::size_t count) {
  std::vector<std::size_t> all;
  for (const auto* part : {&s.train, &s.val, &s.test}) {
    CHECK(std::is_sorted(part->begin(), part->end()));
    all.insert(all.end(), part->begin(), part->end());
  }
  std::sort(all.begin(), all.end());
  std::vector<std::size_t> expected(count);
  for (std::size_t i = 0; i < count; ++i) expected[i] = i;
  CHECK(all == expected);  // disjoint and complete
}

}  // namespace

TEST_CASE("splits: seeded, disjoint, sized by ceil") {
  const Split a = split_indices(100, 0.2, 7, 0.1);
  check_partition(a, 100);
  CHECK(a.test.size() == 20);
  CHECK(a.val.size() == 8);
  CHECK(a.train.size() == 72);
  const Split again = split_indices(100, 0.2, 7, 0.1);
  CHECK(again.train == a.train);
  CHECK(again.val == a.val);
  CHECK(again.test == a.test);
  const Split other = split_indices(100, 0.2, 8, 0.1);
  CHECK(other.test != a.test);
  // Changing the validation fraction does not move the test part.
  CHECK(split_indices(100, 0.2, 7, 0.0).test == a.test);
  CHECK(split_indices(174, 0.2, 1).test.size() == 35);  // ceil(34.8)
  CHECK_THROWS_AS(split_indices(10, 1.0, 1), std::invalid_argument);
  CHECK_THROWS_AS(split_indices(10, 0.2, 1, -0.1), std::invalid_argument);
  CHECK_THROWS_AS(split_indices(1, 0.5, 1), std::invalid_argument);  // nothing left to train
}

TEST_CASE("splits: D1+D2 splits each dataset then concatenates") {
  const Split d1 = split_indices(30, 0.2, 3, 0.1), d2 = split_indices(12, 0.2, 3, 0.1);
  const Split both = split_datasets({30, 12}, 0.2, 3, 0.1);
  check_partition(both, 42);
  std::vector<std::size_t> expected_test = d1.test;
  for (std::size_t i : d2.test) expected_test.push_back(i + 30);
  CHECK(both.test == expected_test);
  CHECK(both.train.size() == d1.train.size() + d2.train.size());
  CHECK(both.val.size() == d1.val.size() + d2.val.size());
  // Each dataset keeps its share of the test part.
  CHECK(std::count_if(both.test.begin(), both.test.end(), [](std::size_t i) { return i >= 30; }) ==
        3);
}

TEST_CASE("splits: k-fold tests every index exactly once") {
  const std::vector<Split> folds = kfold_splits(23, 5, 11, 0.1);
  REQUIRE(folds.size() == 5);
  std::vector<int> tested(23, 0);
  for (const Split& f : folds) {
    check_partition(f, 23);
    CHECK(f.test.size() >= 4);
    CHECK(f.test.size() <= 5);
    for (std::size_t i : f.test) ++tested[i];
  }
  CHECK(std::all_of(tested.begin(), tested.end(), [](int n) { return n == 1; }));
  CHECK(kfold_splits(23, 5, 11, 0.1)[2].test == folds[2].test);
  CHECK_THROWS_AS(kfold_splits(3, 5, 1), std::invalid_argument);
  CHECK_THROWS_AS(kfold_splits(10, 1, 1), std::invalid_argument);

  const std::vector<Split> multi = kfold_splits_datasets({10, 7}, 3, 2);
  std::vector<int> seen(17, 0);
  for (const Split& f : multi) {
    check_partition(f, 17);
    for (std::size_t i : f.test) ++seen[i];
  }
  CHECK(std::all_of(seen.begin(), seen.end(), [](int n) { return n == 1; }));
}

TEST_CASE("splits: write_split / read_split round trip") {
  TempDir dir;
  std::vector<Sample> samples(7);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    samples[i].dataset = i < 4 ? "dataset1" : "dataset 2";
    samples[i].name = str_cat("img ", i, i % 2 ? ".png" : ".jpg");
  }
  const Split split = split_datasets({4, 3}, 0.25, 9, 0.3);
  write_split(dir / "split.txt", split, samples, "seed 9\nD1+D2");
  const std::string text = slurp(dir / "split.txt");
  CHECK(text.find("# seed 9") != std::string::npos);
  CHECK(text.find("dataset 2\timg 5.png") != std::string::npos);
  const std::vector<SplitEntry> entries = read_split(dir / "split.txt");
  CHECK(entries.size() == 7);
  const Split back = resolve_split(entries, samples);
  CHECK(back.train == split.train);
  CHECK(back.val == split.val);
  CHECK(back.test == split.test);

  write_bytes(dir / "bad.txt", "train\tdataset1\n");
  CHECK(error_of([&] { read_split(dir / "bad.txt"); }).find("line 1") != std::string::npos);
  write_bytes(dir / "role.txt", "# ok\ntrian\tdataset1\timg 0.jpg\n");
  CHECK(error_of([&] { read_split(dir / "role.txt"); }).find("trian") != std::string::npos);
  std::vector<SplitEntry> unknown = {{"train", "dataset1", "nope.png"}};
  CHECK(error_of([&] { resolve_split(unknown, samples); }).find("nope.png") != std::string::npos);
  std::vector<SplitEntry> twice = {entries[0], entries[0]};
  CHECK_THROWS_AS(resolve_split(twice, samples), FormatError);
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("loader: yields every batch in order, the last one partial") {
  const std::vector<Sample> samples = generate_synthetic(7, 16, 32, 5);
  const std::vector<std::size_t> order = {6, 2, 0, 5, 1, 3, 4};
  LoaderOptions o;
  o.batch_size = 3;
  BatchLoader loader(samples, order, o);
  CHECK(loader.batch_count() == 3);
  std::vector<std::size_t> served;
  Batch batch;
  std::size_t number = 0;
  while (loader.next(batch)) {
    CHECK(batch.number == number++);
    const int n = batch.images.shape().n;
    CHECK(n == (number == 3 ? 1 : 3));
    CHECK(batch.images.shape() == Shape{n, 3, 16, 32});
    CHECK(batch.masks.shape() == Shape{n, 1, 16, 32});
    for (int i = 0; i < n; ++i) {
      const Sample& s = samples[batch.indices[static_cast<std::size_t>(i)]];
      CHECK(std::equal(s.image.begin(), s.image.end(), batch.images.view().image(i)));
      CHECK(std::equal(s.mask.begin(), s.mask.end(), batch.masks.view().image(i)));
    }
    served.insert(served.end(), batch.indices.begin(), batch.indices.end());
  }
  CHECK(served == order);
  CHECK(!loader.next(batch));  // stays finished

  o.drop_last = true;
  BatchLoader dropping(samples, order, o);
  CHECK(dropping.batch_count() == 2);
  int count = 0;
  while (dropping.next(batch)) ++count;
  CHECK(count == 2);
}

TEST_CASE("loader: rethrows a loader-side error after the batches before it") {
  const std::vector<Sample> samples = generate_synthetic(6, 16, 16, 1);
  LoaderOptions o;
  o.batch_size = 2;
  o.prepare = [](Batch& b) {
    if (b.number == 1) throw std::runtime_error("decoder exploded on batch 1");
  };
  BatchLoader loader(samples, {0, 1, 2, 3, 4, 5}, o);
  Batch batch;
  CHECK(loader.next(batch));
  CHECK(batch.number == 0);
  CHECK(error_of([&] { loader.next(batch); }) == "decoder exploded on batch 1");
  CHECK(!loader.next(batch));

  // A sample of another size is a loader-side error too.
  std::vector<Sample> mixed = generate_synthetic(2, 16, 16, 1);
  mixed.push_back(generate_synthetic_sample(0, 32, 16, 1));
  BatchLoader bad(mixed, {0, 1, 2}, LoaderOptions{3, false, {}, 0, {}});
  CHECK_THROWS_AS(bad.next(batch), std::invalid_argument);

  CHECK_THROWS_AS(BatchLoader(samples, {0, 9}), std::invalid_argument);
}

TEST_CASE("loader: stops cleanly when abandoned early") {
  const std::vector<Sample> samples = generate_synthetic(8, 16, 16, 2);
  std::vector<std::size_t> order(8);
  for (std::size_t i = 0; i < 8; ++i) order[i] = i;
  for (int round = 0; round < 20; ++round) {
    LoaderOptions o;
    o.batch_size = 1;
    BatchLoader loader(samples, order, o);
    Batch batch;
    if (round % 2) CHECK(loader.next(batch));
  }  // destructor joins with batches still pending
}

TEST_CASE("augmentation: seeded, geometric transforms shared by image and mask") {
  const std::vector<Sample> samples = generate_synthetic(6, 32, 32, 4);
  std::vector<std::size_t> order = {0, 1, 2, 3, 4, 5};
  auto run = [&](std::uint64_t seed, bool enabled) {
    LoaderOptions o;
    o.batch_size = 6;
    o.seed = seed;
    o.augmentation.enabled = enabled;
    BatchLoader loader(samples, order, o);
    Batch b;
    REQUIRE(loader.next(b));
    return b;
  };
  const Batch a = run(1, true), again = run(1, true), other = run(2, true), plain = run(1, false);
  CHECK(std::equal(a.images.begin(), a.images.end(), again.images.begin()));
  CHECK(!std::equal(a.images.begin(), a.images.end(), other.images.begin()));
  for (int i = 0; i < 6; ++i) {  // augmentation off: the samples unchanged
    const Tensor<Cpu>& original = samples[static_cast<std::size_t>(i)].image;
    CHECK(std::equal(original.begin(), original.end(), plain.images.view().image(i)));
  }
  bool some_changed = false;
  for (int i = 0; i < 6; ++i) {
    const Sample& s = samples[static_cast<std::size_t>(i)];
    const float* m = a.masks.view().image(i);
    const float fg_before = std::accumulate(s.mask.begin(), s.mask.end(), 0.0f);
    const float fg_after = std::accumulate(m, m + 32 * 32, 0.0f);
    CHECK(fg_before == fg_after);  // flips / rotations only permute pixels
    some_changed |= !std::equal(s.mask.begin(), s.mask.end(), m);
    const float* img = a.images.view().image(i);
    CHECK(std::all_of(img, img + 3 * 32 * 32, [](float v) { return v >= 0 && v <= 1; }));
  }
  CHECK(some_changed);

  // Flip + photometric off: exactly a mirror image.
  Tensor<Cpu> img = samples[0].image, mask = samples[0].mask;
  Augmentation flip_only;
  flip_only.enabled = true;
  flip_only.rotations = false;
  flip_only.brightness = flip_only.contrast = 0;
  Rng rng(3);
  augment(img.view(), mask.view(), 0, flip_only, rng);
  std::multiset<float> before(samples[0].image.begin(), samples[0].image.end());
  std::multiset<float> after(img.begin(), img.end());
  CHECK(before == after);
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("synthetic: deterministic per seed, masks non-empty, independent of count") {
  const std::vector<Sample> a = generate_synthetic(6, 48, 64, 123);
  const std::vector<Sample> b = generate_synthetic(6, 48, 64, 123);
  const std::vector<Sample> c = generate_synthetic(6, 48, 64, 124);
  const std::vector<Sample> more = generate_synthetic(9, 48, 64, 123);
  double total_fraction = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].image.shape() == Shape{1, 3, 48, 64});
    CHECK(a[i].mask.shape() == Shape{1, 1, 48, 64});
    CHECK(std::equal(a[i].image.begin(), a[i].image.end(), b[i].image.begin()));
    CHECK(std::equal(a[i].mask.begin(), a[i].mask.end(), b[i].mask.begin()));
    CHECK(std::equal(a[i].image.begin(), a[i].image.end(), more[i].image.begin()));
    CHECK(!std::equal(a[i].image.begin(), a[i].image.end(), c[i].image.begin()));
    const float fg = std::accumulate(a[i].mask.begin(), a[i].mask.end(), 0.0f);
    CHECK(fg > 0);
    CHECK(
        std::all_of(a[i].mask.begin(), a[i].mask.end(), [](float v) { return v == 0 || v == 1; }));
    CHECK(std::all_of(a[i].image.begin(), a[i].image.end(),
                      [](float v) { return v >= 0 && v <= 1; }));
    total_fraction += fg / (48.0 * 64.0);
  }
  MESSAGE("mean nail fraction: ", total_fraction / a.size());
  CHECK(a[0].name == "synth_00000.png");
  CHECK(a[0].dataset == "synthetic");
  CHECK_THROWS_AS(generate_synthetic(1, 8, 64, 1), std::invalid_argument);
}

TEST_CASE("synthetic: written folders load back through FolderDataset") {
  TempDir dir;
  write_synthetic(dir.path, 4, 32, 48, 77);
  const std::vector<Sample> direct = generate_synthetic(4, 32, 48, 77);
  DatasetOptions o;
  o.height = 32;
  o.width = 48;
  FolderDataset ds(dir.path, o);
  CHECK(ds.mask_mode() == MaskMode::Threshold);
  REQUIRE(ds.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(ds[i].name == direct[i].name);
    CHECK(std::equal(ds[i].mask.begin(), ds[i].mask.end(), direct[i].mask.begin()));
    float worst = 0;
    for (std::size_t k = 0; k < direct[i].image.size(); ++k)
      worst = std::max(worst, std::abs(ds[i].image[k] - direct[i].image[k]));
    CHECK(worst <= 0.5f / 255 + 1e-6f);
  }
}

// Library side of issue 10: the run-folder lock, stale temporary files, run fingerprints, the
// checkpoint and log readers, EXIF orientation and bounded decoding, and a training that diverges
// keeping its last good checkpoint.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "app/training_log.hpp"
#include "test_support.hpp"
#include "unetsrnn/data/synthetic.hpp"
#include "unetsrnn/io/image.hpp"
#include "unetsrnn/io/run_folder.hpp"
#include "unetsrnn/io/weights.hpp"
#include "unetsrnn/models/factory.hpp"
#include "unetsrnn/train/checkpoint.hpp"
#include "unetsrnn/train/trainer.hpp"

using namespace unetsrnn;
using namespace test_support;
namespace fs = std::filesystem;

namespace {

// Runs fn in a child process; its exit code (fn's return value), or 128 + signal.
template <class Fn>
int in_child(Fn&& fn) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// An image with a distinct value in every sample.
Image numbered(int h, int w, int c) {
  Image img(h, w, c);
  for (std::size_t i = 0; i < img.data.size(); ++i)
    img.data[i] = static_cast<float>((i * 37) % 251) / 255.0f;
  return img;
}

Image flip(const Image& src, bool horizontal) {
  Image dst(src.height, src.width, src.channels);
  for (int y = 0; y < src.height; ++y)
    for (int x = 0; x < src.width; ++x)
      for (int k = 0; k < src.channels; ++k)
        dst.at(y, x, k) =
            horizontal ? src.at(y, src.width - 1 - x, k) : src.at(src.height - 1 - y, x, k);
  return dst;
}

// EXIF orientation `o` applied the literal way (TIFF 6.0 / EXIF 2.3: where row 0 and column 0
// of the stored image are displayed).
Image reference_orientation(const Image& s, int o) {
  switch (o) {
    case 2:
      return flip(s, true);  // row 0 top, column 0 right
    case 3:
      return rotate90(s, 2);  // bottom, right
    case 4:
      return flip(s, false);  // bottom, left
    case 5:
      return rotate90(flip(s, true), 1);  // left, top: the transpose
    case 6:
      return rotate90(s, -1);  // right, top: 90 degrees clockwise
    case 7:
      return rotate90(flip(s, true), -1);  // right, bottom: the anti-transpose
    case 8:
      return rotate90(s, 1);  // left, bottom: 90 counter-clockwise
    default:
      return s;
  }
}

std::string be16(unsigned v) { return {static_cast<char>(v >> 8), static_cast<char>(v)}; }
std::string le16(unsigned v) { return {static_cast<char>(v), static_cast<char>(v >> 8)}; }

// An APP1 Exif segment holding `entries` IFD0 entries (the last one the orientation).
std::string exif_segment(int orientation, bool little, int extra_entries = 0, unsigned type = 3) {
  auto u16 = [&](unsigned v) { return little ? le16(v) : be16(v); };
  auto u32 = [&](std::uint32_t v) {
    return little ? le16(v & 0xFFFF) + le16(v >> 16) : be16(v >> 16) + be16(v & 0xFFFF);
  };
  std::string tiff = std::string(little ? "II" : "MM") + u16(42) + u32(8);
  tiff += u16(static_cast<unsigned>(extra_entries + 1));
  for (int e = 0; e < extra_entries; ++e) tiff += u16(0x010F) + u16(2) + u32(4) + u32(0);
  tiff += u16(0x0112) + u16(type) + u32(1) + u16(static_cast<unsigned>(orientation)) + u16(0);
  tiff += u32(0);
  const std::string payload = std::string("Exif\0\0", 6) + tiff;
  return "\xff\xe1" + be16(static_cast<unsigned>(payload.size() + 2)) + payload;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
TEST_CASE("EXIF: the orientation tag is read from either byte order, anything odd reads as 1") {
  const std::string jpeg = encode_jpeg(numbered(4, 6, 3));
  auto with = [&](const std::string& segment) {
    return jpeg.substr(0, 2) + segment + jpeg.substr(2);
  };
  auto read = [](const std::string& bytes) {
    return jpeg_exif_orientation(reinterpret_cast<const unsigned char*>(bytes.data()),
                                 bytes.size());
  };
  CHECK(read(jpeg) == 1);
  for (int o = 1; o <= 8; ++o) {
    CHECK(read(with(exif_segment(o, true))) == o);
    CHECK(read(with(exif_segment(o, false, 3))) == o);
  }
  CHECK(read(with(exif_segment(9, true))) == 1);        // out of range
  CHECK(read(with(exif_segment(6, true, 0, 4))) == 1);  // not a SHORT
  const std::string segment = exif_segment(6, false);
  // Truncated anywhere: no crash; 6 only once the whole entry is there (4 marker and length, 6
  // "Exif\0\0", 8 TIFF header, 2 entry count, 10 of the entry).
  for (std::size_t cut = 0; cut < segment.size(); ++cut) {
    const int o = read(jpeg.substr(0, 2) + segment.substr(0, cut));
    CHECK((o == 1 || (o == 6 && cut >= 30)));
  }
  std::string far_ifd = with(segment);
  far_ifd[2 + 2 + 2 + 6 + 4] = '\x7f';  // the IFD offset (big-endian) far beyond the segment
  CHECK(read(far_ifd) == 1);
  CHECK(read("\xff\xd8") == 1);
  CHECK(read("") == 1);
}

TEST_CASE("EXIF: every orientation as a view equals the literal transform, and JPEGs load so") {
  const Image stored = numbered(5, 7, 3);
  const std::string png = encode_png(stored);
  const DecodedImage decoded =
      decode_pixels(reinterpret_cast<const unsigned char*>(png.data()), png.size(), "numbered.png");
  for (int o = 1; o <= 8; ++o) {
    INFO("orientation ", o);
    const Image expected = reference_orientation(decoded.to_image(), o);
    const DecodedImage view = decoded.oriented(o);
    CHECK(view.width() == expected.width);
    CHECK(view.height() == expected.height);
    CHECK(view.to_image().data == expected.data);
    // Views compose: the portrait rotation on top of an orientation.
    CHECK(view.rotated90().to_image().data == rotate90(expected, 1).data);
  }

  // A JPEG, left half dark and right half light, stored 48 x 32 with orientation 6: displayed
  // 32 x 48, the dark half on top.
  Image halves(32, 48, 3, 0.1f);
  for (int y = 0; y < 32; ++y)
    for (int x = 24; x < 48; ++x)
      for (int k = 0; k < 3; ++k) halves.at(y, x, k) = 0.9f;
  const std::string jpeg = encode_jpeg(halves);
  const std::string oriented = jpeg.substr(0, 2) + exif_segment(6, false) + jpeg.substr(2);
  const Image shown = decode_image(reinterpret_cast<const unsigned char*>(oriented.data()),
                                   oriented.size(), "turned.jpg");
  REQUIRE(shown.width == 32);
  REQUIRE(shown.height == 48);
  CHECK(shown.at(5, 16, 0) < 0.3f);
  CHECK(shown.at(42, 16, 0) > 0.7f);
  DecodeOptions as_stored;
  as_stored.exif_orientation = false;
  CHECK(decode_image(reinterpret_cast<const unsigned char*>(oriented.data()), oriented.size(),
                     "turned.jpg", 3, as_stored)
            .width == 48);
}

TEST_CASE("decoded views resize exactly as rotate90 + resize_bilinear of the float image") {
  for (bool sixteen : {false, true}) {
    INFO((sixteen ? "16-bit" : "8-bit"));
    std::string file;
    if (sixteen) {
      // A 16-bit PNG: stb decodes PNM 16-bit too; use a P6 PNM with maxval 65535.
      const int w = 37, h = 23;
      file = str_cat("P6\n", w, " ", h, "\n65535\n");
      for (int i = 0; i < w * h * 3; ++i) {
        const unsigned v = static_cast<unsigned>((i * 7919) % 65536);
        file += {static_cast<char>(v >> 8), static_cast<char>(v & 0xFF)};
      }
    } else {
      file = encode_png(numbered(23, 37, 3));
    }
    const DecodedImage d =
        decode_pixels(reinterpret_cast<const unsigned char*>(file.data()), file.size(), "x");
    CHECK(d.sixteen_bit() == sixteen);
    const Image whole = d.to_image();
    for (auto [h, w] : {std::pair{16, 32}, std::pair{48, 64}, std::pair{7, 5}}) {
      CHECK(resize_bilinear(d, h, w).data == resize_bilinear(whole, h, w).data);
      CHECK(resize_bilinear(d.rotated90(), h, w).data ==
            resize_bilinear(rotate90(whole, 1), h, w).data);
    }
  }
}

TEST_CASE("16-bit PNM: big-endian samples, channels converted as stb 2.28 does (2.27 did not)") {
  const std::string p6 = std::string("P6\n2 1\n65535\n") +
                         std::string("\x10\x00\x80\x00\xff\xff", 6) +
                         std::string("\x00\x01\x00\x02\x00\x03", 6);
  const std::string p5 = std::string("P5\n2 1\n65535\n") + std::string("\x12\x34\xab\xcd", 4);
  auto decode = [](const std::string& file, int channels) {
    return decode_pixels(reinterpret_cast<const unsigned char*>(file.data()), file.size(), "x.pnm",
                         channels);
  };
  const DecodedImage grey = decode(p6, 1);
  REQUIRE(grey.channels() == 1);
  CHECK(grey.at(0, 0, 0) == ((0x1000 * 77 + 0x8000 * 150 + 0xffff * 29) >> 8) / 65535.0f);
  CHECK(grey.at(0, 1, 0) == ((1 * 77 + 2 * 150 + 3 * 29) >> 8) / 65535.0f);
  const DecodedImage rgba = decode(p6, 4);
  CHECK(rgba.at(0, 1, 2) == 3 / 65535.0f);
  CHECK(rgba.at(0, 1, 3) == 1.0f);
  const DecodedImage rgb = decode(p5, 3);
  REQUIRE(rgb.channels() == 3);
  for (int k = 0; k < 3; ++k) {
    CHECK(rgb.at(0, 0, k) == 0x1234 / 65535.0f);
    CHECK(rgb.at(0, 1, k) == 0xabcd / 65535.0f);
  }
  const DecodedImage grey_alpha = decode(p5, 2);
  CHECK(grey_alpha.at(0, 1, 0) == 0xabcd / 65535.0f);
  CHECK(grey_alpha.at(0, 1, 1) == 1.0f);
  CHECK(decode(p5, 0).at(0, 0, 0) == 0x1234 / 65535.0f);
  // Truncated pixel data is refused (stb 2.27 would return uninitialised samples).
  CHECK(contains(error_of([&] { decode("P5\n2147483648 1\n255\n", 1); }),
                 "corrupt PNM header: a number larger than 2147483647"));
  for (const std::string& cut :
       {p5.substr(0, p5.size() - 1), p6.substr(0, 14), std::string("P5\n1 1\n255\n")})
    CHECK(contains(error_of([&] { decode(cut, 3); }), "truncated PNM"));
}

TEST_CASE("JPEGs that would make stb 2.27 write out of bounds are refused before decoding") {
  // A DHT segment whose table declares 300 codes (stb's table holds 256).
  std::string dht = "\xff\xc4" + be16(2 + 17 + 300) + std::string(1, '\x00');
  for (int i = 0; i < 16; ++i) dht += static_cast<char>(i < 15 ? 20 : 0);
  dht += std::string(300, '\x01');
  const std::string jpeg = encode_jpeg(numbered(8, 8, 3));
  for (const std::string& soi : {std::string("\xff\xd8"), std::string("\xff\xff\xff\xd8")}) {
    const std::string bad = soi + dht + jpeg.substr(2);
    CHECK(contains(error_of([&] {
                     decode_pixels(reinterpret_cast<const unsigned char*>(bad.data()), bad.size(),
                                   "huffman.jpg");
                   }),
                   "cannot decode image 'huffman.jpg': corrupt JPEG: a Huffman table with 300 "
                   "codes (at most 256)"));
  }
  // The same table after the image data of a scan (progressive JPEGs have tables between scans).
  const std::string late = jpeg.substr(0, jpeg.size() - 2) + dht + "\xff\xd9";
  CHECK_THROWS_AS(
      decode_pixels(reinterpret_cast<const unsigned char*>(late.data()), late.size(), "late.jpg"),
      FormatError);
  CHECK_NOTHROW(
      decode_pixels(reinterpret_cast<const unsigned char*>(jpeg.data()), jpeg.size(), "fine.jpg"));
  // A scan whose first component decodes with AC table 2, which no DHT defines (stb would read
  // its uninitialised table).
  const std::size_t sos = jpeg.find("\xff\xda");
  REQUIRE(sos != std::string::npos);
  std::string undefined = jpeg;
  undefined[sos + 6] = static_cast<char>((undefined[sos + 6] & 0xF0) | 2);
  CHECK(contains(error_of([&] {
                   decode_pixels(reinterpret_cast<const unsigned char*>(undefined.data()),
                                 undefined.size(), "scan.jpg");
                 }),
                 "cannot decode image 'scan.jpg': corrupt JPEG: a scan uses the AC Huffman table "
                 "2, which no table before it defines"));
}

TEST_CASE("the pixel limit is checked from the header, before decoding") {
  // IHDR of a huge RGB PNG and nothing decodable behind it.
  auto be32 = [](std::uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  auto bomb = [&](std::uint32_t side) {
    const std::string ihdr =
        "IHDR" + be32(side) + be32(side) + std::string{'\x08', '\x02', 0, 0, 0};
    const std::string png = std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + ihdr +
                            be32(crc32(ihdr)) + be32(0) + "IEND" + be32(crc32("IEND"));
    return error_of([&] {
      decode_pixels(reinterpret_cast<const unsigned char*>(png.data()), png.size(), "bomb.png");
    });
  };
  const std::string message = bomb(16000);
  CHECK(contains(message, "'bomb.png' is 16000x16000 pixels (256 megapixels)"));
  CHECK(contains(message, "limit of 50 megapixels"));
  // Beyond 2^30 bytes stb's own header check refuses first.
  CHECK(contains(bomb(100000), "cannot decode image 'bomb.png': "));
  DecodeOptions tiny;
  tiny.max_pixels = 10;
  const std::string small = encode_png(numbered(4, 4, 3));
  CHECK(contains(error_of([&] {
                   decode_pixels(reinterpret_cast<const unsigned char*>(small.data()), small.size(),
                                 "s.png", 3, tiny);
                 }),
                 "limit of 1e-05 megapixels"));
  tiny.max_pixels = 16;
  CHECK(decode_pixels(reinterpret_cast<const unsigned char*>(small.data()), small.size(), "s.png",
                      3, tiny)
            .pixels() == 16);
}

TEST_CASE("PNG encoding that fails (out of memory) names the file and the reason") {
  // In a child whose address space leaves no room for the encoder's 3 MB buffer.
  const int code = in_child([] {
    ByteImage big(1000, 1000, 3);
    std::ifstream statm("/proc/self/statm");
    unsigned long pages = 0;
    statm >> pages;
    const rlim_t now = static_cast<rlim_t>(pages) * static_cast<rlim_t>(sysconf(_SC_PAGESIZE));
    const rlimit limit{now + (2u << 20), RLIM_INFINITY};
    if (setrlimit(RLIMIT_AS, &limit) != 0) return 3;
    try {
      save_png("/tmp/unetsrnn_never_written.png", big);
    } catch (const std::exception& e) {
      const std::string m = e.what();
      return contains(m, "cannot write '/tmp/unetsrnn_never_written.png'") &&
                     contains(m, "out of memory")
                 ? 0
                 : 4;
    }
    return 5;
  });
  CHECK(code == 0);
  CHECK(!fs::exists("/tmp/unetsrnn_never_written.png"));
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("run folder: created, locked against other processes, shared within one, cleaned up") {
  TempDir tmp("lock");
  const fs::path dir = tmp.path / "a" / "b";
  {
    RunFolder first = RunFolder::open(dir);
    CHECK(fs::is_directory(dir));
    CHECK(slurp(dir / kRunFolderLockName) == str_cat(getpid(), "\n"));
    RunFolder again = RunFolder::open(tmp.path / "a" / "." / "b");  // same process: shared
    const fs::path sub = again.subfolder("ckpt");
    CHECK(fs::is_directory(sub));
    const pid_t parent = getpid();
    const int code = in_child([&] {
      try {
        RunFolder::open(dir);
      } catch (const std::runtime_error& e) {
        const std::string m = e.what();
        return contains(m, "output folder '" + dir.string() + "' is in use by process " +
                               std::to_string(parent))
                   ? 0
                   : 1;
      }
      return 2;
    });
    CHECK(code == 0);
  }
  CHECK(!fs::exists(tmp.path / "a"));  // all created here, all empty: removed again

  {
    RunFolder kept = RunFolder::open(dir);
    write_bytes(dir / "result.txt", "x");
    kept.subfolder("empty");
  }
  CHECK(fs::exists(dir / "result.txt"));
  CHECK(!fs::exists(dir / "empty"));
  CHECK(!fs::exists(dir / kRunFolderLockName));
  // After the holder has gone, another process can lock the folder.
  CHECK(in_child([&] {
          { RunFolder::open(dir); }
          return fs::exists(dir / kRunFolderLockName) ? 1 : 0;
        }) == 0);
  // A regular file where the folder should be.
  write_bytes(tmp.path / "file", "x");
  CHECK(contains(error_of([&] { RunFolder::open(tmp.path / "file" / "out"); }),
                 "output folder '" + (tmp.path / "file" / "out").string() + "' cannot be created"));
}

TEST_CASE("stale temporary files of ended processes are removed, others kept") {
  TempDir tmp("stale");
  const std::string dead = std::to_string(dead_pid());
  const std::string mine = std::to_string(getpid()), parent = std::to_string(getppid());
  for (const std::string& name :
       {"a.weights.tmp." + dead, "b.png.tmp." + mine, "c.txt.tmp." + parent,
        std::string("d.tmp.x12"), std::string("e.tmp."), std::string("keep.txt")})
    write_bytes(tmp.path / name, "x");
  CHECK(remove_stale_temp_files(tmp.path) == std::vector<std::string>{"a.weights.tmp." + dead});
  CHECK(!fs::exists(tmp.path / ("a.weights.tmp." + dead)));
  for (const std::string& name :
       {"b.png.tmp." + mine, "c.txt.tmp." + parent, std::string("d.tmp.x12"), std::string("e.tmp."),
        std::string("keep.txt")})
    CHECK_MESSAGE(fs::exists(tmp.path / name), name);
  // Opening a run folder does it.
  write_bytes(tmp.path / ("f.tmp." + dead), "x");
  RunFolder::open(tmp.path);
  CHECK(!fs::exists(tmp.path / ("f.tmp." + dead)));
}

// ---------------------------------------------------------------------------------------------
TEST_CASE("fingerprint: exact values, escaped text, differences listed by key") {
  RunFingerprint a;
  a.add("lr", 0.001).add("batch", 2).add("shuffle", true).add("odd=key\\", "two\nlines\tand\\");
  CHECK(a.entries()[0].second == "0.001");
  CHECK(a.entries()[2].second == "true");
  CHECK_THROWS_AS(a.add("lr", 1), std::invalid_argument);
  RunFingerprint back;
  const std::string text = a.serialise();
  for (const auto& line : train_detail::split_lines(text)) back.add_line(line, "f");
  CHECK(back == a);
  CHECK(a.differences(back).empty());

  RunFingerprint b;
  b.add("lr", 0.0010000000000000002).add("shuffle", true).add("seed", 3);
  const std::string diff = a.differences(b);
  CHECK(contains(diff, "lr: '0.001' in the checkpoint, '0.0010000000000000002' now"));
  CHECK(contains(diff, "batch: '2' in the checkpoint, absent now"));
  CHECK(contains(diff, "seed: absent in the checkpoint, '3' now"));
  CHECK(!contains(diff, "shuffle"));
  RunFingerprint many;
  for (int i = 0; i < 20; ++i) many.add(str_cat("k", i), i);
  CHECK(contains(RunFingerprint{}.differences(many), "; and 12 more"));
  RunFingerprint bad;
  CHECK(contains(error_of([&] { bad.add_line("no equals sign", "'c.txt' line 9"); }),
                 "'c.txt' line 9"));
  CHECK_THROWS_AS(bad.add_line("x=\\q", "f"), FormatError);
}

TEST_CASE("checkpoint.txt and log.csv: round trips, version 1, damage named by file and line") {
  CheckpointState s;
  s.model = "unet2d_lw";
  s.epoch = 7;
  s.best_dice = 0.1 + 0.2;
  s.best_epoch = 5;
  s.plateau = "ReduceLROnPlateau v1 0.8 3 1e-06 0.0001 0 0 0.5 1 0";
  s.fingerprint = RunFingerprint{};
  s.fingerprint->add("model", "unet2d_lw").add("data.1.image/a=b.png", 123);
  const std::string text = format_checkpoint(s);
  const CheckpointState back = parse_checkpoint(text, "ck.txt");
  CHECK(back.model == s.model);
  CHECK(back.epoch == 7);
  CHECK(back.best_dice == s.best_dice);  // exact
  CHECK(back.best_epoch == 5);
  CHECK(back.plateau == s.plateau);
  REQUIRE(back.fingerprint);
  CHECK(*back.fingerprint == *s.fingerprint);

  const CheckpointState v1 = parse_checkpoint(
      "unetsrnn checkpoint v1\nmodel m\nepoch 2\nbest_dice 0.5\nbest_epoch 1\n" + s.plateau + "\n",
      "old.txt");
  CHECK(v1.epoch == 2);
  CHECK(!v1.fingerprint);

  auto damage = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    t.replace(t.find(from), from.size(), to);
    return error_of([&] { parse_checkpoint(t, "ck.txt"); });
  };
  CHECK(contains(damage("epoch 7", "epoch seven"), "'ck.txt' line 3"));
  CHECK(contains(damage("epoch 7", "epoch 0"), "epoch must be"));
  CHECK(contains(damage("best_epoch 5", "best_epoch 9"), "best_epoch must be"));
  CHECK(contains(damage("best_dice", "best_dise"), "'ck.txt' line 4"));
  CHECK(contains(damage("fingerprint 2", "fingerprint 3"), "fingerprint should have 3 lines"));
  CHECK(contains(damage("unetsrnn checkpoint v2", "hello"), "is not a unetsrnn checkpoint"));
  CHECK(contains(error_of([&] { parse_checkpoint(text.substr(0, 40), "ck.txt"); }), "ck.txt"));

  const std::vector<EpochRecord> rows{{1, 0.5, 0.1, 0.6, 0.2, 1e-3, 1.5},
                                      {2, 0.4, 0.2, std::nan(""), 0.3, 1e-3, 1.5}};
  const std::string csv = app::log_csv(rows);
  const auto read = app::parse_log_csv(csv, "log.csv", 2);
  REQUIRE(read.size() == 2);
  CHECK(std::isnan(read[1].val_loss));
  CHECK(app::parse_log_csv(csv, "log.csv", 1).size() == 1);
  CHECK(contains(error_of([&] { app::parse_log_csv(csv, "log.csv", 3); }),
                 "has 2 epochs, the checkpoint needs 3"));
  std::string bad = csv;
  bad.replace(bad.find("0.4"), 3, "x.4");
  CHECK(contains(error_of([&] { app::parse_log_csv(bad, "log.csv", 2); }),
                 "'log.csv' line 3: 'x.4' is not a number"));
}

// ---------------------------------------------------------------------------------------------
namespace {

struct TinyRun {
  std::vector<Sample> samples = generate_synthetic(8, 32, 32, 3);
  Split split = split_indices(samples.size(), 0.25, 3, 0.0);
  TrainOptions options(const fs::path& out, int epochs) const {
    TrainOptions o;
    o.model = "unet2d_lw";
    o.epochs = epochs;
    o.batch = 2;
    o.out_dir = out;
    o.plateau = false;
    return o;
  }
};

}  // namespace

TEST_CASE("a training that diverges stops, keeping its last good checkpoint") {
  TempDir tmp("diverge");
  TinyRun data;
  const fs::path out = tmp.path / "run";
  auto model = make_model<Cpu>("unet2d_lw");
  Trainer<Cpu> trainer(data.options(out, 4), *model, data.samples, data.split);
  // The last step of epoch 2 turns a weight into NaN: the step's own loss was finite, the model
  // is not (only the validation, or the next batch, can tell).
  auto params = model->parameters();
  trainer.on_step = [&](const TrainStep& s) {
    if (s.epoch == 2 && s.batch == 2) params[3].param->value[0] = std::nanf("");
  };
  const std::string message = error_of([&] { trainer.run(); });
  CHECK(contains(message, "training diverged in epoch"));
  CHECK(contains(message, "keeps its last good checkpoint (epoch 1"));
  CHECK_THROWS_AS(
      [&] {
        auto again = make_model<Cpu>("unet2d_lw");
        TrainOptions o = data.options(tmp.path / "run2", 4);
        Trainer<Cpu> t(o, *again, data.samples, data.split);
        auto p = again->parameters();
        t.on_step = [&](const TrainStep&) { p[0].param->value[0] = INFINITY; };
        t.run();
      }(),
      TrainingDiverged);
  CHECK(!fs::exists(tmp.path / "run2"));  // diverged before any checkpoint: nothing left

  REQUIRE(parse_checkpoint(slurp(out / "checkpoint.txt"), "c").epoch == 1);
  auto good = make_model<Cpu>("unet2d_lw");
  load_weights(*good, out / "last.weights");  // finite, so it loads
  load_weights(*good, out / "ckpt" / "epoch-0001.weights");
  CHECK(!fs::exists(out / "ckpt" / "epoch-0002.weights"));
}

TEST_CASE("resuming with another fingerprint is refused, saying what differs") {
  TempDir tmp("fingerprint");
  TinyRun data;
  const fs::path out = tmp.path / "run";
  auto model = make_model<Cpu>("unet2d_lw");
  TrainOptions o = data.options(out, 1);
  o.fingerprint.add("data.1.image/a.png", 100);
  {
    Trainer<Cpu> t(o, *model, data.samples, data.split);
    t.run();
  }
  o.resume = true;
  o.epochs = 2;
  o.fingerprint = RunFingerprint{};
  o.fingerprint.add("data.1.image/a.png", 101);
  Trainer<Cpu> t(o, *model, data.samples, data.split);
  const std::string message = error_of([&] { t.run(); });
  CHECK(contains(message, "cannot resume the run in '" + out.string() + "'"));
  CHECK(contains(message, "data.1.image/a.png: '100' in the checkpoint, '101' now"));
  CHECK(parse_checkpoint(slurp(out / "checkpoint.txt"), "c").epoch == 1);  // untouched
}

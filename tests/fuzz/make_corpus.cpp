// Writes the fuzzers' seed corpus: small synthetic inputs of every kind each reader accepts (no
// real data). Usage: fuzz_make_corpus <folder> (normally tests/fuzz/corpus); it writes
// <folder>/{image,weights,optimiser_state,checkpoint}/<name>.
#include <stb_image_write.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "fuzz_targets.hpp"

namespace fs = std::filesystem;
using namespace unetsrnn;

namespace {

fs::path root;

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(root / target);
  std::ofstream(root / target / name, std::ios::binary) << bytes;
}

Image pattern(int h, int w, int c) {
  Image img(h, w, c);
  for (std::size_t i = 0; i < img.data.size(); ++i)
    img.data[i] = static_cast<float>((i * 53) % 256) / 255.0f;
  return img;
}

std::string bytes_of(const Image& image) {
  std::string out;
  for (float v : image.data) out += static_cast<char>(detail::to_byte(v));
  return out;
}

void append(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), size);
}

std::string be16(unsigned v) { return {static_cast<char>(v >> 8), static_cast<char>(v)}; }

std::string exif(int orientation) {
  std::string tiff = std::string("MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01", 18);
  tiff += std::string{'\0', static_cast<char>(orientation), '\0', '\0', '\0', '\0', '\0', '\0'};
  const std::string payload = std::string("Exif\0\0", 6) + tiff;
  return "\xff\xe1" + be16(static_cast<unsigned>(payload.size() + 2)) + payload;
}

void images() {
  put("image", "grey_1x1.png", encode_png(pattern(1, 1, 1)));
  put("image", "grey_alpha_3x2.png", encode_png(pattern(3, 2, 2)));
  put("image", "rgb_4x5.png", encode_png(pattern(4, 5, 3)));
  put("image", "rgba_2x3.png", encode_png(pattern(2, 3, 4)));
  const std::string jpeg = encode_jpeg(pattern(8, 12, 3), 80);
  put("image", "rgb_12x8.jpg", jpeg);
  put("image", "rgb_12x8_exif6.jpg", jpeg.substr(0, 2) + exif(6) + jpeg.substr(2));
  put("image", "grey_9x7.jpg", encode_jpeg(pattern(7, 9, 1), 60));
  for (auto [name, c] : {std::pair{"rgb_3x3.bmp", 3}, std::pair{"rgba_3x2.tga", 4}}) {
    const Image img = pattern(c == 3 ? 3 : 2, 3, c);
    const std::string raw = bytes_of(img);
    std::string out;
    if (c == 3)
      stbi_write_bmp_to_func(append, &out, img.width, img.height, c, raw.data());
    else
      stbi_write_tga_to_func(append, &out, img.width, img.height, c, raw.data());
    put("image", name, out);
  }
  std::string ppm = "P6\n3 2\n255\n" + bytes_of(pattern(2, 3, 3));
  put("image", "rgb_3x2.ppm", ppm);
  std::string pgm16 = "P5\n2 2\n65535\n";
  for (int i = 0; i < 4; ++i) pgm16 += be16(static_cast<unsigned>(i * 20000));
  put("image", "grey16_2x2.pgm", pgm16);
  // The classic 43-byte GIF89a: 1x1, a 2-colour palette, a graphic control block, one frame.
  const unsigned char gif[] = {0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80,
                               0x00, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x21, 0xf9, 0x04,
                               0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01,
                               0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};
  put("image", "palette_1x1.gif", std::string(reinterpret_cast<const char*>(gif), sizeof gif));
}

void weights() {
  unetsrnn_fuzz::FuzzModel model;
  for (std::size_t i = 0; i < model.weight.value.size(); ++i)
    model.weight.value[i] = 0.1f * static_cast<float>(i);
  model.bias.value[1] = -2.5f;
  const fs::path file = root / "weights" / "fuzz_net.weights";
  fs::create_directories(file.parent_path());
  save_weights(model, file);
  struct Other {
    Param<Cpu> w{Shape{1, 1, 1, 2}, Init::Zeros};
    std::string name() const { return "other"; }
    ParamList<Cpu> parameters() { return {{"w", &w}}; }
  } other;
  save_weights(other, root / "weights" / "other_model.weights");
}

void optimiser_states() {
  unetsrnn_fuzz::FuzzModel model;
  ParamList<Cpu> params = model.parameters();
  for (auto& p : params)
    for (float& g : p.param->grad) g = 0.5f;
  std::ostringstream fresh, adam_state, sgd_state;
  Adam<Cpu> adam;
  adam.save_state(fresh);
  put("optimiser_state", "adam_fresh.optim", fresh.str());
  adam.step(params);
  adam.save_state(adam_state);
  put("optimiser_state", "adam_1_step.optim", adam_state.str());
  Sgd<Cpu> sgd(SgdOptions{0.01, 0.9, 0.0});
  sgd.step(params);
  sgd.save_state(sgd_state);
  put("optimiser_state", "sgd_1_step.optim", sgd_state.str());
}

void checkpoints() {
  CheckpointState state;
  state.model = "unet2d_lw";
  state.epoch = 2;
  state.best_dice = 0.75;
  state.best_epoch = 1;
  std::ostringstream plateau;
  ReduceLROnPlateau(ReduceLROnPlateauOptions{0.8, 3, 1e-6, 1e-4, 0, false}).save_state(plateau);
  state.plateau = plateau.str().substr(0, plateau.str().size() - 1);
  RunFingerprint fp;
  fp.add("model", "unet2d_lw").add("lr", 0.001).add("data.1.image/a=b.png", 1234);
  fp.add("data.1.name", "two\nlines\\");
  state.fingerprint = fp;
  put("checkpoint", "checkpoint_v2.txt", format_checkpoint(state));
  state.fingerprint.reset();
  std::string v1 = format_checkpoint(state);
  v1.replace(v1.find("v2"), 2, "v1");
  v1 = v1.substr(0, v1.find("fingerprint"));
  put("checkpoint", "checkpoint_v1.txt", v1);
  put("checkpoint", "log.csv",
      app::log_csv({{1, 0.5, 0.1, 0.6, 0.2, 1e-3, 1.5},
                    {2, 0.4, 0.2, std::numeric_limits<double>::quiet_NaN(), 0.3, 1e-3, 1.25}}));
  std::ostringstream cosine;
  CosineSchedule(1e-3, 1e-5, 20).save_state(cosine);
  put("checkpoint", "cosine.txt", cosine.str());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus folder>\n", argv[0]);
    return 2;
  }
  root = argv[1];
  images();
  weights();
  optimiser_states();
  checkpoints();
  std::printf("seed corpus written to %s\n", root.string().c_str());
  return 0;
}

#pragma once
// A procedural, seeded segmentation dataset that stands in for fingernail photos where the real
// data is absent (tests, examples, benchmarks).
//
// Each image shows 1-5 fingers (shaded capsules in one of several skin tones, sometimes with a
// palm) on a textured background (noise, stripes, tiles or wood grain in random colours). Most
// fingers carry a nail: a rounded rectangle at the tip, oriented along the finger, either natural
// (lighter and pinker than the skin, whiter free edge, darker rim) or polished (red, pink, purple,
// dark, nude, ...), with a specular highlight. Distractors: fingers seen from the palm side (no
// nail), knuckle creases, and polish-coloured blobs and lines on the background. Then an
// illumination gradient, a colour cast and Gaussian noise. The mask is the visible nail area (a
// later finger occludes an earlier nail).
//
// Sample i depends only on (seed, i, H, W), not on `count`, so a larger set extends a smaller one.
// Every mask has foreground. The representation is FolderDataset's (see data/sample.hpp).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "unetsrnn/core/error.hpp"
#include "unetsrnn/core/rng.hpp"
#include "unetsrnn/data/dataset.hpp"
#include "unetsrnn/io/image.hpp"
#include "unetsrnn/tensor/tensor.hpp"

namespace unetsrnn {

namespace synth {

struct Vec2 {
  float x = 0, y = 0;
};
inline Vec2 operator+(Vec2 a, Vec2 b) { return {a.x + b.x, a.y + b.y}; }
inline Vec2 operator-(Vec2 a, Vec2 b) { return {a.x - b.x, a.y - b.y}; }
inline Vec2 operator*(Vec2 a, float s) { return {a.x * s, a.y * s}; }
inline float dot(Vec2 a, Vec2 b) { return a.x * b.x + a.y * b.y; }
inline float length(Vec2 a) { return std::sqrt(dot(a, a)); }

// Signed distances (negative inside), in pixels.
inline float capsule_distance(Vec2 p, Vec2 a, Vec2 b, float radius) {
  const Vec2 ab = b - a, ap = p - a;
  const float t = std::clamp(dot(ap, ab) / std::max(dot(ab, ab), 1e-6f), 0.0f, 1.0f);
  return length(ap - ab * t) - radius;
}
// Box of half-sizes (hx, hy) with corners rounded by `corner`, centred at the origin.
inline float round_box_distance(float px, float py, float hx, float hy, float corner) {
  const float qx = std::abs(px) - hx + corner, qy = std::abs(py) - hy + corner;
  const float outside =
      std::sqrt(std::max(qx, 0.0f) * std::max(qx, 0.0f) + std::max(qy, 0.0f) * std::max(qy, 0.0f));
  return outside + std::min(std::max(qx, qy), 0.0f) - corner;
}

inline Rgb mix(const Rgb& a, const Rgb& b, float t) {
  return {a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t};
}
inline Rgb scale(const Rgb& a, float s) { return {a[0] * s, a[1] * s, a[2] * s}; }
inline Rgb jitter(const Rgb& a, Rng& rng, float amount) {
  Rgb out = a;
  for (float& v : out)
    v = std::clamp(v + static_cast<float>(rng.uniform(-amount, amount)), 0.0f, 1.0f);
  return out;
}
template <std::size_t N>
const Rgb& pick(const std::array<Rgb, N>& palette, Rng& rng) {
  return palette[rng.below(N)];
}

inline constexpr std::array<Rgb, 7> skin_tones = {{{0.96f, 0.80f, 0.69f},
                                                   {0.92f, 0.72f, 0.60f},
                                                   {0.85f, 0.64f, 0.50f},
                                                   {0.76f, 0.55f, 0.42f},
                                                   {0.62f, 0.43f, 0.32f},
                                                   {0.47f, 0.31f, 0.23f},
                                                   {0.36f, 0.24f, 0.18f}}};
inline constexpr std::array<Rgb, 10> polish_colours = {{{0.80f, 0.05f, 0.10f},
                                                        {0.45f, 0.02f, 0.08f},
                                                        {0.95f, 0.45f, 0.65f},
                                                        {0.45f, 0.15f, 0.55f},
                                                        {0.86f, 0.60f, 0.55f},
                                                        {0.08f, 0.08f, 0.10f},
                                                        {0.15f, 0.30f, 0.80f},
                                                        {0.98f, 0.50f, 0.40f},
                                                        {0.94f, 0.94f, 0.94f},
                                                        {0.20f, 0.60f, 0.35f}}};

enum class Layer { Occluder, Nail };

// An RGB picture plus its nail mask, painted shape by shape with 1-pixel antialiasing.
class Canvas {
 public:
  Canvas(int h, int w) : rgb(h, w, 3), mask(static_cast<std::size_t>(h) * w, 0.0f) {}

  // Paints the shape `distance(p) <= 0` (clipped to the box [x0, x1] x [y0, y1]) with
  // colour(p, distance). A nail sets the mask where it covers at least half a pixel; any other
  // shape clears it there (occlusion).
  template <class Distance, class Colour>
  void paint(float x0, float y0, float x1, float y1, Distance distance, Colour colour,
             Layer layer = Layer::Occluder, float opacity = 1.0f) {
    const int ya = std::max(0, static_cast<int>(std::floor(y0)) - 1);
    const int yb = std::min(rgb.height - 1, static_cast<int>(std::ceil(y1)) + 1);
    const int xa = std::max(0, static_cast<int>(std::floor(x0)) - 1);
    const int xb = std::min(rgb.width - 1, static_cast<int>(std::ceil(x1)) + 1);
    for (int y = ya; y <= yb; ++y)
      for (int x = xa; x <= xb; ++x) {
        const Vec2 p{x + 0.5f, y + 0.5f};
        const float d = distance(p);
        const float cover = std::clamp(0.5f - d, 0.0f, 1.0f);
        if (cover <= 0) continue;
        const Rgb c = colour(p, d);
        const float a = cover * opacity;
        for (int k = 0; k < 3; ++k) {
          float& v = rgb.at(y, x, k);
          v = v * (1 - a) + c[static_cast<std::size_t>(k)] * a;
        }
        if (cover >= 0.5f) mask[static_cast<std::size_t>(y) * rgb.width + x] = layer == Layer::Nail;
      }
  }
  void paint_everywhere(const auto& colour_at) {
    paint(
        0, 0, static_cast<float>(rgb.width), static_cast<float>(rgb.height),
        [](Vec2) { return -1e9f; }, [&](Vec2 p, float) { return colour_at(p); });
  }

  Image rgb;
  std::vector<float> mask;
};

// Smooth random field in 0..1: a coarse random grid resized bilinearly.
inline Image value_noise(int h, int w, int cells, Rng& rng) {
  const int gh = std::max(2, cells * h / std::max(h, w) + 1);
  const int gw = std::max(2, cells * w / std::max(h, w) + 1);
  Image grid(gh, gw, 1);
  for (float& v : grid.data) v = static_cast<float>(rng.uniform01());
  return resize_bilinear(grid, h, w);
}

inline Rgb random_colour(Rng& rng) {
  return {static_cast<float>(rng.uniform(0.05, 0.95)), static_cast<float>(rng.uniform(0.05, 0.95)),
          static_cast<float>(rng.uniform(0.05, 0.95))};
}

inline void paint_background(Canvas& canvas, Rng& rng) {
  const int h = canvas.rgb.height, w = canvas.rgb.width;
  Rgb base = random_colour(rng);
  const double kind_of_colour = rng.uniform01();
  if (kind_of_colour < 0.25)  // a blue cloth, as in Dataset 1
    base = jitter({0.20f, 0.35f, 0.70f}, rng, 0.12f);
  else if (kind_of_colour < 0.35)  // skin-like beige: hard on purpose
    base = jitter(pick(skin_tones, rng), rng, 0.08f);
  const Rgb other = jitter(mix(base, random_colour(rng), 0.5f), rng, 0.1f);
  const Image noise = value_noise(h, w, 4 + static_cast<int>(rng.below(10)), rng);
  const float noise_amount = static_cast<float>(rng.uniform(0.05, 0.25));
  const int kind = static_cast<int>(rng.below(4));
  const float angle = static_cast<float>(rng.uniform(0, 3.14159265));
  const float period = static_cast<float>(rng.uniform(6, 30));
  const Vec2 axis{std::cos(angle), std::sin(angle)};
  canvas.paint_everywhere([&](Vec2 p) {
    const float n = noise.at(static_cast<int>(p.y), static_cast<int>(p.x), 0) - 0.5f;
    float t = 0;  // blend weight of the second colour
    const float u = dot(p, axis), v = dot(p, Vec2{-axis.y, axis.x});
    if (kind == 1) t = std::sin(6.2831853f * u / period) > 0 ? 1.0f : 0.0f;  // stripes
    if (kind == 2)
      t = ((static_cast<int>(std::floor(u / period)) +  // tiles
            static_cast<int>(std::floor(v / period))) &
           1)
              ? 0.7f
              : 0.0f;
    if (kind == 3) t = 0.5f + 0.5f * std::sin(6.2831853f * (u / period + 2.0f * n));  // wood
    return scale(mix(base, other, t), 1.0f + noise_amount * n * 2);
  });
}

// Polish-coloured or random blobs and lines on the background: not nails.
inline void paint_distractors(Canvas& canvas, Rng& rng, float unit) {
  const int h = canvas.rgb.height, w = canvas.rgb.width;
  const int count = static_cast<int>(rng.below(4));
  for (int i = 0; i < count; ++i) {
    const Rgb colour =
        rng.uniform01() < 0.5 ? jitter(pick(polish_colours, rng), rng, 0.05f) : random_colour(rng);
    const Vec2 c{static_cast<float>(rng.uniform(0, w)), static_cast<float>(rng.uniform(0, h))};
    if (rng.uniform01() < 0.5) {  // a blob
      const float hx = unit * static_cast<float>(rng.uniform(0.4, 2.0));
      const float hy = unit * static_cast<float>(rng.uniform(0.4, 2.0));
      const float corner = std::min(hx, hy) * static_cast<float>(rng.uniform(0.0, 1.0));
      const float a = static_cast<float>(rng.uniform(0, 3.14159265));
      const float ca = std::cos(a), sa = std::sin(a), reach = std::max(hx, hy) * 1.5f;
      canvas.paint(
          c.x - reach, c.y - reach, c.x + reach, c.y + reach,
          [&](Vec2 p) {
            const Vec2 q = p - c;
            return round_box_distance(q.x * ca + q.y * sa, -q.x * sa + q.y * ca, hx, hy, corner);
          },
          [&](Vec2, float) { return colour; });
    } else {  // a line
      const float a = static_cast<float>(rng.uniform(0, 6.2831853));
      const float len = unit * static_cast<float>(rng.uniform(2, 8));
      const Vec2 e = c + Vec2{std::cos(a), std::sin(a)} * len;
      const float r = static_cast<float>(rng.uniform(0.8, 2.5));
      canvas.paint(
          std::min(c.x, e.x) - r, std::min(c.y, e.y) - r, std::max(c.x, e.x) + r,
          std::max(c.y, e.y) + r, [&](Vec2 p) { return capsule_distance(p, c, e, r); },
          [&](Vec2, float) { return colour; });
    }
  }
}

struct Finger {
  Vec2 base, tip;  // axis end points; the fingertip is `tip + dir * radius`
  float radius = 0;
  bool nail = true;
};

inline void paint_finger(Canvas& canvas, const Finger& f, const Rgb& skin, Rng& rng) {
  const Vec2 dir = (f.tip - f.base) * (1.0f / std::max(length(f.tip - f.base), 1e-6f));
  const Vec2 side{-dir.y, dir.x};
  const float r = f.radius;
  auto finger_distance = [&](Vec2 p) { return capsule_distance(p, f.base, f.tip, r); };
  const float x0 = std::min(f.base.x, f.tip.x) - r, x1 = std::max(f.base.x, f.tip.x) + r;
  const float y0 = std::min(f.base.y, f.tip.y) - r, y1 = std::max(f.base.y, f.tip.y) + r;
  canvas.paint(x0, y0, x1, y1, finger_distance, [&](Vec2, float d) {
    const float t = std::clamp(1.0f + d / r, 0.0f, 1.0f);  // 0 on the axis, 1 at the rim
    return scale(skin, 0.68f + 0.32f * std::sqrt(1.0f - t * t));
  });

  // Knuckle creases: thin darker arcs across the finger.
  const int creases = static_cast<int>(rng.below(3));
  for (int i = 0; i < creases; ++i) {
    const float along = r * static_cast<float>(2.5 + 1.8 * i + rng.uniform(0, 0.8));
    const Vec2 centre = f.tip - dir * along;
    const Vec2 a = centre - side * (r * 0.8f), b = centre + side * (r * 0.8f);
    canvas.paint(
        std::min(a.x, b.x) - 2, std::min(a.y, b.y) - 2, std::max(a.x, b.x) + 2,
        std::max(a.y, b.y) + 2,
        [&](Vec2 p) { return std::max(capsule_distance(p, a, b, 0.7f), finger_distance(p)); },
        [&](Vec2, float) { return scale(skin, 0.72f); }, Layer::Occluder, 0.7f);
  }
  if (!f.nail) return;

  const float half_length = r * static_cast<float>(rng.uniform(0.55, 0.8));
  const float half_width = r * static_cast<float>(rng.uniform(0.6, 0.78));
  const float corner = half_width * static_cast<float>(rng.uniform(0.6, 0.95));
  const Vec2 centre = f.tip + dir * (r * 0.9f - half_length);
  const bool polished = rng.uniform01() < 0.35;
  const Rgb nail_colour = polished ? jitter(pick(polish_colours, rng), rng, 0.05f)
                                   : scale(mix(skin, Rgb{1.0f, 0.78f, 0.80f}, 0.45f), 1.12f);
  const Rgb free_edge = jitter({0.97f, 0.95f, 0.90f}, rng, 0.03f);
  const float highlight_at = half_width * static_cast<float>(rng.uniform(-0.5, 0.5));
  auto nail_distance = [&](Vec2 p) {
    const Vec2 q = p - centre;
    return std::max(round_box_distance(dot(q, dir), dot(q, side), half_length, half_width, corner),
                    finger_distance(p));
  };
  const float reach = half_length + half_width;
  canvas.paint(
      centre.x - reach, centre.y - reach, centre.x + reach, centre.y + reach, nail_distance,
      [&](Vec2 p, float d) {
        const Vec2 q = p - centre;
        const float u = dot(q, dir) / half_length, v = dot(q, side);
        Rgb c = nail_colour;
        if (!polished && u > 0.55f) c = mix(c, free_edge, 0.7f);
        const float shine =
            std::exp(-(v - highlight_at) * (v - highlight_at) / (0.08f * half_width * half_width));
        c = mix(c, Rgb{1.0f, 1.0f, 1.0f}, 0.35f * shine * (polished ? 1.0f : 0.5f));
        if (d > -1.2f) c = scale(c, 0.82f);  // darker rim (cuticle, side folds)
        return c;
      },
      Layer::Nail);
}

inline void paint_hand(Canvas& canvas, Rng& rng, float unit) {
  const int h = canvas.rgb.height, w = canvas.rgb.width;
  const Rgb skin = jitter(pick(skin_tones, rng), rng, 0.04f);
  const int count = 1 + static_cast<int>(rng.below(5));
  const float heading = static_cast<float>(rng.uniform(0, 6.2831853));
  const Vec2 dir{std::cos(heading), std::sin(heading)}, side{-dir.y, dir.x};
  const float radius = unit * static_cast<float>(rng.uniform(0.8, 1.25));
  const float spacing = 2 * radius * static_cast<float>(rng.uniform(1.05, 1.4));
  const Vec2 centre{static_cast<float>(rng.uniform(0.3, 0.7)) * w,
                    static_cast<float>(rng.uniform(0.3, 0.7)) * h};
  const float reach = static_cast<float>(rng.uniform(0.35, 0.9)) * std::max(h, w);

  std::vector<Finger> fingers;
  for (int i = 0; i < count; ++i) {
    Finger f;
    f.radius = radius * static_cast<float>(rng.uniform(0.85, 1.1));
    const float turn = static_cast<float>(rng.uniform(-0.25, 0.25));
    const Vec2 d{dir.x * std::cos(turn) - dir.y * std::sin(turn),
                 dir.x * std::sin(turn) + dir.y * std::cos(turn)};
    f.tip = centre + side * ((i - (count - 1) * 0.5f) * spacing) +
            dir * (radius * static_cast<float>(rng.uniform(-1.5, 1.5)));
    f.base = f.tip - d * reach;
    f.nail = rng.uniform01() < 0.85;
    fingers.push_back(f);
  }
  if (std::none_of(fingers.begin(), fingers.end(), [](const Finger& f) { return f.nail; }))
    fingers[0].nail = true;

  if (rng.uniform01() < 0.6) {  // the palm, behind the fingers
    const Vec2 palm = centre - dir * (reach * 0.9f);
    const float pr = (count * spacing) * 0.6f + radius;
    canvas.paint(
        palm.x - 2 * pr, palm.y - 2 * pr, palm.x + 2 * pr, palm.y + 2 * pr,
        [&](Vec2 p) {
          return capsule_distance(p, palm - side * (pr * 0.3f), palm + side * (pr * 0.3f), pr);
        },
        [&](Vec2, float) { return scale(skin, 0.9f); });
  }
  // Draw order shuffled so that fingers overlap (and occlude nails) in varied ways.
  for (std::size_t i = fingers.size(); i > 1; --i) std::swap(fingers[i - 1], fingers[rng.below(i)]);
  for (const Finger& f : fingers) paint_finger(canvas, f, skin, rng);
}

inline void apply_lighting_and_noise(Canvas& canvas, Rng& rng) {
  Image& img = canvas.rgb;
  const float gain = static_cast<float>(rng.uniform(0.7, 1.2));
  const float gx = static_cast<float>(rng.uniform(-0.4, 0.4));
  const float gy = static_cast<float>(rng.uniform(-0.4, 0.4));
  const Rgb cast = {static_cast<float>(rng.uniform(0.92, 1.08)),
                    static_cast<float>(rng.uniform(0.92, 1.08)),
                    static_cast<float>(rng.uniform(0.92, 1.08))};
  const double sigma = rng.uniform(0.005, 0.03);
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      const float light = gain * (1 + gx * (static_cast<float>(x) / img.width - 0.5f) +
                                  gy * (static_cast<float>(y) / img.height - 0.5f));
      for (int k = 0; k < 3; ++k) {
        float& v = img.at(y, x, k);
        v = v * light * cast[static_cast<std::size_t>(k)] +
            static_cast<float>(sigma * rng.normal());
        v = std::clamp(v, 0.0f, 1.0f);
      }
    }
}

}  // namespace synth

// Synthetic sample `index` of the set given by `seed`, at height x width (any size >= 16).
inline Sample generate_synthetic_sample(std::size_t index, int height, int width,
                                        std::uint64_t seed) {
  if (height < 16 || width < 16)
    fail_argument("generate_synthetic: size ", height, "x", width, " (HxW) is below 16x16");
  Rng rng(seed ^ (0x9E3779B97F4A7C15ull * (static_cast<std::uint64_t>(index) + 1)));
  const float unit = 0.07f * static_cast<float>(std::min(height, width));  // typical finger radius
  const std::size_t min_foreground =
      std::max<std::size_t>(8, static_cast<std::size_t>(height) * width / 500);
  for (;;) {  // redraw (rarely) until the nails are visible enough
    synth::Canvas canvas(height, width);
    synth::paint_background(canvas, rng);
    synth::paint_distractors(canvas, rng, unit);
    synth::paint_hand(canvas, rng, unit);
    const auto foreground =
        static_cast<std::size_t>(std::count(canvas.mask.begin(), canvas.mask.end(), 1.0f));
    if (foreground < min_foreground) continue;
    synth::apply_lighting_and_noise(canvas, rng);

    Sample s;
    s.dataset = "synthetic";
    std::string number = std::to_string(index);
    if (number.size() < 5) number.insert(0, 5 - number.size(), '0');
    s.name = "synth_" + number + ".png";
    s.image = image_to_tensor(canvas.rgb);
    s.mask = Tensor<Cpu>(Shape{1, 1, height, width});
    std::copy(canvas.mask.begin(), canvas.mask.end(), s.mask.begin());
    s.source_height = height;
    s.source_width = width;
    return s;
  }
}

inline std::vector<Sample> generate_synthetic(std::size_t count, int height, int width,
                                              std::uint64_t seed) {
  std::vector<Sample> samples;
  samples.reserve(count);
  for (std::size_t i = 0; i < count; ++i)
    samples.push_back(generate_synthetic_sample(i, height, width, seed));
  return samples;
}

// Writes DIR/image/synth_NNNNN.png (RGB) and DIR/mask/synth_NNNNN.png (grey 0/255), a folder
// FolderDataset reads back (auto mode resolves to threshold).
inline void write_synthetic(const std::filesystem::path& dir, std::size_t count, int height,
                            int width, std::uint64_t seed) {
  std::filesystem::create_directories(dir / "image");
  std::filesystem::create_directories(dir / "mask");
  for (std::size_t i = 0; i < count; ++i) {
    const Sample s = generate_synthetic_sample(i, height, width, seed);
    save_png(dir / "image" / s.name, image_from_tensor(s.image));
    save_png(dir / "mask" / s.name, image_from_tensor(s.mask));
  }
}

}  // namespace unetsrnn

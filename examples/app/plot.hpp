#pragma once
// A small line-chart renderer for the example programs (training curves: loss, validation loss,
// Dice per epoch in curve.png; the chart program) drawing into an RGB Image, with axes, "nice" tick
// values, a title, a legend and a built-in 5x7 bitmap font. No plotting dependency. Lower-case
// letters are drawn as capitals; characters the font lacks are drawn as '?'. Non-finite y values
// (NaN, inf) are skipped and break the line.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <unetsrnn/core/error.hpp>
#include <unetsrnn/io/image.hpp>

namespace app {

struct PlotSeries {
  std::string name;
  std::vector<double> y;
  std::vector<double> x;                // empty: 1, 2, ..., y.size() (epochs)
  std::optional<unetsrnn::Rgb> colour;  // empty: the next palette colour
};

struct PlotOptions {
  int width = 640, height = 400;
  std::string title;
  std::string x_label = "epoch";
  std::string y_label;
  double y_min = std::numeric_limits<double>::quiet_NaN();  // NaN: automatic
  double y_max = std::numeric_limits<double>::quiet_NaN();
  int font_scale = 1;  // pixels per font dot for labels; the title uses twice this
};

namespace plot_detail {

// 5x7 glyphs, one byte per row, bit 4 = leftmost column.
struct Glyph {
  char ch;
  std::array<std::uint8_t, 7> rows;
};

inline const std::vector<Glyph>& font() {
  static const std::vector<Glyph> glyphs = {
      {' ', {0, 0, 0, 0, 0, 0, 0}},
      {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
      {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
      {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
      {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
      {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
      {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
      {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
      {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
      {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
      {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
      {'A', {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
      {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
      {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}},
      {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
      {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}},
      {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
      {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}},
      {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
      {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
      {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
      {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}},
      {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
      {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}},
      {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
      {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
      {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
      {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}},
      {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
      {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}},
      {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
      {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
      {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
      {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}},
      {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
      {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}},
      {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
      {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
      {',', {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}},
      {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
      {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}},
      {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}},
      {'/', {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00}},
      {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
      {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
      {'[', {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E}},
      {']', {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E}},
      {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}},
      {'_', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}},
      {'=', {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}},
      {'?', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}},
  };
  return glyphs;
}

inline const Glyph& glyph_for(char ch) {
  const char upper = (ch >= 'a' && ch <= 'z') ? static_cast<char>(ch - 'a' + 'A') : ch;
  for (const Glyph& g : font())
    if (g.ch == upper) return g;
  for (const Glyph& g : font())
    if (g.ch == '?') return g;
  return font().front();
}

constexpr int glyph_advance = 6;  // 5 columns + 1 space
constexpr int glyph_height = 7;

inline int text_width(std::string_view text, int scale) {
  return text.empty() ? 0 : (static_cast<int>(text.size()) * glyph_advance - 1) * scale;
}

class Painter {
 public:
  explicit Painter(unetsrnn::Image& image) : image_(image) {}

  void pixel(int x, int y, const unetsrnn::Rgb& c) {
    if (x < 0 || y < 0 || x >= image_.width || y >= image_.height) return;
    for (int k = 0; k < 3; ++k) image_.at(y, x, k) = c[static_cast<std::size_t>(k)];
  }
  void rect(int x0, int y0, int x1, int y1, const unetsrnn::Rgb& c) {  // filled, inclusive
    for (int y = std::min(y0, y1); y <= std::max(y0, y1); ++y)
      for (int x = std::min(x0, x1); x <= std::max(x0, x1); ++x) pixel(x, y, c);
  }
  void outline(int x0, int y0, int x1, int y1, const unetsrnn::Rgb& c) {
    rect(x0, y0, x1, y0, c);
    rect(x0, y1, x1, y1, c);
    rect(x0, y0, x0, y1, c);
    rect(x1, y0, x1, y1, c);
  }
  // Bresenham with a square pen of `thickness` pixels.
  void line(double xa, double ya, double xb, double yb, const unetsrnn::Rgb& c, int thickness = 2) {
    int x0 = static_cast<int>(std::lround(xa)), y0 = static_cast<int>(std::lround(ya));
    const int x1 = static_cast<int>(std::lround(xb)), y1 = static_cast<int>(std::lround(yb));
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
    const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    const int lo = -(thickness - 1) / 2, hi = thickness / 2;
    for (int err = dx + dy;;) {
      rect(x0 + lo, y0 + lo, x0 + hi, y0 + hi, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) {
        err += dy;
        x0 += sx;
      }
      if (e2 <= dx) {
        err += dx;
        y0 += sy;
      }
    }
  }
  void text(int x, int y, std::string_view s, const unetsrnn::Rgb& c, int scale = 1) {
    for (char ch : s) {
      const Glyph& g = glyph_for(ch);
      for (int row = 0; row < glyph_height; ++row)
        for (int col = 0; col < 5; ++col)
          if (g.rows[static_cast<std::size_t>(row)] & (0x10 >> col))
            rect(x + col * scale, y + row * scale, x + (col + 1) * scale - 1,
                 y + (row + 1) * scale - 1, c);
      x += glyph_advance * scale;
    }
  }
  // Text rotated 90 degrees counter-clockwise (reads bottom to top), starting at (x, y) = bottom.
  void text_up(int x, int y, std::string_view s, const unetsrnn::Rgb& c, int scale = 1) {
    for (char ch : s) {
      const Glyph& g = glyph_for(ch);
      for (int row = 0; row < glyph_height; ++row)
        for (int col = 0; col < 5; ++col)
          if (g.rows[static_cast<std::size_t>(row)] & (0x10 >> col))
            rect(x + row * scale, y - (col + 1) * scale + 1, x + (row + 1) * scale - 1,
                 y - col * scale, c);
      y -= glyph_advance * scale;
    }
  }

 private:
  unetsrnn::Image& image_;
};

// A step of 1, 2 or 5 times a power of ten giving about `target` intervals over `range`.
inline double nice_step(double range, int target) {
  const double raw = range / std::max(target, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / magnitude;
  return (f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0) * magnitude;
}

inline std::string tick_label(double value, double step) {
  const int decimals = std::clamp(static_cast<int>(-std::floor(std::log10(step) + 1e-9)), 0, 8);
  if (std::abs(value) < step * 1e-6) value = 0;  // no "-0"
  char buffer[64];
  const double magnitude = std::abs(value);
  if (magnitude != 0 && (magnitude >= 1e7 || magnitude < 1e-6))
    std::snprintf(buffer, sizeof buffer, "%.2e", value);
  else
    std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
  return buffer;
}

inline std::vector<double> ticks(double lo, double hi, double step) {
  std::vector<double> out;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step)
    out.push_back(t);
  return out;
}

inline constexpr std::array<unetsrnn::Rgb, 8> palette = {{{0.12f, 0.47f, 0.71f},
                                                          {1.00f, 0.50f, 0.05f},
                                                          {0.17f, 0.63f, 0.17f},
                                                          {0.84f, 0.15f, 0.16f},
                                                          {0.58f, 0.40f, 0.74f},
                                                          {0.55f, 0.34f, 0.29f},
                                                          {0.89f, 0.47f, 0.76f},
                                                          {0.50f, 0.50f, 0.50f}}};

}  // namespace plot_detail

inline unetsrnn::Image render_line_chart(const std::vector<PlotSeries>& series,
                                         const PlotOptions& options = {}) {
  using namespace plot_detail;
  const int s = std::max(1, options.font_scale);
  if (options.width < 160 * s || options.height < 120 * s)
    unetsrnn::fail_argument("render_line_chart: ", options.width, "x", options.height,
                            " is too small (at least ", 160 * s, "x", 120 * s, ")");
  const unetsrnn::Rgb black{0, 0, 0}, grey{0.85f, 0.85f, 0.85f}, white{1, 1, 1};
  unetsrnn::Image image(options.height, options.width, 3, 1.0f);
  Painter paint(image);

  // Data ranges over finite values.
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo;
  double y_lo = x_lo, y_hi = -x_lo;
  for (const PlotSeries& ps : series) {
    if (!ps.x.empty() && ps.x.size() != ps.y.size())
      unetsrnn::fail_argument("render_line_chart: series '", ps.name, "' has ", ps.x.size(),
                              " x and ", ps.y.size(), " y values");
    for (std::size_t i = 0; i < ps.y.size(); ++i) {
      const double x = ps.x.empty() ? static_cast<double>(i + 1) : ps.x[i];
      if (!std::isfinite(ps.y[i]) || !std::isfinite(x)) continue;
      x_lo = std::min(x_lo, x);
      x_hi = std::max(x_hi, x);
      y_lo = std::min(y_lo, ps.y[i]);
      y_hi = std::max(y_hi, ps.y[i]);
    }
  }
  if (!(x_lo <= x_hi)) x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;  // nothing to draw: empty axes
  if (std::isfinite(options.y_min)) y_lo = options.y_min;
  if (std::isfinite(options.y_max)) y_hi = options.y_max;
  if (y_hi - y_lo <= 0) {
    const double pad = std::max(std::abs(y_lo) * 0.1, 0.5);
    y_lo -= pad;
    y_hi += pad;
  }
  if (x_hi - x_lo <= 0) x_lo -= 0.5, x_hi += 0.5;
  const double y_step = nice_step(y_hi - y_lo, 5), x_step = nice_step(x_hi - x_lo, 8);
  if (!std::isfinite(options.y_min)) y_lo = std::floor(y_lo / y_step + 1e-9) * y_step;
  if (!std::isfinite(options.y_max)) y_hi = std::ceil(y_hi / y_step - 1e-9) * y_step;
  const std::vector<double> y_ticks = ticks(y_lo, y_hi, y_step);
  const std::vector<double> x_ticks = ticks(x_lo, x_hi, x_step);

  // Plot area: room for tick labels left and below, title above.
  int label_width = 0;
  for (double t : y_ticks)
    label_width = std::max(label_width, text_width(tick_label(t, y_step), s));
  const int left = label_width + 10 * s + (options.y_label.empty() ? 0 : 12 * s);
  const int right = options.width - 12 * s;
  const int top = options.title.empty() ? 12 * s : 30 * s;
  const int bottom = options.height - (options.x_label.empty() ? 22 * s : 34 * s);
  auto px = [&](double x) { return left + (x - x_lo) / (x_hi - x_lo) * (right - left); };
  auto py = [&](double y) { return bottom - (y - y_lo) / (y_hi - y_lo) * (bottom - top); };

  for (double t : y_ticks) {
    const int y = static_cast<int>(std::lround(py(t)));
    paint.rect(left + 1, y, right - 1, y, grey);
    paint.rect(left - 4 * s, y, left, y, black);
    const std::string label = tick_label(t, y_step);
    paint.text(left - 6 * s - text_width(label, s), y - 3 * s, label, black, s);
  }
  for (double t : x_ticks) {
    const int x = static_cast<int>(std::lround(px(t)));
    paint.rect(x, top + 1, x, bottom - 1, grey);
    paint.rect(x, bottom, x, bottom + 4 * s, black);
    const std::string label = tick_label(t, x_step);
    paint.text(x - text_width(label, s) / 2, bottom + 7 * s, label, black, s);
  }
  paint.outline(left, top, right, bottom, black);
  if (!options.title.empty())
    paint.text((options.width - text_width(options.title, 2 * s)) / 2, 8 * s, options.title, black,
               2 * s);
  if (!options.x_label.empty())
    paint.text((left + right - text_width(options.x_label, s)) / 2, bottom + 20 * s,
               options.x_label, black, s);
  if (!options.y_label.empty())
    paint.text_up(4 * s, (top + bottom + text_width(options.y_label, s)) / 2, options.y_label,
                  black, s);

  // Series, clipped to the plot area by clamping (values outside a fixed y range sit on the edge).
  for (std::size_t k = 0; k < series.size(); ++k) {
    const PlotSeries& ps = series[k];
    const unetsrnn::Rgb colour = ps.colour.value_or(palette[k % palette.size()]);
    bool has_previous = false;
    double prev_x = 0, prev_y = 0;
    const bool markers = ps.y.size() <= 60;
    for (std::size_t i = 0; i < ps.y.size(); ++i) {
      const double xv = ps.x.empty() ? static_cast<double>(i + 1) : ps.x[i];
      if (!std::isfinite(ps.y[i]) || !std::isfinite(xv)) {
        has_previous = false;
        continue;
      }
      const double x = px(xv), y = std::clamp(py(ps.y[i]), double(top), double(bottom));
      if (has_previous) paint.line(prev_x, prev_y, x, y, colour, 2 * s);
      if (markers) {
        const int cx = static_cast<int>(std::lround(x)), cy = static_cast<int>(std::lround(y));
        paint.rect(cx - 2 * s, cy - 2 * s, cx + 2 * s, cy + 2 * s, colour);
      }
      has_previous = true;
      prev_x = x;
      prev_y = y;
    }
  }

  // Legend in the top-right corner of the plot area.
  int legend_text = 0;
  for (const PlotSeries& ps : series) legend_text = std::max(legend_text, text_width(ps.name, s));
  if (!series.empty() && legend_text > 0) {
    const int row = 11 * s, swatch = 16 * s;
    const int w = swatch + 6 * s + legend_text + 10 * s;
    const int h = static_cast<int>(series.size()) * row + 6 * s;
    const int x0 = right - 6 * s - w, y0 = top + 6 * s;
    paint.rect(x0, y0, x0 + w, y0 + h, white);
    paint.outline(x0, y0, x0 + w, y0 + h, black);
    for (std::size_t k = 0; k < series.size(); ++k) {
      const unetsrnn::Rgb colour = series[k].colour.value_or(palette[k % palette.size()]);
      const int y = y0 + 4 * s + static_cast<int>(k) * row;
      paint.rect(x0 + 5 * s, y + 3 * s, x0 + 5 * s + swatch, y + 4 * s, colour);
      paint.text(x0 + 5 * s + swatch + 6 * s, y, series[k].name, black, s);
    }
  }
  return image;
}

// Renders and writes the chart as PNG (atomically, see unetsrnn::save_png).
inline void save_line_chart(const std::filesystem::path& path,
                            const std::vector<PlotSeries>& series,
                            const PlotOptions& options = {}) {
  unetsrnn::save_png(path, render_line_chart(series, options));
}

}  // namespace app

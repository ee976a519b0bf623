#pragma once
// The training progress bar on stderr, redrawn after every step when stderr is a terminal (CI logs
// and files get the per-epoch lines only).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <string>
#include <unetsrnn/train/observer.hpp>

namespace app {

// h:mm:ss
inline std::string format_duration(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  return buf;
}

class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : tty_(enabled && isatty(fileno(stderr))) {}

  // After step `s` of a run of `epochs` epochs: the epoch's bar, its running loss and Dice, the
  // speed and the time left for the whole run at this speed.
  void update(const unetsrnn::TrainStep& s, int epochs) {
    if (!tty_) return;
    const double rate = static_cast<double>(s.epoch_images_done) / std::max(s.epoch_seconds, 1e-9);
    const double epoch_left = static_cast<double>(s.epoch_images - s.epoch_images_done) / rate;
    const double left = epoch_left + static_cast<double>(epochs - s.epoch) *
                                         static_cast<double>(s.epoch_images) / rate;
    constexpr std::size_t width = 24;
    const std::size_t filled =
        s.epoch_images ? width * s.epoch_images_done / s.epoch_images : width;
    std::string bar(filled, '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "\repoch %d/%d [%s] %zu/%zu loss %.4f dice %.3f %.1f img/s ETA %s ",
                 s.epoch, epochs, bar.c_str(), s.epoch_images_done, s.epoch_images, s.epoch_loss,
                 s.epoch_dice, rate, format_duration(left).c_str());
    std::fflush(stderr);
    drawn_ = true;
  }
  // Ends the bar's line (before other output).
  void end_line() {
    if (drawn_) std::fprintf(stderr, "\n");
    drawn_ = false;
  }

 private:
  bool tty_;
  bool drawn_ = false;
};

}  // namespace app

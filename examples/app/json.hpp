#pragma once
// JSON of the example programs (result.json, evaluate's metrics, bench_models --json) through
// nlohmann-json; objects keep their keys in the order written.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <unetsrnn/data/sample.hpp>
#include <unetsrnn/io/atomic_file.hpp>
#include <unetsrnn/train/observer.hpp>
#include <vector>

#include "app/training_log.hpp"

namespace app {

using Json = nlohmann::ordered_json;

// v rounded to `digits` significant digits, as the programs have always written their numbers;
// null when it is not finite (JSON has no NaN).
inline Json json_number(double v, int digits = 6) {
  if (!std::isfinite(v)) return nullptr;
  return std::strtod(format_number(v, digits).c_str(), nullptr);
}

// The metrics of one evaluation of samples[indices] (r.per_image_dice in the same order); each
// per_image entry names its image, and its dataset when `with_dataset`.
inline Json metrics_json(const unetsrnn::EvalResult& r,
                         const std::vector<unetsrnn::Sample>& samples,
                         const std::vector<std::size_t>& indices, bool with_dataset) {
  Json j;
  j["images"] = r.images;
  j["loss"] = json_number(r.loss);
  j["dice"] = json_number(r.dice);
  j["dice_at_0.3"] = json_number(r.dice_at_03);
  j["iou"] = json_number(r.iou);
  j["precision"] = json_number(r.precision);
  j["recall"] = json_number(r.recall);
  j["mean_image_dice"] = json_number(r.mean_image_dice);
  Json per_image = Json::array();
  for (std::size_t i = 0; i < r.per_image_dice.size(); ++i) {
    const unetsrnn::Sample& s = samples.at(indices.at(i));
    Json image;
    if (with_dataset) image["dataset"] = s.dataset;
    image["name"] = s.name;
    image["dice"] = json_number(r.per_image_dice[i]);
    per_image.push_back(std::move(image));
  }
  j["per_image"] = std::move(per_image);
  return j;
}

// The text of a JSON file: two-space indentation and a final newline.
inline std::string json_text(const Json& j) { return j.dump(2) + "\n"; }

// Writes j to `path` atomically (write_file_atomic).
inline void write_json_file(const std::filesystem::path& path, const Json& j) {
  unetsrnn::write_file_atomic(path, json_text(j));
}

}  // namespace app

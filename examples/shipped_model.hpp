#pragma once
// The pretrained model that ships with the repository (models/, see models/README.md): where
// predict looks for it when no --weights is given.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace examples {

inline constexpr const char* kShippedWeights = "crunet_res_lw-fingernails.weights";

// The folders searched, in order: $UNETSRNN_MODELS; <prefix>/share/unetsrnn/models next to an
// installed program (<prefix>/bin/predict); the source tree's models/ seen from the build tree
// (build/examples/predict); the source tree this program was configured from.
inline std::vector<std::filesystem::path> shipped_model_folders() {
  namespace fs = std::filesystem;
  std::vector<fs::path> folders;
  if (const char* env = std::getenv("UNETSRNN_MODELS"); env && *env) folders.emplace_back(env);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path dir = exe.parent_path();
    folders.push_back(dir.parent_path() / "share" / "unetsrnn" / "models");
    folders.push_back(dir.parent_path().parent_path() / "models");
  }
#ifdef UNETSRNN_SOURCE_MODELS_DIR
  folders.emplace_back(UNETSRNN_SOURCE_MODELS_DIR);
#endif
  return folders;
}

// The shipped weights file, or an empty path (with the folders tried in `tried`) when none is
// found.
inline std::filesystem::path find_shipped_weights(std::string& tried) {
  namespace fs = std::filesystem;
  tried.clear();
  std::vector<fs::path> seen;
  for (const fs::path& folder : shipped_model_folders()) {
    std::error_code ec;
    const fs::path normal = fs::weakly_canonical(folder, ec);
    if (std::find(seen.begin(), seen.end(), normal) != seen.end()) continue;
    seen.push_back(normal);
    const fs::path file = folder / kShippedWeights;
    if (fs::is_regular_file(file, ec)) return file;
    tried += (tried.empty() ? "" : ", ") + folder.string();
  }
  return {};
}

}  // namespace examples

// chart: draws a line chart PNG from a CSV file (first column x, every other column one series);
// the experiment report (experiments/report.py) draws its learning curves with it.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "app/cli.hpp"
#include "app/plot.hpp"

namespace {

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> cells;
  std::stringstream ss(line);
  std::string cell;
  while (std::getline(ss, cell, ',')) cells.push_back(cell);
  return cells;
}

double parse_cell(const std::string& cell, const std::string& file, int line) {
  if (cell.empty() || cell == "null" || cell == "nan") return std::nan("");
  std::size_t used = 0;
  double v = 0;
  try {
    v = std::stod(cell, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != cell.size())
    throw std::invalid_argument("'" + file + "' line " + std::to_string(line) +
                                ": not a number: '" + cell + "'");
  return v;
}

struct ChartArgs {
  std::string csv, out, title, x_label = "epoch", y_label;
  std::optional<double> y_min, y_max;  // unset: automatic
};

int run(const ChartArgs& a) {
  const std::string& csv = a.csv;
  const std::string& out = a.out;
  std::ifstream in(csv);
  if (!in) throw std::invalid_argument("cannot read '" + csv + "'");
  std::string line;
  if (!std::getline(in, line)) throw std::invalid_argument("'" + csv + "' is empty");
  const std::vector<std::string> header = split_csv_line(line);
  if (header.size() < 2) throw std::invalid_argument("'" + csv + "' needs at least two columns");
  std::vector<app::PlotSeries> series(header.size() - 1);
  for (std::size_t i = 1; i < header.size(); ++i) series[i - 1].name = header[i];
  int number = 1;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    std::vector<std::string> cells = split_csv_line(line);
    cells.resize(header.size());
    const double x = parse_cell(cells[0], csv, number);
    for (std::size_t i = 1; i < header.size(); ++i) {
      series[i - 1].x.push_back(x);
      series[i - 1].y.push_back(parse_cell(cells[i], csv, number));
    }
  }
  app::PlotOptions o;
  o.title = a.title;
  o.x_label = a.x_label;
  o.y_label = a.y_label;
  o.y_min = a.y_min.value_or(std::nan(""));
  o.y_max = a.y_max.value_or(std::nan(""));
  app::save_line_chart(out, series, o);
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ChartArgs a;
  app::Command c("chart", "Draw a line chart PNG from a CSV file (x, then one column per series).");
  c.option("--csv", a.csv, "FILE",
           "input: a header line, then rows of numbers (empty or null = gap); required");
  c.option("--out", a.out, "FILE", "output PNG; required");
  c.option("--title", a.title, "TEXT", "chart title");
  c.option("--x-label", a.x_label, "TEXT", "x axis label");
  c.option("--y-label", a.y_label, "TEXT", "y axis label");
  c.option("--y-min", a.y_min, "Y", "lower end of the y axis", "automatic")
      ->check(app::number_in(-std::numeric_limits<double>::max()));
  c.option("--y-max", a.y_max, "Y", "upper end of the y axis", "automatic")
      ->check(app::number_in(-std::numeric_limits<double>::max()));
  c.parse(argc, argv);
  if (a.csv.empty() || a.out.empty()) c.usage_error("--csv FILE and --out FILE are required");
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chart: %s\n", e.what());
    return 1;
  }
}

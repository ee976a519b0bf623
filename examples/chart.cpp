// chart: draws a line chart PNG from a CSV file (first column x, every other column one series);
// the experiment report (experiments/report.py) draws its learning curves with it.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <unetsrnn/io/plot.hpp>
#include <vector>

#include "cli.hpp"

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

int run(int argc, char** argv) {
  cli::Parser p("chart", "Draw a line chart PNG from a CSV file (x, then one column per series).");
  p.option("--csv", "FILE", "input: a header line, then rows of numbers (empty or null = gap)", "");
  p.option("--out", "FILE", "output PNG", "");
  p.option("--title", "TEXT", "chart title", "");
  p.option("--x-label", "TEXT", "x axis label", "epoch");
  p.option("--y-label", "TEXT", "y axis label", "");
  p.option("--y-min", "Y", "lower end of the y axis (default: automatic)", "nan");
  p.option("--y-max", "Y", "upper end of the y axis (default: automatic)", "nan");
  p.parse(argc, argv);
  const std::string csv = p.get("--csv"), out = p.get("--out");
  if (csv.empty() || out.empty()) p.usage_error("--csv FILE and --out FILE are required");
  std::ifstream in(csv);
  if (!in) throw std::invalid_argument("cannot read '" + csv + "'");
  std::string line;
  if (!std::getline(in, line)) throw std::invalid_argument("'" + csv + "' is empty");
  const std::vector<std::string> header = split_csv_line(line);
  if (header.size() < 2) throw std::invalid_argument("'" + csv + "' needs at least two columns");
  std::vector<unetsrnn::PlotSeries> series(header.size() - 1);
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
  unetsrnn::PlotOptions o;
  o.title = p.get("--title");
  o.x_label = p.get("--x-label");
  o.y_label = p.get("--y-label");
  o.y_min = p.get_double("--y-min");
  o.y_max = p.get_double("--y-max");
  unetsrnn::save_line_chart(out, series, o);
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chart: %s\n", e.what());
    return 1;
  }
}

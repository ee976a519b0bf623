#pragma once
// The command lines of the example programs, read by CLI11 with these conventions:
// - every option is declared with its variable, its value's name, its help and its default (shown
//   by --help, which exits 0);
// - a value is checked when the command line is read, before the program reads or writes
//   anything (the validators below: their message follows the option's name);
// - a bad command line (unknown option, missing or malformed value, a value out of range) prints
//   "program: what is wrong (see program --help)" on stderr and exits 2; a single-value option
//   given twice takes the last value;
// - an error of the run itself (run_main) prints "program: error: message" and exits 1.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace app {

inline constexpr int kUsageExit = 2;

[[noreturn]] inline void usage_error(const std::string& program, const std::string& message) {
  std::fprintf(stderr, "%s: %s (see %s --help)\n", program.c_str(), message.c_str(),
               program.c_str());
  std::exit(kUsageExit);
}

// ---- validators --------------------------------------------------------------------------------

// A whole number in [lo, hi].
inline CLI::Validator integer_in(long long lo, long long hi = std::numeric_limits<int>::max()) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        std::size_t used = 0;
        long long v = 0;
        try {
          v = std::stoll(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != text.size()) return "needs an integer, got '" + text + "'";
        if (v < lo || v > hi)
          return "must be an integer " +
                 (hi == std::numeric_limits<int>::max()
                      ? ">= " + std::to_string(lo)
                      : "in " + std::to_string(lo) + ".." + std::to_string(hi)) +
                 ", got '" + text + "'";
        return {};
      },
      "");
}

// A finite number with lo <= v (lo < v when lo_open) and v <= hi (v < hi when hi_open).
inline CLI::Validator number_in(double lo, double hi = std::numeric_limits<double>::infinity(),
                                bool lo_open = false, bool hi_open = false) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        std::size_t used = 0;
        double v = 0;
        try {
          v = std::stod(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != text.size()) return "needs a number, got '" + text + "'";
        const bool ok =
            std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
        if (ok) return {};
        std::ostringstream range;
        range << "must be a finite number ";
        if (std::isinf(hi))
          range << (lo_open ? "> " : ">= ") << lo;
        else
          range << "in " << (lo_open ? "(" : "[") << lo << ", " << hi << (hi_open ? ")" : "]");
        return range.str() + ", got '" + text + "'";
      },
      "");
}

// One of `choices`.
inline CLI::Validator one_of(std::vector<std::string> choices) {
  return CLI::Validator(
      [choices](std::string& text) -> std::string {
        for (const auto& c : choices)
          if (text == c) return {};
        std::string list;
        for (std::size_t i = 0; i < choices.size(); ++i)
          list += (i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + choices[i];
        return "must be " + list + ", got '" + text + "'";
      },
      "");
}

// Accepted when parse(text) does not throw; otherwise its message (the library's own parsers:
// parse_loss, parse_mask_mode, the model table, ...).
template <class Parse>
CLI::Validator parsed_by(Parse parse) {
  return CLI::Validator(
      [parse](std::string& text) -> std::string {
        try {
          parse(text);
        } catch (const std::exception& e) {
          return e.what();
        }
        return {};
      },
      "");
}

// ---- the command line --------------------------------------------------------------------------

class Command {
 public:
  Command(std::string program, const std::string& summary)
      : program_(std::move(program)), cli_(summary, program_) {
    cli_.get_formatter()->label("Usage", "usage");
    cli_.get_formatter()->label("OPTIONS", "options");
    cli_.get_formatter()->column_width(30);
    cli_.allow_extras();  // reported by parse() as "unknown option"
    cli_.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  }
  Command(const Command&) = delete;
  Command& operator=(const Command&) = delete;

  const std::string& program() const { return program_; }
  CLI::App& cli() { return cli_; }

  // An option with one value, stored in `value` when given; `value`'s current content is the
  // default (default_text overrides what --help shows, e.g. for a std::optional).
  template <class T>
  CLI::Option* option(const std::string& name, T& value, const std::string& value_name,
                      const std::string& help, std::optional<std::string> default_text = {}) {
    const std::string shown = default_text ? *default_text : default_of(value);
    return cli_
        .add_option(name, value, wrap(shown.empty() ? help : help + " (default: " + shown + ")"))
        ->type_name(value_name)
        ->option_text(value_name);
  }
  // An option that may be given several times, each with one value (all are kept, in order).
  CLI::Option* repeated(const std::string& name, std::vector<std::string>& values,
                        const std::string& value_name, const std::string& help) {
    return cli_.add_option(name, values, wrap(help))
        ->type_name(value_name)
        ->option_text(value_name + " (repeatable)")
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  }
  CLI::Option* flag(const std::string& name, bool& value, const std::string& help) {
    return cli_.add_flag(name, value, wrap(help));
  }

  // Reads the command line: --help prints the help and exits 0, a bad command line exits 2.
  void parse(int argc, char** argv) {
    try {
      cli_.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
      std::fputs(cli_.help().c_str(), stdout);
      std::exit(0);
    } catch (const CLI::ParseError& e) {
      usage_error(e.what());
    }
    for (const std::string& extra : cli_.remaining())
      usage_error(extra.rfind('-', 0) == 0 ? "unknown option '" + extra + "'"
                                           : "unexpected argument '" + extra + "'");
  }

  // Whether `name` was on the command line.
  bool given(const std::string& name) const { return cli_.count(name) > 0; }

  [[noreturn]] void usage_error(const std::string& message) const {
    app::usage_error(program_, message);
  }

 private:
  // Breaks the lines of a help text longer than `width` at spaces (--help indents what follows;
  // with the 30 columns of the options, lines stay within 100).
  static std::string wrap(const std::string& text, std::size_t width = 70) {
    std::string out;
    std::size_t line_start = 0, last_space = std::string::npos;
    for (std::size_t i = 0; i < text.size(); ++i) {
      out += text[i];
      if (text[i] == '\n') {
        line_start = out.size();
        last_space = std::string::npos;
      } else if (text[i] == ' ') {
        last_space = out.size() - 1;
      }
      if (out.size() - line_start > width && last_space != std::string::npos) {
        out[last_space] = '\n';
        line_start = last_space + 1;
        last_space = std::string::npos;
      }
    }
    return out;
  }

  template <class T>
  static std::string default_of(const T& value) {
    if constexpr (std::is_same_v<T, std::string>) {
      return value;
    } else if constexpr (std::is_same_v<T, bool>) {
      return {};
    } else if constexpr (std::is_integral_v<T>) {
      return std::to_string(value);
    } else if constexpr (std::is_floating_point_v<T>) {
      std::ostringstream out;
      out << value;
      return out.str();
    } else {
      return {};
    }
  }

  std::string program_;
  CLI::App cli_;
};

// Runs body(); an exception becomes "program: error: message" on stderr and exit code 1.
template <class F>
int run_main(const std::string& program, F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program.c_str(), e.what());
    return 1;
  }
}

}  // namespace app

// `porta bench --plot FILE.svg`: throughput per backend per case as a grouped bar chart, written
// directly as SVG so that no plotting tool is needed. Simulated devices get a second bar for their
// modelled throughput next to the simulator's own.
#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "bench_output.hpp"

namespace porta::cli::bench {

namespace {

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string short_number(double v) {
  if (v >= 1e6) return fmt::format("{:.3g}M", v * 1e-6);
  if (v >= 1e4) return fmt::format("{:.3g}k", v * 1e-3);
  if (v >= 100) return fmt::format("{:.0f}", v);
  if (v >= 10) return fmt::format("{:.1f}", v);
  if (v >= 1) return fmt::format("{:.2f}", v);
  return fmt::format("{:.2g}", v);
}

// Colour-blind-safe palette (Okabe-Ito), then greys.
const char* kColours[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9",
                          "#D55E00", "#F0E442", "#000000", "#999999", "#666666"};

struct Series {
  std::string name;
  bool modelled = false;   // the simulated device's throughput rather than the host's
  std::size_t colour = 0;  // a modelled series has its backend's colour, lighter
};

}  // namespace

std::string throughput_svg(const std::vector<Record>& records) {
  // Groups (case keys) and series (backends, plus "(modelled)" for simulated devices) in order.
  std::vector<std::string> groups;
  std::vector<Series> series;
  std::map<std::string, bool> group_has_flops;
  std::map<std::pair<std::string, std::string>, double> value;
  std::size_t backends = 0;
  auto add_series = [&](const std::string& name, bool modelled) {
    for (const auto& s : series)
      if (s.name == name) return;
    series.push_back({name, modelled, modelled ? series.back().colour : backends++});
  };
  for (const auto& r : records) {
    if (std::find(groups.begin(), groups.end(), r.key()) == groups.end()) groups.push_back(r.key());
    if (r.status != Status::Ok) continue;
    group_has_flops[r.key()] = group_has_flops[r.key()] || r.flops > 0;
  }
  for (const auto& r : records) {
    if (r.status != Status::Ok) continue;
    const bool flops = group_has_flops[r.key()];
    add_series(r.backend, false);
    value[{r.key(), r.backend}] = flops ? r.gflops : r.tokens_per_s;
    if (r.device_kind == "simulator" && r.device_ms && *r.device_ms > 0) {
      const std::string name = r.backend + " (modelled)";
      add_series(name, true);
      value[{r.key(), name}] = flops ? r.device_gflops.value_or(0)
                                     : static_cast<double>(r.tokens) / (*r.device_ms * 1e-3);
    }
  }
  double lo = INFINITY, hi = 0;
  for (const auto& [k, v] : value)
    if (v > 0) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  if (hi <= 0) {
    lo = 1;
    hi = 10;
  }
  const bool log_scale = hi / lo > 30;

  const double bar = 18, bar_gap = 2, group_gap = 28, left = 78, right = 24, top = 64;
  const double plot_h = 300, label_h = 64;
  const double group_w = std::max<double>(1, static_cast<double>(series.size())) * (bar + bar_gap);
  const double plot_w = std::max(600.0, static_cast<double>(groups.size()) * (group_w + group_gap));
  const double legend_w = 220;
  const auto legend_columns =
      static_cast<std::size_t>(std::max(1.0, std::floor(plot_w / legend_w)));
  const double legend_rows =
      std::ceil(static_cast<double>(series.size()) / static_cast<double>(legend_columns));
  const double width = left + plot_w + right;
  const double legend_top = top + plot_h + label_h;
  const double height = legend_top + legend_rows * 20 + 16;

  double y_lo = 0, y_hi = hi * 1.1;
  if (log_scale) {
    y_lo = std::floor(std::log10(lo));
    y_hi = std::ceil(std::log10(hi) + 0.05);
  }
  auto y_of = [&](double v) {
    const double f = log_scale
                         ? (std::log10(std::max(v, std::pow(10.0, y_lo))) - y_lo) / (y_hi - y_lo)
                         : v / y_hi;
    return top + plot_h * (1 - std::clamp(f, 0.0, 1.0));
  };

  bool any_flops = false, any_rate = false;
  for (const auto& [g, f] : group_has_flops) (f ? any_flops : any_rate) = true;
  const std::string unit = any_flops && any_rate ? "GFLOP/s (tokens/s where a case has no FLOPs)"
                           : any_rate            ? "tokens/s"
                                                 : "GFLOP/s";

  std::string svg = fmt::format(
      R"(<svg xmlns="http://www.w3.org/2000/svg" width="{:.0f}" height="{:.0f}" viewBox="0 0 {:.0f} {:.0f}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">)"
      "\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
      width, height, width, height);
  std::string subtitle;
  if (!records.empty())
    subtitle = fmt::format("porta {} ({}), {}", records.front().build.porta_version,
                           records.front().build.git_commit, records.front().host.cpu);
  svg += fmt::format(
      "<text x=\"{:.0f}\" y=\"24\" font-size=\"16\" font-weight=\"bold\">porta bench: throughput "
      "per backend{}</text>\n<text x=\"{:.0f}\" y=\"42\" font-size=\"11\" "
      "fill=\"#555\">{}</text>\n",
      left, log_scale ? " (log scale)" : "", left, xml_escape(subtitle));
  // Axis, grid and ticks.
  std::vector<double> ticks;
  if (log_scale) {
    for (double e = y_lo; e <= y_hi + 1e-9; e += 1) ticks.push_back(std::pow(10.0, e));
  } else {
    const double raw = y_hi / 5;
    const double mag = std::pow(10.0, std::floor(std::log10(raw)));
    const double step = raw / mag < 2 ? 2 * mag : raw / mag < 5 ? 5 * mag : 10 * mag;
    for (double t = 0; t <= y_hi + 1e-9; t += step) ticks.push_back(t);
  }
  for (double t : ticks) {
    const double y = y_of(t);
    svg += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e3e3e3\"/>\n"
        "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\" "
        "fill=\"#333\">{}</text>\n",
        left, y, left + plot_w, y, left - 6, y + 4, short_number(t));
  }
  svg += fmt::format(
      "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#333\"/>\n"
      "<line x1=\"{0:.1f}\" y1=\"{2:.1f}\" x2=\"{3:.1f}\" y2=\"{2:.1f}\" stroke=\"#333\"/>\n",
      left, top, top + plot_h, left + plot_w);
  svg += fmt::format(
      "<text transform=\"translate(16 {:.1f}) rotate(-90)\" font-size=\"12\" "
      "text-anchor=\"middle\">{}</text>\n",
      top + plot_h / 2, xml_escape(unit));

  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    const double x0 = left + group_gap / 2 + static_cast<double>(gi) * (group_w + group_gap);
    for (std::size_t si = 0; si < series.size(); ++si) {
      const double x = x0 + static_cast<double>(si) * (bar + bar_gap);
      auto it = value.find({groups[gi], series[si].name});
      if (it == value.end()) continue;
      const double y = y_of(it->second);
      const char* colour = kColours[series[si].colour % std::size(kColours)];
      svg += fmt::format(
          "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"{}>"
          "<title>{} on {}: {}</title></rect>\n",
          x, y, bar, top + plot_h - y, colour,
          series[si].modelled
              ? " fill-opacity=\"0.45\" stroke-width=\"1.5\" stroke=\"" + std::string(colour) + "\""
              : "",
          xml_escape(groups[gi]), xml_escape(series[si].name), short_number(it->second));
      svg += fmt::format(
          "<text transform=\"translate({:.1f} {:.1f}) rotate(-90)\" font-size=\"9\" "
          "fill=\"#222\">{}</text>\n",
          x + bar / 2 + 3, y - 3, short_number(it->second));
    }
    // Two-line group label: the case, then dtype and token count.
    const std::string& key = groups[gi];
    const auto slash = key.find('/');
    std::string detail = key.substr(slash + 1);
    std::replace(detail.begin(), detail.end(), '/', ' ');
    svg += fmt::format(
        "<text x=\"{0:.1f}\" y=\"{1:.1f}\" font-size=\"11\" text-anchor=\"middle\">{2}</text>\n"
        "<text x=\"{0:.1f}\" y=\"{3:.1f}\" font-size=\"11\" text-anchor=\"middle\" "
        "fill=\"#555\">{4}</text>\n",
        x0 + group_w / 2, top + plot_h + 18, xml_escape(key.substr(0, slash)), top + plot_h + 34,
        xml_escape(detail));
  }
  // Legend, as many entries a row as fit.
  for (std::size_t si = 0; si < series.size(); ++si) {
    const double x = left + static_cast<double>(si % legend_columns) * legend_w;
    const double y = legend_top + static_cast<double>(si / legend_columns) * 20;
    const char* colour = kColours[series[si].colour % std::size(kColours)];
    svg += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"14\" height=\"14\" fill=\"{}\"{}/>"
        "<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"12\">{}</text>\n",
        x, y, colour,
        series[si].modelled ? " fill-opacity=\"0.45\" stroke=\"" + std::string(colour) + "\"" : "",
        x + 20, y + 12, xml_escape(series[si].name));
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace porta::cli::bench

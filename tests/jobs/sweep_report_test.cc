// The report's Pareto front by hand, its CSV and JSON, and the plot as a valid SVG file.
#include "jobs/sweep_report.h"

#include <cstdlib>

#include "common/file_util.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testutil/fixtures.h"

namespace sp {
namespace {

std::vector<ReportRow> rows() {
  auto row = [](const char* label, uint64_t bytes, double ppl) {
    ReportRow r;
    r.label = label;
    r.state = "SUCCEEDED";
    r.bytes = bytes;
    r.perplexity = ppl;
    r.original_perplexity = 4.0;
    return r;
  };
  std::vector<ReportRow> v{row("small-bad", 100, 6.0), row("small-good", 100, 5.0), row("mid", 200, 4.5),
                           row("big-worse", 300, 4.6), row("big", 300, 4.2), row("not-run", 0, 0)};
  v[5].state = "FAILED";
  v[0].settings = {{"prune.sparsity", "0.4"}, {"note", "a,b"}};
  return v;
}

TEST(SweepReport, ParetoFrontByHand) {
  EXPECT_EQ(pareto_front(rows()), std::vector<bool>({false, true, true, false, true, false}));
  std::vector<ReportRow> same(2, rows()[1]);
  EXPECT_EQ(pareto_front(same), std::vector<bool>({true, true})) << "equal points dominate neither";
}

TEST(SweepReport, TableCsvJsonAndAValidSvg) {
  const auto r = rows();
  const std::string table = report_table(r);
  EXPECT_NE(table.find("small-good"), std::string::npos);
  EXPECT_NE(table.find("+1.0000"), std::string::npos) << table;
  const std::string csv = report_csv(r);
  EXPECT_NE(csv.find("\"prune.sparsity=0.4 note=a,b\""), std::string::npos) << "a field with a comma is quoted: " << csv;
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 7);
  const auto j = nlohmann::json::parse(report_json("s", r));
  EXPECT_EQ(j["variants"].size(), 6u);
  EXPECT_EQ(j["variants"][4]["pareto"], true);
  EXPECT_DOUBLE_EQ(j["variants"][2]["delta"].get<double>(), 0.5);
  EXPECT_EQ(j["variants"][0]["settings"]["prune.sparsity"], "0.4");

  test::TempDir d;
  const std::string svg = report_svg("s & co", r);
  ASSERT_TRUE(write_file_atomic(d / "p.svg", svg).ok());
  EXPECT_EQ(std::system(("python3 -c 'import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); "
                         "assert d.documentElement.tagName == \"svg\"; "
                         "assert len(d.getElementsByTagName(\"circle\")) == 5' " +
                         (d / "p.svg"))
                            .c_str()),
            0)
      << svg;
  EXPECT_EQ(svg.find("<script"), std::string::npos);
  EXPECT_EQ(svg.find("href"), std::string::npos) << "self-contained";
  EXPECT_NE(svg.find("s &amp; co"), std::string::npos);
  // Nothing measured yet: still a valid file that says so.
  const std::string empty = report_svg("s", {r[5]});
  EXPECT_NE(empty.find("no variant is written and evaluated yet"), std::string::npos);
}

}  // namespace
}  // namespace sp

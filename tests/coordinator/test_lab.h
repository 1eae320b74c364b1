// A coordinator's folders for in-process tests: models/stories (the fixture copied in),
// out/, and options and job specs that point at them.
#pragma once

#include <filesystem>
#include <string>

#include "coordinator/coordinator.h"
#include "jobs/job_yaml.h"
#include "gtest/gtest.h"
#include "tests/testutil/fixtures.h"

namespace sp::test {

class CoordinatorLab {
 public:
  CoordinatorLab() {
    std::filesystem::create_directories(dir_ / "models");
    std::filesystem::create_directories(dir_ / "out");
    std::filesystem::copy(fixture("stories260k/hf-bf16"), dir_ / "models/stories");
  }
  const TempDir& dir() const { return dir_; }
  CoordinatorOptions options() const {
    CoordinatorOptions o;
    o.data_dir = dir_ / "data";
    o.model_root = dir_ / "models";
    o.output_root = dir_ / "out";
    return o;
  }
  // An RTN job on the stories model writing out/`out`.
  shardpress::v1::JobSpec job(const std::string& name, const std::string& out) const {
    auto s = parse_job_yaml("name: " + name + "\nmodel: " + (dir_ / "models/stories") + "\noutput: " + (dir_ / "out/") +
                                out + "\n",
                            "job.yaml");
    EXPECT_TRUE(s.ok()) << s.status();
    return *s;
  }

 private:
  TempDir dir_;
};

}  // namespace sp::test

// End to end, the way lab users try things the happy path does not (issue 11): the same
// model in two folders, a source file changed under a job, editing a job and rerunning
// it, two daemons at once, files that point outside the roots, non-finite weights. Real
// coordinator, worker and CLI processes on 127.0.0.1.
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "formats/safetensors.h"
#include "tests/e2e/cluster.h"

namespace sp {
namespace {

// Flips one byte inside tensor `name` of a safetensors file, in place.
void flip_byte(const std::string& file, const std::string& name, uint64_t at = 0) {
  uint64_t offset = 0;
  {
    auto f = SafetensorsFile::open(file);
    ASSERT_TRUE(f.ok()) << f.status();
    const TensorInfo* t = (*f)->find(name);
    ASSERT_NE(t, nullptr) << name;
    offset = (*f)->data_offset() + t->begin + at;
  }
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  io.read(&c, 1);
  c = static_cast<char>(c ^ 0x40);
  io.seekp(static_cast<std::streamoff>(offset));
  io.write(&c, 1);
}

std::string job_yaml(const std::string& name, const std::string& model, const std::string& output,
                     const std::string& extra = "") {
  return "name: " + name + "\nmodel: " + model + "\noutput: " + output + "\n" + extra;
}

// Fault 1: two copies of a model and a fine-tune sharing most tensors with its base. The
// worker has checked the shared bytes in the first folder when the next job asks for them
// in another: it must read them there (or fetch them), and keep serving.
TEST_F(Cluster, TheSameBytesInAnotherFolderDoNotStopTheWorker) {
  fs::copy(dir_ / "models/stories", dir_ / "models/copy", fs::copy_options::recursive);
  fs::copy(dir_ / "models/stories", dir_ / "models/tuned", fs::copy_options::recursive);
  flip_byte(dir_ / "models/tuned/model.safetensors", "model.layers.2.self_attn.o_proj.weight", 6);
  start_coordinator();
  test::Process* w = start_worker("a");
  for (const char* name : {"base", "copy", "tuned"}) {
    const std::string model = std::string(name) == "base" ? "stories" : name;
    test::write_text(dir_ / (std::string(name) + ".yaml"),
                     job_yaml(name, dir_ / ("models/" + model), dir_ / ("out/" + std::string(name))));
    auto r = cli({"submit", dir_ / (std::string(name) + ".yaml"), "--wait"});
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.out << r.err << *read_file(w->log_path());
  }
  EXPECT_TRUE(w->running()) << *read_file(w->log_path());
  expect_reference_output("base");
  expect_reference_output("copy");
  const auto base = manifest_digests(dir_ / "out/base"), tuned = manifest_digests(dir_ / "out/tuned");
  size_t differ = 0;
  for (const auto& [name, d] : base) differ += tuned.at(name) != d;
  EXPECT_GE(differ, 1u);  // the changed weight's codes
  EXPECT_LE(differ, 3u);  // ... and nothing else (codes, absmax and nested absmax at most)
}

// Fault 1, the other way round: a source file changed after the coordinator imported it.
// The worker sees the bytes no longer match and fetches the imported blob instead.
TEST_F(Cluster, ASourceFileChangedAfterTheImportIsFetchedInstead) {
  start_coordinator();
  ASSERT_EQ(cli({"submit", write_job("changed")}).exit_code, 0);
  wait_for("changed", [](const json& s) { return s["phase"] == "waiting for a worker (none connected)"; });
  flip_byte(dir_ / "models/stories/model.safetensors", "model.layers.0.self_attn.q_proj.weight");
  flip_byte(dir_ / "models/stories/model.safetensors", "model.layers.3.mlp.down_proj.weight", 100);
  test::Process* w = start_worker("a");
  wait_for("changed", succeeded);
  EXPECT_TRUE(w->running());
  EXPECT_EQ(manifest_digests(dir_ / "out/changed"), reference(false)) << "not the bytes imported";
}

}  // namespace
}  // namespace sp

// End to end, the way lab users try things the happy path does not (issue 11): the same
// model in two folders, a source file changed under a job, editing a job and rerunning
// it, two daemons at once, files that point outside the roots, non-finite weights. Real
// coordinator, worker and CLI processes on 127.0.0.1.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstring>
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

// Writes one bf16 value (raw bits) over element `element` of tensor `name`, in place.
void poke_bf16(const std::string& file, const std::string& name, uint64_t element, uint16_t bits) {
  uint64_t offset = 0;
  {
    auto f = SafetensorsFile::open(file);
    ASSERT_TRUE(f.ok()) << f.status();
    const TensorInfo* t = (*f)->find(name);
    ASSERT_NE(t, nullptr) << name;
    ASSERT_EQ(t->dtype, DType::kBF16);
    offset = (*f)->data_offset() + t->begin + 2 * element;
  }
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  io.seekp(static_cast<std::streamoff>(offset));
  io.write(reinterpret_cast<const char*>(&bits), 2);
}

constexpr uint16_t kBf16Nan = 0x7fc0, kBf16Inf = 0x7f80;

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
// The source is the store: neither the worker (reading the file) nor the coordinator
// (serving it to a worker that fetches) hands out bytes that no longer match the digests
// taken at import; the job fails saying the file changed, and resumes once it is restored.
TEST_F(Cluster, ASourceFileChangedAfterTheImportFailsTheJobUntilRestored) {
  start_coordinator();
  ASSERT_EQ(cli({"submit", write_job("changed")}).exit_code, 0);
  wait_for("changed", [](const json& s) { return s["phase"] == "waiting for a worker (none connected)"; });
  const std::string file = dir_ / "models/stories/model.safetensors";
  const auto original = read_file(file);
  ASSERT_TRUE(original.ok());
  flip_byte(file, "model.layers.0.self_attn.q_proj.weight");
  flip_byte(file, "model.layers.3.mlp.down_proj.weight", 100);
  test::Process* direct = start_worker("a");
  test::Process* fetching = start_worker("b", "", /*fetch=*/true);
  const json failed = wait_for("changed", [](const json& s) { return s["state"] == "FAILED"; }, 60'000);
  const std::string error = failed["error"];
  EXPECT_NE(error.find("changed since the job imported it"), std::string::npos) << error;
  EXPECT_NE(error.find("model.safetensors"), std::string::npos) << error;
  EXPECT_TRUE(direct->running());
  EXPECT_TRUE(fetching->running());
  test::write_text(file, *original);  // restored
  auto r = cli({"resume", "changed", "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(manifest_digests(dir_ / "out/changed"), reference(false));
}

// Fault 4: a model description that claims more than its files hold is refused at submit
// (exit 2, the key named); the coordinator stays up and runs the next job.
TEST_F(Cluster, AConfigClaimingTooMuchIsRefusedAndTheCoordinatorStaysUp) {
  start_coordinator();
  start_worker("a");
  for (const char* layers : {"10000000", "1000000000000", "4096"}) {
    const std::string model = dir_ / (std::string("models/huge-") + layers);
    fs::copy(dir_ / "models/stories", model);
    json cfg = json::parse(*read_file(model + "/config.json"));
    cfg["num_hidden_layers"] = std::stoll(layers);
    test::write_text(model + "/config.json", cfg.dump());
    test::write_text(dir_ / "huge.yaml", job_yaml(std::string("huge") + layers, model, dir_ / (std::string("out/huge") + layers)));
    auto r = cli({"submit", dir_ / "huge.yaml"});
    EXPECT_EQ(r.exit_code, 2) << layers << ": " << r.err;
    EXPECT_NE(r.err.find("num_hidden_layers"), std::string::npos) << r.err;
  }
  EXPECT_TRUE(coordinator_->running());
  auto ok = cli({"submit", write_job("after"), "--wait"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  auto list = cli({"list", "-o", "json"});
  EXPECT_EQ(json::parse(list.out)["jobs"].size(), 1u) << "refused jobs are not stored";
}

// Fault 5: every file of a model folder is resolved and confined before it is opened. A
// weight file, config.json, an index or a shard named in it that leads outside the model
// root is refused naming the file — and nothing of the outside file's bytes appears in
// any message (its first 8 bytes read as a header length, its JSON keys).
TEST_F(Cluster, FilesLeadingOutsideTheRootAreNeverOpened) {
  start_coordinator();
  fs::create_directories(dir_ / "elsewhere");
  test::write_text(dir_ / "elsewhere/secret.bin", "SECRET-M and the rest of a private file");
  test::write_text(dir_ / "elsewhere/secret.json",
                   R"({"SECRET_KEY_1": 1, "architectures": ["LlamaForCausalLM"], "weight_map": {"SECRET_T": "x"}})");
  const std::string stories = dir_ / "models/stories";
  // The 8 bytes "SECRET-M" as a little-endian length, the number an old message printed.
  uint64_t as_length = 0;
  std::memcpy(&as_length, "SECRET-M", 8);
  struct Case {
    std::string name, link, target;
  };
  const std::vector<Case> cases = {
      {"weights", "model.safetensors", dir_ / "elsewhere/secret.bin"},
      {"config", "config.json", dir_ / "elsewhere/secret.json"},
      {"index", "model.safetensors.index.json", dir_ / "elsewhere/secret.json"},
      {"shard", "model-00001-of-00001.safetensors", dir_ / "elsewhere/secret.bin"},
  };
  for (const auto& c : cases) {
    const std::string model = dir_ / ("models/" + c.name);
    fs::create_directories(model);
    fs::copy_file(stories + "/config.json", model + "/config.json");
    if (c.name == "shard") {  // an honest index naming a shard that is a link outside
      fs::remove(model + "/config.json");
      fs::copy_file(stories + "/config.json", model + "/config.json");
      json index = {{"metadata", json::object()}, {"weight_map", {{"model.embed_tokens.weight", c.link}}}};
      test::write_text(model + "/model.safetensors.index.json", index.dump());
    } else if (c.name != "weights") {
      fs::copy_file(stories + "/model.safetensors", model + "/model.safetensors");
    }
    if (fs::exists(model + "/" + c.link)) fs::remove(model + "/" + c.link);
    fs::create_symlink(c.target, model + "/" + c.link);
    test::write_text(dir_ / "x.yaml", job_yaml("x-" + c.name, model, dir_ / ("out/x-" + c.name)));
    auto r = cli({"submit", dir_ / "x.yaml"});
    EXPECT_EQ(r.exit_code, 2) << c.name << ": " << r.err;
    EXPECT_NE(r.err.find("outside the coordinator's allowed root"), std::string::npos) << c.name << ": " << r.err;
    EXPECT_NE(r.err.find(c.link), std::string::npos) << c.name << ": the message names the file: " << r.err;
    for (const std::string& leak : {std::string("SECRET"), std::to_string(as_length), c.target})
      EXPECT_EQ(r.err.find(leak), std::string::npos) << c.name << ": '" << leak << "' leaked: " << r.err;
  }
  EXPECT_EQ(json::parse(cli({"list", "-o", "json"}).out).value("jobs", json::array()).size(), 0u);
}

// Fault 7 (the README's example): `eval --remote` of a job's output, which lives under
// the output root, with ids under the model root. Not under either root: refused.
TEST_F(Cluster, RemoteEvalReadsAJobsOutputUnderTheOutputRoot) {
  start_coordinator();
  start_worker("a");
  ASSERT_EQ(cli({"submit", write_job("ev"), "--wait"}).exit_code, 0);
  fs::copy_file(test::fixture("stories260k/text/eval.ids.txt"), dir_ / "models/eval.ids.txt");
  auto r = cli({"eval", dir_ / "out/ev", "--ids", dir_ / "models/eval.ids.txt", "--samples", "8", "--remote", "-o",
                "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json j = json::parse(r.out);
  auto local = test::run_cli({"eval", dir_ / "out/ev", "--ids", dir_ / "models/eval.ids.txt", "--samples", "8", "-o",
                              "json"});
  ASSERT_EQ(local.exit_code, 0) << local.err;
  EXPECT_EQ(j["perplexity"], json::parse(local.out)["perplexity"]);
  EXPECT_EQ(j["quantized"], true);
  fs::create_directories(dir_ / "elsewhere");
  fs::copy(dir_ / "out/ev", dir_ / "elsewhere/ev", fs::copy_options::recursive);
  auto outside = cli({"eval", dir_ / "elsewhere/ev", "--ids", dir_ / "models/eval.ids.txt", "--remote"});
  EXPECT_EQ(outside.exit_code, 2) << outside.err;
  EXPECT_NE(outside.err.find("outside the coordinator's allowed roots"), std::string::npos) << outside.err;
}

// Fault 3: a second daemon on the same data dir, port or cache dir, or a data dir that is
// a file, is refused at once (exit 2, naming what is in the way) and serves nothing; the
// first one carries on.
TEST_F(Cluster, TwoDaemonsAtOnceAreRefusedClearly) {
  start_coordinator();
  auto second = [&](const std::string& listen, const std::string& data, const std::string& log) {
    test::Process p(test::bin_dir() + "/shardpress-coordinator",
                    {"--listen", listen, "--data-dir", data, "--model-root", dir_ / "models", "--output-root",
                     dir_ / "out"},
                    std::map<std::string, std::string>{}, dir_ / log);
    const int rc = p.wait(10'000);
    return std::make_pair(rc, *read_file(dir_ / log));
  };
  auto [rc1, same_dir] = second("127.0.0.1:0", dir_ / "state", "second-dir.log");
  EXPECT_EQ(rc1, 2) << same_dir;
  EXPECT_NE(same_dir.find("is in use by shardpress-coordinator, listening on " + addr_), std::string::npos)
      << same_dir;
  auto [rc2, same_port] = second(addr_, dir_ / "state2", "second-port.log");
  EXPECT_EQ(rc2, 2) << same_port;
  EXPECT_NE(same_port.find("cannot listen on " + addr_ + ": the address is in use"), std::string::npos) << same_port;
  EXPECT_FALSE(fs::exists(dir_ / "state2")) << "nothing is created before the address is known to be free";
  test::write_text(dir_ / "plain", "");
  auto [rc3, plain] = second("127.0.0.1:0", dir_ / "plain", "second-plain.log");
  EXPECT_EQ(rc3, 2) << plain;
  EXPECT_NE(plain.find("is not a folder"), std::string::npos) << plain;

  // The first one still serves every client: a job runs to the end on it.
  start_worker("a");
  wait_for_workers(1);  // "a" holds its cache dir
  test::Process twin(test::bin_dir() + "/shardpress-worker", {"--coordinator", addr_, "--cache-dir", dir_ / "cache-a"},
                     std::map<std::string, std::string>{}, dir_ / "twin.log");
  EXPECT_EQ(twin.wait(10'000), 2);
  EXPECT_NE(read_file(dir_ / "twin.log")->find("cache-a is in use by shardpress-worker"), std::string::npos)
      << *read_file(dir_ / "twin.log");
  auto r = cli({"submit", write_job("one"), "--wait"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// Fault 3 for `local`: a second run on the same state dir while the first runs.
TEST_F(Cluster, TwoLocalRunsOnOneStateDirAreRefused) {
  const std::vector<std::string> args{"local", write_job("l2"), "--workers", "1", "--state-dir", dir_ / "st"};
  std::vector<std::string> slow = args;
  slow.insert(slow.end(), {"--test-hooks", "task=300"});
  test::Process first(SP_CLI_PATH, slow, std::map<std::string, std::string>{}, dir_ / "local1.log");
  for (int i = 0; i < 400 && !fs::exists(dir_ / "st/coordinator.addr"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  auto r = test::run_cli(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("is in use by shardpress local"), std::string::npos) << r.err;
  EXPECT_EQ(first.wait(60'000), 0) << *read_file(dir_ / "local1.log");
  expect_reference_output("l2");
}

}  // namespace
}  // namespace sp

namespace sp {
namespace {

// Fault 2: rerunning `local` with the same name resumes only the same spec (digest of the
// normalized spec); an edited spec is refused naming what changed, or with --fresh
// started over — never silently the old job.
TEST_F(Cluster, LocalRerunOfAnEditedSpecIsRefusedOrStartedFresh) {
  const std::string job = dir_ / "l3.yaml", out = dir_ / "out/l3";
  auto local = [&](std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"local", job, "--workers", "1", "--state-dir", dir_ / "st"};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::run_cli(args);
  };
  test::write_text(job, job_yaml("l3", dir_ / "models/stories", out));
  ASSERT_EQ(local().exit_code, 0);
  EXPECT_EQ(manifest_digests(out), reference(false));

  auto same = local();  // same spec: nothing to do
  EXPECT_EQ(same.exit_code, 0) << same.err;
  EXPECT_NE(same.err.find("already succeeded"), std::string::npos) << same.err;

  test::write_text(job, job_yaml("l3", dir_ / "models/stories", out, "prune: {method: magnitude, sparsity: 0.3}\n"));
  auto edited = local();
  EXPECT_EQ(edited.exit_code, 2) << edited.err;
  EXPECT_NE(edited.err.find("was run with a different spec"), std::string::npos) << edited.err;
  EXPECT_NE(edited.err.find("prune.method: none -> magnitude"), std::string::npos) << edited.err;
  EXPECT_NE(edited.err.find("--fresh"), std::string::npos) << edited.err;
  EXPECT_EQ(manifest_digests(out), reference(false)) << "the old output is untouched";

  auto blocked = local({"--fresh"});  // the earlier output is in the way: nothing discarded
  EXPECT_EQ(blocked.exit_code, 2) << blocked.err;
  EXPECT_NE(blocked.err.find("already exists"), std::string::npos) << blocked.err;
  EXPECT_EQ(local().exit_code, 2) << "the earlier run is still there";
  fs::remove_all(out);
  auto fresh = local({"--fresh"});
  ASSERT_EQ(fresh.exit_code, 0) << fresh.err;
  EXPECT_NE(fresh.err.find("--fresh: discarded job-0001 (SUCCEEDED)"), std::string::npos) << fresh.err;
  EXPECT_EQ(manifest_digests(out), reference(true)) << "the new spec's output";

  fs::remove_all(out);  // the output deleted since: no silent "already succeeded"
  auto gone = local();
  EXPECT_EQ(gone.exit_code, 2) << gone.err;
  EXPECT_NE(gone.err.find("is gone"), std::string::npos) << gone.err;
  ASSERT_EQ(local({"--fresh"}).exit_code, 0);
  EXPECT_EQ(manifest_digests(out), reference(true));
}

// Fault 2, killed mid-run: an edited spec is not resumed on the old job's tasks.
TEST_F(Cluster, LocalRunKilledThenEditedIsNotResumedWithTheOldSpec) {
  const std::string job = dir_ / "l4.yaml";
  test::write_text(job, job_yaml("l4", dir_ / "models/stories", dir_ / "out/l4"));
  const std::vector<std::string> args{"local", job, "--workers", "1", "--state-dir", dir_ / "st4"};
  ASSERT_TRUE(kill_local_when(args, "2/5 tasks", "local4.log"));
  test::write_text(job, job_yaml("l4", dir_ / "models/stories", dir_ / "out/l4", "quantize: {blocksize: 128}\n"));
  auto r = test::run_cli(args);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("quantize.blocksize: 64 -> 128"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out/l4"));
  std::vector<std::string> fresh = args;
  fresh.push_back("--fresh");
  auto f = test::run_cli(fresh);
  ASSERT_EQ(f.exit_code, 0) << f.err;
  auto v = test::run_cli({"verify", dir_ / "out/l4", "-o", "json"});
  ASSERT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(json::parse(v.out)["blocksize"], 128);
}

// Fault 6: NaN or infinity in any tensor the output keeps fails the job naming the tensor
// and element (a layer's norm on the worker, the final norm at import, a projection
// under GPTQ — named as the weight, not as an "input"); an evaluation of such a model
// fails instead of printing perplexity nan.
TEST_F(Cluster, NonFiniteWeightsFailTheJobNamingTheTensor) {
  start_coordinator("", {"--max-failures", "1"});
  start_worker("a");
  fs::copy_file(test::fixture("stories260k/text/calib.ids.txt"), dir_ / "models/calib.ids.txt");
  struct Case {
    std::string name, tensor, extra;
    uint16_t bits;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"layernorm", "model.layers.1.input_layernorm.weight", "", kBf16Nan,
       "model.layers.1.input_layernorm.weight: element 5 is nan"},
      {"finalnorm", "model.norm.weight", "", kBf16Inf, "model.norm.weight: element 5 is inf"},
      {"gptq", "model.layers.0.self_attn.q_proj.weight",
       "quantize: {method: gptq}\ncalibrate: {ids: " + (dir_ / "models/calib.ids.txt") + ", samples: 8}\n", kBf16Inf,
       "model.layers.0.self_attn.q_proj.weight: element 5 (row 0, column 5) is inf"},
  };
  for (const auto& c : cases) {
    const std::string model = dir_ / ("models/" + c.name);
    fs::copy(dir_ / "models/stories", model);
    poke_bf16(model + "/model.safetensors", c.tensor, 5, c.bits);
    test::write_text(dir_ / "n.yaml", job_yaml(c.name, model, dir_ / ("out/" + c.name), c.extra));
    auto r = cli({"submit", dir_ / "n.yaml", "--wait"});
    EXPECT_EQ(r.exit_code, 1) << c.name << ": " << r.out << r.err;
    const json s = status(c.name);
    EXPECT_EQ(s["state"], "FAILED") << c.name;
    const std::string error = s.value("error", "");
    EXPECT_NE(error.find(c.expect), std::string::npos) << c.name << ": " << error;
    EXPECT_EQ(error.find("Hessian"), std::string::npos) << c.name << ": " << error;
    EXPECT_FALSE(fs::exists(dir_ / ("out/" + c.name))) << c.name;
  }
  auto ev = cli({"eval", dir_ / "models/layernorm", "--ids", dir_ / "models/calib.ids.txt", "--samples", "4",
                 "--remote"});
  EXPECT_EQ(ev.exit_code, 1) << ev.out << ev.err;
  EXPECT_EQ(ev.out.find("nan"), std::string::npos) << ev.out;
  EXPECT_NE(ev.err.find("model.layers.1.input_layernorm.weight: element 5 is nan"), std::string::npos) << ev.err;
  auto local = test::run_cli({"eval", dir_ / "models/layernorm", "--ids", dir_ / "models/calib.ids.txt", "--samples", "4"});
  EXPECT_NE(local.exit_code, 0) << local.out;
  EXPECT_NE(local.err.find("model.layers.1.input_layernorm.weight: element 5 is nan"), std::string::npos) << local.err;
}

// Fault 6: a name refers to one job; a second evaluation of a folder gets a new name.
TEST_F(Cluster, JobNamesAreUnique) {
  start_coordinator();
  start_worker("a");
  ASSERT_EQ(cli({"submit", write_job("u1"), "--wait"}).exit_code, 0);
  test::write_text(dir_ / "u1b.yaml", job_yaml("u1", dir_ / "models/stories", dir_ / "out/u1-other"));
  auto dup = cli({"submit", dir_ / "u1b.yaml"});
  EXPECT_EQ(dup.exit_code, 2) << dup.err;
  EXPECT_NE(dup.err.find("a job named 'u1' exists already (job-0001, succeeded)"), std::string::npos) << dup.err;
  fs::copy_file(test::fixture("stories260k/text/eval.ids.txt"), dir_ / "models/eval.ids.txt");
  for (int i = 0; i < 2; ++i) {
    auto e = cli({"eval", dir_ / "out/u1", "--ids", dir_ / "models/eval.ids.txt", "--samples", "2", "--remote"});
    ASSERT_EQ(e.exit_code, 0) << e.err;
  }
  EXPECT_EQ(status("eval-u1")["state"], "SUCCEEDED");
  EXPECT_EQ(status("eval-u1-2")["state"], "SUCCEEDED");
  EXPECT_EQ(json::parse(cli({"list", "-o", "json"}).out)["jobs"].size(), 3u);
}

// Fault 7: what the CLI promises. One JSON document from submit/resume --wait -o json,
// 64-bit counters as numbers; watch in a short terminal keeps the header; watch fails at
// once when nothing answers; the ETA waits for the import.
TEST_F(Cluster, TheCliDoesWhatItPromises) {
  start_coordinator("import=40");
  start_worker("a", "task=400");
  wait_for_workers(1);
  auto w = cli({"submit", write_job("j1"), "--wait", "-o", "json"});
  ASSERT_EQ(w.exit_code, 0) << w.err;
  const json finished = json::parse(w.out);  // the whole of stdout is one document
  EXPECT_EQ(finished["state"], "SUCCEEDED");
  EXPECT_TRUE(finished["bytes_total"].is_number_unsigned()) << finished["bytes_total"];
  EXPECT_TRUE(finished["created_ms"].is_number_integer()) << finished["created_ms"];
  EXPECT_EQ(finished["tasks"].size(), 5u);
  const json workers = json::parse(cli({"workers", "-o", "json"}).out);
  EXPECT_TRUE(workers["workers"][0]["memory"].is_number_unsigned()) << workers;

  // While importing: the totals are what is planned so far, no ETA from them.
  ASSERT_EQ(cli({"submit", write_job("j2")}).exit_code, 0);
  bool seen_importing = false;
  for (int i = 0; i < 200 && !seen_importing; ++i) {
    auto st = cli({"status", "j2"});
    seen_importing = st.out.find("planned so far") != std::string::npos;
    if (seen_importing) {
      EXPECT_NE(st.out.find("ETA once imported"), std::string::npos) << st.out;
      EXPECT_EQ(st.out.find(", ETA 0"), std::string::npos) << st.out;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(seen_importing);

  // watch on a terminal of 9 rows: every frame fits, the header is in every frame.
  const std::string cmd = "stty rows 9 cols 160; " + std::string(SP_CLI_PATH) + " --coordinator " + addr_ + " watch j2";
  test::Process watch("/usr/bin/script", {"-qfec", cmd, "/dev/null"}, std::map<std::string, std::string>{},
                      dir_ / "watch.log");
  EXPECT_EQ(watch.wait(60'000), 0);
  const std::string screen = *read_file(dir_ / "watch.log");
  size_t frames = 0;
  for (size_t at = screen.find("\x1b[H\x1b[2J"); at != std::string::npos;) {
    const size_t next = screen.find("\x1b[H\x1b[2J", at + 1);
    const std::string frame = screen.substr(at + 7, next == std::string::npos ? std::string::npos : next - at - 7);
    if (next != std::string::npos) {  // the last one is followed by the final view
      ++frames;
      EXPECT_LE(std::count(frame.begin(), frame.end(), '\n'), 8) << frame;
      EXPECT_NE(frame.find("job       job-0002 (j2)"), std::string::npos) << frame;
      EXPECT_NE(frame.find("progress  ["), std::string::npos) << frame;
    }
    at = next;
  }
  EXPECT_GE(frames, 2u) << screen;

  // resume --wait -o json: one document as well.
  ASSERT_EQ(cli({"submit", write_job("j3")}).exit_code, 0);
  wait_for("j3", [](const json& s) { return done(s) >= 1; });
  ASSERT_EQ(cli({"cancel", "j3"}).exit_code, 0);
  auto r = cli({"resume", "j3", "--wait", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["state"], "SUCCEEDED");

  // Nothing answers: exit 3 at once, like every other command.
  const auto t0 = std::chrono::steady_clock::now();
  auto gone = test::run_cli({"--coordinator", "127.0.0.1:1", "watch", "j2"});
  EXPECT_EQ(gone.exit_code, 3) << gone.err;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

// Fault 8: a token file that is missing or too short stops the CLI before any call.
TEST_F(Cluster, ABadTokenFileStopsTheCliBeforeCallingTheCoordinator) {
  start_coordinator();
  test::write_text(dir_ / "short.token", "abc\n");
  for (const std::string& file : {dir_ / "missing.token", dir_ / "short.token"}) {
    auto r = cli({"--token-file", file, "list"});
    EXPECT_EQ(r.exit_code, 2) << file << ": " << r.err;
    EXPECT_NE(r.err.find(file), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("coordinator"), std::string::npos) << "no call was made: " << r.err;
  }
  auto ok = cli({"list"});
  EXPECT_EQ(ok.exit_code, 0);
}

// Fault 8: a worker that vanishes and a coordinator restart are events of the job, and
// the coordinator's log has a line for every state change.
TEST_F(Cluster, VanishedWorkersAndRestartsAreInTheEventLogAndTheLog) {
  start_coordinator();
  test::Process* slow = start_worker("slow", "task=5000");
  ASSERT_EQ(cli({"submit", write_job("v1")}).exit_code, 0);
  wait_for("v1", [](const json& s) {
    for (const auto& t : s["tasks"])
      if (t["state"] == "LEASED") return true;
    return false;
  });
  slow->kill(SIGKILL);
  slow->wait();
  auto has_event = [&](const std::string& part) {
    for (int i = 0; i < 200; ++i) {
      if (cli({"events", "v1"}).out.find(part) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  };
  EXPECT_TRUE(has_event("stopped responding")) << cli({"events", "v1"}).out;
  EXPECT_TRUE(has_event("expired (attempt 1), task is ready again")) << cli({"events", "v1"}).out;
  coordinator_->kill(SIGKILL);
  coordinator_->wait();
  start_coordinator();
  EXPECT_TRUE(has_event("coordinator restarted")) << cli({"events", "v1"}).out;
  start_worker("b");
  wait_for("v1", succeeded);
  const std::string log = *read_file(dir_ / "coordinator.log");
  for (const char* line : {"registered: cpu on", "stopped responding", "job-0001: submitted 'v1'",
                           "job-0001: job-0001/layer.0 leased to worker", "recovered 1 job (1 unfinished)",
                           "job-0001: coordinator restarted", "job-0001: job succeeded"})
    EXPECT_NE(log.find(line), std::string::npos) << line << " not in:\n" << log;
}

}  // namespace
}  // namespace sp

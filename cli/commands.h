// The `shardpress` subcommands. Each registers itself on the CLI11 app and returns the
// exit code through `*exit_code` when run: parse, validate, run; data on stdout,
// messages on stderr.
#pragma once

#include <functional>
#include <string>

#include "CLI/CLI.hpp"
#include "common/status.h"
#include "shardpress.pb.h"

namespace sp::cli {

void add_inspect_command(CLI::App& app, int* exit_code);
void add_verify_command(CLI::App& app, int* exit_code);
// eval: perplexity of a model or checkpoint on a token-id file (here, or --remote on a
// coordinator's workers).
struct ConnectionFlags;
void add_eval_command(CLI::App& app, const ConnectionFlags* conn, int* exit_code);
void add_compress_command(CLI::App& app, int* exit_code);
// submit, status, list, watch, cancel, resume, workers, events (talk to a coordinator).
// How to reach the coordinator: the global flags.
struct ConnectionFlags {
  std::string coordinator;  // HOST:PORT (else $SHARDPRESS_COORDINATOR, else 127.0.0.1:7070)
  std::string token_file;   // else $SHARDPRESS_TOKEN_FILE
  std::string tls_ca, tls_cert, tls_key;
};
void add_job_commands(CLI::App& app, const ConnectionFlags* conn, int* exit_code);
class CoordinatorApiClient;
// A client for the coordinator the flags name; an unreadable or too short token file, or
// unreadable TLS files, are an error (the command stops before any call).
absl::StatusOr<CoordinatorApiClient> connect_coordinator(const ConnectionFlags& conn);
// connect_coordinator, then `body` with the client; its exit code (2 for a bad file).
int with_coordinator(const ConnectionFlags& conn, const std::function<int(CoordinatorApiClient&)>& body);
// local: an embedded coordinator and N workers running one job.
void add_local_command(CLI::App& app, int* exit_code);
// simulate: a job's wall time, transfers, disk and memory on a modelled lab.
void add_simulate_command(CLI::App& app, int* exit_code);
// synth: a synthetic model with real tensor names and deterministic random weights.
void add_synth_command(CLI::App& app, int* exit_code);
// shardpress imatrix MODEL_DIR --ids FILE -o OUT.dat
void add_imatrix_command(CLI::App& app, int* exit_code);

// Reads a job YAML file; relative paths become absolute (from the current folder).
absl::StatusOr<shardpress::v1::JobSpec> load_job_file(const std::string& path);
void make_paths_absolute(shardpress::v1::JobSpec& spec);
// sweep SWEEP.yaml (submit, resume, cancel a sweep's jobs) and report SWEEP (compare them).
void add_sweep_commands(CLI::App& app, const ConnectionFlags* conn, int* exit_code);

}  // namespace sp::cli

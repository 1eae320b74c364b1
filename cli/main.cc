// shardpress: the command line. Exit codes: 0 ok, 1 failed, 2 bad input or usage,
// 3 cannot reach the coordinator.
#include <cstdio>

#include "CLI/CLI.hpp"
#include "cli/commands.h"
#include "cli/output.h"

int main(int argc, char** argv) {
  CLI::App app{"shardpress: compress Hugging Face LLM checkpoints to bitsandbytes NF4"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("shardpress 0.1.0"));
  int exit_code = sp::cli::kExitOk;
  sp::cli::ConnectionFlags conn;
  app.add_option("--coordinator", conn.coordinator,
                 "Coordinator HOST:PORT (default $SHARDPRESS_COORDINATOR or 127.0.0.1:7070)");
  app.add_option("--token-file", conn.token_file, "File with the coordinator's shared token (default $SHARDPRESS_TOKEN_FILE)");
  app.add_option("--tls-ca", conn.tls_ca, "TLS: CA certificate that signed the coordinator's");
  app.add_option("--tls-cert", conn.tls_cert, "Mutual TLS: client certificate");
  app.add_option("--tls-key", conn.tls_key, "Mutual TLS: its private key");
  app.fallthrough();
  sp::cli::add_inspect_command(app, &exit_code);
  sp::cli::add_verify_command(app, &exit_code);
  sp::cli::add_eval_command(app, &conn, &exit_code);
  sp::cli::add_compress_command(app, &exit_code);
  sp::cli::add_job_commands(app, &conn, &exit_code);
  sp::cli::add_sweep_commands(app, &conn, &exit_code);
  sp::cli::add_local_command(app, &exit_code);
  sp::cli::add_synth_command(app, &exit_code);
  sp::cli::add_simulate_command(app, &exit_code);
  sp::cli::add_imatrix_command(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? sp::cli::kExitOk : sp::cli::kExitBadInput;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "shardpress: out of memory\n");
    return sp::cli::kExitFailed;
  } catch (const std::exception& e) {  // a bug: say what, never abort with a core dump
    std::fprintf(stderr, "shardpress: internal error: %s\n", e.what());
    return sp::cli::kExitFailed;
  }
  return exit_code;
}

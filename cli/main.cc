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
  std::string coordinator;
  app.add_option("--coordinator", coordinator, "Coordinator HOST:PORT (default $SHARDPRESS_COORDINATOR or 127.0.0.1:7070)");
  std::string token_file;
  app.add_option("--token-file", token_file, "File with the coordinator's shared token (default $SHARDPRESS_TOKEN_FILE)");
  app.fallthrough();
  sp::cli::add_inspect_command(app, &exit_code);
  sp::cli::add_verify_command(app, &exit_code);
  sp::cli::add_compress_command(app, &exit_code);
  sp::cli::add_job_commands(app, &coordinator, &token_file, &exit_code);
  sp::cli::add_local_command(app, &exit_code);
  sp::cli::add_synth_command(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? sp::cli::kExitOk : sp::cli::kExitBadInput;
  }
  return exit_code;
}

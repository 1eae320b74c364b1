// The `shardpress` subcommands. Each registers itself on the CLI11 app and returns the
// exit code through `*exit_code` when run: parse, validate, run; data on stdout,
// messages on stderr.
#pragma once

#include "CLI/CLI.hpp"

namespace sp::cli {

void add_inspect_command(CLI::App& app, int* exit_code);
void add_verify_command(CLI::App& app, int* exit_code);
void add_compress_command(CLI::App& app, int* exit_code);

}  // namespace sp::cli

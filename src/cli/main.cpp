// lorakit command-line tool.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "cli/launch.h"
#include "core/errors.h"
#include "core/runtime.h"
#include "train/interrupt.h"

int main(int argc, char** argv) {
  lorakit::ensure_blas_environment(argc, argv);
  lorakit::cli::set_command_line(argc, argv);
  CLI::App app{"lorakit: parameter-efficient fine-tuning of transformer encoders (LibTorch)"};
  app.set_version_flag("--version", std::string("lorakit ") + LORAKIT_VERSION);
  app.require_subcommand(1);
  lorakit::cli::register_all(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const lorakit::cli::ExitWith& e) {
    return e.code;
  } catch (const lorakit::Interrupted& e) {
    fmt::print(stderr, "lorakit: {}\n", e.what());
    return 128 + e.signal;
  } catch (const lorakit::Error& e) {
    fmt::print(stderr, "lorakit: error: {}\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    fmt::print(stderr, "lorakit: error: {}\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "lorakit: error: {}\n", e.what());
    return 1;
  }
  return 0;
}

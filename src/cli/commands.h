#pragma once
namespace CLI {
class App;
}
namespace lorakit::cli {
// Adds every subcommand to `app`; each runs from its parse callback and throws lorakit::Error on bad input.
void register_all(CLI::App& app);
void register_training_commands(CLI::App& app);
void register_sweep_command(CLI::App& app);
void register_predict_commands(CLI::App& app);
void register_init_model_command(CLI::App& app);
}  // namespace lorakit::cli

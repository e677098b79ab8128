// The subcommands of the decayc driver and the small argument parser they share.
#ifndef DECAYC_COMMANDS_H
#define DECAYC_COMMANDS_H

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace decayc {

/// Parsed command-line arguments: positionals and `--name value` / `--flag`.
struct Arguments {
  std::vector<std::string> positionals;
  std::map<std::string, std::string> options;
  bool has(const std::string &name) const { return options.count(name) != 0; }
  std::optional<std::string> get(const std::string &name) const;
};

/// Parses argv[first..]: `valueOptions` take a value (`--x v` or `--x=v`),
/// `flags` take none. Returns false and prints an error on anything else.
bool parseArguments(int argc, char **argv, int first,
                    const std::vector<std::string> &valueOptions,
                    const std::vector<std::string> &flags, Arguments &out);

/// Reads `--<option>` (--dtype, --state-dtype) into `dtype` ("" when
/// absent: the spec's). False, with `error` set, when it is neither f32 nor bf16.
bool readDtypeOption(const Arguments &args, std::string &dtype, std::string &error,
                     const std::string &option = "dtype");

/// `decayc run`: returns the process exit code.
int runCommand(int argc, char **argv);
extern const char *const kRunHelp;

/// `decayc bench`: returns the process exit code.
int benchCommand(int argc, char **argv);
extern const char *const kBenchHelp;

/// `decayc compile`: returns the process exit code.
int compileCommand(int argc, char **argv);
extern const char *const kCompileHelp;

/// `decayc inspect`: returns the process exit code.
int inspectCommand(int argc, char **argv);
extern const char *const kInspectHelp;

} // namespace decayc

#endif

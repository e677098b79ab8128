// decayc: the driver that compiles and runs decay recurrence specs (subcommand dispatch and help).
#include "Commands.h"

#include <cstdio>
#include <cstring>
#include <string>

namespace {
const char *const kHelp = R"(decayc: a compiler for the decay recurrences of linear attention

USAGE: decayc <subcommand> [options]

SUBCOMMANDS:
  bench     Time a kernel: median, tokens/s, GFLOP/s, beside the machine's peak.
  compile   Compile a spec into a kernel package (CPU kernels + manifest).
  inspect   List a package's kernels and launches; FLOPs, traffic and roofline for a shape.
  run       Run a spec's recurrence on NumPy .npy tensors and write the outputs (CPU or CUDA).

Run `decayc <subcommand> --help` for the options of a subcommand.
A spec is a .mlir file holding decay.recurrence ops (see examples/specs/ and
docs/semantics.md).
)";
} // namespace

std::optional<std::string> decayc::Arguments::get(const std::string &name) const {
  auto found = options.find(name);
  if (found == options.end())
    return std::nullopt;
  return found->second;
}

bool decayc::parseArguments(int argc, char **argv, int first,
                            const std::vector<std::string> &valueOptions,
                            const std::vector<std::string> &flags, Arguments &out) {
  auto contains = [](const std::vector<std::string> &list, const std::string &name) {
    for (const std::string &entry : list)
      if (entry == name)
        return true;
    return false;
  };
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-o")
      arg = "--output"; // the one short option: decayc compile -o PKG
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      out.positionals.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    size_t equals = name.find('=');
    bool inlineValue = equals != std::string::npos;
    if (inlineValue) {
      value = name.substr(equals + 1);
      name = name.substr(0, equals);
    }
    if (contains(flags, name) && !inlineValue) {
      out.options[name] = "";
    } else if (contains(valueOptions, name)) {
      if (!inlineValue) {
        if (i + 1 >= argc) {
          std::fprintf(stderr, "error: option --%s needs a value\n", name.c_str());
          return false;
        }
        value = argv[++i];
      }
      out.options[name] = value;
    } else {
      std::fprintf(stderr, "error: unknown option '%s' (see --help)\n", arg.c_str());
      return false;
    }
  }
  return true;
}

bool decayc::readDtypeOption(const Arguments &args, std::string &dtype, std::string &error,
                             const std::string &option) {
  dtype = args.get(option).value_or("");
  if (dtype.empty() && !args.has(option))
    return true;
  if (dtype == "f32" || dtype == "bf16")
    return true;
  error = "--" + option + " must be f32 or bf16, got '" + dtype + "'";
  return false;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fputs(kHelp, stderr);
    return 2;
  }
  std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    if (argc > 2 && std::strcmp(argv[2], "run") == 0)
      std::fputs(decayc::kRunHelp, stdout);
    else if (argc > 2 && std::strcmp(argv[2], "compile") == 0)
      std::fputs(decayc::kCompileHelp, stdout);
    else if (argc > 2 && std::strcmp(argv[2], "bench") == 0)
      std::fputs(decayc::kBenchHelp, stdout);
    else if (argc > 2 && std::strcmp(argv[2], "inspect") == 0)
      std::fputs(decayc::kInspectHelp, stdout);
    else
      std::fputs(kHelp, stdout);
    return 0;
  }
  if (command == "run")
    return decayc::runCommand(argc, argv);
  if (command == "compile")
    return decayc::compileCommand(argc, argv);
  if (command == "bench")
    return decayc::benchCommand(argc, argv);
  if (command == "inspect")
    return decayc::inspectCommand(argc, argv);
  std::fprintf(stderr, "error: unknown subcommand '%s' (see decayc --help)\n",
               command.c_str());
  return 2;
}

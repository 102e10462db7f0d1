// The CNI protocol for one plugin binary: environment, stdin config, version negotiation, dispatch
// to the plugin's handlers, result and error JSON on stdout. A plugin's main() is one call to Run().
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cni-plugins/skel/cni_error.h"
#include "cni-plugins/skel/result.h"

namespace sluice::cni {

enum class Command { kAdd, kDel, kCheck, kVersion, kGc, kStatus };

struct Environment {
  Command command = Command::kVersion;
  std::string command_name;  // CNI_COMMAND as given
  std::string container_id;
  std::string netns;  // may be empty for DEL
  std::string ifname;
  std::string args_raw;                       // CNI_ARGS as given
  std::map<std::string, std::string> args;    // CNI_ARGS parsed, keys as given
  std::vector<std::string> path;              // CNI_PATH split on ':'
};

// An attachment the runtime still considers valid (GC input).
struct Attachment {
  std::string container_id;
  std::string ifname;
  auto operator<=>(const Attachment&) const = default;
};

struct Request {
  Environment env;
  std::string stdin_data;       // the config exactly as received (delegated plugins get it too)
  nlohmann::json config;        // parsed stdin
  std::string cni_version;
  std::string name;             // network name
  std::string type;
  std::optional<Result> prev_result;
  nlohmann::json runtime_config = nlohmann::json::object();
  std::set<Attachment> valid_attachments;  // GC only
};

struct Plugin {
  std::string about;  // shown on a terminal when run without CNI_COMMAND
  // Keys this plugin reads from CNI_ARGS; others are refused unless IgnoreUnknown=1|true.
  std::set<std::string> known_args;
  std::function<Result(const Request&)> add;
  std::function<void(const Request&)> del;
  std::function<void(const Request&)> check;
  std::function<void(const Request&)> gc;      // null: GC is a no-op success
  std::function<void(const Request&)> status;  // null: always ready
};

// Runs one CNI operation from the process environment and stdin; returns the exit code.
int Run(const Plugin& plugin);

// The pieces of Run(), exposed for tests and fuzzing. ParseEnvironment reads `getenv`.
Environment ParseEnvironment(const std::function<const char*(const char*)>& getenv_fn);
Request ParseRequest(Environment env, std::string stdin_data, const Plugin& plugin);
// Executes a whole request and returns {exit code, stdout text}.
std::pair<int, std::string> Execute(const Plugin& plugin, Environment env, std::string stdin_data);
std::string ErrorJson(const Error& e, std::string_view cni_version);

// Validation the spec and the reference library apply.
void ValidateContainerId(const std::string& id);
void ValidateIfName(const std::string& ifname);
void ValidateNetworkName(const std::string& name);

// Plugins built into this executable. A delegate found in CNI_PATH that is this very file (a hard
// link of the multi-plugin binary) runs in-process instead of as a child process.
void RegisterInProcess(std::string_view type, const Plugin* plugin);
const Plugin* FindInProcess(std::string_view type);

// Runs the delegated (IPAM) plugin `type` found in CNI_PATH with the same environment, the
// command `command`, and the request's stdin. Throws Error with the delegate's code and message.
Result DelegateAdd(const Request& req, const std::string& type);
void DelegateCommand(const Request& req, const std::string& type, Command command);

}  // namespace sluice::cni

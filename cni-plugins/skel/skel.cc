#include "cni-plugins/skel/skel.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>

#include "cni-plugins/skel/config_reader.h"
#include "cni-plugins/skel/version.h"
#include "common/unique_fd.h"

extern char** environ;

namespace sluice::cni {
namespace {

using nlohmann::json;

const char* CommandName(Command c) {
  switch (c) {
    case Command::kAdd: return "ADD";
    case Command::kDel: return "DEL";
    case Command::kCheck: return "CHECK";
    case Command::kVersion: return "VERSION";
    case Command::kGc: return "GC";
    case Command::kStatus: return "STATUS";
  }
  return "?";
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    auto end = s.find(sep, start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool IsNameChar(char c, bool first) {
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  return !first && (c == '_' || c == '.' || c == '-');
}

bool MatchesNamePattern(const std::string& s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!IsNameChar(s[i], i == 0)) return false;
  }
  return true;
}

void CheckArgs(const Environment& env, const Plugin& plugin) {
  bool ignore_unknown = false;
  if (auto it = env.args.find("IgnoreUnknown"); it != env.args.end()) {
    ignore_unknown = it->second == "1" || it->second == "true" || it->second == "True";
  }
  if (ignore_unknown) return;
  std::string unknown;
  for (const auto& [key, value] : env.args) {
    if (key == "IgnoreUnknown" || plugin.known_args.contains(key)) continue;
    unknown += (unknown.empty() ? "" : ", ") + key + "=" + value;
  }
  if (!unknown.empty()) {
    throw Error(kInvalidEnvironment, "CNI_ARGS: unknown args [" + unknown + "]",
                "set IgnoreUnknown=1 to ignore them");
  }
}

std::set<Attachment> ParseAttachments(const json& config) {
  std::set<Attachment> out;
  // libcni sends "cni.dev/valid-attachments"; the 1.1.0 spec text says "cni.dev/attachments".
  for (const char* key : {"cni.dev/valid-attachments", "cni.dev/attachments"}) {
    const json* list = OptArray(config, key);
    if (!list) continue;
    for (const auto& a : *list) {
      auto cid = OptString(a, "containerID");
      auto ifname = OptString(a, "ifname");
      if (!cid || !ifname) {
        throw Error(kDecodeFailure, std::string(key) + ": every entry needs containerID and ifname");
      }
      out.insert({*cid, *ifname});
    }
  }
  return out;
}

// Writes `input` to fd `in` while draining `out` into a string; returns what was read.
std::string Exchange(UniqueFd in, UniqueFd out, const std::string& input) {
  std::string output;
  size_t written = 0;
  if (input.empty()) in.Reset();
  char buf[16384];
  while (out.valid()) {
    pollfd fds[2];
    int n = 0;
    fds[n++] = {out.get(), POLLIN, 0};
    if (in.valid()) fds[n++] = {in.get(), POLLOUT, 0};
    if (poll(fds, n, -1) < 0) {
      if (errno == EINTR) continue;
      throw Error(kIoFailure, std::string("poll on delegate pipes: ") + std::strerror(errno));
    }
    if (n == 2 && fds[1].revents) {
      ssize_t w = write(in.get(), input.data() + written, input.size() - written);
      if (w < 0 && errno != EINTR && errno != EAGAIN) {
        in.Reset();  // the delegate stopped reading; its exit status tells why
      } else if (w > 0) {
        written += static_cast<size_t>(w);
        if (written == input.size()) in.Reset();
      }
    }
    if (fds[0].revents) {
      ssize_t r = read(out.get(), buf, sizeof(buf));
      if (r > 0) {
        output.append(buf, static_cast<size_t>(r));
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        out.Reset();
      }
    }
  }
  return output;
}

std::string FindInPath(const Request& req, const std::string& type) {
  if (type.empty() || type.find('/') != std::string::npos) {
    throw Error(kInvalidConfig, "invalid delegate plugin type \"" + type + "\"");
  }
  if (req.env.path.empty()) {
    throw Error(kInvalidEnvironment,
                "CNI_PATH is empty or missing: cannot find plugin \"" + type + "\"");
  }
  for (const auto& dir : req.env.path) {
    std::string candidate = dir + "/" + type;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  std::string dirs;
  for (const auto& d : req.env.path) dirs += (dirs.empty() ? "" : ":") + d;
  throw Error(kInvalidConfig, "failed to find plugin \"" + type + "\" in path [" + dirs + "]");
}

std::map<std::string, const Plugin*, std::less<>>& Registry() {
  static std::map<std::string, const Plugin*, std::less<>> registry;
  return registry;
}

bool IsThisExecutable(const std::string& path) {
  struct stat a {}, b {};
  return stat(path.c_str(), &a) == 0 && stat("/proc/self/exe", &b) == 0 && a.st_dev == b.st_dev &&
         a.st_ino == b.st_ino;
}

[[noreturn]] void ThrowDelegateFailure(const std::string& binary, const std::string& output,
                                       const std::string& how) {
  // Surface the delegate's own error object when it printed one.
  json err = json::parse(output, nullptr, false);
  if (err.is_object() && err.contains("code") && err["code"].is_number_integer()) {
    throw Error(err["code"].get<int>(), GetString(err, "msg"), GetString(err, "details"));
  }
  throw Error(kInternal, "plugin " + binary + " " + how, output);
}

std::string RunDelegate(const Request& req, const std::string& type, Command command) {
  std::string binary = FindInPath(req, type);
  if (const Plugin* plugin = FindInProcess(type); plugin && IsThisExecutable(binary)) {
    Environment env = req.env;
    env.command = command;
    env.command_name = CommandName(command);
    auto [code, output] = Execute(*plugin, std::move(env), req.stdin_data);
    if (code == 0) return output;
    ThrowDelegateFailure(binary, output, "failed");
  }
  int in_pipe[2], out_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0) throw Error(kIoFailure, "pipe: " + std::string(strerror(errno)));
  UniqueFd in_read(in_pipe[0]), in_write(in_pipe[1]);
  if (pipe2(out_pipe, O_CLOEXEC) != 0) throw Error(kIoFailure, "pipe: " + std::string(strerror(errno)));
  UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);

  std::vector<std::string> env_storage;
  std::string cmd_var = std::string("CNI_COMMAND=") + CommandName(command);
  std::vector<char*> envp;
  for (char** e = environ; *e; ++e) {
    if (std::strncmp(*e, "CNI_COMMAND=", 12) == 0) continue;
    envp.push_back(*e);
  }
  envp.push_back(cmd_var.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_read.get(), STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out_write.get(), STDOUT_FILENO);
  std::string argv0 = type;
  char* argv[] = {argv0.data(), nullptr};
  pid_t pid = 0;
  int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    throw Error(kInternal, "failed to run plugin " + binary + ": " + std::strerror(rc));
  }
  in_read.Reset();
  out_write.Reset();
  std::string output = Exchange(std::move(in_write), std::move(out_read), req.stdin_data);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return output;
  ThrowDelegateFailure(binary, output,
                       WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                         : "was killed by signal " + std::to_string(WTERMSIG(status)));
}

}  // namespace

void RegisterInProcess(std::string_view type, const Plugin* plugin) {
  Registry()[std::string(type)] = plugin;
}

const Plugin* FindInProcess(std::string_view type) {
  auto it = Registry().find(type);
  return it == Registry().end() ? nullptr : it->second;
}

void ValidateContainerId(const std::string& id) {
  if (id.empty()) throw Error(kInvalidEnvironment, "required env variable [CNI_CONTAINERID] missing");
  if (!MatchesNamePattern(id)) {
    throw Error(kInvalidEnvironment, "invalid characters in CNI_CONTAINERID \"" + id + "\"",
                "must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$");
  }
}

void ValidateIfName(const std::string& ifname) {
  if (ifname.empty()) throw Error(kInvalidEnvironment, "required env variable [CNI_IFNAME] missing");
  if (ifname.size() > 15) {
    throw Error(kInvalidEnvironment, "CNI_IFNAME \"" + ifname + "\" is too long (max 15 bytes)");
  }
  if (ifname == "." || ifname == "..") {
    throw Error(kInvalidEnvironment, "CNI_IFNAME \"" + ifname + "\" is not a valid interface name");
  }
  for (char c : ifname) {
    if (c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c))) {
      throw Error(kInvalidEnvironment,
                  "CNI_IFNAME \"" + ifname + "\" contains an invalid character");
    }
  }
}

void ValidateNetworkName(const std::string& name) {
  if (name.empty()) throw Error(kInvalidConfig, "missing network name");
  if (!MatchesNamePattern(name)) {
    throw Error(kInvalidConfig, "invalid characters found in network name \"" + name + "\"",
                "must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$");
  }
}

Environment ParseEnvironment(const std::function<const char*(const char*)>& getenv_fn) {
  auto get = [&](const char* name) -> std::string {
    const char* v = getenv_fn(name);
    return v ? v : "";
  };
  Environment env;
  env.command_name = get("CNI_COMMAND");
  static const std::map<std::string, Command> kCommands = {
      {"ADD", Command::kAdd},         {"DEL", Command::kDel}, {"CHECK", Command::kCheck},
      {"VERSION", Command::kVersion}, {"GC", Command::kGc},   {"STATUS", Command::kStatus}};
  if (env.command_name.empty()) {
    throw Error(kInvalidEnvironment, "required env variable [CNI_COMMAND] missing");
  }
  auto it = kCommands.find(env.command_name);
  if (it == kCommands.end()) {
    throw Error(kInvalidEnvironment, "unknown CNI_COMMAND: " + env.command_name);
  }
  env.command = it->second;
  env.container_id = get("CNI_CONTAINERID");
  env.netns = get("CNI_NETNS");
  env.ifname = get("CNI_IFNAME");
  env.args_raw = get("CNI_ARGS");
  env.path = Split(get("CNI_PATH"), ':');

  const bool attachment = env.command == Command::kAdd || env.command == Command::kDel ||
                          env.command == Command::kCheck;
  if (attachment) {
    ValidateContainerId(env.container_id);
    ValidateIfName(env.ifname);
    if (env.netns.empty() && env.command != Command::kDel) {
      throw Error(kInvalidEnvironment, "required env variable [CNI_NETNS] missing");
    }
    for (const auto& pair : Split(env.args_raw, ';')) {
      auto eq = pair.find('=');
      if (eq == std::string::npos || eq == 0) {
        throw Error(kInvalidEnvironment, "CNI_ARGS: invalid pair \"" + pair + "\", want KEY=VALUE");
      }
      env.args[pair.substr(0, eq)] = pair.substr(eq + 1);
    }
  }
  return env;
}

Request ParseRequest(Environment env, std::string stdin_data, const Plugin& plugin) {
  Request req;
  req.env = std::move(env);
  req.stdin_data = std::move(stdin_data);
  req.config = json::parse(req.stdin_data, nullptr, false);
  if (req.config.is_discarded()) {
    // Re-parse with exceptions on to get the parser's position for the message.
    try {
      json probe = json::parse(req.stdin_data);
    } catch (const json::exception& e) {
      throw Error(kDecodeFailure, std::string("error parsing network config: ") + e.what());
    }
  }
  if (!req.config.is_object()) {
    throw Error(kDecodeFailure, "error parsing network config: expected a JSON object");
  }
  req.cni_version = OptString(req.config, "cniVersion").value_or("0.1.0");
  if (!IsSupportedVersion(req.cni_version)) {
    std::string list;
    for (auto v : kSupportedVersions) list += (list.empty() ? "" : ", ") + std::string(v);
    throw Error(kIncompatibleVersion, "incompatible CNI versions",
                "config is \"" + req.cni_version + "\", plugin supports [" + list + "]");
  }
  const Command cmd = req.env.command;
  if (cmd == Command::kCheck && !VersionAtLeast(req.cni_version, "0.4.0")) {
    throw Error(kIncompatibleVersion, "config version \"" + req.cni_version + "\" does not allow CHECK",
                "CHECK needs cniVersion 0.4.0 or later");
  }
  if ((cmd == Command::kGc || cmd == Command::kStatus) && !VersionAtLeast(req.cni_version, "1.1.0")) {
    throw Error(kIncompatibleVersion,
                "config version \"" + req.cni_version + "\" does not allow " + req.env.command_name,
                "GC and STATUS need cniVersion 1.1.0 or later");
  }
  req.name = OptString(req.config, "name").value_or("");
  ValidateNetworkName(req.name);
  req.type = GetString(req.config, "type");
  if (const json* prev = OptObject(req.config, "prevResult")) {
    try {
      req.prev_result = Result::FromJson(*prev);
    } catch (const Error& e) {
      throw Error(kDecodeFailure, "failed to parse prevResult: " + e.msg());
    }
  }
  if (const json* rc = OptObject(req.config, "runtimeConfig")) req.runtime_config = *rc;
  if (cmd == Command::kGc) req.valid_attachments = ParseAttachments(req.config);
  if (cmd == Command::kAdd || cmd == Command::kDel || cmd == Command::kCheck) {
    CheckArgs(req.env, plugin);
  }
  return req;
}

std::string ErrorJson(const Error& e, std::string_view cni_version) {
  json j = {{"cniVersion", cni_version}, {"code", e.code()}, {"msg", e.msg()}};
  if (!e.details().empty()) j["details"] = e.details();
  return j.dump();
}

std::pair<int, std::string> Execute(const Plugin& plugin, Environment env, std::string stdin_data) {
  std::string version(kLatestVersion);
  try {
    if (env.command == Command::kVersion) {
      // Echo the caller's version when it is one we speak, as the spec asks.
      json in = json::parse(stdin_data, nullptr, false);
      if (in.is_object() && in.contains("cniVersion") && in["cniVersion"].is_string() &&
          IsSupportedVersion(in["cniVersion"].get<std::string>())) {
        version = in["cniVersion"].get<std::string>();
      }
      json out = {{"cniVersion", version}, {"supportedVersions", kSupportedVersions}};
      return {0, out.dump()};
    }
    {
      // Answer in the config's version even when it fails validation further on.
      json in = json::parse(stdin_data, nullptr, false);
      if (in.is_object() && in.contains("cniVersion") && in["cniVersion"].is_string()) {
        version = in["cniVersion"].get<std::string>();
      }
    }
    Request req = ParseRequest(std::move(env), std::move(stdin_data), plugin);
    switch (req.env.command) {
      case Command::kAdd:
        return {0, plugin.add(req).ToJson(req.cni_version).dump()};
      case Command::kDel:
        plugin.del(req);
        return {0, ""};
      case Command::kCheck:
        if (!req.prev_result) {
          throw Error(kInvalidConfig, "CHECK: required prevResult missing from the config");
        }
        plugin.check(req);
        return {0, ""};
      case Command::kGc:
        if (plugin.gc) plugin.gc(req);
        return {0, ""};
      case Command::kStatus:
        if (plugin.status) plugin.status(req);
        return {0, ""};
      case Command::kVersion:
        break;
    }
    return {0, ""};
  } catch (const Error& e) {
    return {1, ErrorJson(e, version)};
  } catch (const std::exception& e) {
    return {1, ErrorJson(Error(kInternal, e.what()), version)};
  }
}

int Run(const Plugin& plugin) {
  Environment env;
  try {
    env = ParseEnvironment([](const char* n) { return std::getenv(n); });
  } catch (const Error& e) {
    if (std::getenv("CNI_COMMAND") == nullptr && isatty(STDIN_FILENO)) {
      std::cerr << plugin.about << "\nCNI protocol versions supported: 0.3.0 0.3.1 0.4.0 1.0.0 1.1.0\n";
    }
    std::cout << ErrorJson(e, kLatestVersion) << std::endl;
    return 1;
  }
  std::string input;
  if (env.command != Command::kVersion || !isatty(STDIN_FILENO)) {
    input.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (std::cin.bad()) {
      std::cout << ErrorJson(Error(kIoFailure, "error reading from stdin"), kLatestVersion)
                << std::endl;
      return 1;
    }
  }
  auto [code, out] = Execute(plugin, std::move(env), std::move(input));
  if (!out.empty()) std::cout << out << std::endl;
  return code;
}

Result DelegateAdd(const Request& req, const std::string& type) {
  std::string out = RunDelegate(req, type, Command::kAdd);
  json j = json::parse(out, nullptr, false);
  if (j.is_discarded()) {
    throw Error(kDecodeFailure, "plugin \"" + type + "\" printed a result that is not JSON", out);
  }
  try {
    return Result::FromJson(j);
  } catch (const Error& e) {
    throw Error(kDecodeFailure, "plugin \"" + type + "\" result: " + e.msg(), out);
  }
}

void DelegateCommand(const Request& req, const std::string& type, Command command) {
  RunDelegate(req, type, command);
}

}  // namespace sluice::cni

// sluice-kube-watch: lists and watches one collection through the reflector and prints every change
// the informer delivers as a JSON line on stdout (logs go to stderr):
//   {"event":"add","key":"default/web","resourceVersion":"12"}
//   {"event":"update","key":"default/web","resourceVersion":"15","oldResourceVersion":"12"}
//   {"event":"delete","key":"default/web","resourceVersion":"12"}
//   {"event":"synced","count":3,"resourceVersion":"14"}
// With --commands it reads stdin: "state" prints {"event":"state","resourceVersion":..,
// "items":{key: resourceVersion}} (the store as it is), "quit" exits. SIGINT/SIGTERM exit cleanly.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <string>
#include <type_traits>

#include "common/log.h"
#include "common/unique_fd.h"
#include "controlplane/api/object_meta.h"
#include "controlplane/kube/errors.h"
#include "controlplane/kube/informer.h"
#include "controlplane/kube/kubeconfig.h"
#include "controlplane/kube/typed_informers.h"

namespace {

using sluice::kube::Resource;
using Json = nlohmann::json;

constexpr char kUsage[] = R"(usage: sluice-kube-watch [flags]
  --kubeconfig PATH        kubeconfig file (neither this nor --master: in-cluster)
  --master URL             API server URL, overrides the kubeconfig's
  --context NAME           kubeconfig context (default: current-context)
  --in-cluster-token PATH  service account token file (in-cluster; default the standard path)
  --in-cluster-ca PATH     service account CA file
  --resource R             services | endpointslices | nodes | PATH:KIND (default services)
  --proxy-selectors        kube-proxy's label selector (services and endpointslices)
  --label-selector SEL     labelSelector
  --field-selector SEL     fieldSelector
  --node-name NAME         fieldSelector metadata.name=NAME (kube-proxy's own Node)
  --no-watch-list          LIST+WATCH only (default: try sendInitialEvents first)
  --page-size N            LIST page size (default 500)
  --min-watch-timeout S    watches last a random [S, 2S) seconds (default 300)
  --backoff-initial-ms MS  first backoff delay (default 800)
  --backoff-cap-ms MS      backoff cap (default 30000)
  --typed                  parse with controlplane/api (Service, EndpointSlice, Node): rejected
                           objects are logged and left out
  --objects                include each object in add/update/delete lines (not with --typed)
  --commands               read commands (state, quit) from stdin
  --exit-after-sync        print the synced line and the state, then exit
  --sync-timeout S         exit 1 when not synced within S seconds
  --quiet                  log warnings and errors only
)";

std::mutex out_mu;

void Emit(const Json& line) {
  std::string text = line.dump() + "\n";
  std::lock_guard lock(out_mu);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

[[noreturn]] void Usage(const std::string& error) {
  std::fprintf(stderr, "sluice-kube-watch: %s\n%s", error.c_str(), kUsage);
  std::exit(2);
}

// What the command line asked for besides the reflector's options.
struct RunOptions {
  bool with_objects = false;
  bool commands = false;
  bool exit_after_sync = false;
  int sync_timeout = 0;
  int signal_fd = -1;
};

// Identity of an object, for the JSON lines.
std::string KeyOf(const Json& o) { return sluice::api::ObjectKey(o); }
std::string VersionOf(const Json& o) { return sluice::api::ObjectResourceVersion(o); }
template <typename T>
std::string KeyOf(const T& o) {
  const auto& md = o.metadata;
  return md.namespace_name.empty() ? md.name : md.namespace_name + "/" + md.name;
}
template <typename T>
std::string VersionOf(const T& o) {
  return o.metadata.resource_version;
}

template <typename Codec>
int Watch(const sluice::kube::ApiConnection& connection, const sluice::kube::ReflectorOptions& opts,
          const RunOptions& run) {
  using Object = typename Codec::Object;
  using Informer = sluice::kube::Informer<Codec>;
  Informer* informer_ptr = nullptr;
  auto describe = [&](const char* event, const Object& obj) {
    Json line = {{"event", event}, {"key", KeyOf(obj)}, {"resourceVersion", VersionOf(obj)}};
    if constexpr (std::is_same_v<Object, Json>) {
      if (run.with_objects) line["object"] = obj;
    }
    return line;
  };
  auto state = [&] {
    Json items = Json::object();
    for (const auto& item : informer_ptr->store().List()) items[item.key] = item.resource_version;
    return Json{{"event", "state"},
                {"resourceVersion", informer_ptr->LastSyncResourceVersion()},
                {"items", items}};
  };
  sluice::kube::EventHandlers<Object> handlers;
  handlers.on_add = [&](const Object& obj) { Emit(describe("add", obj)); };
  handlers.on_update = [&](const Object& old_obj, const Object& obj) {
    Json line = describe("update", obj);
    line["oldResourceVersion"] = VersionOf(old_obj);
    Emit(line);
  };
  handlers.on_delete = [&](const Object& obj) { Emit(describe("delete", obj)); };
  handlers.on_synced = [&] {
    Emit({{"event", "synced"},
          {"count", informer_ptr->store().size()},
          {"resourceVersion", informer_ptr->LastSyncResourceVersion()}});
  };
  Informer informer(connection, opts, handlers);
  informer_ptr = &informer;
  informer.Start();

  auto start = std::chrono::steady_clock::now();
  bool stdin_open = run.commands;
  std::string pending;
  int rc = 0;
  while (true) {
    if (run.exit_after_sync && informer.HasSynced()) {
      Emit(state());
      break;
    }
    if (run.sync_timeout > 0 && !informer.HasSynced() &&
        std::chrono::steady_clock::now() - start > std::chrono::seconds(run.sync_timeout)) {
      SLOG_ERROR << "not synced within " << run.sync_timeout << " s";
      rc = 1;
      break;
    }
    pollfd fds[2] = {{run.signal_fd, POLLIN, 0}, {stdin_open ? 0 : -1, POLLIN, 0}};
    int n = poll(fds, 2, 100);
    if (n < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) break;  // SIGINT or SIGTERM
    if (fds[1].revents) {
      char buf[4096];
      ssize_t got = read(0, buf, sizeof buf);
      if (got <= 0) {
        stdin_open = false;
        continue;
      }
      pending.append(buf, got);
      bool quit = false;
      for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
        std::string cmd = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        if (cmd == "state") {
          Emit(state());
        } else if (cmd == "quit") {
          quit = true;
        } else if (!cmd.empty()) {
          SLOG_WARN << "unknown command \"" << cmd << "\" (state, quit)";
        }
      }
      if (quit) break;
    }
  }
  informer.Stop();
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  sluice::kube::ClientOptions client;
  sluice::kube::ReflectorOptions opts;
  opts.resource = sluice::kube::ServicesResource();
  RunOptions run;
  bool typed = false;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(flag + " needs a value");
      return argv[++i];
    };
    auto number = [&]() -> int {
      std::string v = value();
      try {
        return std::stoi(v);
      } catch (const std::exception&) {
        Usage(flag + ": \"" + v + "\" is not a number");
      }
    };
    if (flag == "--kubeconfig") {
      client.kubeconfig = value();
    } else if (flag == "--master") {
      client.master = value();
    } else if (flag == "--context") {
      client.context = value();
    } else if (flag == "--in-cluster-token") {
      client.in_cluster.token_file = value();
    } else if (flag == "--in-cluster-ca") {
      client.in_cluster.ca_file = value();
    } else if (flag == "--resource") {
      std::string r = value();
      if (r == "services") {
        opts.resource = sluice::kube::ServicesResource();
      } else if (r == "endpointslices") {
        opts.resource = sluice::kube::EndpointSlicesResource();
      } else if (r == "nodes") {
        opts.resource = sluice::kube::NodesResource();
      } else if (auto colon = r.rfind(':'); colon != std::string::npos && r[0] == '/') {
        opts.resource = Resource{r.substr(0, colon), r.substr(colon + 1)};
      } else {
        Usage("--resource: unknown \"" + r + "\"");
      }
    } else if (flag == "--proxy-selectors") {
      opts.label_selector = std::string(sluice::kube::kProxyLabelSelector);
    } else if (flag == "--label-selector") {
      opts.label_selector = value();
    } else if (flag == "--field-selector") {
      opts.field_selector = value();
    } else if (flag == "--node-name") {
      opts.field_selector = sluice::kube::NodeNameFieldSelector(value());
    } else if (flag == "--no-watch-list") {
      opts.use_watch_list = false;
    } else if (flag == "--page-size") {
      opts.page_size = number();
    } else if (flag == "--min-watch-timeout") {
      opts.min_watch_timeout = std::chrono::seconds(number());
    } else if (flag == "--backoff-initial-ms") {
      opts.backoff.initial = std::chrono::milliseconds(number());
    } else if (flag == "--backoff-cap-ms") {
      opts.backoff.cap = std::chrono::milliseconds(number());
    } else if (flag == "--objects") {
      run.with_objects = true;
    } else if (flag == "--typed") {
      typed = true;
    } else if (flag == "--commands") {
      run.commands = true;
    } else if (flag == "--exit-after-sync") {
      run.exit_after_sync = true;
    } else if (flag == "--sync-timeout") {
      run.sync_timeout = number();
    } else if (flag == "--quiet") {
      sluice::log::SetMinLevel(sluice::log::Level::kWarning);
    } else if (flag == "-h" || flag == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      Usage("unknown flag " + flag);
    }
  }

  // Signals are read from a signalfd; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  sluice::UniqueFd sigfd(signalfd(-1, &signals, SFD_CLOEXEC));
  run.signal_fd = sigfd.get();

  sluice::kube::ApiConnection connection;
  try {
    connection = sluice::kube::ApiConnection::Open(sluice::kube::BuildRestConfig(client));
  } catch (const sluice::kube::Error& e) {
    SLOG_ERROR << e.what();
    return 1;
  }
  SLOG_INFO << "watching " << opts.resource.path << " at " << connection.config.server << " ("
            << connection.config.origin << ")";

  if (!typed) return Watch<sluice::kube::JsonCodec>(connection, opts, run);
  if (opts.resource.kind == "Service")
    return Watch<sluice::kube::ServiceCodec>(connection, opts, run);
  if (opts.resource.kind == "EndpointSlice") {
    return Watch<sluice::kube::EndpointSliceCodec>(connection, opts, run);
  }
  if (opts.resource.kind == "Node") return Watch<sluice::kube::NodeCodec>(connection, opts, run);
  SLOG_ERROR << "--typed: no typed codec for kind " << opts.resource.kind;
  return 2;
}

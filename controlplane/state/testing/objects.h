// Test support for controlplane/state: typed API objects from short JSON texts and fixtures,
// parsed and validated as the sources do.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>

#include "controlplane/api/endpoint_slice.h"
#include "controlplane/api/node.h"
#include "controlplane/api/service.h"

namespace sluice::state::testing {

inline nlohmann::json Fixture(std::string_view name) {
  std::ifstream in(std::string(SLUICE_API_TESTDATA) + "/" + std::string(name));
  EXPECT_TRUE(in.good()) << "cannot open fixture " << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

inline std::shared_ptr<const api::Service> Svc(const nlohmann::json& j) {
  api::Service s = api::ParseService(j);
  api::Validate(s);
  return std::make_shared<const api::Service>(std::move(s));
}
inline std::shared_ptr<const api::Service> Svc(std::string_view text) {
  return Svc(nlohmann::json::parse(text));
}
inline std::shared_ptr<const api::EndpointSlice> Slice(const nlohmann::json& j) {
  api::EndpointSlice s = api::ParseEndpointSlice(j);
  api::Validate(s);
  return std::make_shared<const api::EndpointSlice>(std::move(s));
}
inline std::shared_ptr<const api::EndpointSlice> Slice(std::string_view text) {
  return Slice(nlohmann::json::parse(text));
}
inline std::shared_ptr<const api::Node> NodeObj(const nlohmann::json& j) {
  api::Node n = api::ParseNode(j);
  api::Validate(n);
  return std::make_shared<const api::Node>(std::move(n));
}
inline std::shared_ptr<const api::Node> NodeObj(std::string_view text) {
  return NodeObj(nlohmann::json::parse(text));
}

// A ClusterIP Service "default/<name>" with one TCP port; `extra` is merged into spec.
inline nlohmann::json SvcJson(std::string_view name, std::string_view cluster_ip,
                              nlohmann::json extra_spec = nlohmann::json::object()) {
  nlohmann::json j = {{"metadata", {{"namespace", "default"}, {"name", name}}},
                      {"spec",
                       {{"clusterIP", cluster_ip},
                        {"ports", {{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}}}}}}};
  j["spec"].merge_patch(extra_spec);
  return j;
}

// One endpoint of a slice: address, node, and conditions (nullopt = nil on the wire).
struct Ep {
  std::string ip;
  std::string node;
  std::optional<bool> ready = true;
  std::optional<bool> serving;
  std::optional<bool> terminating;
  std::vector<std::string> zone_hints;
  std::vector<std::string> node_hints;
};

inline nlohmann::json SliceJson(std::string_view name, std::string_view service,
                                const std::vector<Ep>& eps, std::string_view port_name = "http",
                                int port = 8080, std::string_view address_type = "IPv4") {
  nlohmann::json endpoints = nlohmann::json::array();
  for (const auto& e : eps) {
    nlohmann::json ep = {{"addresses", {e.ip}}};
    if (!e.node.empty()) ep["nodeName"] = e.node;
    nlohmann::json cond = nlohmann::json::object();
    if (e.ready) cond["ready"] = *e.ready;
    if (e.serving) cond["serving"] = *e.serving;
    if (e.terminating) cond["terminating"] = *e.terminating;
    ep["conditions"] = cond;
    if (!e.zone_hints.empty() || !e.node_hints.empty()) {
      nlohmann::json hints = nlohmann::json::object();
      for (const auto& z : e.zone_hints) hints["forZones"].push_back({{"name", z}});
      for (const auto& n : e.node_hints) hints["forNodes"].push_back({{"name", n}});
      ep["hints"] = hints;
    }
    endpoints.push_back(ep);
  }
  return {{"metadata",
           {{"namespace", "default"},
            {"name", name},
            {"labels", {{"kubernetes.io/service-name", service}}}}},
          {"addressType", address_type},
          {"endpoints", endpoints},
          {"ports", {{{"name", port_name}, {"port", port}, {"protocol", "TCP"}}}}};
}

inline nlohmann::json NodeJson(std::string_view name, std::string_view zone,
                               std::string_view ip = "192.168.0.1") {
  nlohmann::json j = {{"metadata", {{"name", name}}},
                      {"status", {{"addresses", {{{"type", "InternalIP"}, {"address", ip}}}}}}};
  if (!zone.empty()) j["metadata"]["labels"]["topology.kubernetes.io/zone"] = zone;
  return j;
}

}  // namespace sluice::state::testing

// The typed informers on the reference fixtures: a ServiceList in two pages, then the recorded
// watch stream, through controlplane/api's parsers.
#include "controlplane/kube/typed_informers.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "controlplane/kube/testing/fake_http_server.h"

namespace sluice::kube {
namespace {

using namespace std::chrono_literals;

std::string ReadTestdata(const std::string& name) {
  std::ifstream in(std::string(KUBE_TESTDATA) + "/" + name);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(TypedInformersTest, ServicesFromTheFixtures) {
  testing::FakeHttpServer server([](const testing::HttpRequest& req, testing::ResponseWriter& w) {
    if (req.query.count("watch")) {
      EXPECT_EQ(req.query.at("resourceVersion"), "10420");
      w.Start(200);
      w.Write(ReadTestdata("watch-stream-services.ndjson"));
      w.Hold(10s);
    } else if (req.query.count("continue")) {
      EXPECT_EQ(req.query.at("continue"), "ENCODED_CONTINUE_TOKEN");
      w.Respond(200, ReadTestdata("list-services-chunk2.json"));
    } else {
      w.Respond(200, ReadTestdata("list-services-chunk1.json"));
    }
  });
  RestConfig rc;
  rc.server = server.url();
  ReflectorOptions o = ServiceOptions();
  o.use_watch_list = false;
  std::vector<std::string> seen;
  std::mutex mu;
  EventHandlers<api::Service> h;
  h.on_add = [&](const api::Service& s) {
    std::lock_guard lock(mu);
    seen.push_back("add " + s.metadata.name);
  };
  h.on_update = [&](const api::Service& old_s, const api::Service& s) {
    std::lock_guard lock(mu);
    seen.push_back("update " + s.metadata.name + " " + old_s.metadata.resource_version + "->" +
                   s.metadata.resource_version);
  };
  h.on_delete = [&](const api::Service& s) {
    std::lock_guard lock(mu);
    seen.push_back("delete " + s.metadata.name + " " + s.metadata.resource_version);
  };
  ServiceInformer inf(ApiConnection::Open(rc), o, h);
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));
  for (int i = 0; i < 500 && inf.LastSyncResourceVersion() != "10405"; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  inf.Stop();
  EXPECT_EQ(inf.LastSyncResourceVersion(), "10405");
  // The list had my-service, loadbalancer (10377) and nodeport (10301). The stream re-adds
  // nodeport at 10301 (no change), loadbalancer at 10377 (no change), modifies nodeport (10390),
  // and deletes loadbalancer (10405).
  EXPECT_EQ(seen, (std::vector<std::string>{"add loadbalancer", "add my-service", "add nodeport",
                                            "update nodeport 10301->10390",
                                            "delete loadbalancer 10405"}));
  auto nodeport = inf.store().Get("default/nodeport");
  ASSERT_TRUE(nodeport);
  EXPECT_EQ(nodeport->spec.session_affinity, api::SessionAffinity::kClientIp);
  EXPECT_EQ(inf.store().size(), 2u);
}

}  // namespace
}  // namespace sluice::kube

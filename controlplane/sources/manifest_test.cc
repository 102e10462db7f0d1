#include "controlplane/sources/manifest.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "controlplane/api/object.h"
#include "controlplane/sources/testing/yaml_writer.h"

namespace sluice::sources {
namespace {

using nlohmann::json;

const api::Service& ServiceAt(const ManifestFile& f, size_t i) {
  return *std::get<ServicePtr>(f.objects.at(i).value);
}

std::string AllNotes(const ManifestFile& f) {
  std::string s;
  for (const auto& n : f.notes) s += n.ToString() + "\n";
  return s;
}

size_t CountNotes(const ManifestFile& f, ManifestNote::Level level) {
  size_t n = 0;
  for (const auto& note : f.notes) n += note.level == level;
  return n;
}

constexpr std::string_view kWebService = R"(apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  clusterIP: 10.96.0.10
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
)";

constexpr std::string_view kWebSlice = R"(apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abc
  namespace: shop
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
endpoints:
- addresses: ["10.244.1.5"]
  conditions:
    ready: true
  nodeName: node-1
ports:
- name: http
  port: 8080
  protocol: TCP
)";

constexpr std::string_view kNode = R"(apiVersion: v1
kind: Node
metadata:
  name: node-1
  labels:
    topology.kubernetes.io/zone: zone-a
spec:
  podCIDR: 10.244.1.0/24
status:
  addresses:
  - type: InternalIP
    address: 192.168.1.10
)";

TEST(ParseManifest, MultiDocumentYaml) {
  std::string text = "# the web app\n" + std::string(kWebService) + "---\n" +
                     std::string(kWebSlice) + "---\n# nothing here\n---\n" + std::string(kNode);
  ManifestFile f = ParseManifest(text, "web.yaml");
  ASSERT_FALSE(f.failed()) << *f.syntax_error;
  EXPECT_TRUE(f.notes.empty()) << AllNotes(f);
  ASSERT_EQ(f.objects.size(), 3u);
  EXPECT_EQ(f.documents, 3u);  // the empty one is skipped

  EXPECT_EQ(f.objects[0].kind(), api::Kind::kService);
  EXPECT_EQ(f.objects[0].Identity(), "Service shop/web");
  EXPECT_EQ(f.objects[0].origin.ToString(), "web.yaml#1");
  const api::Service& s = ServiceAt(f, 0);
  ASSERT_EQ(s.spec.ports.size(), 1u);
  EXPECT_EQ(s.spec.ports[0].port, 80);
  EXPECT_EQ(std::get<uint16_t>(s.spec.ports[0].target_port), 8080);
  EXPECT_EQ(s.spec.cluster_ips.at(0).ToString(), "10.96.0.10");

  EXPECT_EQ(f.objects[1].Identity(), "EndpointSlice shop/web-abc");
  EXPECT_EQ(f.objects[1].origin.ToString(), "web.yaml#2");
  const auto& slice = *std::get<EndpointSlicePtr>(f.objects[1].value);
  EXPECT_EQ(slice.ServiceName(), "web");
  EXPECT_EQ(slice.endpoints.at(0).conditions.ready, true);

  // Documents are numbered as the file shows them, the empty third one included.
  EXPECT_EQ(f.objects[2].Identity(), "Node node-1");
  EXPECT_EQ(f.objects[2].origin.ToString(), "web.yaml#4");
  EXPECT_EQ(std::get<NodePtr>(f.objects[2].value)->Zone(), "zone-a");
}

TEST(ParseManifest, EmptyFilesAndDocuments) {
  for (std::string_view text : {"", "\n\n", "# only a comment\n", "---\n---\n", "\xEF\xBB\xBF"}) {
    ManifestFile f = ParseManifest(text, "empty.yaml");
    EXPECT_FALSE(f.failed()) << text;
    EXPECT_TRUE(f.objects.empty());
    EXPECT_TRUE(f.notes.empty()) << AllNotes(f);
    EXPECT_EQ(f.documents, 0u);
  }
}

TEST(ParseManifest, ByteOrderMarkIsSkipped) {
  ManifestFile f = ParseManifest("\xEF\xBB\xBF" + std::string(kWebService), "bom.yaml");
  ASSERT_FALSE(f.failed()) << *f.syntax_error;
  EXPECT_EQ(f.objects.size(), 1u);
  f = ParseManifest("\xEF\xBB\xBF  {\"kind\": \"ConfigMap\", \"apiVersion\": \"v1\"}", "bom.json");
  ASSERT_FALSE(f.failed()) << *f.syntax_error;
  EXPECT_EQ(CountNotes(f, ManifestNote::Level::kInfo), 1u);
}

TEST(ParseManifest, GenericListWithMixedItems) {
  ManifestFile f = ParseManifest(R"(apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web, namespace: shop}
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: shop}
  spec:
    clusterIP: 10.96.0.10
    ports: [{port: 80}]
- apiVersion: v1
  kind: Node
  metadata: {name: node-2}
- kind: ServiceList
  items: []
- 42
)",
                                 "list.yaml");
  ASSERT_FALSE(f.failed()) << *f.syntax_error;
  ASSERT_EQ(f.objects.size(), 2u) << AllNotes(f);
  EXPECT_EQ(f.objects[0].Identity(), "Service shop/web");
  EXPECT_EQ(f.objects[0].origin.ToString(), "list.yaml#1 items[1]");
  EXPECT_EQ(f.objects[1].Identity(), "Node node-2");
  EXPECT_EQ(f.objects[1].origin.ToString(), "list.yaml#1 items[2]");
  ASSERT_EQ(f.notes.size(), 3u) << AllNotes(f);
  EXPECT_EQ(f.notes[0].level, ManifestNote::Level::kInfo);
  EXPECT_EQ(f.notes[0].ToString(),
            "Deployment shop/web: ignored (not a Service, EndpointSlice or Node) "
            "(list.yaml#1 items[0])");
  EXPECT_EQ(f.notes[1].level, ManifestNote::Level::kError);
  EXPECT_NE(f.notes[1].message.find("list inside a List"), std::string::npos);
  EXPECT_EQ(f.notes[2].origin.ToString(), "list.yaml#1 items[4]");
}

TEST(ParseManifest, TypedListsLeaveItemKindOut) {
  ManifestFile f = ParseManifest(R"(apiVersion: v1
kind: ServiceList
items:
- metadata: {name: a}
  spec: {clusterIP: 10.96.0.1, ports: [{port: 53, protocol: UDP}]}
- metadata: {name: b}
  spec: {clusterIP: 10.96.0.2, ports: [{port: 0}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSliceList
items:
- metadata: {name: a-1, labels: {kubernetes.io/service-name: a}}
  addressType: IPv4
  endpoints: [{addresses: [10.244.0.2]}]
---
apiVersion: v1
kind: NodeList
items:
- metadata: {name: n1}
- kind: Pod
  metadata: {name: p}
)",
                                 "lists.yaml");
  ASSERT_FALSE(f.failed()) << *f.syntax_error;
  ASSERT_EQ(f.objects.size(), 3u) << AllNotes(f);
  EXPECT_EQ(f.objects[0].Identity(), "Service default/a");
  EXPECT_EQ(f.objects[1].Identity(), "EndpointSlice default/a-1");
  EXPECT_EQ(f.objects[1].origin.ToString(), "lists.yaml#2 items[0]");
  EXPECT_EQ(f.objects[2].Identity(), "Node n1");
  ASSERT_EQ(f.notes.size(), 2u) << AllNotes(f);
  // The invalid port names the object and the field; an item of the wrong kind is refused.
  EXPECT_EQ(f.notes[0].origin.ToString(), "lists.yaml#1 items[1]");
  EXPECT_NE(f.notes[0].message.find("Service default/b: spec.ports[0].port"), std::string::npos)
      << f.notes[0].message;
  EXPECT_EQ(f.notes[1].origin.ToString(), "lists.yaml#3 items[1]");
  EXPECT_NE(f.notes[1].message.find("kind"), std::string::npos) << f.notes[1].message;
}

TEST(ParseManifest, Json) {
  json svc = {{"apiVersion", "v1"},
              {"kind", "Service"},
              {"metadata", {{"name", "dns"}, {"namespace", "kube-system"}}},
              {"spec",
               {{"clusterIP", "10.96.0.10"},
                {"ports", {{{"name", "dns"}, {"port", 53}, {"protocol", "UDP"}}}}}}};
  ManifestFile f = ParseManifest("\n  " + svc.dump(2), "dns.json");
  ASSERT_FALSE(f.failed()) << *f.syntax_error;
  ASSERT_EQ(f.objects.size(), 1u);
  EXPECT_EQ(f.objects[0].origin.ToString(), "dns.json#1");
  EXPECT_EQ(ServiceAt(f, 0).spec.ports[0].protocol, api::Protocol::kUdp);

  // An array holds one object per element.
  json node = {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", "n1"}}}};
  f = ParseManifest(json::array({svc, node, "x"}).dump(), "all.json");
  ASSERT_FALSE(f.failed()) << *f.syntax_error;
  ASSERT_EQ(f.objects.size(), 2u);
  EXPECT_EQ(f.objects[1].origin.ToString(), "all.json#2");
  ASSERT_EQ(f.notes.size(), 1u);
  EXPECT_EQ(f.notes[0].ToString(),
            "expected a Kubernetes object (a mapping), got a string (all.json#3)");

  // JSON keeps its own types: "80" is a string there too.
  svc["spec"]["ports"][0]["port"] = "53";
  f = ParseManifest(svc.dump(), "dns.json");
  EXPECT_TRUE(f.objects.empty());
  ASSERT_EQ(f.notes.size(), 1u);
  EXPECT_NE(f.notes[0].message.find("spec.ports[0].port"), std::string::npos);
}

TEST(ParseManifest, JsonSyntaxErrorNamesTheLine) {
  ManifestFile f = ParseManifest(
      "{\n  \"kind\": \"Service\",\n  \"metadata\": {\n    \"name\": web\n}", "bad.json");
  ASSERT_TRUE(f.failed());
  EXPECT_TRUE(f.objects.empty());
  EXPECT_EQ(f.syntax_error_line, 4u);
  EXPECT_EQ(f.syntax_error->rfind("line 4: invalid JSON: ", 0), 0u) << *f.syntax_error;

  // Two texts in one file are not JSON either.
  f = ParseManifest("{\"kind\": \"Node\"}\n{\"kind\": \"Node\"}\n", "two.json");
  ASSERT_TRUE(f.failed());
  EXPECT_EQ(f.syntax_error_line, 2u);
}

TEST(ParseManifest, PlainScalarsAreTypedQuotedOnesAreStrings) {
  // The API parsers take ports as integers only: `port: "80"` is refused, `port: 80` read.
  auto parse_port = [](std::string_view port) {
    std::string text =
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n"
        "  clusterIP: 10.96.0.10\n  ports:\n  - port: " +
        std::string(port) + "\n";
    return ParseManifest(text, "web.yaml");
  };
  for (std::string_view plain : {"80", "+80", "0x50", "0o120", "!!int 80"}) {
    ManifestFile f = parse_port(plain);
    ASSERT_EQ(f.objects.size(), 1u) << plain << ": " << AllNotes(f);
    EXPECT_EQ(ServiceAt(f, 0).spec.ports[0].port, 80) << plain;
  }
  for (std::string_view not_int : {"\"80\"", "'80'", "!!str 80", "80.0", "8e1", "|\n      80"}) {
    ManifestFile f = parse_port(not_int);
    ASSERT_FALSE(f.failed()) << not_int;
    EXPECT_TRUE(f.objects.empty()) << not_int;
    ASSERT_EQ(f.notes.size(), 1u) << not_int;
    EXPECT_EQ(f.notes[0].message.rfind("Service default/web: spec.ports[0].port: ", 0), 0u)
        << f.notes[0].message;
  }

  // Labels are strings: a plain number or boolean there is refused, quoted it is kept.
  auto parse_label = [](std::string_view value) {
    std::string text =
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels:\n"
        "    v: " +
        std::string(value) + "\n";
    return ParseManifest(text, "node.yaml");
  };
  for (auto [quoted, want] :
       std::vector<std::pair<std::string, std::string>>{{"\"1\"", "1"},
                                                        {"'true'", "true"},
                                                        {"\"null\"", "null"},
                                                        {"\"~\"", "~"},
                                                        {"\"0x10\"", "0x10"},
                                                        {"one two", "one two"},
                                                        {"1.2.3", "1.2.3"},
                                                        {"v1", "v1"},
                                                        {"\"\"", ""},
                                                        {"yes", "yes"},
                                                        {"on", "on"},
                                                        {"0777x", "0777x"}}) {
    ManifestFile f = parse_label(quoted);
    ASSERT_EQ(f.objects.size(), 1u) << quoted << ": " << AllNotes(f);
    EXPECT_EQ(std::get<NodePtr>(f.objects[0].value)->metadata.labels.at("v"), want) << quoted;
  }
  for (std::string_view typed : {"1", "true", "False", "1.5", "-3", ".5", "1e3", "0x1F"}) {
    ManifestFile f = parse_label(typed);
    EXPECT_TRUE(f.objects.empty()) << typed;
    ASSERT_EQ(f.notes.size(), 1u) << typed;
    EXPECT_NE(f.notes[0].message.find("metadata.labels"), std::string::npos) << f.notes[0].message;
  }
  // null and ~ are absent values: the label map reads as if the key had no value.
  for (std::string_view null : {"~", "null", "NULL", ""}) {
    ManifestFile f = parse_label(null);
    EXPECT_FALSE(f.failed()) << null;
  }
}

TEST(ParseManifest, BooleansAndNullsInObjects) {
  ManifestFile f = ParseManifest(R"(apiVersion: v1
kind: Service
metadata: {name: web, namespace: ~}
spec:
  clusterIP: 10.96.0.10
  publishNotReadyAddresses: True
  externalIPs: null
  ports: [{port: 80}]
)",
                                 "web.yaml");
  ASSERT_EQ(f.objects.size(), 1u) << AllNotes(f);
  EXPECT_TRUE(ServiceAt(f, 0).spec.publish_not_ready_addresses);
  EXPECT_EQ(ServiceAt(f, 0).metadata.namespace_name, "default");
}

TEST(ParseManifest, YamlSyntaxErrorFailsTheFileWithItsLine) {
  std::string text = std::string(kWebService) + "---\nkind: Service\nmetadata:\n  name: [a\n";
  ManifestFile f = ParseManifest(text, "web.yaml");
  ASSERT_TRUE(f.failed());
  EXPECT_TRUE(f.objects.empty());  // the good first document is refused with the file
  EXPECT_TRUE(f.notes.empty());
  ASSERT_TRUE(f.syntax_error_line.has_value());
  EXPECT_GE(*f.syntax_error_line, 17u);
  EXPECT_NE(f.syntax_error->find("invalid YAML"), std::string::npos);
  EXPECT_EQ(f.syntax_error->rfind("line " + std::to_string(*f.syntax_error_line) + ": ", 0), 0u);

  f = ParseManifest("kind: Service\nmetadata:\n  name: web\n   bad: indent\n", "indent.yaml");
  ASSERT_TRUE(f.failed());
  EXPECT_EQ(f.syntax_error_line, 4u) << *f.syntax_error;

  f = ParseManifest("kind: Service\nspec:\n  ports: [}\n", "flow.yaml");
  ASSERT_TRUE(f.failed());
  EXPECT_EQ(f.syntax_error_line, 3u) << *f.syntax_error;
}

TEST(ParseManifest, YamlThatJsonCannotHoldFailsTheFile) {
  struct Case {
    std::string text;
    size_t line;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {"kind: Node\nmetadata:\n  name: a\n  name: b\n", 4, "duplicate key \"name\""},
           {"kind: Node\n? [a, b]\n: c\n", 2, "keys must be scalars"},
           {"kind: Node\nspec:\n  x: .inf\n", 3, "no JSON form"},
           {"kind: Node\nspec:\n  x: 1e400\n", 3, "no JSON form"},
           {"kind: Node\nspec:\n  x: !!int abc\n", 3, "not a valid !!int"},
       }) {
    ManifestFile f = ParseManifest(c.text, "odd.yaml");
    ASSERT_TRUE(f.failed()) << c.text;
    EXPECT_EQ(f.syntax_error_line, c.line) << *f.syntax_error;
    EXPECT_NE(f.syntax_error->find(c.says), std::string::npos) << *f.syntax_error;
  }
}

TEST(ParseManifest, DepthAndSizeAreBounded) {
  // Nesting beyond any Kubernetes object: refused, not recursed into.
  std::string deep_yaml = "kind: Node\nx: " + std::string(200, '[') + std::string(200, ']') + "\n";
  ManifestFile f = ParseManifest(deep_yaml, "deep.yaml");
  ASSERT_TRUE(f.failed());
  EXPECT_NE(f.syntax_error->find("nested deeper"), std::string::npos) << *f.syntax_error;

  std::string deeper_yaml = std::string(100000, '[');  // yaml-cpp's own guard answers first
  f = ParseManifest("x: " + deeper_yaml, "deeper.yaml");
  EXPECT_TRUE(f.failed());

  std::string deep_json = "{\"a\":" + std::string(200, '[') + std::string(200, ']') + "}";
  f = ParseManifest(deep_json, "deep.json");
  ASSERT_TRUE(f.failed());
  EXPECT_NE(f.syntax_error->find("nested deeper"), std::string::npos) << *f.syntax_error;

  // An alias bomb: each level doubles the values; 30 levels would be a billion.
  std::string bomb = "a0: &a0 [x, x]\n";
  for (int i = 1; i < 30; ++i) {
    std::string n = std::to_string(i), prev = std::to_string(i - 1);
    bomb += "a" + n + ": &a" + n + " [*a" + prev + ", *a" + prev + "]\n";
  }
  f = ParseManifest(bomb, "bomb.yaml");
  ASSERT_TRUE(f.failed());
  EXPECT_NE(f.syntax_error->find("values"), std::string::npos) << *f.syntax_error;

  // yaml-cpp 0.7 emits empty documents forever on these (found by manifest_fuzzer).
  for (std::string_view stuck : {",", "kind: Node\n---\n,\n"}) {
    f = ParseManifest(stuck, "stuck.yaml");
    ASSERT_TRUE(f.failed()) << stuck;
    EXPECT_NE(f.syntax_error->find("no document can start here"), std::string::npos)
        << *f.syntax_error;
  }
}

TEST(ParseManifest, AnchorsAndAliases) {
  ManifestFile f = ParseManifest(R"(apiVersion: v1
kind: Service
metadata:
  name: &name web
  labels: &labels {app: *name, tier: front}
  annotations: *labels
spec:
  clusterIP: 10.96.0.10
  selector: *labels
  ports: [{name: *name, port: &port 80, targetPort: *port}]
)",
                                 "web.yaml");
  ASSERT_EQ(f.objects.size(), 1u) << AllNotes(f) << f.syntax_error.value_or("");
  const api::Service& s = ServiceAt(f, 0);
  EXPECT_EQ(s.metadata.labels, (api::StringMap{{"app", "web"}, {"tier", "front"}}));
  EXPECT_EQ(s.metadata.annotations, s.metadata.labels);
  EXPECT_EQ(s.spec.selector, s.metadata.labels);
  EXPECT_EQ(s.spec.ports[0].name, "web");
  EXPECT_EQ(std::get<uint16_t>(s.spec.ports[0].target_port), 80);

  // An alias to a node still being built (a cycle) is refused.
  f = ParseManifest("a: &a [1, *a]\n", "cycle.yaml");
  EXPECT_TRUE(f.failed());
}

TEST(ParseManifest, InvalidObjectIsSetAsideOthersKept) {
  std::string text = std::string(kWebService) +
                     "---\napiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec:\n"
                     "  clusterIP: 10.96.0.11\n  ports: [{port: 70000}]\n---\n" +
                     std::string(kNode) +
                     "---\napiVersion: v1\nkind: Service\nmetadata: {name: twoports}\nspec:\n"
                     "  clusterIP: 10.96.0.12\n  ports: [{port: 80}, {port: 81}]\n";
  ManifestFile f = ParseManifest(text, "mixed.yaml");
  ASSERT_FALSE(f.failed()) << *f.syntax_error;
  ASSERT_EQ(f.objects.size(), 2u);
  EXPECT_EQ(f.objects[0].Identity(), "Service shop/web");
  EXPECT_EQ(f.objects[1].Identity(), "Node node-1");
  ASSERT_EQ(f.notes.size(), 2u) << AllNotes(f);
  EXPECT_EQ(f.notes[0].level, ManifestNote::Level::kError);
  EXPECT_EQ(f.notes[0].origin.ToString(), "mixed.yaml#2");
  EXPECT_EQ(f.notes[0].message.rfind("Service default/bad: spec.ports[0].port: ", 0), 0u)
      << f.notes[0].message;
  // A validation error (ports must be named when there are several).
  EXPECT_EQ(f.notes[1].origin.ToString(), "mixed.yaml#4");
  EXPECT_EQ(f.notes[1].message.rfind("Service default/twoports: spec.ports", 0), 0u)
      << f.notes[1].message;
}

TEST(ParseManifest, OtherKindsAreIgnoredWithOneNote) {
  ManifestFile f = ParseManifest(R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec: {replicas: 3}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: "1"}
---
apiVersion: v1
kind: PodList
items: []
---
apiVersion: v1
kind: Pod
)",
                                 "app.yaml");
  ASSERT_FALSE(f.failed());
  EXPECT_TRUE(f.objects.empty());
  ASSERT_EQ(f.notes.size(), 4u) << AllNotes(f);
  for (const auto& n : f.notes) EXPECT_EQ(n.level, ManifestNote::Level::kInfo) << n.ToString();
  EXPECT_EQ(f.notes[0].ToString(),
            "Deployment shop/web: ignored (not a Service, EndpointSlice or Node) (app.yaml#1)");
  EXPECT_EQ(f.notes[1].message,
            "ConfigMap settings: ignored (not a Service, EndpointSlice or Node)");
  EXPECT_EQ(f.notes[3].message, "Pod: ignored (not a Service, EndpointSlice or Node)");
}

TEST(ParseManifest, DocumentsThatAreNoObjects) {
  ManifestFile f =
      ParseManifest("just text\n---\n- a\n- b\n---\nmetadata: {name: x}\n---\n{}\n", "odd.yaml");
  ASSERT_FALSE(f.failed());
  ASSERT_EQ(f.notes.size(), 4u) << AllNotes(f);
  EXPECT_EQ(f.notes[0].ToString(),
            "expected a Kubernetes object (a mapping), got a string (odd.yaml#1)");
  EXPECT_EQ(f.notes[1].message, "expected a Kubernetes object (a mapping), got a list");
  EXPECT_EQ(f.notes[2].message, "x: no kind: not a Kubernetes object");
  EXPECT_EQ(f.notes[3].message, "no kind: not a Kubernetes object");
}

TEST(ParseManifest, NamespaceDefaultsAsKubectlDoes) {
  ManifestFile f = ParseManifest(R"(apiVersion: v1
kind: Service
metadata: {name: a}
spec: {clusterIP: 10.96.0.1, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: ""}
spec: {clusterIP: 10.96.0.2, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: c, namespace: prod}
spec: {clusterIP: 10.96.0.3, ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: a-1, labels: {kubernetes.io/service-name: a}}
addressType: IPv4
endpoints: []
---
apiVersion: v1
kind: Node
metadata: {name: n1}
)",
                                 "ns.yaml");
  ASSERT_EQ(f.objects.size(), 5u) << AllNotes(f);
  EXPECT_EQ(f.objects[0].metadata().Key(), "default/a");
  EXPECT_EQ(f.objects[1].metadata().Key(), "default/b");
  EXPECT_EQ(f.objects[2].metadata().Key(), "prod/c");
  EXPECT_EQ(f.objects[3].metadata().Key(), "default/a-1");
  EXPECT_EQ(f.objects[4].metadata().Key(), "n1");
  EXPECT_EQ(f.objects[4].metadata().namespace_name, "");
}

TEST(ParseManifest, ServiceWithoutClusterIpIsKeptWithAWarning) {
  ManifestFile f = ParseManifest(R"(apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {clusterIP: None, ports: [{port: 5432}]}
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, externalName: example.com}
)",
                                 "web.yaml");
  ASSERT_EQ(f.objects.size(), 3u) << AllNotes(f);
  ASSERT_EQ(f.notes.size(), 1u) << AllNotes(f);  // headless and ExternalName need none
  EXPECT_EQ(f.notes[0].level, ManifestNote::Level::kWarning);
  EXPECT_EQ(f.notes[0].message.rfind("Service default/web: no spec.clusterIP", 0), 0u)
      << f.notes[0].message;
}

TEST(ParseManifest, SameValueComparesValues) {
  ManifestFile a = ParseManifest(kWebService, "a.yaml");
  ManifestFile b = ParseManifest(kWebService, "b.yaml");
  ManifestFile n = ParseManifest(kNode, "n.yaml");
  ASSERT_EQ(a.objects.size(), 1u);
  EXPECT_TRUE(a.objects[0].SameValue(b.objects[0]));
  EXPECT_FALSE(a.objects[0].SameValue(n.objects[0]));
  std::string changed(kWebService);
  changed.replace(changed.find("8080"), 4, "9090");
  EXPECT_FALSE(a.objects[0].SameValue(ParseManifest(changed, "a.yaml").objects.at(0)));
}

// Every API fixture that is a Service, EndpointSlice or Node (or a list of them) reads as a
// manifest: as the JSON file it is, and written out as block YAML (strings quoted, then plain
// wherever YAML keeps them strings). The round-trip fuzz objects are refused, naming a field, as
// the API parsers refuse them.
TEST(ParseManifest, ApiFixturesReadAsManifests) {
  const std::filesystem::path root(SLUICE_API_TESTDATA);
  size_t objects = 0, refused = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file() || entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    json doc = json::parse(text);
    std::string kind = doc.value("kind", "");
    bool ours = kind == "Service" || kind == "EndpointSlice" || kind == "Node";
    bool list = kind == "ServiceList" || kind == "EndpointSliceList" || kind == "NodeList";
    if (!ours && !list) continue;
    std::string name = entry.path().filename().string();
    SCOPED_TRACE(name);
    bool roundtrip = entry.path().parent_path().filename() == "roundtrip";

    ManifestFile from_json = ParseManifest(text, name);
    ASSERT_FALSE(from_json.failed()) << *from_json.syntax_error;
    if (roundtrip) {
      EXPECT_TRUE(from_json.objects.empty());
      ASSERT_EQ(from_json.notes.size(), 1u);
      EXPECT_EQ(from_json.notes[0].message.rfind(kind + " ", 0), 0u) << from_json.notes[0].message;
      EXPECT_NE(from_json.notes[0].message.find(": "), std::string::npos);
      ++refused;
    } else {
      EXPECT_EQ(CountNotes(from_json, ManifestNote::Level::kError), 0u) << AllNotes(from_json);
      size_t want = list ? doc["items"].size() : 1;
      ASSERT_EQ(from_json.objects.size(), want) << AllNotes(from_json);
      if (ours) {
        // The same value as the API parser makes of it.
        api::Object direct = api::ParseObject(doc);
        EXPECT_EQ(
            std::visit([](const auto& p) { return api::Object(*p); }, from_json.objects[0].value),
            direct);
      }
      objects += want;
    }

    for (bool quote_all : {true, false}) {
      std::string yaml = testing::ToBlockYaml(doc, quote_all);
      ManifestFile from_yaml = ParseManifest(yaml, name);
      ASSERT_FALSE(from_yaml.failed()) << *from_yaml.syntax_error << "\n" << yaml;
      ASSERT_EQ(from_yaml.objects.size(), from_json.objects.size()) << yaml << AllNotes(from_yaml);
      for (size_t i = 0; i < from_json.objects.size(); ++i) {
        EXPECT_TRUE(from_yaml.objects[i].SameValue(from_json.objects[i])) << yaml;
      }
      ASSERT_EQ(from_yaml.notes.size(), from_json.notes.size()) << yaml;
      for (size_t i = 0; i < from_json.notes.size(); ++i) {
        EXPECT_EQ(from_yaml.notes[i].message, from_json.notes[i].message);
      }
    }
  }
  EXPECT_GE(objects, 14u);
  EXPECT_EQ(refused, 3u);
}

}  // namespace
}  // namespace sluice::sources

#include "controlplane/sources/manifest.h"

#include <yaml-cpp/anchor.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>

#include "controlplane/api/object_error.h"
#include "controlplane/api/object_meta.h"

namespace sluice::sources {

namespace {

using Json = nlohmann::json;

constexpr std::string_view kDefaultNamespace = "default";

// Text that cannot become the JSON tree the API parsers read: a syntax error, or YAML that JSON
// cannot hold. Refuses the whole file.
struct SyntaxError {
  std::string message;
  std::optional<size_t> line;  // 1-based
};

std::optional<size_t> LineOf(const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0) return std::nullopt;
  return static_cast<size_t>(mark.line) + 1;
}

std::string_view TypeName(const Json& j) {
  switch (j.type()) {
    case Json::value_t::object:
      return "mapping";
    case Json::value_t::array:
      return "list";
    case Json::value_t::string:
      return "string";
    case Json::value_t::boolean:
      return "boolean";
    case Json::value_t::null:
      return "null";
    default:
      return "number";
  }
}

// ---- YAML 1.2 core schema ----------------------------------------------------------------------

bool IsDigits(std::string_view s, int base) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = base == 8 ? (c >= '0' && c <= '7')
              : base == 10
                  ? (c >= '0' && c <= '9')
                  : ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
    if (!ok) return false;
  }
  return true;
}

// [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+. Out of int64/uint64 range: a float, as Go's YAML does.
std::optional<Json> CoreInt(std::string_view s) {
  int base = 10;
  bool negative = false;
  std::string_view digits = s;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'o' || s[1] == 'x')) {
    base = s[1] == 'o' ? 8 : 16;
    digits = s.substr(2);
  } else if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    digits = s.substr(1);
  }
  if (!IsDigits(digits, base)) return std::nullopt;
  uint64_t magnitude = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, base);
  if (ec == std::errc() && end == digits.data() + digits.size()) {
    if (!negative) {
      if (magnitude <= static_cast<uint64_t>(INT64_MAX))
        return Json(static_cast<int64_t>(magnitude));
      return Json(magnitude);
    }
    if (magnitude <= static_cast<uint64_t>(INT64_MAX) + 1) {
      return Json(static_cast<int64_t>(0 - magnitude));  // two's complement: -2^63 fits
    }
  }
  // Too large for 64 bits: the nearest double (decimal only; 0x/0o that long are not numbers here).
  if (base != 10) return std::nullopt;
  std::string text(digits);
  double d = std::strtod(text.c_str(), nullptr);
  return Json(negative ? -d : d);
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? ; .inf and .nan have no JSON form.
std::optional<double> CoreFloat(std::string_view s, bool& not_finite) {
  not_finite = false;
  std::string_view body = s;
  if (!body.empty() && (body[0] == '-' || body[0] == '+')) body.remove_prefix(1);
  if (body == ".inf" || body == ".Inf" || body == ".INF" || s == ".nan" || s == ".NaN" ||
      s == ".NAN") {
    not_finite = true;
    return std::nullopt;
  }
  size_t i = 0, int_digits = 0, frac_digits = 0;
  while (i < body.size() && body[i] >= '0' && body[i] <= '9') ++i, ++int_digits;
  if (i < body.size() && body[i] == '.') {
    ++i;
    while (i < body.size() && body[i] >= '0' && body[i] <= '9') ++i, ++frac_digits;
  }
  if (int_digits == 0 && frac_digits == 0) return std::nullopt;
  if (i < body.size() && (body[i] == 'e' || body[i] == 'E')) {
    ++i;
    if (i < body.size() && (body[i] == '-' || body[i] == '+')) ++i;
    size_t exp_digits = 0;
    while (i < body.size() && body[i] >= '0' && body[i] <= '9') ++i, ++exp_digits;
    if (exp_digits == 0) return std::nullopt;
  }
  if (i != body.size()) return std::nullopt;
  std::string text(s[0] == '+' ? s.substr(1) : s);
  double d = std::strtod(text.c_str(), nullptr);
  if (!std::isfinite(d)) {
    not_finite = true;
    return std::nullopt;
  }
  return d;
}

bool IsCoreNull(std::string_view s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

std::optional<bool> CoreBool(std::string_view s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

constexpr std::string_view kTagPrefix = "tag:yaml.org,2002:";

[[noreturn]] void FailAt(const YAML::Mark& mark, std::string message) {
  throw SyntaxError{std::move(message), LineOf(mark)};
}

Json PlainScalar(const YAML::Mark& mark, const std::string& text) {
  if (IsCoreNull(text)) return nullptr;
  if (auto b = CoreBool(text)) return *b;
  if (auto i = CoreInt(text)) return *i;
  bool not_finite = false;
  if (auto f = CoreFloat(text, not_finite)) return *f;
  if (not_finite) FailAt(mark, "the number " + text + " has no JSON form");
  return text;
}

// A scalar as the JSON the API server would have stored: plain scalars typed by the core schema
// (as kubectl's YAML decoder does before the API parsers see them), quoted and block scalars and
// `!!str` kept as strings. yaml-cpp tags plain scalars "?" and quoted or block ones "!".
Json TypedScalar(const YAML::Mark& mark, const std::string& tag, const std::string& text) {
  if (tag == "!") return text;
  if (tag.empty() || tag == "?") return PlainScalar(mark, text);
  if (tag.compare(0, kTagPrefix.size(), kTagPrefix) != 0) return text;  // local tags: as written
  std::string_view type = std::string_view(tag).substr(kTagPrefix.size());
  if (type == "str") return text;
  if (type != "int" && type != "float" && type != "bool" && type != "null") {
    return text;  // !!binary, !!timestamp, ...: strings, as JSON has no such types
  }
  Json typed = PlainScalar(mark, text);
  bool ok = (type == "int" && typed.is_number_integer()) ||
            (type == "float" && typed.is_number()) || (type == "bool" && typed.is_boolean()) ||
            (type == "null" && typed.is_null());
  if (!ok) FailAt(mark, "\"" + text + "\" is not a valid !!" + std::string(type));
  if (type == "float") return typed.get<double>();
  return typed;
}

// Builds each document's JSON straight from yaml-cpp's parse events, never holding a YAML::Node
// tree. Every event counts against kMaxManifestValues and nesting against kMaxManifestDepth, and
// an alias counts as the values it copies: this bounds alias bombs, and it also bounds yaml-cpp
// 0.7's own loops (see OnDocumentStart).
class JsonBuilder : public YAML::EventHandler {
 public:
  std::vector<Json> TakeDocuments() { return std::move(documents_); }

  void OnDocumentStart(const YAML::Mark& mark) override {
    // yaml-cpp 0.7 starts empty documents at the same place forever on some text (a lone ","):
    // a document that starts where the last one did is one the parser cannot get past.
    if (last_document_pos_ == mark.pos) FailAt(mark, "invalid YAML: no document can start here");
    last_document_pos_ = mark.pos;
    Count(mark, 1);
    stack_.clear();
    root_ = nullptr;
  }
  void OnDocumentEnd() override { documents_.push_back(std::move(root_)); }

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (AwaitingKey()) {
      Count(mark, 1);
      return Key(mark, "null");  // what a YAML-to-JSON conversion writes
    }
    Value(mark, nullptr, anchor, 1);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) FailAt(mark, "alias to a node that is not complete yet");
    Count(mark, it->second.values);
    if (AwaitingKey()) {
      if (!it->second.value.is_string()) FailAt(mark, "mapping keys must be scalars");
      return Key(mark, it->second.value.get<std::string>());
    }
    Value(mark, it->second.value, YAML::NullAnchor, 0);
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    // Keys stay as written (`80: x` has the key "80"), as JSON keys are strings.
    if (AwaitingKey()) {
      Count(mark, 1);
      if (anchor != YAML::NullAnchor) anchors_[anchor] = Anchored{value, 1};
      return Key(mark, value);
    }
    Value(mark, TypedScalar(mark, tag, value), anchor, 1);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(mark, Json::array(), anchor);
  }
  void OnSequenceEnd() override { Close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Open(mark, Json::object(), anchor);
  }
  void OnMapEnd() override { Close(); }

 private:
  struct Frame {
    Json value;
    YAML::anchor_t anchor;
    size_t values_before;  // values_ when the container opened: its own count is the difference
    std::optional<std::string> key;  // a mapping's key waiting for its value
    YAML::Mark key_mark;
  };
  struct Anchored {
    Json value;
    size_t values;
  };

  void Count(const YAML::Mark& mark, size_t n) {
    values_ += n;
    if (values_ > kMaxManifestValues) {
      FailAt(mark,
             "expands to more than " + std::to_string(kMaxManifestValues) + " values (aliases?)");
    }
  }

  bool AwaitingKey() const {
    return !stack_.empty() && stack_.back().value.is_object() && !stack_.back().key;
  }

  void Key(const YAML::Mark& mark, std::string key) {
    Frame& top = stack_.back();
    if (top.value.contains(key)) FailAt(mark, "duplicate key \"" + key + "\"");
    top.key = std::move(key);
    top.key_mark = mark;
  }

  void Open(const YAML::Mark& mark, Json empty, YAML::anchor_t anchor) {
    if (AwaitingKey()) FailAt(mark, "mapping keys must be scalars");
    if (stack_.size() >= kMaxManifestDepth) {
      FailAt(mark, "nested deeper than " + std::to_string(kMaxManifestDepth) + " levels");
    }
    Count(mark, 1);
    stack_.push_back(Frame{std::move(empty), anchor, values_ - 1, std::nullopt, YAML::Mark()});
  }

  void Close() {
    Frame done = std::move(stack_.back());
    stack_.pop_back();
    size_t values = values_ - done.values_before;
    if (done.anchor != YAML::NullAnchor) anchors_[done.anchor] = Anchored{done.value, values};
    Place(std::move(done.value));
  }

  void Value(const YAML::Mark& mark, Json value, YAML::anchor_t anchor, size_t values) {
    Count(mark, values);
    if (anchor != YAML::NullAnchor) anchors_[anchor] = Anchored{value, values};
    Place(std::move(value));
  }

  void Place(Json value) {
    if (stack_.empty()) {
      root_ = std::move(value);
      return;
    }
    Frame& top = stack_.back();
    if (top.value.is_array()) {
      top.value.push_back(std::move(value));
    } else {
      top.value[*top.key] = std::move(value);
      top.key.reset();
    }
  }

  std::vector<Json> documents_;
  std::vector<Frame> stack_;
  Json root_;
  std::map<YAML::anchor_t, Anchored> anchors_;
  size_t values_ = 0;
  std::optional<int> last_document_pos_;
};

std::vector<Json> ParseYaml(std::string_view text) {
  std::istringstream in{std::string(text)};
  JsonBuilder builder;
  try {
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(builder)) {
    }
  } catch (const YAML::Exception& e) {
    throw SyntaxError{"invalid YAML: " + e.msg, LineOf(e.mark)};
  }
  return builder.TakeDocuments();
}

// ---- JSON ---------------------------------------------------------------------------------------

struct TooDeep {};

Json ParseJson(std::string_view text) {
  size_t values = 0;
  auto guard = [&values](int depth, Json::parse_event_t, Json&) {
    if (depth > static_cast<int>(kMaxManifestDepth) || ++values > kMaxManifestValues) {
      throw TooDeep{};
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), guard);
  } catch (const Json::parse_error& e) {
    // e.what(): "[json.exception.parse_error.101] parse error at line 3, column 5: syntax ..."
    std::string what = e.what();
    if (auto pos = what.find("] "); pos != std::string::npos) what.erase(0, pos + 2);
    // The line is ours to say; keep the column.
    if (what.starts_with("parse error at line ")) {
      if (auto pos = what.find(", column "); pos != std::string::npos) what.erase(0, pos + 2);
    }
    size_t end = std::min<size_t>(e.byte > 0 ? e.byte - 1 : 0, text.size());
    size_t line = 1;
    for (size_t i = 0; i < end; ++i) line += text[i] == '\n';
    throw SyntaxError{"invalid JSON: " + what, line};
  } catch (const TooDeep&) {
    throw SyntaxError{"invalid JSON: nested deeper than " + std::to_string(kMaxManifestDepth) +
                          " levels or more than " + std::to_string(kMaxManifestValues) + " values",
                      std::nullopt};
  }
}

// ---- documents ----------------------------------------------------------------------------------

std::optional<api::Kind> OurKind(std::string_view kind) {
  if (kind == "Service") return api::Kind::kService;
  if (kind == "EndpointSlice") return api::Kind::kEndpointSlice;
  if (kind == "Node") return api::Kind::kNode;
  return std::nullopt;
}

// The item kind of a typed list ("ServiceList" -> Service); nullopt for the generic "List".
std::optional<api::Kind> ListItemKind(std::string_view kind) {
  if (kind == "ServiceList") return api::Kind::kService;
  if (kind == "EndpointSliceList") return api::Kind::kEndpointSlice;
  if (kind == "NodeList") return api::Kind::kNode;
  return std::nullopt;
}

const std::string* StringMember(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return nullptr;
  return &it->get_ref<const std::string&>();
}

class DocumentReader {
 public:
  DocumentReader(ManifestFile& out, bool trim) : out_(out), trim_(trim) {}

  void Document(Json doc, const ManifestOrigin& origin) {
    if (doc.is_null()) return;  // an empty document (or only comments)
    ++out_.documents;
    if (!doc.is_object()) {
      Note(ManifestNote::Level::kError, origin,
           "expected a Kubernetes object (a mapping), got a " + std::string(TypeName(doc)));
      return;
    }
    const std::string* kind = StringMember(doc, "kind");
    if (!kind || kind->empty()) {
      Note(ManifestNote::Level::kError, origin,
           Named("", doc) + "no kind: not a Kubernetes object");
      return;
    }
    auto list_kind = ListItemKind(*kind);
    if (*kind != "List" && !list_kind) {
      Object(std::move(doc), OurKind(*kind), origin);
      return;
    }
    std::string list_name = *kind;
    auto items = doc.find("items");
    if (items == doc.end() || items->is_null()) return;  // an empty list
    if (!items->is_array()) {
      Note(ManifestNote::Level::kError, origin,
           list_name + ": items: expected a list, got a " + std::string(TypeName(*items)));
      return;
    }
    for (size_t i = 0; i < items->size(); ++i) {
      ManifestOrigin item_origin = origin;
      item_origin.item = i;
      Json& item = (*items)[i];
      if (list_kind) {
        // Items of a typed list may leave kind out; when present, the API parser checks it.
        Object(std::move(item), list_kind, item_origin);
        continue;
      }
      const std::string* item_kind = item.is_object() ? StringMember(item, "kind") : nullptr;
      if (!item.is_object()) {
        Note(ManifestNote::Level::kError, item_origin,
             "List item: expected a Kubernetes object (a mapping), got a " +
                 std::string(TypeName(item)));
      } else if (!item_kind || item_kind->empty()) {
        Note(ManifestNote::Level::kError, item_origin, Named("", item) + "List item without kind");
      } else if (*item_kind == "List" || ListItemKind(*item_kind)) {
        Note(ManifestNote::Level::kError, item_origin,
             Named(*item_kind, item) + "a list inside a List is not read");
      } else {
        auto our = OurKind(*item_kind);
        Object(std::move(item), our, item_origin);
      }
    }
  }

 private:
  // "Deployment default/app: " (the identity as far as the JSON tells it), or "" when unknown.
  static std::string Named(std::string_view kind, const Json& obj) {
    std::string who(kind);
    std::string key = api::ObjectKey(obj);
    if (!key.empty()) who += (who.empty() ? "" : " ") + key;
    return who.empty() ? "" : who + ": ";
  }

  void Note(ManifestNote::Level level, const ManifestOrigin& origin, std::string message) {
    out_.notes.push_back(ManifestNote{level, origin, std::move(message)});
  }

  void Object(Json obj, std::optional<api::Kind> kind, const ManifestOrigin& origin) {
    if (!kind) {
      const std::string* name = StringMember(obj, "kind");
      Note(ManifestNote::Level::kInfo, origin,
           Named(name ? *name : "", obj) + "ignored (not a Service, EndpointSlice or Node)");
      return;
    }
    if (*kind != api::Kind::kNode) DefaultNamespace(obj);
    try {
      ManifestObject mo{ServicePtr(), origin};
      switch (*kind) {
        case api::Kind::kService: {
          auto s = std::make_shared<api::Service>(api::ParseService(obj));
          api::Validate(*s);
          WarnWithoutClusterIp(*s, origin);
          if (trim_) api::TrimForProxy(*s);
          mo.value = ServicePtr(std::move(s));
          break;
        }
        case api::Kind::kEndpointSlice: {
          auto s = std::make_shared<api::EndpointSlice>(api::ParseEndpointSlice(obj));
          api::Validate(*s);
          if (trim_) api::TrimForProxy(*s);
          mo.value = EndpointSlicePtr(std::move(s));
          break;
        }
        case api::Kind::kNode: {
          auto n = std::make_shared<api::Node>(api::ParseNode(obj));
          api::Validate(*n);
          mo.value = NodePtr(std::move(n));
          break;
        }
      }
      out_.objects.push_back(std::move(mo));
    } catch (const api::ObjectError& e) {
      // "Service default/web: spec.ports[0].port: 0 out of range 1..65535"
      Note(ManifestNote::Level::kError, origin, e.what());
    }
  }

  // kubectl's default for namespaced objects without one. A missing or odd metadata is left for
  // the API parser to name.
  static void DefaultNamespace(Json& obj) {
    auto meta = obj.find("metadata");
    if (meta == obj.end() || !meta->is_object()) return;
    auto ns = meta->find("namespace");
    if (ns == meta->end() || ns->is_null() ||
        (ns->is_string() && ns->get_ref<const std::string&>().empty())) {
      (*meta)["namespace"] = kDefaultNamespace;
    }
  }

  void WarnWithoutClusterIp(const api::Service& s, const ManifestOrigin& origin) {
    if (!s.spec.cluster_ips.empty() || s.spec.headless ||
        s.spec.type == api::ServiceType::kExternalName) {
      return;
    }
    Note(ManifestNote::Level::kWarning, origin,
         "Service " + s.metadata.Key() +
             ": no spec.clusterIP; without an API server nobody allocates one, so nothing is "
             "programmed for it");
  }

  ManifestFile& out_;
  bool trim_;
};

std::string_view StripBom(std::string_view text) {
  if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.remove_prefix(3);
  return text;
}

}  // namespace

std::string ManifestOrigin::ToString() const {
  // Appends only: `"#" + std::to_string(n)` trips GCC 12's -Wrestrict false positive.
  std::string s = file;
  if (document > 0) {
    s += '#';
    s += std::to_string(document);
  }
  if (item) {
    s += " items[";
    s += std::to_string(*item);
    s += ']';
  }
  return s;
}

const api::ObjectMeta& ManifestObject::metadata() const {
  return std::visit([](const auto& p) -> const api::ObjectMeta& { return p->metadata; }, value);
}

std::string ManifestObject::Identity() const {
  return std::string(api::ToString(kind())) + " " + metadata().Key();
}

bool ManifestObject::SameValue(const ManifestObject& other) const {
  if (value.index() != other.value.index()) return false;
  return std::visit(
      [&other](const auto& p) {
        const auto& q = std::get<std::decay_t<decltype(p)>>(other.value);
        return p == q || *p == *q;
      },
      value);
}

std::string ManifestNote::ToString() const { return message + " (" + origin.ToString() + ")"; }

ManifestFile ParseManifest(std::string_view text, std::string_view file, bool trim_for_proxy) {
  ManifestFile out;
  text = StripBom(text);
  DocumentReader reader(out, trim_for_proxy);
  auto origin = [&file](size_t document) {
    return ManifestOrigin{std::string(file), document, std::nullopt};
  };
  try {
    size_t first = text.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos && (text[first] == '{' || text[first] == '[')) {
      Json doc = ParseJson(text);
      if (doc.is_array()) {
        for (size_t i = 0; i < doc.size(); ++i) reader.Document(std::move(doc[i]), origin(i + 1));
      } else {
        reader.Document(std::move(doc), origin(1));
      }
      return out;
    }
    // Every document is converted before any is read: a file that is not all YAML is refused
    // whole, like one with a syntax error.
    std::vector<Json> converted = ParseYaml(text);
    size_t index = 0;
    for (auto& doc : converted) {
      ++index;  // empty documents count too: "#3" is the third `---` section as the file shows it
      reader.Document(std::move(doc), origin(index));
    }
  } catch (const SyntaxError& e) {
    out = ManifestFile{};
    out.syntax_error_line = e.line;
    out.syntax_error = e.line ? "line " + std::to_string(*e.line) + ": " + e.message : e.message;
  }
  return out;
}

}  // namespace sluice::sources

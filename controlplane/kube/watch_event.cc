#include "controlplane/kube/watch_event.h"

namespace sluice::kube {

namespace {

using Json = nlohmann::json;

const Json* Member(const Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::string StringMember(const Json& obj, const char* key) {
  const Json* v = Member(obj, key);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

std::string Excerpt(std::string_view line) {
  std::string out(line.substr(0, 120));
  if (line.size() > 120) out += "...";
  return out;
}

}  // namespace

std::string_view ToString(WatchEventType type) {
  switch (type) {
    case WatchEventType::kAdded:
      return "ADDED";
    case WatchEventType::kModified:
      return "MODIFIED";
    case WatchEventType::kDeleted:
      return "DELETED";
    case WatchEventType::kBookmark:
      return "BOOKMARK";
    case WatchEventType::kError:
      return "ERROR";
  }
  return "?";
}

std::string ObjectKey(const Json& object) {
  const Json* md = Member(object, "metadata");
  if (!md) return "";
  std::string name = StringMember(*md, "name");
  if (name.empty()) return "";
  std::string ns = StringMember(*md, "namespace");
  return ns.empty() ? name : ns + "/" + name;
}

std::string ObjectResourceVersion(const Json& object) {
  const Json* md = Member(object, "metadata");
  return md ? StringMember(*md, "resourceVersion") : std::string();
}

bool IsInitialEventsEnd(const Json& object) {
  const Json* md = Member(object, "metadata");
  const Json* annotations = md ? Member(*md, "annotations") : nullptr;
  return annotations && StringMember(*annotations, "k8s.io/initial-events-end") == "true";
}

WatchEvent DecodeWatchEvent(std::string_view line, const Resource& resource) {
  Json doc = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) throw WatchDecodeError("malformed JSON: " + Excerpt(line));
  if (!doc.is_object()) throw WatchDecodeError("event is not a JSON object: " + Excerpt(line));
  const Json* type = Member(doc, "type");
  if (!type || !type->is_string()) throw WatchDecodeError("event has no type: " + Excerpt(line));
  const std::string& t = type->get_ref<const std::string&>();
  WatchEvent ev;
  if (t == "ADDED") {
    ev.type = WatchEventType::kAdded;
  } else if (t == "MODIFIED") {
    ev.type = WatchEventType::kModified;
  } else if (t == "DELETED") {
    ev.type = WatchEventType::kDeleted;
  } else if (t == "BOOKMARK") {
    ev.type = WatchEventType::kBookmark;
  } else if (t == "ERROR") {
    ev.type = WatchEventType::kError;
  } else {
    throw WatchDecodeError("unknown event type \"" + t + "\": " + Excerpt(line));
  }
  auto obj = doc.find("object");
  if (obj == doc.end() || !obj->is_object()) {
    throw WatchDecodeError(t + " event has no object: " + Excerpt(line));
  }
  ev.object = std::move(*obj);
  if (ev.type == WatchEventType::kError) return ev;

  std::string key = ObjectKey(ev.object);
  std::string rv = ObjectResourceVersion(ev.object);
  std::string who = std::string(resource.kind) + " " + (key.empty() ? "(no name)" : key) +
                    (rv.empty() ? "" : " rv=" + rv) + ": ";
  std::string kind = StringMember(ev.object, "kind");
  if (kind == "Status") {
    throw WatchDecodeError(t + " event carries a Status where a " + resource.kind +
                           " was expected: " + StatusFromJson(ev.object, 0).Summary());
  }
  if (!kind.empty() && kind != resource.kind) {
    throw WatchDecodeError(who + t + " event of unexpected kind \"" + kind + "\" in a watch of " +
                           std::string(resource.name()));
  }
  if (const Json* md = Member(ev.object, "metadata"); !md || !md->is_object()) {
    throw WatchDecodeError(who + t + " event object has no metadata");
  }
  if (rv.empty()) throw WatchDecodeError(who + t + " event object has no metadata.resourceVersion");
  if (ev.type != WatchEventType::kBookmark && key.empty()) {
    throw WatchDecodeError(who + t + " event object has no metadata.name");
  }
  return ev;
}

}  // namespace sluice::kube

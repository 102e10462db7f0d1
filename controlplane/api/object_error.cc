#include "controlplane/api/object_error.h"

namespace sluice::api {
namespace {

std::string Compose(const std::string& kind, const std::string& object, const std::string& field,
                    const std::string& reason, const std::string& context) {
  std::string m;
  auto part = [&m](const std::string& s) {
    if (s.empty()) return;
    if (!m.empty()) m += ": ";
    m += s;
  };
  part(context);
  std::string who = kind;
  if (!object.empty()) who += (who.empty() ? "" : " ") + object;
  part(who);
  part(field);
  part(reason);
  return m;
}

}  // namespace

ObjectError::ObjectError(std::string kind, std::string object, std::string field,
                         std::string reason, std::string context)
    : std::runtime_error(Compose(kind, object, field, reason, context)),
      kind_(std::move(kind)),
      object_(std::move(object)),
      field_(std::move(field)),
      reason_(std::move(reason)),
      context_(std::move(context)) {}

ParseError ParseError::WithStatus(Status status) const {
  ParseError e = *this;
  e.status_ = std::move(status);
  return e;
}

ParseError ParseError::WithContext(const std::string& outer) const {
  ParseError e(kind(), object(), field(), reason(),
               context().empty() ? outer : outer + ": " + context());
  e.status_ = status_;
  return e;
}

}  // namespace sluice::api

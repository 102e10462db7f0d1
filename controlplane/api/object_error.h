// Errors of the API object layer. A rejected object names its kind, namespace/name and the field:
//   "Service default/web: spec.ports[1].port: 70000 out of range 1..65535"
// ParseError: the wire text could not become a typed value (malformed JSON, wrong JSON type, bad
// IP, port out of range, unknown enum value, wrong kind). ValidationError: the value is well formed
// but its fields contradict each other or lack what a proxy needs (see README.md).
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

#include "controlplane/api/status.h"

namespace sluice::api {

class ObjectError : public std::runtime_error {
 public:
  ObjectError(std::string kind, std::string object, std::string field, std::string reason,
              std::string context = "");

  const std::string& kind() const { return kind_; }      // "Service"; "" when not known
  const std::string& object() const { return object_; }  // "default/web", "node-1"; "" if unknown
  const std::string& field() const {
    return field_;
  }  // "spec.ports[1].port"; "" for the whole text
  const std::string& reason() const { return reason_; }  // "70000 out of range 1..65535"
  // Where the object sat: "ServiceList items[3]", "watch event ADDED"; "" at top level.
  const std::string& context() const { return context_; }

 private:
  std::string kind_, object_, field_, reason_, context_;
};

class ParseError : public ObjectError {
 public:
  using ObjectError::ObjectError;
  // Set when the text was a Status where an object, list or event was expected (e.g. an error body
  // handed to the object parser): the caller can act on its code and reason.
  const std::optional<Status>& status() const { return status_; }

  ParseError WithStatus(Status status) const;
  // The same error seen from an enclosing document: "ServiceList items[3]", "watch event ADDED".
  ParseError WithContext(const std::string& outer) const;

 private:
  std::optional<Status> status_;
};

class ValidationError : public ObjectError {
 public:
  using ObjectError::ObjectError;
};

}  // namespace sluice::api

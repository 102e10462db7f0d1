// Test support: a JSON value written out as block-style YAML, the way people write manifests, to
// check that the YAML path reads it back as the same JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace sluice::sources::testing {

// True when `s` may be written as a plain scalar and still read back as this string under the
// YAML 1.2 core schema: no indicator characters, nothing that resolves to null, a boolean or a
// number.
inline bool PlainIsSafe(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '/' || c == '_' || c == '-';
    if (!ok) return false;
  }
  if (s[0] == '-' || s[0] == '.' || (s[0] >= '0' && s[0] <= '9')) return false;
  for (std::string_view special :
       {"null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE"}) {
    if (s == special) return false;
  }
  return true;
}

inline std::string YamlScalar(const nlohmann::json& v, bool quote_all) {
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    // JSON's string escapes are a subset of YAML's double-quoted ones.
    return !quote_all && PlainIsSafe(s) ? s : v.dump();
  }
  return v.dump();  // numbers, booleans, null: plain, typed by the core schema
}

inline bool IsBlock(const nlohmann::json& v) {
  return (v.is_object() || v.is_array()) && !v.empty();
}

// A scalar, or an empty mapping or list, on the line of its key or dash.
inline std::string Inline(const nlohmann::json& v, bool quote_all) {
  if (v.is_object()) return "{}";
  if (v.is_array()) return "[]";
  return YamlScalar(v, quote_all);
}

inline void WriteBlockYaml(const nlohmann::json& v, int indent, bool quote_all, std::string& out) {
  std::string pad(static_cast<size_t>(indent), ' ');
  if (v.is_object()) {
    for (const auto& [key, value] : v.items()) {
      out += pad + YamlScalar(key, quote_all) + ":";
      if (IsBlock(value)) {
        out += "\n";
        WriteBlockYaml(value, indent + 2, quote_all, out);
      } else {
        out += " ";
        out += Inline(value, quote_all);
        out += "\n";
      }
    }
    return;
  }
  for (const auto& value : v) {
    out += pad + "-";
    if (IsBlock(value)) {
      out += "\n";
      WriteBlockYaml(value, indent + 2, quote_all, out);
    } else {
      out += " ";
      out += Inline(value, quote_all);
      out += "\n";
    }
  }
}

// A comment line first, so the text never starts with `{` or `[` (which would read as JSON).
inline std::string ToBlockYaml(const nlohmann::json& doc, bool quote_all) {
  std::string out = "# converted from JSON\n";
  WriteBlockYaml(doc, 0, quote_all, out);
  return out;
}

}  // namespace sluice::sources::testing

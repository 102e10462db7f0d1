// The JSON the parsers of this folder read: simdjson's DOM. A text is parsed once into a
// dom::parser's document (no allocation per node) and the parsers walk its elements, valid while
// that parser lives and parses nothing else. The nlohmann::json entry points (tests, the manifest
// source) re-read their value through the same parsers (ParseNlohmann in field_reader.h).
//
// The whole simdjson header comes in, not a declaration: with both overloads of a parser visible,
// overload resolution asks nlohmann-json whether it converts to an element, which needs it
// complete.
#pragma once

#include <simdjson.h>

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string_view>

namespace sluice::api {

using JsonElement = simdjson::dom::element;
using JsonParser = simdjson::dom::parser;

// One JSON text into `parser`'s document. Malformed JSON is a ParseError with the message the
// project has always given ("malformed JSON: parse error at line 1, column 5: ..."); a text that
// simdjson refuses but Go and nlohmann-json read (an integer beyond 64 bits) is read as they read
// it (a floating-point number).
JsonElement ParseJsonDom(JsonParser& parser, std::string_view text);

// The member `key` of a JSON object; nullopt when missing or null, or when `object` is not an
// object. A key given twice counts with its last value, as Go and nlohmann-json read it.
std::optional<JsonElement> FindMember(JsonElement object, std::string_view key);

// A copy as nlohmann::json, for tools and tests that keep or print JSON (not for hot paths).
nlohmann::json ToNlohmann(JsonElement value);

}  // namespace sluice::api

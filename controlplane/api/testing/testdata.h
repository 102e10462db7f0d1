// Test support for controlplane/api: the fixture files and catching an expected error.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "controlplane/api/object_error.h"

namespace sluice::api::testing {

inline std::string TestdataPath(std::string_view name) {
  return std::string(SLUICE_API_TESTDATA) + "/" + std::string(name);
}

inline std::string ReadTestdata(std::string_view name) {
  std::ifstream in(TestdataPath(name), std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open testdata " << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline nlohmann::json ReadJson(std::string_view name) {
  return nlohmann::json::parse(ReadTestdata(name));
}

// The non-empty lines of an .ndjson fixture.
inline std::vector<std::string> ReadLines(std::string_view name) {
  std::vector<std::string> lines;
  std::istringstream in(ReadTestdata(name));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// Runs f, which must throw E; returns the error (a failure and an empty error otherwise).
template <typename E, typename F>
E Expect(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e;
  }
  ADD_FAILURE() << "expected an exception";
  return E("", "", "", "");
}

}  // namespace sluice::api::testing

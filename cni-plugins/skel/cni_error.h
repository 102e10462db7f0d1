// The CNI error contract: every failure leaves the plugin as {"cniVersion","code","msg","details"}.
#pragma once

#include <stdexcept>
#include <string>

namespace sluice::cni {

// Well-known codes of the CNI spec (1.1.0, section "Error").
enum ErrorCode : int {
  kIncompatibleVersion = 1,
  kUnsupportedField = 2,
  kUnknownContainer = 3,
  kInvalidEnvironment = 4,
  kIoFailure = 5,
  kDecodeFailure = 6,
  kInvalidConfig = 7,
  kTryAgainLater = 11,
  kNotAvailable = 50,                 // STATUS: cannot serve ADD
  kNotAvailableLimitedConnectivity = 51,  // STATUS: existing containers may be affected too
  kInternal = 999,                    // an operation failed (kernel, file system); msg says what
};

class Error : public std::runtime_error {
 public:
  Error(int code, std::string msg, std::string details = "")
      : std::runtime_error(msg), code_(code), msg_(std::move(msg)), details_(std::move(details)) {}
  int code() const { return code_; }
  const std::string& msg() const { return msg_; }
  const std::string& details() const { return details_; }

 private:
  int code_;
  std::string msg_;
  std::string details_;
};

}  // namespace sluice::cni

#include "teacher_calls.h"

#include <cstdlib>
#include <random>

namespace relay_client {

void prepare_call(grpc::ClientContext& context, std::chrono::seconds deadline,
                  const std::string& session_id) {
  context.set_deadline(std::chrono::system_clock::now() + deadline);
  if (!session_id.empty()) {
    context.AddMetadata("x-relay-session", session_id);
  }
  if (const char* key = std::getenv("RELAY_API_KEY"); key != nullptr && *key != '\0') {
    context.AddMetadata("authorization", std::string("Bearer ") + key);
  }
}

std::string describe(const grpc::Status& status) {
  // Indexed by grpc::StatusCode, 0 to 16.
  static const char* const kNames[] = {
      "OK",
      "CANCELLED",
      "UNKNOWN",
      "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "ALREADY_EXISTS",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION",
      "ABORTED",
      "OUT_OF_RANGE",
      "UNIMPLEMENTED",
      "INTERNAL",
      "UNAVAILABLE",
      "DATA_LOSS",
      "UNAUTHENTICATED",
  };
  const int code = status.error_code();
  const std::string name = code >= 0 && code <= 16 ? kNames[code] : std::to_string(code);
  return name + ": " + status.error_message();
}

std::string new_session_id() {
  std::random_device random;
  std::uniform_int_distribution<int> digit(0, 15);
  std::string id = "cpp-";
  for (int i = 0; i < 32; ++i) {
    id += "0123456789abcdef"[digit(random)];
  }
  return id;
}

}  // namespace relay_client

// What every relay.v1 call needs besides its message: a deadline and the metadata.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <string>

namespace relay_client {

// Sets the call's deadline and metadata: `x-relay-session` when `session_id` is not empty
// (span and usage calls: it lets a routing proxy keep a session on one teacher replica), and
// `authorization: Bearer <key>` when the RELAY_API_KEY environment variable is set.
void prepare_call(grpc::ClientContext& context, std::chrono::seconds deadline,
                  const std::string& session_id = "");

// "CODE: message", e.g. "INVALID_ARGUMENT: max_tokens must be 1 to 64, got 0; ...".
std::string describe(const grpc::Status& status);

// A fresh session id: "cpp-" and 32 random hex digits.
std::string new_session_id();

}  // namespace relay_client

// relay_client HOST:PORT
//
// Calls a relay.v1 teacher the way an embedded app does: GetInfo, one text-mode GenerateSpan,
// the same request again (a retry: the teacher must replay it, not generate or count it
// again), a StreamSpan, a request the teacher must refuse, and GetSessionUsage. Prints what it
// receives and one line per check; exits 0 only when every check held, 1 when one failed, 2 on
// bad usage.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "checks.h"
#include "relay/v1/relay.grpc.pb.h"
#include "teacher_calls.h"

namespace {

using relay::v1::TeacherService;
using relay_client::Checks;
using relay_client::describe;
using relay_client::prepare_call;

constexpr std::chrono::seconds kInfoDeadline{30};
// A CPU teacher on a busy machine can take a while for its first span.
constexpr std::chrono::seconds kSpanDeadline{180};
constexpr unsigned kSpanTokens = 8;

// The text in double quotes, with quotes, backslashes and line breaks escaped, so that each
// span prints on one line whatever it holds.
std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: out += c;
    }
  }
  return out + "\"";
}

void print_usage(const relay::v1::SpanUsage& usage) {
  std::cout << "  usage: prompt_tokens=" << usage.prompt_tokens()
            << " cached_prompt_tokens=" << usage.cached_prompt_tokens()
            << " generated_tokens=" << usage.generated_tokens()
            << " queue_time_ms=" << usage.queue_time_ms()
            << " compute_time_ms=" << usage.compute_time_ms()
            << " replayed=" << (usage.replayed() ? "true" : "false") << std::endl;
}

void print_session(const relay::v1::SessionUsage& usage) {
  std::cout << "  session: spans=" << usage.spans() << " prompt_tokens=" << usage.prompt_tokens()
            << " cached_prompt_tokens=" << usage.cached_prompt_tokens()
            << " generated_tokens=" << usage.generated_tokens() << std::endl;
}

// A text-mode span request: one user message and the answer so far, greedy.
relay::v1::SpanRequest text_span(const std::string& session_id, const std::string& request_id,
                                 const std::string& question, const std::string& answer_so_far,
                                 unsigned max_tokens) {
  relay::v1::SpanRequest span;
  span.set_session_id(session_id);
  span.set_request_id(request_id);
  auto* message = span.mutable_text()->add_messages();
  message->set_role(relay::v1::ROLE_USER);
  message->set_content(question);
  span.mutable_text()->set_assistant_prefix(answer_so_far);
  span.set_max_tokens(max_tokens);
  return span;
}

std::optional<relay::v1::GetInfoResponse> check_info(TeacherService::Stub& stub, Checks& checks) {
  grpc::ClientContext context;
  prepare_call(context, kInfoDeadline);
  relay::v1::GetInfoResponse info;
  const grpc::Status status = stub.GetInfo(&context, relay::v1::GetInfoRequest(), &info);
  std::cout << "GetInfo" << std::endl;
  if (!status.ok()) {
    checks.fail("GetInfo answered: " + describe(status));
    return std::nullopt;
  }
  std::cout << "  model_name=" << info.model_name() << " engine=" << info.engine()
            << " vocab_size=" << info.vocab_size() << std::endl
            << "  tokenizer_fingerprint=" << info.tokenizer_fingerprint() << std::endl
            << "  limits: max_span_tokens=" << info.limits().max_span_tokens()
            << " max_context_tokens=" << info.limits().max_context_tokens() << std::endl;
  checks.expect(!info.model_name().empty(), "GetInfo names the model");
  checks.expect(info.tokenizer_fingerprint().rfind("sha256:", 0) == 0,
                "the tokenizer fingerprint is sha256:<hex>");
  checks.expect(info.limits().max_span_tokens() > 0, "GetInfo gives a span limit");
  return info;
}

std::optional<relay::v1::GenerateSpanResponse> generate(TeacherService::Stub& stub,
                                                        const relay::v1::SpanRequest& span,
                                                        Checks& checks) {
  grpc::ClientContext context;
  prepare_call(context, kSpanDeadline, span.session_id());
  relay::v1::GenerateSpanRequest request;
  *request.mutable_span() = span;
  relay::v1::GenerateSpanResponse response;
  const grpc::Status status = stub.GenerateSpan(&context, request, &response);
  std::cout << "GenerateSpan request_id=" << span.request_id() << std::endl;
  if (!status.ok()) {
    checks.fail("GenerateSpan answered: " + describe(status));
    return std::nullopt;
  }
  std::cout << "  text=" << quoted(response.text())
            << " token_ids=" << response.token_ids_size()
            << " finish_reason=" << relay::v1::FinishReason_Name(response.finish_reason())
            << std::endl;
  print_usage(response.usage());
  print_session(response.session_usage());
  return response;
}

void check_span(const relay::v1::GenerateSpanResponse& span, Checks& checks) {
  checks.expect(!span.text().empty(), "the span's text is not empty");
  checks.expect(span.token_ids_size() > 0, "the span has token ids");
  checks.expect(span.finish_reason() != relay::v1::FINISH_REASON_UNSPECIFIED,
                "the span's finish reason is set");
  checks.expect(span.usage().generated_tokens() == static_cast<unsigned>(span.token_ids_size()),
                "usage counts the span's tokens");
  checks.expect(!span.usage().replayed(), "a new request id is generated, not replayed");
}

void check_replay(const relay::v1::GenerateSpanResponse& first,
                  const relay::v1::GenerateSpanResponse& retry, Checks& checks) {
  checks.expect(retry.usage().replayed(), "the retried request id is replayed");
  checks.expect(retry.text() == first.text(), "the replay has the first answer's text");
  checks.expect(std::equal(retry.token_ids().begin(), retry.token_ids().end(),
                           first.token_ids().begin(), first.token_ids().end()),
                "the replay has the first answer's token ids");
  checks.expect(retry.session_usage().spans() == first.session_usage().spans(),
                "the replay is not counted again");
}

// Streams one span; returns its generated token count, or nullopt when the call failed.
std::optional<unsigned> check_stream(TeacherService::Stub& stub, const relay::v1::SpanRequest& span,
                                     Checks& checks) {
  grpc::ClientContext context;
  prepare_call(context, kSpanDeadline, span.session_id());
  relay::v1::StreamSpanRequest request;
  *request.mutable_span() = span;
  std::cout << "StreamSpan request_id=" << span.request_id() << std::endl;
  auto reader = stub.StreamSpan(&context, request);
  relay::v1::StreamSpanResponse piece;
  std::string text;
  int token_count = 0;
  int pieces = 0;
  bool finish_only_on_last = true;
  relay::v1::StreamSpanResponse last;
  while (reader->Read(&piece)) {
    if (pieces > 0 && last.finish_reason() != relay::v1::FINISH_REASON_UNSPECIFIED) {
      finish_only_on_last = false;  // a piece came after one that carried the finish reason
    }
    std::cout << "  piece " << pieces << ": text=" << quoted(piece.text())
              << " token_ids=" << piece.token_ids_size() << std::endl;
    text += piece.text();
    token_count += piece.token_ids_size();
    last = piece;
    ++pieces;
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) {
    checks.fail("StreamSpan answered: " + describe(status));
    return std::nullopt;
  }
  std::cout << "  text=" << quoted(text)
            << " finish_reason=" << relay::v1::FinishReason_Name(last.finish_reason())
            << std::endl;
  print_usage(last.usage());
  print_session(last.session_usage());
  checks.expect(!text.empty(), "the streamed span's text is not empty");
  checks.expect(last.finish_reason() != relay::v1::FINISH_REASON_UNSPECIFIED,
                "the last piece carries the finish reason");
  checks.expect(finish_only_on_last, "only the last piece carries a finish reason");
  checks.expect(last.usage().generated_tokens() == static_cast<unsigned>(token_count),
                "the pieces hold every generated token");
  return last.usage().generated_tokens();
}

void check_refusal(TeacherService::Stub& stub, const relay::v1::SpanRequest& span,
                   Checks& checks) {
  grpc::ClientContext context;
  prepare_call(context, kSpanDeadline, span.session_id());
  relay::v1::GenerateSpanRequest request;
  *request.mutable_span() = span;
  relay::v1::GenerateSpanResponse response;
  const grpc::Status status = stub.GenerateSpan(&context, request, &response);
  std::cout << "GenerateSpan max_tokens=" << span.max_tokens() << " (over the limit)"
            << std::endl
            << "  status " << describe(status) << std::endl;
  checks.expect(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT,
                "a span over max_span_tokens is refused with INVALID_ARGUMENT");
}

void check_usage(TeacherService::Stub& stub, const std::string& session_id, unsigned spans,
                 unsigned generated_tokens, Checks& checks) {
  grpc::ClientContext context;
  prepare_call(context, kInfoDeadline, session_id);
  relay::v1::GetSessionUsageRequest request;
  request.set_session_id(session_id);
  relay::v1::GetSessionUsageResponse response;
  const grpc::Status status = stub.GetSessionUsage(&context, request, &response);
  std::cout << "GetSessionUsage" << std::endl;
  if (!status.ok()) {
    checks.fail("GetSessionUsage answered: " + describe(status));
    return;
  }
  print_session(response.usage());
  checks.expect(response.usage().spans() == spans,
                "the session counts " + std::to_string(spans) + " spans (the replay once)");
  checks.expect(response.usage().generated_tokens() == generated_tokens,
                "the session counts every generated token once");
}

void run(TeacherService::Stub& stub, Checks& checks) {
  const auto info = check_info(stub, checks);
  if (!info) {
    return;
  }
  const std::string session_id = relay_client::new_session_id();
  std::cout << "session_id=" << session_id << std::endl;
  const unsigned span_tokens = std::min(kSpanTokens, info->limits().max_span_tokens());

  const auto request = text_span(session_id, session_id + "-1", "What is the capital of France?",
                                 "The capital of France is", span_tokens);
  const auto first = generate(stub, request, checks);
  if (!first) {
    return;
  }
  check_span(*first, checks);
  // A retry after a lost answer resends the same request, request_id included.
  const auto retry = generate(stub, request, checks);
  if (retry) {
    check_replay(*first, *retry, checks);
  }
  const auto streamed = check_stream(
      stub,
      text_span(session_id, session_id + "-2", "Count from one to ten.", "One, two,", span_tokens),
      checks);
  check_refusal(stub,
                text_span(session_id, session_id + "-3", "Hello.", "",
                          info->limits().max_span_tokens() + 1),
                checks);
  if (streamed) {
    check_usage(stub, session_id, 2, first->usage().generated_tokens() + *streamed, checks);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: relay_client HOST:PORT  (the address of a relay.v1 teacher, e.g. "
                 "127.0.0.1:50051)"
              << std::endl;
    return 2;
  }
  const auto channel = grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials());
  const auto stub = TeacherService::NewStub(channel);
  Checks checks;
  run(*stub, checks);
  std::cout << checks.passed() << " checks held, " << checks.failed() << " failed" << std::endl;
  return checks.all_held() ? 0 : 1;
}

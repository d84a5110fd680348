#!/usr/bin/env node
// node relay_client.mjs HOST:PORT
//
// Calls a relay.v1 teacher the way a mobile app does: GetInfo, one text-mode GenerateSpan, the
// same request again (a retry: the teacher must replay it, not generate or count it again), a
// StreamSpan, a StreamSpan cancelled after its first piece, a request the teacher must refuse,
// and GetSessionUsage. Prints what it receives and one line per check; exits 0 only when every
// check held, 1 when one failed, 2 on bad usage.

import { pathToFileURL } from "node:url";

import { Checks } from "./checks.mjs";
import {
  cancelAfterFirstPiece,
  connectTeacher,
  describeError,
  newSessionId,
  readStream,
  textSpan,
} from "./relay_teacher.mjs";

const SPAN_TOKENS = 8;
// Long enough that the span is still being written when the cancel lands.
const CANCELLED_SPAN_TOKENS = 16;
const CANCELLED = 1; // grpc.status.CANCELLED
const INVALID_ARGUMENT = 3; // grpc.status.INVALID_ARGUMENT

function spanUsageLine(usage) {
  return (
    `  usage: prompt_tokens=${usage.prompt_tokens} ` +
    `cached_prompt_tokens=${usage.cached_prompt_tokens} ` +
    `generated_tokens=${usage.generated_tokens} queue_time_ms=${usage.queue_time_ms} ` +
    `compute_time_ms=${usage.compute_time_ms} replayed=${usage.replayed}`
  );
}

function sessionLine(usage) {
  return (
    `  session: spans=${usage.spans} prompt_tokens=${usage.prompt_tokens} ` +
    `cached_prompt_tokens=${usage.cached_prompt_tokens} ` +
    `generated_tokens=${usage.generated_tokens}`
  );
}

async function checkInfo(teacher, checks) {
  console.log("GetInfo");
  const info = await teacher.getInfo();
  console.log(
    `  model_name=${info.model_name} engine=${info.engine} vocab_size=${info.vocab_size}\n` +
      `  tokenizer_fingerprint=${info.tokenizer_fingerprint}\n` +
      `  limits: max_span_tokens=${info.limits.max_span_tokens} ` +
      `max_context_tokens=${info.limits.max_context_tokens}`,
  );
  checks.expect(info.model_name !== "", "GetInfo names the model");
  checks.expect(
    /^sha256:[0-9a-f]{64}$/.test(info.tokenizer_fingerprint),
    "the tokenizer fingerprint is sha256:<hex>",
  );
  checks.expect(info.limits.max_span_tokens > 0, "GetInfo gives a span limit");
  return info;
}

async function generate(teacher, span) {
  console.log(`GenerateSpan request_id=${span.request_id}`);
  const response = await teacher.generateSpan(span);
  console.log(
    `  text=${JSON.stringify(response.text)} token_ids=${response.token_ids.length} ` +
      `finish_reason=${response.finish_reason}\n` +
      `${spanUsageLine(response.usage)}\n${sessionLine(response.session_usage)}`,
  );
  return response;
}

function checkSpan(span, checks) {
  checks.expect(span.text !== "", "the span's text is not empty");
  checks.expect(span.token_ids.length > 0, "the span has token ids");
  checks.expect(
    span.finish_reason !== "FINISH_REASON_UNSPECIFIED",
    "the span's finish reason is set",
  );
  checks.expect(
    span.usage.generated_tokens === span.token_ids.length,
    "usage counts the span's tokens",
  );
  checks.expect(!span.usage.replayed, "a new request id is generated, not replayed");
}

function checkReplay(first, retry, checks) {
  checks.expect(retry.usage.replayed, "the retried request id is replayed");
  checks.expect(retry.text === first.text, "the replay has the first answer's text");
  checks.expect(
    retry.token_ids.join(",") === first.token_ids.join(","),
    "the replay has the first answer's token ids",
  );
  checks.expect(
    retry.session_usage.spans === first.session_usage.spans,
    "the replay is not counted again",
  );
}

async function checkStream(teacher, span, checks) {
  console.log(`StreamSpan request_id=${span.request_id}`);
  const { pieces, text } = await readStream(teacher.streamSpan(span));
  pieces.forEach((piece, index) =>
    console.log(
      `  piece ${index}: text=${JSON.stringify(piece.text)} token_ids=${piece.token_ids.length}`,
    ),
  );
  const last = pieces.at(-1);
  console.log(
    `  text=${JSON.stringify(text)} finish_reason=${last.finish_reason}\n` +
      `${spanUsageLine(last.usage)}\n${sessionLine(last.session_usage)}`,
  );
  const tokens = pieces.reduce((sum, piece) => sum + piece.token_ids.length, 0);
  checks.expect(text !== "", "the streamed span's text is not empty");
  checks.expect(
    last.finish_reason !== "FINISH_REASON_UNSPECIFIED",
    "the last piece carries the finish reason",
  );
  checks.expect(
    pieces.slice(0, -1).every((piece) => piece.finish_reason === "FINISH_REASON_UNSPECIFIED"),
    "only the last piece carries a finish reason",
  );
  checks.expect(last.usage.generated_tokens === tokens, "the pieces hold every generated token");
  return last.usage.generated_tokens;
}

async function checkCancel(teacher, span, checks) {
  console.log(`StreamSpan request_id=${span.request_id}, cancelled after its first piece`);
  const { pieces, error } = await cancelAfterFirstPiece(teacher.streamSpan(span));
  console.log(`  pieces=${pieces.length} status ${describeError(error)}`);
  checks.expect(error.code === CANCELLED, "the cancelled stream ends CANCELLED");
}

async function checkRefusal(teacher, span, checks) {
  console.log(`GenerateSpan max_tokens=${span.max_tokens} (over the limit)`);
  try {
    await teacher.generateSpan(span);
    checks.fail("a span over max_span_tokens is refused, but the teacher answered it");
  } catch (error) {
    console.log(`  status ${describeError(error)}`);
    checks.expect(
      error.code === INVALID_ARGUMENT,
      "a span over max_span_tokens is refused with INVALID_ARGUMENT",
    );
  }
}

async function checkUsage(teacher, sessionId, { spans, generatedTokens }, checks) {
  console.log("GetSessionUsage");
  const usage = await teacher.getSessionUsage(sessionId);
  console.log(sessionLine(usage));
  checks.expect(
    usage.spans === spans,
    `the session counts ${spans} spans (the replay once, the cancelled span not at all)`,
  );
  checks.expect(
    usage.generated_tokens === generatedTokens,
    "the session counts every generated token once",
  );
}

/** Runs every check against the teacher at `address`; returns the tally. */
export async function runChecks(address) {
  const checks = new Checks();
  const teacher = connectTeacher(address);
  try {
    const info = await checkInfo(teacher, checks);
    const sessionId = newSessionId();
    console.log(`session_id=${sessionId}`);
    const limit = info.limits.max_span_tokens;
    const span = (requestId, question, answerSoFar, maxTokens = Math.min(SPAN_TOKENS, limit)) =>
      textSpan({ sessionId, requestId: `${sessionId}-${requestId}`, question, answerSoFar, maxTokens });

    const request = span(1, "What is the capital of France?", "The capital of France is");
    const first = await generate(teacher, request);
    checkSpan(first, checks);
    // A retry after a lost answer resends the same request, request_id included.
    checkReplay(first, await generate(teacher, request), checks);
    const streamed = await checkStream(
      teacher,
      span(2, "Count from one to ten.", "One, two,"),
      checks,
    );
    await checkCancel(
      teacher,
      span(3, "Tell me a long story.", "Once upon a time,", Math.min(CANCELLED_SPAN_TOKENS, limit)),
      checks,
    );
    await checkRefusal(teacher, span(4, "Hello.", "", limit + 1), checks);
    await checkUsage(
      teacher,
      sessionId,
      { spans: 2, generatedTokens: first.usage.generated_tokens + streamed },
      checks,
    );
  } catch (error) {
    checks.fail(`the teacher answered ${describeError(error)}`);
  } finally {
    teacher.close();
  }
  console.log(`${checks.passed} checks held, ${checks.failed} failed`);
  return checks;
}

async function main(args) {
  if (args.length !== 1) {
    console.error(
      "usage: node relay_client.mjs HOST:PORT  (the address of a relay.v1 teacher, " +
        "e.g. 127.0.0.1:50051)",
    );
    return 2;
  }
  const checks = await runChecks(args[0]);
  return checks.allHeld ? 0 : 1;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}

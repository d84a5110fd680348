// The relay.v1 contract as a Node app sees it, against a real teacher:
//   RELAY_TEACHER=127.0.0.1:50051 node --test
// (pytest's tests/clients start a teacher and set it). Without RELAY_TEACHER these tests skip.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import * as grpc from "@grpc/grpc-js";

import {
  cancelAfterFirstPiece,
  connectTeacher,
  newSessionId,
  readStream,
  textSpan,
} from "../relay_teacher.mjs";

const address = process.env.RELAY_TEACHER;
const skip = address
  ? false
  : "set RELAY_TEACHER=HOST:PORT of a running relay-teacher serve to run these tests";

describe("a relay.v1 teacher", { skip }, () => {
  let teacher;
  let info;
  const sessionId = newSessionId();
  let requests = 0;
  const span = (question, answerSoFar, maxTokens = 8) =>
    textSpan({
      sessionId,
      requestId: `${sessionId}-${++requests}`,
      question,
      answerSoFar,
      maxTokens,
    });

  before(async () => {
    teacher = connectTeacher(address);
    info = await teacher.getInfo();
  });
  after(() => teacher?.close());

  test("GetInfo gives a sha256 tokenizer fingerprint and the limits", () => {
    assert.match(info.tokenizer_fingerprint, /^sha256:[0-9a-f]{64}$/);
    assert.ok(info.vocab_size > 0);
    assert.ok(info.limits.max_span_tokens > 0);
    assert.ok(info.limits.max_context_tokens > 0);
  });

  test("a text-mode span has text, token ids and a finish reason; its retry is replayed", async () => {
    const request = span("What is the capital of France?", "The capital of France is");
    const first = await teacher.generateSpan(request);
    assert.notEqual(first.text, "");
    assert.equal(first.usage.generated_tokens, first.token_ids.length);
    assert.notEqual(first.finish_reason, "FINISH_REASON_UNSPECIFIED");
    assert.equal(first.usage.replayed, false);

    const retry = await teacher.generateSpan(request);
    assert.equal(retry.usage.replayed, true);
    assert.equal(retry.text, first.text);
    assert.deepEqual(retry.token_ids, first.token_ids);
    assert.equal(retry.session_usage.spans, first.session_usage.spans);
  });

  test("streamed pieces make up the span GenerateSpan returns for the same request", async () => {
    const request = span("Count from one to ten.", "One, two,");
    const { pieces, text } = await readStream(teacher.streamSpan(request));
    const last = pieces.at(-1);
    assert.notEqual(last.finish_reason, "FINISH_REASON_UNSPECIFIED");
    for (const piece of pieces.slice(0, -1)) {
      assert.equal(piece.finish_reason, "FINISH_REASON_UNSPECIFIED");
    }
    const whole = await teacher.generateSpan(request); // the same request_id: a replay
    assert.equal(whole.usage.replayed, true);
    assert.equal(text, whole.text);
    assert.deepEqual(
      pieces.flatMap((piece) => piece.token_ids),
      whole.token_ids,
    );
  });

  test("a cancelled stream is not counted, and its request id generates anew", async () => {
    const before = await teacher.getSessionUsage(sessionId);
    // Long enough that the span is still being written when the cancel lands.
    const maxTokens = Math.min(16, info.limits.max_span_tokens);
    const request = span("Tell me a long story.", "Once upon a time,", maxTokens);
    const { pieces, error } = await cancelAfterFirstPiece(teacher.streamSpan(request));
    assert.equal(pieces.length, 1);
    assert.equal(error.code, grpc.status.CANCELLED);

    // Had the teacher kept the cancelled span, this retry would be a replay.
    const again = await teacher.generateSpan(request);
    assert.equal(again.usage.replayed, false);
    assert.equal(again.session_usage.spans, before.spans + 1);
  });

  test("GetSessionUsage of an unknown session is NOT_FOUND", async () => {
    await assert.rejects(teacher.getSessionUsage(newSessionId()), {
      code: grpc.status.NOT_FOUND,
    });
  });

  test("token mode with another tokenizer's fingerprint is INVALID_ARGUMENT, saying why", async () => {
    const request = {
      session_id: sessionId,
      request_id: `${sessionId}-wrong-fingerprint`,
      tokens: { token_ids: [1, 2, 3], tokenizer_fingerprint: "sha256:not-this-teacher" },
      max_tokens: 4,
    };
    await assert.rejects(teacher.generateSpan(request), (error) => {
      assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
      assert.match(error.details, /text mode/);
      return true;
    });
  });
});

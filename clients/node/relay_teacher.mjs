// The relay.v1 TeacherService from Node: the stub, built from protos/ at run time, and the
// metadata and deadline every call carries.
//
//   const teacher = connectTeacher("127.0.0.1:50051");
//   const info = await teacher.getInfo();
//   const span = await teacher.generateSpan(spanRequest);     // rejects with a grpc error
//   const call = teacher.streamSpan(spanRequest);             // a readable stream of pieces
//   const usage = await teacher.getSessionUsage(sessionId);
//   teacher.close();

import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

export const PROTO_ROOT = fileURLToPath(new URL("../../protos", import.meta.url));

// Field names as in the .proto (session_id, not sessionId); enums as their names; 64-bit
// counters as numbers (a session's token count stays far below 2^53); defaults filled in, so
// an unset field reads as 0, "" or false as in every other proto3 binding.
const LOADER_OPTIONS = {
  keepCase: true,
  enums: String,
  longs: Number,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

const INFO_DEADLINE_MS = 30_000;
// A CPU teacher on a busy machine can take a while for its first span.
export const SPAN_DEADLINE_MS = 180_000;

/** Loads relay.v1 from the .proto: nothing is generated ahead of time. */
export function loadRelayV1() {
  const definition = protoLoader.loadSync("relay/v1/relay.proto", LOADER_OPTIONS);
  return grpc.loadPackageDefinition(definition).relay.v1;
}

/**
 * The metadata of one call: `x-relay-session` for span and usage calls (a routing proxy keeps a
 * session on one replica by it) and `authorization: Bearer <key>` when RELAY_API_KEY is set.
 * @param {string} [sessionId]
 */
export function callMetadata(sessionId) {
  const metadata = new grpc.Metadata();
  if (sessionId) {
    metadata.set("x-relay-session", sessionId);
  }
  const key = process.env.RELAY_API_KEY;
  if (key) {
    metadata.set("authorization", `Bearer ${key}`);
  }
  return metadata;
}

/** A fresh session id, e.g. "node-1b9d6bcd-...". */
export function newSessionId() {
  return `node-${randomUUID()}`;
}

/**
 * A greedy text-mode span request: one user message and the answer so far.
 * @param {{sessionId: string, requestId: string, question: string, answerSoFar: string,
 *          maxTokens: number}} options
 */
export function textSpan({ sessionId, requestId, question, answerSoFar, maxTokens }) {
  return {
    session_id: sessionId,
    request_id: requestId,
    text: {
      messages: [{ role: "ROLE_USER", content: question }],
      assistant_prefix: answerSoFar,
    },
    max_tokens: maxTokens,
  };
}

/** "CODE: details" of a grpc-js error, e.g. "INVALID_ARGUMENT: max_tokens must be ...". */
export function describeError(error) {
  const name = Object.keys(grpc.status).find((key) => grpc.status[key] === error.code);
  return `${name ?? error.code}: ${error.details ?? error.message}`;
}

/** Connects to a teacher at "HOST:PORT" (plaintext; see docs/integration.md for TLS). */
export function connectTeacher(address) {
  const relayV1 = loadRelayV1();
  const stub = new relayV1.TeacherService(address, grpc.credentials.createInsecure());
  const deadline = (ms) => ({ deadline: Date.now() + ms });
  const unary = (method, request, metadata, ms) =>
    new Promise((resolve, reject) => {
      stub[method](request, metadata, deadline(ms), (error, response) =>
        error ? reject(error) : resolve(response),
      );
    });
  return {
    getInfo: () => unary("GetInfo", {}, callMetadata(), INFO_DEADLINE_MS),
    generateSpan: (span) =>
      unary("GenerateSpan", { span }, callMetadata(span.session_id), SPAN_DEADLINE_MS),
    streamSpan: (span) =>
      stub.StreamSpan({ span }, callMetadata(span.session_id), deadline(SPAN_DEADLINE_MS)),
    getSessionUsage: (sessionId) =>
      unary(
        "GetSessionUsage",
        { session_id: sessionId },
        callMetadata(sessionId),
        INFO_DEADLINE_MS,
      ).then((response) => response.usage),
    close: () => stub.close(),
  };
}

/**
 * Reads a StreamSpan call to its end: the pieces and the text they make up; rejects with the
 * call's error.
 */
export function readStream(call) {
  return new Promise((resolve, reject) => {
    const pieces = [];
    call.on("data", (piece) => pieces.push(piece));
    call.on("error", reject);
    call.on("end", () => resolve({ pieces, text: pieces.map((piece) => piece.text).join("") }));
  });
}

/**
 * Starts a StreamSpan and cancels it once the first piece arrives, as an app does when its
 * user stops the answer. Resolves with the pieces received and the error the call ended with.
 */
export function cancelAfterFirstPiece(call) {
  return new Promise((resolve, reject) => {
    const pieces = [];
    call.on("data", (piece) => {
      pieces.push(piece);
      if (pieces.length === 1) {
        call.cancel();
      }
    });
    call.on("error", (error) => resolve({ pieces, error }));
    call.on("end", () => reject(new Error("the stream ended before it could be cancelled")));
  });
}

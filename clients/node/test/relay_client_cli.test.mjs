// The command line: `node relay_client.mjs HOST:PORT`.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

const CLIENT = fileURLToPath(new URL("../relay_client.mjs", import.meta.url));

test("without an address it prints its usage and exits 2", () => {
  const run = spawnSync(process.execPath, [CLIENT], { encoding: "utf8" });
  assert.equal(run.status, 2);
  assert.match(run.stderr, /usage: node relay_client\.mjs HOST:PORT/);
});

test("with no teacher at the address it reports UNAVAILABLE and exits 1", () => {
  // Port 1 on loopback: nothing listens there, so the connection is refused at once.
  const run = spawnSync(process.execPath, [CLIENT, "127.0.0.1:1"], { encoding: "utf8" });
  assert.equal(run.status, 1);
  assert.match(run.stdout, /FAILED: the teacher answered UNAVAILABLE/);
});

// A tally of the client's checks: each prints one line, and the program exits 0 only when
// every one held.

export class Checks {
  passed = 0;
  failed = 0;

  /** Prints "ok: <what>" or "FAILED: <what>"; returns `held`. */
  expect(held, what) {
    if (held) {
      this.passed += 1;
      console.log(`ok: ${what}`);
    } else {
      this.fail(what);
    }
    return held;
  }

  /** Records a check that could not run at all (the call behind it failed). */
  fail(what) {
    this.failed += 1;
    console.log(`FAILED: ${what}`);
  }

  get allHeld() {
    return this.failed === 0 && this.passed > 0;
  }
}

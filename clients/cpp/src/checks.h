// A tally of the client's checks: each prints one line, and the program exits 0 only when
// every one held.
#pragma once

#include <string>

namespace relay_client {

class Checks {
 public:
  // Prints "ok: <what>" or "FAILED: <what>" and returns `held`.
  bool expect(bool held, const std::string& what);
  // Records a check that could not run at all (the call behind it failed).
  void fail(const std::string& what);
  bool all_held() const { return failed_ == 0 && passed_ > 0; }
  int passed() const { return passed_; }
  int failed() const { return failed_; }

 private:
  int passed_ = 0;
  int failed_ = 0;
};

}  // namespace relay_client

#include "checks.h"

#include <iostream>

namespace relay_client {

bool Checks::expect(bool held, const std::string& what) {
  if (held) {
    ++passed_;
    std::cout << "ok: " << what << std::endl;
  } else {
    fail(what);
  }
  return held;
}

void Checks::fail(const std::string& what) {
  ++failed_;
  std::cout << "FAILED: " << what << std::endl;
}

}  // namespace relay_client

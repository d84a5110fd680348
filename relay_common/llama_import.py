"""llama.cpp for every module of the project, loaded so that its idle threads give up their cores.

    from relay_common.llama_import import llama_cpp, llama_lib   # never `import llama_cpp`

llama-cpp-python's CPU backend runs its threads on OpenMP (libgomp). A libgomp thread that
waits, at each of the hundreds of barriers in a decode and after the decode, spins on its core
for 300,000 rounds (about 8 ms here) before it sleeps. Where other processes decode on the same
cores, the spinning thread holds a core that the thread it waits for needs: two
Qwen2.5-Coder-1.5B processes decoding at once on 2 cores took 3.8 times as long a token as one
alone; with 1,000 rounds (about 26 µs) 2.0 times (an even share), and one alone decodes as
fast as with 300,000. Not spinning (`OMP_WAIT_POLICY=PASSIVE`) made a process alone 1.5-2
times slower (a wake-up per barrier). `python -m benchmarks.spin_contention` measures the three.

libgomp reads `GOMP_SPINCOUNT` once, when it loads: when llama_cpp is first imported. So this
module sets it for that import only (child processes, such as vLLM's engine, keep their own
defaults), and every process that runs llama.cpp sets it for itself: the student's, a local
teacher's, a teacher started by hand. A user's own `OMP_WAIT_POLICY` or `GOMP_SPINCOUNT` wins.
"""

from __future__ import annotations

import os

SPIN_ROUNDS = 1000
# Set by the user: theirs wins.
_scoped = not any(name in os.environ for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"))
if _scoped:
    os.environ["GOMP_SPINCOUNT"] = str(SPIN_ROUNDS)
try:
    import llama_cpp  # libgomp loads here and reads the variable
    import llama_cpp.llama_cpp as llama_lib  # the C API (ctypes)
finally:
    if _scoped:
        del os.environ["GOMP_SPINCOUNT"]

__all__ = ["SPIN_ROUNDS", "llama_cpp", "llama_lib"]

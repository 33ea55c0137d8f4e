// The cpu backend's thread count (PORTA_CPU_THREADS, docs/env.md), apart from the kernel helpers
// so that code built without OpenMP (the tests) can ask for it.
#pragma once

#include <string>

namespace porta::detail::cpu {

// The thread count of the cpu backend: the environment variable PORTA_CPU_THREADS when set, else
// the compile option PORTA_CPU_THREADS when non-zero, else every core OpenMP sees. `error` gets a
// message (and the default is returned) when the environment variable is not a positive integer.
int configured_threads(std::string* error = nullptr);
// The same, read once: what our own loops use and what execute() hands oneDNN's OpenMP pool.
int cpu_threads();
// The threads our loops may use now: cpu_threads(), or fewer where the caller lowered OpenMP's
// thread count (execute() runs tiny nodes on one thread).
int active_threads();

}  // namespace porta::detail::cpu

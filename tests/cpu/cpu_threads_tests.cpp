// PORTA_CPU_THREADS: the environment variable wins over the compile option; a malformed value is
// reported, never silently replaced.
#include <cstdlib>
#include <optional>
#include <string>

#include <catch2/catch.hpp>

#include <porta/executable.hpp>
#include <porta/graph.hpp>

#include "../../backends/cpu/cpu_threads.hpp"

namespace cpu_threads_tests {

namespace {

// Sets PORTA_CPU_THREADS for one scope and restores what was there.
class ThreadsEnv {
 public:
  explicit ThreadsEnv(const char* value) {
    if (const char* old = std::getenv("PORTA_CPU_THREADS")) saved_ = old;
    if (value)
      setenv("PORTA_CPU_THREADS", value, 1);
    else
      unsetenv("PORTA_CPU_THREADS");
  }
  ~ThreadsEnv() {
    if (saved_)
      setenv("PORTA_CPU_THREADS", saved_->c_str(), 1);
    else
      unsetenv("PORTA_CPU_THREADS");
  }

 private:
  std::optional<std::string> saved_;
};

}  // namespace

TEST_CASE("PORTA_CPU_THREADS sets the cpu thread count", "[cpu][threads]") {
  using porta::detail::cpu::configured_threads;
  {
    ThreadsEnv env("3");
    std::string error;
    CHECK(configured_threads(&error) == 3);
    CHECK(error.empty());
  }
  {
    ThreadsEnv env(nullptr);
    std::string error;
    CHECK(configured_threads(&error) >= 1);
    CHECK(error.empty());
  }
  for (const char* bad : {"two", "0", "-1", "4x"}) {
    INFO("PORTA_CPU_THREADS=" << bad);
    ThreadsEnv env(bad);
    std::string error;
    CHECK(configured_threads(&error) >= 1);
    CHECK_THAT(error, Catch::Contains("PORTA_CPU_THREADS") && Catch::Contains(bad));
  }
}

TEST_CASE("a tiny first graph does not leave the cpu kernels on one thread", "[cpu][threads]") {
  // execute() runs tiny nodes with OpenMP lowered to one thread; the kernels' own count, fixed
  // on first use, was once taken inside such a node (rope sizes its loop at run time), and
  // every parallel loop of the process then ran on one thread. Run alone, this test is that
  // first use.
  porta::Graph g;
  const porta::Value x = g.input("x", {2, 1, 8}, porta::DType::F32);
  const porta::Value pos = g.input("pos", {2}, porta::DType::I32);
  g.output("y", g.rope(x, pos, {}));
  porta::Executable exe = porta::compile(g, {.backend = "cpu"});
  const auto out = exe.run({{"x", porta::Tensor::zeros({2, 1, 8}, porta::DType::F32)},
                            {"pos", porta::Tensor::zeros({2}, porta::DType::I32)}});
  CHECK(out.at("y").shape() == porta::Shape{2, 1, 8});
  ThreadsEnv env(nullptr);
  CHECK(porta::detail::cpu::cpu_threads() == porta::detail::cpu::configured_threads());
}

}  // namespace cpu_threads_tests

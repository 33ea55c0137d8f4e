// The MPI communicator: porta's collectives over Open MPI's point-to-point messages.
//
// Each collective posts non-blocking sends and receives to every peer and polls them against a
// deadline (Communicator::timeout()). Per-peer requests, rather than MPI_Ialltoallv, are what let
// a timeout name the rank that never arrived. On timeout the job ends with MPI_Abort and that
// message: a peer that died or hangs must not leave the others blocked forever. The MPI C API is
// used from C++ (the C++ bindings are deprecated); no MPI type reaches a public header.
// mpi.h pulls in the deprecated C++ bindings when compiled as C++ unless told not to.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include <porta/comm.hpp>
#include <porta/error.hpp>

namespace porta {

namespace {

constexpr int kTag = 7311;  // one tag: MPI keeps messages of one (source, tag) in order

void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw Error(ErrorCode::Backend, fmt::format("{}: MPI error: {}", what, std::string(text, length)));
}

int as_count(std::int64_t bytes, const char* what, int peer) {
  if (bytes < 0 || bytes > INT_MAX)
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: {} bytes for rank {} (one message holds 0 to {} bytes)", what,
                            bytes, peer, INT_MAX));
  return static_cast<int>(bytes);
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
    check_mpi(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check_mpi(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    check_mpi(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string_view kind() const override { return "mpi"; }

  std::shared_ptr<Communicator> split(int color, int key) const override {
    MPI_Comm sub = MPI_COMM_NULL;
    check_mpi(MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &sub), "MPI_Comm_split");
    if (sub == MPI_COMM_NULL)
      throw Error(ErrorCode::InvalidArgument, fmt::format("split: color {} is negative", color));
    auto result = std::make_shared<MpiCommunicator>(sub, true);
    result->set_timeout(timeout());
    return result;
  }

  void all_to_all(const void* send, std::span<const std::int64_t> send_bytes, void* recv,
                  std::span<const std::int64_t> recv_bytes) override {
    peers("all_to_all", send_bytes.size());
    peers("all_to_all", recv_bytes.size());
    exchange("all_to_all", [&](int p) { return send_bytes[static_cast<std::size_t>(p)]; },
             static_cast<const char*>(send), send_bytes, static_cast<char*>(recv), recv_bytes,
             true);
  }

  void all_gather(const void* send, std::int64_t bytes, void* recv,
                  std::span<const std::int64_t> recv_bytes) override {
    peers("all_gather", recv_bytes.size());
    if (bytes != recv_bytes[static_cast<std::size_t>(rank_)])
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("all_gather: rank {} sends {} bytes but expects {} from itself",
                              rank_, bytes, recv_bytes[static_cast<std::size_t>(rank_)]));
    const std::vector<std::int64_t> same(static_cast<std::size_t>(size_), bytes);
    exchange("all_gather", [&](int) { return bytes; }, static_cast<const char*>(send), same,
             static_cast<char*>(recv), recv_bytes, false);
  }

  void barrier() override {
    const char token = 0;
    std::vector<char> sink(static_cast<std::size_t>(size_));
    all_gather(&token, 1, sink.data(), std::vector<std::int64_t>(static_cast<std::size_t>(size_), 1));
  }

 private:
  void peers(const char* what, std::size_t n) const {
    if (n != static_cast<std::size_t>(size_))
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{}: {} per-peer counts for a communicator of {} ranks", what, n,
                              size_));
  }

  // Posts a receive from and a send to every peer, then waits for all of them. `sends_differ`:
  // each peer gets its own block of `send` (all_to_all), else every peer gets all of it.
  template <class SendBytes>
  void exchange(const char* what, SendBytes bytes_to, const char* send,
                std::span<const std::int64_t> send_bytes, char* recv,
                std::span<const std::int64_t> recv_bytes, bool sends_differ) {
    const auto n = static_cast<std::size_t>(size_);
    std::vector<MPI_Request> requests(2 * n, MPI_REQUEST_NULL);
    std::int64_t send_at = 0, recv_at = 0;
    for (int p = 0; p < size_; ++p) {
      const auto up = static_cast<std::size_t>(p);
      const int in = as_count(recv_bytes[up], what, p);
      const int out = as_count(bytes_to(p), what, p);
      const char* block = send + (sends_differ ? send_at : 0);
      if (p == rank_) {
        if (in != out)
          throw Error(ErrorCode::InvalidArgument,
                      fmt::format("{}: rank {} sends {} bytes to itself but expects {}", what,
                                  rank_, out, in));
        if (in > 0) std::copy(block, block + in, recv + recv_at);
      } else {
        check_mpi(MPI_Irecv(recv + recv_at, in, MPI_BYTE, p, kTag, comm_, &requests[up]), what);
        check_mpi(MPI_Isend(block, out, MPI_BYTE, p, kTag, comm_, &requests[n + up]), what);
      }
      recv_at += in;
      send_at += sends_differ ? send_bytes[up] : 0;
    }
    wait(what, requests);
  }

  void wait(const char* what, std::vector<MPI_Request>& requests) {
    const auto start = std::chrono::steady_clock::now();
    const auto deadline = start + timeout();
    for (int spins = 0;; ++spins) {
      int done = 0;
      check_mpi(MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done,
                        MPI_STATUSES_IGNORE),
            what);
      if (done) return;
      if (std::chrono::steady_clock::now() > deadline) abort_on_timeout(what, requests);
      // Ranks may outnumber cores (mpirun --oversubscribe): give the peer the core.
      if (spins < 2000)
        std::this_thread::yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  [[noreturn]] void abort_on_timeout(const char* what, const std::vector<MPI_Request>& requests) {
    const auto n = static_cast<std::size_t>(size_);
    std::string missing;
    for (std::size_t p = 0; p < n; ++p)
      if (requests[p] != MPI_REQUEST_NULL)
        missing += fmt::format("{}{}", missing.empty() ? "" : ", ", p);
    const double seconds = static_cast<double>(timeout().count()) / 1000.0;
    std::fprintf(stderr,
                 "porta: rank %d: %s waited %.1f s for rank(s) %s, which failed, were killed or "
                 "are stuck; ending every rank (the limit is PORTA_COMM_TIMEOUT seconds)\n",
                 rank_, what, seconds, missing.empty() ? "?" : missing.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 3);
    std::_Exit(3);
  }

  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

bool mpi_available() { return true; }

std::shared_ptr<Communicator> mpi_world() {
  static std::mutex mutex;
  static std::shared_ptr<Communicator> world;
  const std::lock_guard lock(mutex);
  if (world) return world;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
    std::atexit(finalize_at_exit);
  }
  world = std::make_shared<MpiCommunicator>(MPI_COMM_WORLD, false);
  return world;
}

}  // namespace porta

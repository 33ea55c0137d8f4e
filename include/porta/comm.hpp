// Communicators: the group of processes that run one model together (expert parallelism).
//
// A Communicator is what porta's collective ops (all_to_all, all_gather, all_reduce,
// reduce_scatter, moe_experts_ep) exchange data through. An Executable uses the one its
// CompileOptions name, or a single-process one. `mpi_world()` is every process `mpirun` started;
// `split()` makes sub-groups (ranks of one node, say). Collectives move host memory; every one
// waits at most `timeout()` for its peers and then ends the whole job (MPI_Abort) with a message
// naming the rank that did not arrive, so a failed peer never leaves the others hanging.
// `agree()` is how ranks fail together: each says whether its own step failed, and all of them
// throw the same porta::Error naming the failing rank and its cause. docs/expert-parallel.md has
// the details.
#pragma once

#include <porta/config.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

PORTA_API_BEGIN
namespace porta {

class Communicator {
 public:
  virtual ~Communicator();

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "single" or "mpi".
  virtual std::string_view kind() const = 0;

  // The ranks that pass the same `color`, ordered by `key` (then by their rank here), as one new
  // communicator. Every rank of this communicator must call it.
  virtual std::shared_ptr<Communicator> split(int color, int key) const = 0;

  // ---- collectives on bytes (every rank calls them in the same order) ----
  // Sends send_bytes[p] bytes (consecutive in `send`, in rank order) to each rank p and receives
  // recv_bytes[p] bytes from each into `recv` (consecutive, in rank order). Each rank's
  // recv_bytes[p] must equal rank p's send_bytes[rank()].
  virtual void all_to_all(const void* send, std::span<const std::int64_t> send_bytes, void* recv,
                          std::span<const std::int64_t> recv_bytes) = 0;
  // Every rank's `bytes` bytes of `send`, concatenated in rank order into `recv`;
  // recv_bytes[p] is rank p's contribution.
  virtual void all_gather(const void* send, std::int64_t bytes, void* recv,
                          std::span<const std::int64_t> recv_bytes) = 0;
  virtual void barrier() = 0;

  // ---- derived collectives, deterministic: sums are taken in rank order on every rank, so each
  // rank's result is bit-identical to the others' and to the same sum done in one process ----
  void all_reduce_sum(std::span<float> data);
  // `send` holds size() blocks of counts[p] floats; rank p receives the sum of block p.
  void reduce_scatter_sum(std::span<const float> send, std::span<const std::int64_t> counts,
                          std::span<float> recv);
  // Exchanges one integer per peer: recv[p] = rank p's send[rank()].
  void all_to_all_counts(std::span<const std::int64_t> send, std::span<std::int64_t> recv);

  // Every rank reports its own step's outcome: an empty `failure` for success, else its cause.
  // Returns when every rank succeeded; otherwise every rank throws the same porta::Error naming
  // each failing rank and its cause ("rank 1: cannot open ...").
  void agree(std::string_view failure);

  // How long a collective waits for its peers before it ends the job. PORTA_COMM_TIMEOUT
  // (seconds) sets the default, 60 s.
  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

 protected:
  Communicator();

 private:
  std::chrono::milliseconds timeout_;
};

// One process alone: rank 0 of 1; collectives copy.
std::shared_ptr<Communicator> single_process_communicator();

// Whether this libporta was built with MPI.
bool mpi_available();
// Whether this process was started by mpirun (it sees Open MPI's or a PMI rank variable).
bool launched_by_mpi();
// Every process of the job (MPI_COMM_WORLD). Initialises MPI on the first call and finalises it
// at exit. Throws porta::Error (Unsupported) when libporta was built without MPI.
std::shared_ptr<Communicator> mpi_world();

}  // namespace porta
PORTA_API_END

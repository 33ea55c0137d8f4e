// The communicator's shared part: the deterministic derived collectives (sums in rank order),
// error agreement, and the single-process communicator.
#include <porta/comm.hpp>

#include <cstdlib>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include <porta/error.hpp>

namespace porta {

namespace {

std::chrono::milliseconds default_timeout() {
  // Read once per communicator: tests shorten it to see faults end in seconds.
  if (const char* text = std::getenv("PORTA_COMM_TIMEOUT")) {
    char* end = nullptr;
    const double seconds = std::strtod(text, &end);
    if (end != text && *end == '\0' && seconds > 0)
      return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000.0));
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("PORTA_COMM_TIMEOUT='{}' is not a positive number of seconds", text));
  }
  return std::chrono::seconds(60);
}

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string_view kind() const override { return "single"; }
  std::shared_ptr<Communicator> split(int, int) const override {
    return std::make_shared<SingleProcess>();
  }
  void all_to_all(const void* send, std::span<const std::int64_t> send_bytes, void* recv,
                  std::span<const std::int64_t> recv_bytes) override {
    check_one("all_to_all", send_bytes.size());
    check_one("all_to_all", recv_bytes.size());
    if (send_bytes[0] != recv_bytes[0])
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("all_to_all: rank 0 sends {} bytes to itself but expects {}",
                              send_bytes[0], recv_bytes[0]));
    if (send_bytes[0] > 0) std::memmove(recv, send, static_cast<std::size_t>(send_bytes[0]));
  }
  void all_gather(const void* send, std::int64_t bytes, void* recv,
                  std::span<const std::int64_t> recv_bytes) override {
    check_one("all_gather", recv_bytes.size());
    if (bytes != recv_bytes[0])
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("all_gather: rank 0 sends {} bytes but expects {}", bytes,
                              recv_bytes[0]));
    if (bytes > 0) std::memmove(recv, send, static_cast<std::size_t>(bytes));
  }
  void barrier() override {}

 private:
  static void check_one(const char* what, std::size_t n) {
    if (n != 1)
      throw Error(ErrorCode::InvalidArgument,
                  fmt::format("{}: {} per-peer counts for a communicator of 1 rank", what, n));
  }
};

void check_peers(const Communicator& c, const char* what, std::size_t n) {
  if (n != static_cast<std::size_t>(c.size()))
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("{}: {} per-peer counts for a communicator of {} ranks", what, n,
                            c.size()));
}

}  // namespace

Communicator::Communicator() : timeout_(default_timeout()) {}
Communicator::~Communicator() = default;

void Communicator::all_to_all_counts(std::span<const std::int64_t> send,
                                     std::span<std::int64_t> recv) {
  check_peers(*this, "all_to_all_counts", send.size());
  check_peers(*this, "all_to_all_counts", recv.size());
  const std::vector<std::int64_t> bytes(send.size(), sizeof(std::int64_t));
  all_to_all(send.data(), bytes, recv.data(), bytes);
}

void Communicator::all_reduce_sum(std::span<float> data) {
  const auto n = static_cast<std::size_t>(size());
  const auto bytes = static_cast<std::int64_t>(data.size_bytes());
  std::vector<float> all(data.size() * n);
  const std::vector<std::int64_t> recv_bytes(n, bytes);
  all_gather(data.data(), bytes, all.data(), recv_bytes);
  // Rank order, on every rank: the result does not depend on MPI's reduction algorithm.
  for (std::size_t i = 0; i < data.size(); ++i) {
    float sum = all[i];
    for (std::size_t p = 1; p < n; ++p) sum += all[p * data.size() + i];
    data[i] = sum;
  }
}

void Communicator::reduce_scatter_sum(std::span<const float> send,
                                      std::span<const std::int64_t> counts, std::span<float> recv) {
  check_peers(*this, "reduce_scatter", counts.size());
  const auto n = static_cast<std::size_t>(size());
  const auto me = static_cast<std::size_t>(rank());
  std::int64_t total = 0;
  for (auto c : counts) {
    if (c < 0) throw Error(ErrorCode::InvalidArgument, "reduce_scatter: a negative count");
    total += c;
  }
  if (static_cast<std::size_t>(total) != send.size() ||
      static_cast<std::size_t>(counts[me]) != recv.size())
    throw Error(ErrorCode::InvalidArgument,
                fmt::format("reduce_scatter: counts sum to {} for {} floats sent, and rank {} "
                            "receives {} into {}",
                            total, send.size(), me, counts[me], recv.size()));
  std::vector<std::int64_t> send_bytes(n), recv_bytes(n);
  for (std::size_t p = 0; p < n; ++p) {
    send_bytes[p] = counts[p] * static_cast<std::int64_t>(sizeof(float));
    recv_bytes[p] = counts[me] * static_cast<std::int64_t>(sizeof(float));
  }
  std::vector<float> blocks(recv.size() * n);
  all_to_all(send.data(), send_bytes, blocks.data(), recv_bytes);
  for (std::size_t i = 0; i < recv.size(); ++i) {
    float sum = blocks[i];
    for (std::size_t p = 1; p < n; ++p) sum += blocks[p * recv.size() + i];
    recv[i] = sum;
  }
}

void Communicator::agree(std::string_view failure) {
  const auto n = static_cast<std::size_t>(size());
  const auto length = static_cast<std::int64_t>(failure.size());
  std::vector<std::int64_t> lengths(n);
  all_gather(&length, sizeof length, lengths.data(),
             std::vector<std::int64_t>(n, sizeof(std::int64_t)));
  std::int64_t total = 0;
  for (auto l : lengths) total += l;
  if (total == 0) return;
  std::string all(static_cast<std::size_t>(total), '\0');
  all_gather(failure.data(), length, all.data(), lengths);
  std::string message;
  std::size_t at = 0;
  for (std::size_t p = 0; p < n; ++p) {
    const auto l = static_cast<std::size_t>(lengths[p]);
    if (l > 0)
      message += fmt::format("{}rank {}: {}", message.empty() ? "" : "; ", p, all.substr(at, l));
    at += l;
  }
  throw Error(ErrorCode::Backend, message);
}

std::shared_ptr<Communicator> single_process_communicator() {
  return std::make_shared<SingleProcess>();
}

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

}  // namespace porta

// Built when porta is configured without MPI (PORTA_MPI=OFF, or AUTO with no MPI found): the
// single-process communicator is all there is, and asking for MPI says so.
#include <porta/comm.hpp>
#include <porta/error.hpp>

namespace porta {

bool mpi_available() { return false; }

std::shared_ptr<Communicator> mpi_world() {
  throw Error(ErrorCode::Unsupported,
              "this porta was built without MPI (PORTA_MPI=OFF, or no MPI found at configure "
              "time: install libopenmpi-dev and reconfigure)");
}

}  // namespace porta

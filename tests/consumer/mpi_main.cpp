// Consumer of the installed package's MPI component: the data-parallel transport compiles and links
// against unetsrnn::mpi (built only; running it needs an MPI launcher).
#include <cstdio>
#include <unetsrnn/dist/mpi.hpp>

int main() {
  unetsrnn::MpiCommunicator comm;
  double v = 1.0;
  comm.sum_host(&v, 1);
  std::printf("rank %d of %d: sum %g\n", comm.rank(), comm.size(), v);
  return v == comm.size() ? 0 : 1;
}

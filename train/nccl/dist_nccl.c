// The GPU half of data-parallel training: one NCCL communicator over the MPI world, its id handed out by rank 0
// over MPI (as llm.c does), and the gradient all-reduce on a stream of its own, fenced by events against the
// default stream the kernels run on.
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <nccl.h>
#include <stdio.h>

#include "dist_nccl.h"

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 11, 0)
#error "nanodiff needs NCCL 2.11 or newer (ncclRedOpCreatePreMulSum); configure with -DNANODIFF_MPI=OFF or update NCCL"
#endif

static ncclComm_t comm;
static cudaStream_t reduce_stream;
static cudaEvent_t grads_ready, grads_reduced;
static bool started;

// A failed NCCL or CUDA call ends every process: the others would wait for this one forever.
static void nccl_check(ncclResult_t r, const char *call, const char *file, int line) {
    if (r == ncclSuccess) return;
    fprintf(stderr, "nanodiff: %s failed at %s:%d: %s\n  HINT: NCCL_DEBUG=WARN in the environment says more\n",
            call, file, line, ncclGetErrorString(r));
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static void cuda_check(cudaError_t e, const char *call, const char *file, int line) {
    if (e == cudaSuccess) return;
    fprintf(stderr, "nanodiff: %s failed at %s:%d: %s\n", call, file, line, cudaGetErrorString(e));
    MPI_Abort(MPI_COMM_WORLD, 1);
}

#define NCCL_CHECK(call) nccl_check((call), #call, __FILE__, __LINE__)
#define CUDA_CHECK(call) cuda_check((call), #call, __FILE__, __LINE__)

void nd_nccl_bind_device(int local_rank) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        (void)cudaGetLastError(); // no GPU: the device flag's own check says so
        return;
    }
    CUDA_CHECK(cudaSetDevice(local_rank % count));
}

bool nd_nccl_start(const nd_dist *world, nd_error *err) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) count = 0;
    // NCCL refuses two ranks on one GPU; say so before it does, in words
    int too_many = world->local_size > count, any_too_many = 0;
    MPI_Allreduce(&too_many, &any_too_many, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (any_too_many)
        return nd_error_set(err, "a machine runs more processes than it has GPUs (here %d processes, %d GPUs): NCCL "
                                 "needs a GPU of its own for each; start at most one process per GPU",
                            world->local_size, count);
    ncclUniqueId id;
    if (world->rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    NCCL_CHECK(ncclCommInitRank(&comm, world->size, id, world->rank));
    CUDA_CHECK(cudaStreamCreateWithFlags(&reduce_stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&grads_ready, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&grads_reduced, cudaEventDisableTiming));
    started = true;
    return true;
}

void nd_nccl_allreduce(float *grad, int64_t n, float weight) {
    ncclRedOp_t weighted_sum; // sum over ranks of weight * grad, the weight applied in the reduction itself
    NCCL_CHECK(ncclRedOpCreatePreMulSum(&weighted_sum, &weight, ncclFloat32, ncclScalarHostImmediate, comm));
    CUDA_CHECK(cudaEventRecord(grads_ready, 0));
    CUDA_CHECK(cudaStreamWaitEvent(reduce_stream, grads_ready, 0));
    NCCL_CHECK(ncclAllReduce(grad, grad, (size_t)n, ncclFloat32, weighted_sum, comm, reduce_stream));
    CUDA_CHECK(cudaEventRecord(grads_reduced, reduce_stream));
    CUDA_CHECK(cudaStreamWaitEvent(0, grads_reduced, 0));
    NCCL_CHECK(ncclRedOpDestroy(weighted_sum, comm));
}

void nd_nccl_stop(void) {
    if (!started) return;
    CUDA_CHECK(cudaStreamSynchronize(reduce_stream));
    NCCL_CHECK(ncclCommDestroy(comm));
    CUDA_CHECK(cudaEventDestroy(grads_ready));
    CUDA_CHECK(cudaEventDestroy(grads_reduced));
    CUDA_CHECK(cudaStreamDestroy(reduce_stream));
    started = false;
}

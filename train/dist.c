// Data-parallel training over MPI, as llm.c and PyTorch's DistributedDataParallel do it: every process holds
// the whole model, trains on its rows of each global batch, and the gradients are summed (weighted by each
// process's share of the batch) before the optimizer step, so all processes take the same steps one process
// would take with the whole batch. GPUs reduce with NCCL (nccl/dist_nccl.c), the CPU with MPI_Allreduce.
//
// MPI's world is one per process, so the state here is too. A program that is not started by an MPI launcher
// never calls MPI at all: it is rank 0 of 1, and every call below does nothing.
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

#ifdef ND_WITH_MPI
#include <mpi.h>
#endif
#ifdef ND_WITH_NCCL
#include "nccl/dist_nccl.h"
static bool use_nccl; // the gradients are on GPUs and NCCL reduces them
#endif

static nd_dist world = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};

const nd_dist *nd_dist_world(void) { return &world; }

// Open MPI, MPICH (Hydra) and PMIx launchers (mpirun, mpiexec, srun --mpi=pmix) leave these in the environment.
static bool launched_by_mpi(void) {
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE"};
    for (int i = 0; i < ND_COUNT(vars); i++)
        if (getenv(vars[i])) return true;
    return false;
}

bool nd_dist_init(bool want_gpu, nd_error *err) {
    if (world.mpi || !launched_by_mpi()) return true;
#ifdef ND_WITH_MPI
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS) return nd_error_set(err, "MPI_Init failed");
    // The default handler, restated: an MPI error ends every process instead of returning a code nobody reads.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world.size);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world.rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &world.local_rank);
    MPI_Comm_size(node, &world.local_size);
    MPI_Comm_free(&node);
    world.mpi = true;
#ifdef ND_WITH_NCCL
    // before anything touches the GPU, so this process's CUDA context lands on its own device
    if (want_gpu) nd_nccl_bind_device(world.local_rank);
#endif
    (void)want_gpu;
    return true;
#else
    (void)want_gpu;
    return nd_error_set(err, "started by an MPI launcher, but this nanodiff was built without MPI; install Open MPI "
                             "(Debian: libopenmpi-dev openmpi-bin) and rebuild, or run without mpirun");
#endif
}

bool nd_dist_use_device(nd_device device, nd_error *err) {
    if (!world.mpi || device != ND_CUDA) return true;
#ifdef ND_WITH_NCCL
    use_nccl = true;
    return nd_nccl_start(&world, err);
#else
    if (world.size == 1) return true;
    return nd_error_set(err,
                        "--device cuda with %d processes needs NCCL, which this build did not find (nccl.h and "
                        "libnccl beside the CUDA toolkit); train with --device cpu or one process",
                        world.size);
#endif
}

void nd_dist_finalize(void) {
    if (!world.mpi) return;
#ifdef ND_WITH_NCCL
    if (use_nccl) nd_nccl_stop();
#endif
#ifdef ND_WITH_MPI
    // No process leaves before all are done: mpirun ends the whole job when the first one exits non-zero (an
    // interrupted run), which must not cut rank 0's last writes short.
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
#endif
    world.mpi = false;
}

void nd_dist_abort(int code) {
#ifdef ND_WITH_MPI
    // The other processes may be waiting for this one inside a collective: only an abort frees them.
    if (world.mpi && world.size > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}

nd_dist_shard nd_dist_shard_of(const nd_dist *d, int batch) {
    int base = batch / d->size, extra = batch % d->size;
    nd_dist_shard s;
    s.begin = d->rank * base + (d->rank < extra ? d->rank : extra);
    s.size = base + (d->rank < extra ? 1 : 0);
    s.weight = (float)s.size / (float)batch;
    return s;
}

void nd_dist_average_grads(nd_params *params, float weight, nd_ctx *ctx) {
    if (!world.mpi) return;
#ifdef ND_WITH_NCCL
    if (use_nccl) {
        nd_nccl_allreduce(params->grad, params->total, weight);
        return;
    }
#endif
#ifdef ND_WITH_MPI
    if (params->device != ND_CPU) {
        if (world.size == 1) return; // one GPU process without NCCL: nothing to sum
        fprintf(stderr, "nanodiff: gradients on %s reach MPI only through NCCL (nd_dist_use_device)\n",
                nd_device_name(params->device));
        abort();
    }
    double start = nd_seconds();
    float *grad = params->grad; // (total,)
    if (weight != 1.0f)
        for (int64_t i = 0; i < params->total; i++) grad[i] *= weight;
    // MPI counts are int: a parameter buffer past 2^31 floats goes in pieces
    for (int64_t done = 0; done < params->total;) {
        int count = params->total - done > INT_MAX ? INT_MAX : (int)(params->total - done);
        MPI_Allreduce(MPI_IN_PLACE, grad + done, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        done += count;
    }
    world.reduce_seconds += nd_seconds() - start;
    world.reductions++;
#endif
    (void)ctx;
}

double nd_dist_mean_loss(double loss, float weight, bool *stop) {
    if (!world.mpi) return loss;
#ifdef ND_WITH_MPI
    double sums[2] = {loss * weight, *stop ? 1.0 : 0.0};
    MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    *stop = sums[1] > 0;
    return sums[0];
#else
    (void)weight, (void)stop;
    return loss;
#endif
}

bool nd_dist_check_start(const nd_params *params, int64_t step, int64_t images, nd_error *err) {
    if (!world.mpi || world.size == 1) return true;
#ifdef ND_WITH_MPI
    float *host = nd_xmalloc((size_t)params->total * sizeof(float)); // (total,)
    nd_buffer_download(params->device, host, params->data, params->total);
    uint64_t mine[3] = {(uint64_t)step, (uint64_t)images,
                        nd_fnv1a64(ND_FNV1A64_OFFSET, host, (size_t)params->total * sizeof(float))};
    free(host);
    uint64_t *all = nd_xmalloc((size_t)world.size * sizeof mine); // (size, 3)
    MPI_Allgather(mine, 3, MPI_UINT64_T, all, 3, MPI_UINT64_T, MPI_COMM_WORLD);
    bool ok = true;
    for (int r = 1; r < world.size && ok; r++) {
        const uint64_t *o = all + 3 * r;
        if (o[0] != all[0])
            ok = nd_error_set(err,
                              "rank %d starts at step %llu, rank 0 at step %llu: every process must resume "
                              "from the same checkpoint (put --out on a filesystem all machines share)",
                              r, (unsigned long long)o[0], (unsigned long long)all[0]);
        else if (o[1] != all[1])
            ok = nd_error_set(err,
                              "rank %d reads %llu training images, rank 0 %llu: every process must read the "
                              "same --data",
                              r, (unsigned long long)o[1], (unsigned long long)all[1]);
        else if (o[2] != all[2])
            ok = nd_error_set(err,
                              "rank %d starts from other weights than rank 0: every process must resume from "
                              "the same checkpoint (put --out on a filesystem all machines share)",
                              r);
    }
    free(all);
    return ok;
#else
    (void)params, (void)step, (void)images, (void)err;
    return true;
#endif
}

// The GPU half of data-parallel training (train/dist.c's NCCL calls), built only where NCCL is found.
#ifndef ND_DIST_NCCL_H
#define ND_DIST_NCCL_H

#include "train.h"

// cudaSetDevice(local_rank modulo the GPUs), before anything else touches the GPU; nothing when none is visible.
void nd_nccl_bind_device(int local_rank);
// One communicator over the MPI world (rank 0 makes the id and broadcasts it) and the reduction's stream.
bool nd_nccl_start(const nd_dist *world, nd_error *err);
// grad (n) on this GPU = the sum over ranks of weight * grad, ordered after the kernels queued so far and
// before those queued next.
void nd_nccl_allreduce(float *grad, int64_t n, float weight);
void nd_nccl_stop(void);

#endif

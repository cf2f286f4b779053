// The CUDA device: whether one is usable, its description, the lazily created state (cuBLAS handle) and
// the TF32 switch. Work runs on the current device (the first visible one unless the program chose another).
#include <pthread.h>
#include <string.h>

#include "cuda_common.h"

static pthread_once_t state_once = PTHREAD_ONCE_INIT;
static bool state_ready;
static cublasHandle_t cublas_handle;
static bool tf32_enabled = true;

// Empty: whether the runtime finds its code for the current GPU tells if this build can run there at all.
__global__ void nd_cuda_probe_kernel(void) {}

// Applies the TF32 switch to cuBLAS (FP32 math when off, so results match the CPU to rounding).
static void apply_math_mode(void) {
    ND_CUBLAS_CHECK(cublasSetMathMode(cublas_handle, tf32_enabled ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

// The current device's compute capability; best effort (0.0 on failure), for messages only.
static void compute_capability(int *major, int *minor) {
    int device = 0;
    *major = *minor = 0;
    (void)cudaGetDevice(&device);
    (void)cudaDeviceGetAttribute(major, cudaDevAttrComputeCapabilityMajor, device);
    (void)cudaDeviceGetAttribute(minor, cudaDevAttrComputeCapabilityMinor, device);
}

// Runs once: a missing GPU stops here with its reason, before any kernel or cuBLAS call could fail obscurely.
static void state_create(void) {
    char why[320];
    if (!nd_cuda_available(why, sizeof why)) {
        fprintf(stderr,
                "nanodiff: the CUDA device was requested but no GPU is usable: %s\n"
                "  HINT: run with --device cpu, or check the GPU and its driver with nvidia-smi\n",
                why);
        abort();
    }
    ND_CUBLAS_CHECK(cublasCreate(&cublas_handle));
    apply_math_mode();
    state_ready = true;
}

extern "C" {

// Creates the device state on first use.
void nd_cuda_init(void) {
    int rc = pthread_once(&state_once, state_create);
    if (rc != 0) {
        fprintf(stderr, "nanodiff: pthread_once failed (%s) while starting the CUDA device\n", strerror(rc));
        abort();
    }
}

// The cuBLAS handle; every product runs on the default stream it was created with.
cublasHandle_t nd_cuda_cublas(void) {
    nd_cuda_init();
    return cublas_handle;
}

// True when a GPU is present and this build has code for it; otherwise the reason, with the error's name.
bool nd_cuda_available(char *why, size_t size) {
    char scratch[8];
    if (!why) why = scratch, size = sizeof scratch;
    int count = 0, driver = 0, major, minor;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err == cudaSuccess && count == 0) err = cudaErrorNoDevice;
    if (err == cudaSuccess) {
        // loading a kernel is what fails when the build lacks code for this GPU or the driver is too old
        cudaFuncAttributes attributes;
        err = cudaFuncGetAttributes(&attributes, nd_cuda_probe_kernel);
        if (err == cudaSuccess) return true;
    }
    (void)cudaGetLastError(); // a failed query must not be reported by a later launch check
    switch (err) {
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorInvalidDeviceFunction:
        compute_capability(&major, &minor);
        snprintf(why, size,
                 "this build has no kernels for the GPU's compute capability %d.%d (%s); reconfigure "
                 "with -DCMAKE_CUDA_ARCHITECTURES=%d%d",
                 major, minor, cudaGetErrorName(err), major, minor);
        break;
    case cudaErrorUnsupportedPtxVersion:
    case cudaErrorInsufficientDriver:
        if (cudaDriverGetVersion(&driver) == cudaSuccess && driver == 0) {
            snprintf(why, size, "no CUDA driver is installed (%s)", cudaGetErrorName(err));
            break;
        }
        snprintf(why, size, "the driver (CUDA %d.%d) is older than this build's toolkit (%s); update the driver",
                 driver / 1000, driver % 1000 / 10, cudaGetErrorName(err));
        break;
    default: snprintf(why, size, "%s (%s)", cudaGetErrorString(err), cudaGetErrorName(err));
    }
    return false;
}

// "NVIDIA H100 80GB HBM3, compute capability 9.0, 132 SMs, 79.1 GiB memory (78.6 GiB free), ..."
void nd_cuda_describe(char *buf, size_t size) {
    char why[320];
    if (!nd_cuda_available(why, sizeof why)) {
        snprintf(buf, size, "no usable GPU: %s", why);
        return;
    }
    int device = 0, driver = 0, runtime = 0, cublas_major = 0, cublas_minor = 0;
    ND_CUDA_CHECK(cudaGetDevice(&device));
    cudaDeviceProp prop;
    ND_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    size_t free_bytes = 0, total_bytes = 0;
    ND_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    ND_CUDA_CHECK(cudaDriverGetVersion(&driver));
    ND_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
    ND_CUBLAS_CHECK(cublasGetProperty(MAJOR_VERSION, &cublas_major));
    ND_CUBLAS_CHECK(cublasGetProperty(MINOR_VERSION, &cublas_minor));
    const double gib = 1024.0 * 1024.0 * 1024.0;
    snprintf(buf, size,
             "%s (device %d), compute capability %d.%d, %d SMs, %.1f GiB memory (%.1f GiB free), "
             "driver %d.%d, runtime %d.%d, cuBLAS %d.%d, TF32 %s",
             prop.name, device, prop.major, prop.minor, prop.multiProcessorCount, (double)total_bytes / gib,
             (double)free_bytes / gib, driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10,
             cublas_major, cublas_minor, tf32_enabled ? "on" : "off");
}

// Takes effect at once when the device is started, else when it starts.
void nd_cuda_set_tf32(bool on) {
    tf32_enabled = on;
    if (state_ready) apply_math_mode();
}

} // extern "C"

// Sample-quality metrics: accuracy and confidence bookkeeping, LAPACK's eigensolver for symmetric matrices,
// and the Fréchet distance between two sets of feature vectors (pytorch-fid's formula).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"

void nd_eval_report_init(nd_eval_report *r, int classes) {
    if (classes < 1 || classes > ND_EVAL_MAX_CLASSES)
        nd_abort_at(ND_HERE, "nd_eval_report_init", "%d classes: expected 1..%d", classes, ND_EVAL_MAX_CLASSES);
    *r = (nd_eval_report){.classes = classes, .accuracy = NAN, .confidence = NAN, .fd = NAN, .hf_energy = NAN};
}

void nd_eval_report_add(nd_eval_report *r, const float *logits, const int32_t *labels, int64_t n) {
    int classes = r->classes;
    int64_t correct = 0;
    double confidence = 0.0;
    for (int k = 0; k < classes; k++) correct += r->correct[k], confidence += r->confidence_sum[k];
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + i * classes; // (classes)
        int want = labels[i], best = 0;
        if (want < 0 || want >= classes)
            nd_abort_at(ND_HERE, "nd_eval_report_add", "label %d of image %lld: expected 0..%d", want, (long long)i,
                        classes - 1);
        for (int k = 1; k < classes; k++)
            if (z[k] > z[best]) best = k;
        double sum = 0.0; // softmax with the max subtracted, in double
        for (int k = 0; k < classes; k++) sum += exp((double)z[k] - (double)z[best]);
        double p = exp((double)z[want] - (double)z[best]) / sum;
        r->count[want]++;
        r->correct[want] += best == want;
        r->confidence_sum[want] += p;
        correct += best == want;
        confidence += p;
    }
    r->n += n;
    r->accuracy = r->n ? (double)correct / (double)r->n : NAN;
    r->confidence = r->n ? confidence / (double)r->n : NAN;
}

double nd_eval_class_accuracy(const nd_eval_report *r, int k) {
    return r->count[k] ? (double)r->correct[k] / (double)r->count[k] : NAN;
}

double nd_eval_class_confidence(const nd_eval_report *r, int k) {
    return r->count[k] ? r->confidence_sum[k] / (double)r->count[k] : NAN;
}

// ---------------------------------------------------------------------------------------------------
// eigenvalues

// LAPACK's symmetric eigensolver (divide and conquer, from OpenBLAS), the routine scipy.linalg.eigh calls.
// Fortran arguments by reference; the trailing lengths are gfortran's hidden lengths of the two flags.
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w, double *work,
             const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len, size_t uplo_len);

int nd_eigen_symmetric(double *a, int n, double *values, double *vectors) {
    double total = 0.0;
    for (int64_t i = 0; i < (int64_t)n * n; i++) total += a[i] * a[i];
    if (!isfinite(total)) return -1; // LAPACK's behaviour on NaN is undefined
    // a is symmetric, so its row-major layout is also its column-major one; the eigenvectors come back as
    // columns of a column-major matrix, i.e. rows of a row-major one, and are transposed into `vectors`
    int info = 0, lwork = -1, liwork = -1, iwork_size = 0;
    double work_size = 0.0;
    dsyevd_("V", "L", &n, a, &n, values, &work_size, &lwork, &iwork_size, &liwork, &info, 1, 1);
    if (info != 0) return -1;
    lwork = (int)work_size, liwork = iwork_size;
    double *work = malloc((size_t)lwork * sizeof *work);
    int *iwork = malloc((size_t)liwork * sizeof *iwork);
    if (!work || !iwork) {
        free(work);
        free(iwork);
        return -1;
    }
    dsyevd_("V", "L", &n, a, &n, values, work, &lwork, iwork, &liwork, &info, 1, 1);
    free(work);
    free(iwork);
    if (info != 0) return -1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) vectors[i * n + j] = a[j * n + i];
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// Fréchet distance

// Mean (dim) and unbiased covariance (dim, dim) of x (n, dim), in double.
static void mean_cov(const float *x, int64_t n, int dim, double *mean, double *cov) {
    memset(mean, 0, (size_t)dim * sizeof *mean);
    memset(cov, 0, (size_t)dim * dim * sizeof *cov);
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < dim; j++) mean[j] += x[i * dim + j];
    for (int j = 0; j < dim; j++) mean[j] /= (double)n;
    double *row = nd_xmalloc((size_t)dim * sizeof *row); // (dim) one centred sample
    for (int64_t i = 0; i < n; i++) {
        for (int j = 0; j < dim; j++) row[j] = x[i * dim + j] - mean[j];
        for (int j = 0; j < dim; j++)
            for (int k = j; k < dim; k++) cov[j * dim + k] += row[j] * row[k];
    }
    for (int j = 0; j < dim; j++)
        for (int k = j; k < dim; k++) cov[k * dim + j] = cov[j * dim + k] /= (double)(n - 1);
    free(row);
}

// c = a b for (n, n) matrices.
static void matmul_square(double *c, const double *a, const double *b, int n) {
    memset(c, 0, (size_t)n * n * sizeof *c);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++) {
            double aik = a[i * n + k];
            for (int j = 0; j < n; j++) c[i * n + j] += aik * b[k * n + j];
        }
}

bool nd_frechet_distance(const float *a, int64_t na, const float *b, int64_t nb, int dim, double *fd, nd_error *err) {
    if (na < 2 || nb < 2 || dim < 1)
        return nd_error_set(err, "a Fréchet distance needs two sets of at least 2 vectors (got %lld and %lld)",
                            (long long)na, (long long)nb);
    size_t square = (size_t)dim * dim;
    double *mean_a = nd_xmalloc((size_t)dim * sizeof(double)), *mean_b = nd_xmalloc((size_t)dim * sizeof(double));
    double *cov_a = nd_xmalloc(square * sizeof(double)), *cov_b = nd_xmalloc(square * sizeof(double)); // (dim, dim)
    double *vec = nd_xmalloc(square * sizeof(double)), *tmp = nd_xmalloc(square * sizeof(double));     // (dim, dim)
    double *values = nd_xmalloc((size_t)dim * sizeof(double));
    mean_cov(a, na, dim, mean_a, cov_a);
    mean_cov(b, nb, dim, mean_b, cov_b);
    double dist = 0.0, trace = 0.0;
    for (int j = 0; j < dim; j++) {
        dist += (mean_a[j] - mean_b[j]) * (mean_a[j] - mean_b[j]);
        trace += cov_a[j * dim + j] + cov_b[j * dim + j];
    }
    // S_a^(1/2) = V diag(sqrt(l)) V^T; eigenvalues below zero are rounding of a singular covariance
    memcpy(tmp, cov_a, square * sizeof(double));
    int status = nd_eigen_symmetric(tmp, dim, values, vec);
    if (status == 0) {
        for (int i = 0; i < dim; i++)
            for (int j = 0; j < dim; j++) tmp[i * dim + j] = vec[i * dim + j] * sqrt(fmax(values[j], 0.0));
        double *root = cov_a; // cov_a is no longer needed: it becomes S_a^(1/2)
        for (int i = 0; i < dim; i++)
            for (int j = 0; j < dim; j++) {
                double sum = 0.0;
                for (int k = 0; k < dim; k++) sum += tmp[i * dim + k] * vec[j * dim + k];
                root[i * dim + j] = sum;
            }
        matmul_square(tmp, root, cov_b, dim); // S_a^(1/2) S_b
        matmul_square(vec, tmp, root, dim);   // S_a^(1/2) S_b S_a^(1/2), symmetric up to rounding
        for (int i = 0; i < dim; i++)
            for (int j = i + 1; j < dim; j++)
                vec[i * dim + j] = vec[j * dim + i] = 0.5 * (vec[i * dim + j] + vec[j * dim + i]);
        status = nd_eigen_symmetric(vec, dim, values, tmp);
        for (int j = 0; status == 0 && j < dim; j++) trace -= 2.0 * sqrt(fmax(values[j], 0.0));
    }
    *fd = dist + trace;
    free(mean_a);
    free(mean_b);
    free(cov_a);
    free(cov_b);
    free(vec);
    free(tmp);
    free(values);
    if (status != 0)
        return nd_error_set(err, "the Fréchet distance's eigensolver did not converge (non-finite features?)");
    return true;
}

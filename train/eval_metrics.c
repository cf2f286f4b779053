// Sample-quality metrics: accuracy and confidence bookkeeping, a Jacobi eigensolver for symmetric matrices,
// and the Fréchet distance between two sets of feature vectors (pytorch-fid's formula, without LAPACK).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train.h"

#define JACOBI_MAX_SWEEPS 100
// Off-diagonal mass (sum of squares), relative to the whole matrix's, below which a symmetric matrix counts as
// diagonal: off-diagonal entries near 1e-12 of the norm move eigenvalues by about their square, far below
// float features' precision, while a tighter bound could stall on the rounding each rotation leaves behind.
#define JACOBI_TOLERANCE 1e-24

void nd_eval_report_init(nd_eval_report *r, int classes) {
    if (classes < 1 || classes > ND_EVAL_MAX_CLASSES)
        nd_abort_at(ND_HERE, "nd_eval_report_init", "%d classes: expected 1..%d", classes, ND_EVAL_MAX_CLASSES);
    *r = (nd_eval_report){.classes = classes, .accuracy = NAN, .confidence = NAN, .fd = NAN};
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

int nd_eigen_symmetric(double *a, int n, double *values, double *vectors) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) vectors[i * n + j] = i == j;
    double total = 0.0;
    for (int64_t i = 0; i < (int64_t)n * n; i++) total += a[i] * a[i];
    int sweeps = -1;
    if (!isfinite(total)) return -1;
    for (int sweep = 0; sweep <= JACOBI_MAX_SWEEPS; sweep++) {
        double off = 0.0;
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) off += 2.0 * a[p * n + q] * a[p * n + q];
        if (off <= JACOBI_TOLERANCE * total || off == 0.0) {
            sweeps = sweep;
            break;
        }
        for (int p = 0; p < n; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = a[p * n + q];
                // an entry below the diagonal's rounding changes nothing when rotated away: drop it (as Numerical
                // Recipes' jacobi does), which also guarantees the sweeps end
                if (fabs(a[p * n + p]) + 1e3 * fabs(apq) == fabs(a[p * n + p]) &&
                    fabs(a[q * n + q]) + 1e3 * fabs(apq) == fabs(a[q * n + q]))
                    a[p * n + q] = a[q * n + p] = apq = 0.0;
                if (apq == 0.0) continue;
                // the rotation by angle phi with cot(2 phi) = theta zeroes a[p][q]; t = tan(phi), the smaller root
                double theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int k = 0; k < n; k++) { // columns p and q
                    double akp = a[k * n + p], akq = a[k * n + q];
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { // rows p and q
                    double apk = a[p * n + k], aqk = a[q * n + k];
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                a[p * n + q] = a[q * n + p] = 0.0;
                for (int k = 0; k < n; k++) {
                    double vkp = vectors[k * n + p], vkq = vectors[k * n + q];
                    vectors[k * n + p] = c * vkp - s * vkq;
                    vectors[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < n; i++) values[i] = a[i * n + i];
    return sweeps;
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
    double *row = malloc((size_t)dim * sizeof *row); // (dim) one centred sample
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

bool nd_frechet_distance(const float *a, int64_t na, const float *b, int64_t nb, int dim, double *fd,
                         nd_error *err) {
    if (na < 2 || nb < 2 || dim < 1)
        return nd_error_set(err, "a Fréchet distance needs two sets of at least 2 vectors (got %lld and %lld)",
                            (long long)na, (long long)nb);
    size_t square = (size_t)dim * dim;
    double *mean_a = malloc((size_t)dim * sizeof(double)), *mean_b = malloc((size_t)dim * sizeof(double));
    double *cov_a = malloc(square * sizeof(double)), *cov_b = malloc(square * sizeof(double)); // (dim, dim)
    double *vec = malloc(square * sizeof(double)), *tmp = malloc(square * sizeof(double));     // (dim, dim)
    double *values = malloc((size_t)dim * sizeof(double));
    mean_cov(a, na, dim, mean_a, cov_a);
    mean_cov(b, nb, dim, mean_b, cov_b);
    double dist = 0.0, trace = 0.0;
    for (int j = 0; j < dim; j++) {
        dist += (mean_a[j] - mean_b[j]) * (mean_a[j] - mean_b[j]);
        trace += cov_a[j * dim + j] + cov_b[j * dim + j];
    }
    // S_a^(1/2) = V diag(sqrt(l)) V^T; eigenvalues below zero are rounding of a singular covariance
    memcpy(tmp, cov_a, square * sizeof(double));
    int sweeps = nd_eigen_symmetric(tmp, dim, values, vec);
    if (sweeps >= 0) {
        for (int i = 0; i < dim; i++)
            for (int j = 0; j < dim; j++) tmp[i * dim + j] = vec[i * dim + j] * sqrt(fmax(values[j], 0.0));
        double *root = cov_a; // cov_a is no longer needed: it becomes S_a^(1/2)
        for (int i = 0; i < dim; i++)
            for (int j = 0; j < dim; j++) {
                double sum = 0.0;
                for (int k = 0; k < dim; k++) sum += tmp[i * dim + k] * vec[j * dim + k];
                root[i * dim + j] = sum;
            }
        matmul_square(tmp, root, cov_b, dim);  // S_a^(1/2) S_b
        matmul_square(vec, tmp, root, dim);    // S_a^(1/2) S_b S_a^(1/2), symmetric up to rounding
        for (int i = 0; i < dim; i++)
            for (int j = i + 1; j < dim; j++)
                vec[i * dim + j] = vec[j * dim + i] = 0.5 * (vec[i * dim + j] + vec[j * dim + i]);
        sweeps = nd_eigen_symmetric(vec, dim, values, tmp);
        for (int j = 0; sweeps >= 0 && j < dim; j++) trace -= 2.0 * sqrt(fmax(values[j], 0.0));
    }
    *fd = dist + trace;
    free(mean_a);
    free(mean_b);
    free(cov_a);
    free(cov_b);
    free(vec);
    free(tmp);
    free(values);
    if (sweeps < 0)
        return nd_error_set(err, "the Fréchet distance's eigensolver did not converge (non-finite features?)");
    return true;
}

// End to end: the MLP classifier trained by this autograd on Fashion-MNIST reaches 84% test accuracy.
#include <stdio.h>
#include <sys/stat.h>

#include "test.h"
#include "train.h"

int main(void) {
    struct stat st;
    if (stat(ND_FASHION_MNIST_DIR, &st) != 0) {
        printf("e2e.classifier: skipped: %s is missing (scripts/install-deps.sh installs it)\n", ND_FASHION_MNIST_DIR);
        return ND_TEST_SKIP;
    }
    nd_classifier_config cfg = nd_classifier_defaults();
    cfg.progress = false;
    nd_classifier_result result;
    nd_error err;
    bool ok = nd_classifier_train(&cfg, &result, &err);
    CHECK(ok, "training failed: %s", err.msg);
    if (ok) {
        printf("e2e.classifier: %d epochs in %.1f s, last-epoch loss %.4f, test accuracy %.2f%%\n", cfg.epochs,
               result.seconds, result.last_loss, 100.0 * result.test_accuracy);
        CHECK(result.test_accuracy >= 0.84, "test accuracy %.4f is below 0.84", result.test_accuracy);
    }
    return test_finish("e2e.classifier");
}

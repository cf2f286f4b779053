// nanodiff train-classifier: trains the MLP classifier and prints its test accuracy.
#include <stdio.h>

#include "cli.h"
#include "train.h"

int nd_cmd_train_classifier(int argc, char **argv) {
    nd_classifier_config cfg = nd_classifier_defaults();
    int64_t epochs = cfg.epochs, batch = cfg.batch_size, hidden = cfg.hidden, seed = 0;
    double lr = cfg.lr;
    const char *device = "cpu";
    bool help = false;
    const nd_flag flags[] = {
        {"--data", ND_FLAG_STRING, &cfg.data, "fashion-mnist, an IDX directory or an HDF5 file"},
        {"--epochs", ND_FLAG_INT, &epochs, "passes over the training split"},
        {"--batch", ND_FLAG_INT, &batch, "batch size"},
        {"--hidden", ND_FLAG_INT, &hidden, "hidden units of each of the two hidden layers"},
        {"--lr", ND_FLAG_FLOAT, &lr, "Adam learning rate"},
        {"--seed", ND_FLAG_INT, &seed, "seed of initialization and shuffling"},
        {"--device", ND_FLAG_STRING, &device, "auto, cpu or cuda"},
        {"--help", ND_FLAG_BOOL, &help, "show this help"},
    };
    int n_flags = (int)(sizeof flags / sizeof flags[0]);
    const char *summary = "train an MLP classifier and report its test accuracy";
    if (!nd_flags_parse("train-classifier", argc, argv, 2, flags, n_flags) || help) {
        nd_flags_usage("train-classifier", summary, flags, n_flags);
        return help ? 0 : 1;
    }
    if (epochs < 1 || batch < 1 || hidden < 1 || !(lr > 0)) {
        fprintf(stderr, "nanodiff train-classifier: --epochs, --batch, --hidden and --lr must be positive\n");
        return 1;
    }
    int dev;
    if (!nd_cli_device("train-classifier", device, &dev)) return 1;
    cfg.epochs = (int)epochs, cfg.batch_size = (int)batch, cfg.hidden = (int)hidden, cfg.lr = (float)lr;
    cfg.seed = (uint64_t)seed, cfg.device = (nd_device)dev;
    nd_classifier_result result;
    nd_error err;
    if (!nd_classifier_train(&cfg, &result, &err)) {
        fprintf(stderr, "nanodiff train-classifier: %s\n", err.msg);
        return 1;
    }
    printf("classifier: %lld parameters, %d epochs in %.1f s, last-epoch loss %.4f\n", (long long)result.parameters,
           cfg.epochs, result.seconds, result.last_loss);
    printf("test accuracy: %.2f%%\n", 100.0 * result.test_accuracy);
    return 0;
}

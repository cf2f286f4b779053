// Notebook 06, the assessment: a class-conditional generator of 28x28 images with classifier-free guidance,
// graded as the course grades it.
//
// The lesson in order: the data kept in ToTensor's [0, 1] (no x*2-1, no flip); the schedule and q /
// reverse_q written out (T = 150); the U-Net of notebooks 03-04 at 28x28 with 10 classes (2,547,457
// parameters); 5 epochs of Adam(1e-3) with c_drop_prob 0.1; sample_w drawing guided x_0 of shape
// [10, 1, 28, 28]; then run_assessment: 5 samples of each class at the chosen w, classified by an independent
// classifier, passing at 95%.
//
// The course's data is MNIST, which Debian does not ship: pass a copy with --data DIR (the four IDX files,
// gzipped or not, as torchvision downloads them). Without it the program runs on Fashion-MNIST, a harder set.
// The course's grader is a CNN of its own (mnist_cnn.pt, not public); here nanodiff's evaluation judge plays
// its part: a CNN trained on the same data set's train split at 28x28 in [0, 1] (cached after the first run),
// with the grader's logic: 5 samples per class, argmax, accuracy >= 0.95 to pass.
//
// w (--w, default 2, the value the course's passing runs used) is the assessment's "Change me".
//
//   06_assessment [--quick] [--data MNIST-DIR] [--w W] [--out DIR]   figures: 06_graded.png, 06_progression.png
#include <stdio.h>
#include <stdlib.h>

#include "notebook.h"

#define CLASSES 10
#define TEST_N 5 // samples per class, as run_assessment's test_n
#define PASS_ACCURACY 0.95

int main(int argc, char **argv) {
    nd_threads_prefer_passive(argv);
    nb_args args;
    if (!nb_parse(argc, argv, "06_assessment", "notebook 06: the assessment and its grader", &args)) return 1;
    nd_ctx ctx;
    nd_ctx_init(&ctx, args.gpu ? ND_CUDA : ND_CPU, 64 << 20, 0);

    // 6.1-6.4: the data in [0, 1], the schedule, the model and its training.
    nd_ddpm_config cfg = nd_ddpm_defaults();
    cfg.model = nd_model_config_default(ND_MODEL_DLI_UNET, 1, 28, CLASSES);
    snprintf(cfg.data, sizeof cfg.data, "%s", args.data);
    cfg.unit_range = true;
    cfg.random_flip = false;
    cfg.epochs = 5;
    nd_model model;
    nd_model_create(&model, cfg.model, &ctx);
    nd_model_summary(&ctx, &model, stdout); // Num params: 2547457
    nd_model_free(&model);
    if (!nb_train_ddpm(&args, &cfg, &ctx, &model)) return 1;

    // 6.5 sample_w: test_n copies of each class one-hot (drop prob 0), guided at w.
    const long image = 28 * 28;
    nd_schedule sched;
    nd_schedule_linear(&sched, cfg.model.T, cfg.beta_start, cfg.beta_end);
    int32_t labels[CLASSES * TEST_N];
    float onehot[CLASSES * TEST_N * CLASSES] = {0};
    for (int i = 0; i < CLASSES * TEST_N; i++) {
        labels[i] = i / TEST_N;
        onehot[i * CLASSES + labels[i]] = 1.0f;
    }
    nd_tensor *context = nd_empty_persistent(&ctx, ND_SHAPE(CLASSES * TEST_N, CLASSES)); // (50, 10)
    nd_copy_from_host(&ctx, context, onehot);
    nd_sample_config sc = nb_sample_config(&args, true, 6);
    float *x_0 = malloc((size_t)(CLASSES * TEST_N * image) * sizeof(float)); // (50, 1, 28, 28) in [0, 1]
    nb_strip progression;
    nb_strip_init(&progression, args.quick ? sc.steps : cfg.model.T, 10, CLASSES * TEST_N, image);
    nd_sample_images(&ctx, &model, &sched, &sc, CLASSES * TEST_N, context, NULL, x_0, nb_strip_step, &progression);
    printf("x_0.shape = [%d, 1, 28, 28]: %d of each class, drawn in one guided call\n", CLASSES * TEST_N, TEST_N);
    nb_write_grid(&args, "06_graded.png", x_0, CLASSES * TEST_N, 1, 28, TEST_N, true);
    progression.n = 1; // the first sample's way from noise to a digit
    nb_strip_write(&args, "06_progression.png", &progression, 1, 28, true);

    // run_assessment: an independent classifier's argmax over the samples (clamped to [0, 1] as a PNG shows them).
    // The grader is nanodiff's evaluation judge, trained on the data set's train split (and cached). --quick
    // trains a throwaway one on 1,024 images for a few steps instead: it shows the steps, it cannot grade.
    nd_eval_setup setup = {.data = args.data,
                           .img_ch = 1,
                           .img_size = 28,
                           .unit_range = true,
                           .classes = CLASSES,
                           .random_flip = false,
                           .train = nd_eval_train_defaults(),
                           .log = stderr};
    nd_evaluator ev = {0};
    nd_error err;
    if (args.quick) {
        nd_dataset train;
        if (!nd_dataset_load(&train, args.data, ND_SPLIT_TRAIN, &err)) {
            fprintf(stderr, "06_assessment: %s\n", err.msg);
            return 1;
        }
        train.n = train.n < 1024 ? train.n : 1024;
        setup.train.max_steps = 5;
        nd_eval_classifier_create(&ev.classifier, args.data, 1, 28, true, CLASSES, &ctx);
        bool ok = nd_eval_classifier_train(&ev.classifier, &train, &setup.train, &ctx, NULL, &err);
        nd_dataset_free(&train);
        if (!ok) {
            fprintf(stderr, "06_assessment: %s\n", err.msg);
            return 1;
        }
        printf("grader: a throwaway classifier (--quick)\n");
    } else {
        if (!nd_evaluator_init(&ev, &setup, &ctx, &err)) {
            fprintf(stderr, "06_assessment: %s\n", err.msg);
            return 1;
        }
        printf("grader: %s, %.2f%% on the test split\n", ev.trained ? "trained now" : ev.cache_path,
               100.0 * ev.test_accuracy);
    }
    for (long i = 0; i < CLASSES * TEST_N * image; i++) x_0[i] = x_0[i] < 0 ? 0 : x_0[i] > 1 ? 1 : x_0[i];
    float logits[CLASSES * TEST_N * CLASSES];
    nd_eval_classifier_run(&ctx, &ev.classifier, x_0, CLASSES * TEST_N, logits, NULL);
    int correct = 0;
    for (int c = 0; c < CLASSES; c++) {
        int hits = 0;
        printf("Classifier prediction for generated `%d`: [", c);
        for (int j = 0; j < TEST_N; j++) {
            const float *row = logits + (c * TEST_N + j) * CLASSES;
            int best = 0;
            for (int k = 1; k < CLASSES; k++) best = row[k] > row[best] ? k : best;
            hits += best == c;
            printf("%d%s", best, j + 1 < TEST_N ? ", " : "");
        }
        printf("] - %.1f%% Accuracy\n", 100.0 * hits / TEST_N);
        correct += hits;
    }
    double accuracy = (double)correct / (CLASSES * TEST_N);
    printf("Accuracy: %.2f -> %s (pass mark %.2f, w = %.1f)%s\n", accuracy,
           accuracy >= PASS_ACCURACY ? "PASSED" : "NOT PASSED", PASS_ACCURACY, sc.w,
           args.quick ? "  [--quick: an untrained model, graded to show the steps]" : "");

    nd_evaluator_free(&ev);
    nb_strip_free(&progression);
    free(x_0);
    nd_schedule_free(&sched);
    nd_model_free(&model);
    nd_ctx_free(&ctx);
    return 0;
}

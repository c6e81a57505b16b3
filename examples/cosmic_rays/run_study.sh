#!/usr/bin/env bash
# The study behind RESULTS.md: five groups per preset, then the final table.
# Run from the repository root:  bash examples/cosmic_rays/run_study.sh
# (the knowledge center is ./mlruns.db + ./mlartifacts/ + ./optuna-studies.journal).
# Reduced budgets, for a 2-core machine (thesis: SVM 50 trials, XGBoost 100,
# autoencoder v1 100 x 200 epochs, v2 90 x 200, VAE 50 x 200):
#   SVM      50 trials, searched on 10,000 training stations, <= 200 solver iterations
#   XGBoost  50 trials, searched on 10,000 training stations
#   AE v1    15 trials x 30 epochs;  AE v2  15 x 30;  VAE  10 x 30 (all training stations)
# A trial over timeout_per_trial is stopped and counted as failed. The final table retrains
# each best configuration on all 64,000 training stations and tests it once.
set -euo pipefail
E=examples/cosmic_rays
for preset in ${PRESETS:-physical thesis}; do
  export COSMIC_PRESET=$preset
  ml-experiment run $E/svm.yaml --name cosmic-svm-$preset --timeout_per_trial 120 \
    --params '{"max_train_samples": 10000, "max_iter": 200}'
  ml-experiment run $E/xgboost.yaml --name cosmic-xgboost-$preset --num_trials 50 \
    --timeout_per_trial 180 --params '{"max_train_samples": 10000}'
  ml-experiment run $E/autoencoder_v1.yaml --name cosmic-autoencoder_v1-$preset --num_trials 15 \
    --params '{"max_epochs": 30}'
  ml-experiment run $E/autoencoder_v2.yaml --name cosmic-autoencoder_v2-$preset --num_trials 15 \
    --params '{"max_epochs": 30}'
  ml-experiment run $E/vae.yaml --name cosmic-vae-$preset --num_trials 10 \
    --params '{"max_epochs": 30}'
done
unset COSMIC_PRESET
ml-experiment run $E/final_table.yaml

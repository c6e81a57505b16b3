#!/usr/bin/env bash
# The study behind RESULTS.md: five groups per preset, then the final table.
# Run from the repository root:  bash examples/cosmic_rays/run_study.sh
# (the knowledge center is ./mlruns.db + ./mlartifacts/ + ./optuna-studies.journal).
#
# Budgets (thesis: SVM 50 trials, XGBoost 100, autoencoder v1 100 x 200 epochs,
# v2 90 x 200, VAE 50 x 200):
#   SVM      50 trials on the full training set (51,200 stations), LinearSVC max_iter 1000
#            (its default, the thesis's); a trial over 600 s is stopped and counted failed
#   XGBoost  100 trials on the full training set (median pruner, early stopping); a trial
#            over 600 s is stopped
#   AE v1    15 trials x 30 epochs;  AE v2  15 x 30;  VAE  10 x 30 (reduced: the validation
#            curves flatten after 15-20 epochs; AE_TRIALS_SCALE / AE_EPOCHS raise them)
# Measured on two idle cores (two trials at a time; RESULTS.md has each group's time): SVM
# 18 min (physical) / 6 min (thesis), XGBoost 2 / 27 min (on physical most trials are pruned
# early), each autoencoder search under a minute; the table's 15 retrainings 6 min. About
# an hour in all.
#
# Resumable across sittings: stop it with Ctrl-C at any time and run the same command again.
# A finished group is skipped, a stopped one continues with --resume (its trials so far
# stay), one not started starts; RESULTS.md says per row how many sittings a search took.
set -euo pipefail
E=examples/cosmic_rays
AE_EPOCHS=${AE_EPOCHS:-30}
AE_TRIALS_SCALE=${AE_TRIALS_SCALE:-1}

group() {  # group NAME JOB_FILE ARGS...: run, resume or skip the search NAME
  local name=$1 job=$2 state
  shift 2
  state=$(python $E/group_state.py "$name")
  case $state in
    finished) echo "run_study: $name is finished; skipped" ;;
    unfinished) ml-experiment run "$job" --name "$name" --resume "$@" ;;
    absent) ml-experiment run "$job" --name "$name" "$@" ;;
    *) echo "run_study: $name: unexpected state '$state'" >&2; exit 1 ;;
  esac
}

for preset in ${PRESETS:-physical thesis}; do
  export COSMIC_PRESET=$preset
  group cosmic-svm-$preset $E/svm.yaml --num_trials 50 --timeout_per_trial 600
  group cosmic-xgboost-$preset $E/xgboost.yaml --num_trials 100 --timeout_per_trial 600
  group cosmic-autoencoder_v1-$preset $E/autoencoder_v1.yaml \
    --num_trials $((15 * AE_TRIALS_SCALE)) --params "{\"max_epochs\": $AE_EPOCHS}"
  group cosmic-autoencoder_v2-$preset $E/autoencoder_v2.yaml \
    --num_trials $((15 * AE_TRIALS_SCALE)) --params "{\"max_epochs\": $AE_EPOCHS}"
  group cosmic-vae-$preset $E/vae.yaml \
    --num_trials $((10 * AE_TRIALS_SCALE)) --params "{\"max_epochs\": $AE_EPOCHS}"
done
unset COSMIC_PRESET
# The table retrains each best configuration on all 64,000 training stations and tests it
# once; the thesis rows again on the split by shower (COSMIC_SPLIT=shower); then the figures.
ml-experiment run $E/final_table.yaml

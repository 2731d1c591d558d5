#!/usr/bin/env bash
# Train quick models for docs/results.md on 2 CPU cores into runs/. The natural-image models of Tables 1, 2 and 4
# now come from campaign/natural_colour.py (docs/natural_campaign.md: colour, equal ablation budgets); the
# natural runs below are 400-iteration smoke runs of the same bundles (colour by default). This script trains
# four natural_awgn LIR runs (full model and the three Table 4 ablations), one natural_poisson run (lite preset,
# 400 iterations each, two at a time on one core each), and RED-CNN on the CT cache (2 000 iterations, 32 channels).
# The CT LIR model is the shipped one (docs/shipped_weights.md). Then write the report:
#   .venv/bin/python benchmarks/reproduce_tables.py --cache cache/ct_quarter.npz --shared-data ../shared/data \
#     --redcnn runs/redcnn/redcnn.pt --natural-awgn runs/nat/awgn/models/lir_restorer.pt \
#     --natural-poisson runs/nat/poisson/models/lir_restorer.pt --ablation a=runs/nat/abl_a/models/lir_restorer.pt \
#     --ablation b=runs/nat/abl_b/models/lir_restorer.pt --ablation c=runs/nat/abl_c/models/lir_restorer.pt \
#     --ablation d=runs/nat/awgn/models/lir_restorer.pt --threads 2 --overwrite
# About 35 minutes in all; the RED-CNN step needs the CT cache (built by the ldct_simulated bundle or
# recipes.ensure_ct_cache, see docs/shipped_weights.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/data}
common=(--dataset_dir "$SHARED" --preset lite --semantic_weight 0 --max_iterations 400 --epoch_length 200
        --learning_rate 0.0003 --d_learning_rate 0.001 --threads 1)
run() {  # name bundle [overrides...]
  local name=$1 bundle=$2; shift 2
  mkdir -p "runs/nat/$name"
  echo "== $name: $(date +%T)"
  .venv/bin/python -m monai.bundle run --config_file "bundles/$bundle/configs/train.json" \
      --bundle_root "runs/nat/$name" "${common[@]}" "$@" > "runs/nat/$name.log" 2>&1
}
( run awgn natural_awgn && run abl_b natural_awgn --ablation no_representation_discriminator && run poisson natural_poisson ) &
( run abl_a natural_awgn --ablation no_noise_encoder && run abl_c natural_awgn --ablation no_background_consistency ) &
wait
mkdir -p runs/redcnn
.venv/bin/python -m ldct_invrep.baselines.train_redcnn --cache cache/ct_quarter.npz --out runs/redcnn/redcnn.pt \
    --iterations 2000 --channels 32 --threads 2

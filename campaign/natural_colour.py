"""The natural-image training campaign of issue 16 (paper Tables 1, 2 and 4 in colour): the ``natural_awgn`` and
``natural_poisson`` bundles run in chunks, resumable on a fresh machine from the state committed next to this
script. One process runs one variant at a time (never two trainings at once on the 2 cores):

1. ``full``: the full model on AWGN (Table 1), up to ``--until`` iterations. When it passes ``--ablation-budget``
   its Restorer at exactly that iteration is kept as Table 4 (d);
2. ``a``, ``b``, ``c``: the Table 4 ablations (no noise encoder, no representation discriminator, no background
   consistency), each to ``--ablation-budget`` iterations: the same budget as each other and as (d);
3. ``poisson``: the full model on Poisson noise (Table 2), to ``--poisson-budget`` iterations.

    python campaign/natural_colour.py --dataset-dir ../shared/data --work runs/natural_campaign

Every variant trains on colour CBSD432 (``--channels 3``, the bundles' default) with the architecture of
``--preset`` and the VGG semantic term off (``semantic_weight 0``: its ImageNet weights are not available
offline). Each chunk is ``python -m monai.bundle run`` of the variant's bundle for ``--chunk`` iterations,
resuming from the last full training state (networks, optimisers, schedulers, iteration, RNG states), which
is then copied to ``--state/<variant>/checkpoint.pt`` (about 15 MB for the ``ct`` preset: commit it). After
each chunk the Restorer is scored, single pass, with the generator and metrics of the bundles and
``docs/results.md`` (``data.noisy_sets``, ``natural_metrics``, seed 0):

* ``val``: the bundle's validation images (AWGN: Kodak24, Poisson: CBSD68; first 6, sigma 25 for AWGN);
* ``test``: the first ``--curve-images`` images of the variant's test set (AWGN: CBSD68 at sigma 25, Poisson:
  Kodak24): a curve only, nothing is selected by it (every table uses the mean of the checkpoints of the second
  half of its budget, ``state/<variant>/mean_<budget>.pt``, updated after each chunk and committed with the state),

one row per split in ``--state/curve.csv`` with the wall minutes and the CPU hours so far. The bundles' output
goes to ``--state/train.log``. At the end of a variant's budget its Restorer goes to
``--state/<variant>/lir_restorer.pt`` (header: iterations, CPU hours), the file ``reproduce_tables.py`` reads.
Stop it any time (the chunk in progress is lost, nothing else); rerun the same command to go on.
``campaign/plot_natural_curve.py`` draws the curve.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))  # score with this checkout's package (a campaign runs from its own worktree)
sys.path.insert(0, str(HERE))

from ldct_invrep.engine.checkpoint import checkpoint_iterations, latest_training_state, update_checkpoint_mean  # noqa: E402
from chunks import append_curve_rows, commit_state  # noqa: E402

CURVE_FIELDS = ["variant", "iteration", "minutes", "cpu_hours", "split", "images", "input_psnr", "psnr", "input_ssim", "ssim"]
#: variant -> (bundle, ablation of ``engine.ABLATIONS``, Table)
VARIANTS: dict[str, tuple[str, str, str]] = {
    "full": ("natural_awgn", "full", "Table 1 and Table 4 (d)"),
    "a": ("natural_awgn", "no_noise_encoder", "Table 4 (a)"),
    "b": ("natural_awgn", "no_representation_discriminator", "Table 4 (b)"),
    "c": ("natural_awgn", "no_background_consistency", "Table 4 (c)"),
    "poisson": ("natural_poisson", "full", "Table 2"),
}


def overrides(args: argparse.Namespace, ablation: str) -> list[str]:
    """The bundle overrides every chunk of every variant shares (architecture, data, schedule)."""
    out = ["--channels", str(args.channels), "--preset", args.preset, "--ablation", ablation, "--semantic_weight", "0",
           "--epoch_length", str(args.epoch_length), "--n_checkpoints", "2", "--threads", str(args.threads),
           "--learning_rate", str(args.learning_rate), "--d_learning_rate", str(args.d_learning_rate),
           "--cross_cycle_weight", str(args.cross_cycle_weight)]
    for key in ("base_channels", "n_res", "dis_high_pass_gain", "residual"):
        if getattr(args, key) is not None:
            out += [f"--{key}", str(getattr(args, key))]
    return out


def run_chunk(args: argparse.Namespace, variant: str, work: Path, start: Path | None, until: int, log) -> float:
    """One ``monai.bundle run`` to iteration ``until``; returns the CPU seconds it used."""
    bundle, ablation, _ = VARIANTS[variant]
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(REPO / "bundles" / bundle / "configs" / "train.json"),
           "--bundle_root", str(work), "--dataset_dir", str(args.dataset_dir), "--max_iterations", str(until),
           *overrides(args, ablation)]  # fmt: skip
    if start is not None:
        cmd += ["--resume_from", str(start)]
    log.write(f"\n[campaign] {variant}: $ {' '.join(cmd)}\n")
    log.flush()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def lirnet_of(args: argparse.Namespace, variant: str, ckpt: Path):
    """The LIRNet of a full training state, built as the bundle builds it (preset, channels, ablation)."""
    from ldct_invrep.engine.ablations import ABLATIONS
    from ldct_invrep.networks import LIRNet
    from ldct_invrep.recipes import lir_config

    overrides = ABLATIONS[VARIANTS[variant][1]][0]
    net = LIRNet(lir_config(args.preset, in_channels=args.channels, base_channels=args.base_channels, n_res=args.n_res,
                            dis_high_pass_gain=args.dis_high_pass_gain, residual=args.residual, **overrides))
    net.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=False)["network"])
    return net.eval()


def curve_sets(args: argparse.Namespace, variant: str) -> dict[str, tuple[Path, str, float | None, int]]:
    """split -> (folder, noise, sigma, images) of the curve's scores."""
    d = args.dataset_dir
    if VARIANTS[variant][0] == "natural_poisson":
        return {"val": (d / "cbsd68", "poisson", None, 6), "test": (d / "kodak24", "poisson", None, args.curve_images)}
    return {"val": (d / "kodak24", "awgn", 25.0, 6), "test": (d / "cbsd68", "awgn", 25.0, args.curve_images)}


def score(args: argparse.Namespace, variant: str, ckpt: Path) -> list[dict[str, Any]]:
    """Single-pass PSNR/SSIM of the variant's Restorer and of its input on the curve's sets."""
    from ldct_invrep.data.noisy_sets import noisy_test_set
    from ldct_invrep.evaluation import Method, evaluate_natural, natural_restorer_fn

    fn = natural_restorer_fn(lirnet_of(args, variant, ckpt).restorer().eval())
    rows = []
    for split, (folder, noise, sigma, n) in curve_sets(args, variant).items():
        images = noisy_test_set(folder, noise, sigma, 0, channels=args.channels, max_images=n)
        result = evaluate_natural(images, noise, sigma, seed=0, methods={"input": lambda x: x, "lir": Method(fn, "LIR")})
        s_in, s_out = result.summary("input"), result.summary("lir")
        rows.append({"split": split, "images": f"{folder.name}[:{len(images)}]", "input_psnr": s_in["psnr"]["mean"],
                     "psnr": s_out["psnr"]["mean"], "input_ssim": s_in["ssim"]["mean"], "ssim": s_out["ssim"]["mean"]})
    return rows


def budget_of(args: argparse.Namespace, variant: str) -> int:
    return {"full": args.until, "poisson": args.poisson_budget}.get(variant, args.ablation_budget)


def used_so_far(curve: Path, variant: str) -> tuple[float, float]:
    """(wall minutes, CPU hours) of a variant's chunks so far, from the curve file."""
    if not curve.is_file():
        return 0.0, 0.0
    with open(curve, encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["variant"] == variant]
    return (sum(float(r["minutes"]) for r in rows if r["split"] == "val"), max([float(r["cpu_hours"]) for r in rows] or [0.0]))


def export(args: argparse.Namespace, variant: str, mean_file: Path, target: Path, cpu_hours: float) -> None:
    """Write the Restorer of the checkpoint mean ``mean_file`` (:func:`second_half_means`) to ``target``
    (``engine.save_restorer``) with what it cost and which checkpoints it averages in the header."""
    from ldct_invrep.engine import save_restorer

    bundle, ablation, table = VARIANTS[variant]
    mean = torch.load(mean_file, map_location="cpu", weights_only=True)
    header = {"bundle": bundle, "preset": args.preset, "ablation": ablation, "channels": args.channels,
              "noise": "poisson" if bundle == "natural_poisson" else "awgn", "semantic_weight": 0.0,
              "iterations": int(mean["last"]), "averaged_checkpoints": list(mean["iterations"]),
              "selection": f"mean of the checkpoints after iteration {mean['first']} (the second half of the budget)",
              "batch_size": 16, "patch_size": 64,
              "training_data": "CBSD432 (colour), unpaired halves" if args.channels == 3 else "Train400 (grey), unpaired halves",
              "cpu_hours": round(cpu_hours, 2), "campaign": f"campaign/natural_colour.py, variant {variant} ({table})"}
    if bundle == "natural_awgn":
        header["sigma_range"] = [5, 50]
    save_restorer(target, lirnet_of(args, variant, mean_file), header)


def second_half_means(args: argparse.Namespace, variant: str, work: Path, state: Path, ckpt: Path) -> dict[int, Path]:
    """``{budget: mean file}``: fold the variant's new checkpoints into the running mean of the second half of each
    budget it has (``state/mean_<budget>.pt``, committed with the state, so a fresh machine goes on averaging):
    the tables' Restorers are these means (the CT model's rule; docs/natural_campaign.md measures the gain)."""
    budgets = sorted({args.ablation_budget, args.until}) if variant == "full" else [budget_of(args, variant)]
    found = checkpoint_iterations(work / "models")
    means = {}
    for budget in budgets:
        means[budget] = state / f"mean_{budget}.pt"
        update_checkpoint_mean(means[budget], lirnet_of(args, variant, ckpt), found, budget // 2, budget)
    return means


def exported_iterations(path: Path) -> int | None:
    from ldct_invrep.engine import read_header

    return int(read_header(path)["iterations"]) if path.is_file() else None


def run_variant(args: argparse.Namespace, variant: str, log) -> None:
    state, work = args.state / variant, args.work / variant
    state.mkdir(parents=True, exist_ok=True)
    curve, budget = args.state / "curve.csv", budget_of(args, variant)
    table4_d = args.state / "full" / f"lir_restorer_{args.ablation_budget}.pt"
    while True:
        it, start = latest_training_state(work / "models", state / "checkpoint.pt")
        if it >= budget:
            break
        # the full model stops once at the ablation budget: its Restorer there is Table 4 (d)
        stop = min(budget, args.ablation_budget) if variant == "full" and it < args.ablation_budget else budget
        target = min(it + args.chunk, stop)
        t0 = time.time()
        cpu = run_chunk(args, variant, work, start, target, log)
        minutes = (time.time() - t0) / 60.0
        it_new, ckpt = latest_training_state(work / "models", state / "checkpoint.pt")
        if ckpt is None or it_new <= it:
            raise SystemExit(f"{variant}: chunk to {target} left no newer checkpoint (see {args.state / 'train.log'})")
        commit_state(ckpt, state / "checkpoint.pt")
        cpu_hours = used_so_far(curve, variant)[1] + cpu / 3600.0
        rows = score(args, variant, ckpt)
        append_curve_rows(curve, CURVE_FIELDS, [{"variant": variant, "iteration": it_new, "minutes": f"{minutes:.1f}",
                                                 "cpu_hours": f"{cpu_hours:.3f}", **r} for r in rows])  # fmt: skip
        text = "; ".join(f"{r['split']} {r['input_psnr']:.2f}->{r['psnr']:.2f} dB" for r in rows)
        log.write(f"[campaign] {variant} iteration {it_new} ({minutes:.1f} min, {cpu_hours:.2f} CPU h): {text}\n")
        log.flush()
        means = second_half_means(args, variant, work, state, ckpt)
        if variant == "full" and it_new == args.ablation_budget:
            export(args, variant, means[args.ablation_budget], table4_d, cpu_hours)
    final, (it, ckpt) = state / "lir_restorer.pt", latest_training_state(work / "models", state / "checkpoint.pt")
    if ckpt is not None and it >= budget and exported_iterations(final) != budget:
        export(args, variant, second_half_means(args, variant, work, state, ckpt)[budget], final, used_so_far(curve, variant)[1])
        log.write(f"[campaign] {variant}: done, {final}\n")
        log.flush()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset-dir", type=Path, required=True, help="holds cbsd432/, cbsd68/, kodak24/ (train400/, bsd68/, set12/ for grey)")
    p.add_argument("--work", type=Path, required=True, help="run folder: checkpoints, TensorBoard logs (one sub-folder a variant)")
    p.add_argument("--state", type=Path, default=HERE / "natural_colour", help="committed state, curve and log")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), help="run in this order")
    p.add_argument("--until", type=int, default=20000, help="iterations of the full AWGN model (Table 1)")
    p.add_argument("--ablation-budget", type=int, default=5000, help="iterations of each Table 4 variant, (d) included")
    p.add_argument("--poisson-budget", type=int, default=5000, help="iterations of the Poisson model (Table 2)")
    p.add_argument("--chunk", type=int, default=500, help="iterations per chunk (a multiple of --epoch-length)")
    p.add_argument("--epoch-length", type=int, default=250, help="iterations between validations and checkpoints")
    p.add_argument("--curve-images", type=int, default=8, help="test images scored after each chunk")
    p.add_argument("--preset", default="ct", help="architecture (networks.PRESETS); see docs/natural_campaign.md")
    p.add_argument("--base-channels", dest="base_channels", type=int, default=None)
    p.add_argument("--n-res", dest="n_res", type=int, default=None)
    p.add_argument("--dis-high-pass-gain", dest="dis_high_pass_gain", type=float, default=2.5,
                   help="discriminators' high-pass input gain (the ct preset's 20 is tuned to CT noise)")
    p.add_argument("--residual", type=lambda t: {"true": True, "false": False}[t.lower()], default=False, metavar="true|false",
                   help="residual generators (the ct preset's; they stay at the identity on natural images)")
    p.add_argument("--channels", type=int, default=3, choices=[1, 3])
    # The campaign's recipe (docs/natural_campaign.md, "How the recipe was chosen"): the ct preset with plain
    # generators and high-pass gain 2.5, trained as the CT default model (train_default_model.json).
    p.add_argument("--learning-rate", dest="learning_rate", type=float, default=3e-4, help="generator side")
    p.add_argument("--d-learning-rate", dest="d_learning_rate", type=float, default=1e-3, help="discriminators")
    p.add_argument("--cross-cycle-weight", dest="cross_cycle_weight", type=float, default=1.0, help="lambda_cc (paper: 10)")
    p.add_argument("--threads", type=int, default=2)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    for name in ("until", "ablation_budget", "poisson_budget", "chunk"):
        if getattr(args, name) % args.epoch_length:
            raise SystemExit(f"--{name.replace('_', '-')} {getattr(args, name)}: not a multiple of --epoch-length {args.epoch_length}")
    args.work, args.state, args.dataset_dir = args.work.resolve(), args.state.resolve(), args.dataset_dir.resolve()
    args.state.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    with open(args.state / "train.log", "a", encoding="utf-8") as log:
        for variant in args.variants:
            run_variant(args, variant, log)


if __name__ == "__main__":
    main()

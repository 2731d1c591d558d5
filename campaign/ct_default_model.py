"""The default model's training campaign: the ``ldct_simulated`` bundle's default-model recipe, run in chunks,
resumable on a fresh machine from the state committed next to this script.

    python campaign/ct_default_model.py --dataset-dir ../shared/data --work runs/ct_campaign --until 40000

Each chunk runs ``python -m monai.bundle run`` (``configs/train.json`` + ``configs/train_default_model.json``)
for ``--chunk`` iterations, resuming from the last full training state (all networks, both optimisers and
schedulers, the iteration, the RNG states). After each chunk the new state is copied to ``--state``
(``checkpoint.pt``, small enough to commit) and the Restorer is scored, single pass, on

* the simulated held-out patients of the cache (``test_*`` pairs: 3 patients, dose fractions 0.1/0.25/0.5), and
* the real quarter/full-dose development pairs under ``--dataset-dir`` when present (AAPM-Mayo data: read in
  place, scored only; never trained on),

one row per chunk in ``curve.csv`` (abdomen-window PSNR and SSIM, data range 400). The bundle's output goes to
``train.log``. Stop it any time (the chunk in progress is lost, nothing else); rerun the same command to go on.

``--lr-half-life N`` anneals a run that is already going: the resumed state's learning-rate schedules
(ExponentialLR, both optimisers) are set to halve every ``N`` iterations from where they stand, logged once.
The bundle's own ``lr_decay_step`` only applies to a run that starts from scratch, since resuming restores
the schedules from the state.

``--clean-domain-noise`` sets the bundle's ``clean_domain_noise``: D_Y judges the translation plus noise of the
clean domain's own level taken from the cache's pairs (``ldct_invrep.data.clean_noise``), so the clean
generator is not asked to invent normal-dose grain (session-5 probe, docs/shipped_weights.md). Give it on
every chunk of such a run.

``--average-from A --average-to B`` keeps, after each chunk, the running mean of the checkpoints A..B in
``--state`` (``mean_A_B.pt``, committed with the state), which ``export_default_model.py --mean`` exports: the
averaging rule then survives a move to a fresh machine, whose run folder has lost the earlier checkpoints.

``--score-weights CKPT`` trains nothing: it prints an exported checkpoint's scores as deployed (its header's
self-ensemble and reference noise), the figure the campaigns' adoption rules compare.

``--base-channels`` and ``--n-res`` widen or deepen the ``ct`` preset (the bundle's ``base_channels`` and
``n_res``), for a run sized for a smaller self-ensemble (session-6 campaign, docs/shipped_weights.md). Give them
on every chunk of such a run: the scores build the network from them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))  # score with this checkout's package (a campaign runs from its own worktree)
sys.path.insert(0, str(HERE))

from ldct_invrep.engine.checkpoint import checkpoint_iterations, latest_training_state, update_checkpoint_mean  # noqa: E402
from ldct_invrep.io.atomic import atomic_replace  # noqa: E402
from chunks import append_curve_rows, commit_state  # noqa: E402
BUNDLE = REPO / "bundles" / "ldct_simulated"
CURVE_FIELDS = ["iteration", "minutes", "split", "name", "input_psnr", "psnr", "input_ssim", "ssim", "bias_hu"]


def run_chunk(args: argparse.Namespace, start: Path | None, until: int, log) -> None:
    configs = f"['{BUNDLE / 'configs' / 'train.json'}','{BUNDLE / 'configs' / 'train_default_model.json'}']"
    cmd = [
        sys.executable, "-m", "monai.bundle", "run", "--config_file", configs,
        "--bundle_root", str(args.work), "--dataset_dir", str(args.dataset_dir),
        "--threads", str(args.threads), "--max_iterations", str(until),
    ]  # fmt: skip
    if args.clean_domain_noise:
        cmd += ["--clean_domain_noise", "True"]
    for key, value in network_overrides(args).items():
        cmd += [f"--{key}", str(value)]
    if start is not None:
        cmd += ["--resume_from", str(start)]
    shown = " ".join(os.path.relpath(c, REPO) if os.path.isabs(c) else c for c in cmd[1:]).replace(str(REPO) + "/", "")
    log.write(f"\n$ python {shown}\n")
    log.flush()
    subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True, cwd=REPO)


def set_lr_half_life(start: Path, it: int, half_life: int, work: Path, log) -> Path:
    """The training state ``start`` with both schedulers' per-iteration factor set to ``0.5 ** (1 / half_life)``;
    written to ``work/models/checkpoint_iteration=<it>.pt`` when it changes (``start`` is never modified)."""
    state = torch.load(start, map_location="cpu", weights_only=False)
    gamma = 0.5 ** (1.0 / half_life)
    if all(abs(state[k]["gamma"] - gamma) < 1e-12 for k in ("g_scheduler", "d_scheduler")):
        return start
    for k in ("g_scheduler", "d_scheduler"):
        state[k]["gamma"] = gamma
    out = work / "models" / f"checkpoint_iteration={it}.pt"
    with atomic_replace(out) as tmp:
        torch.save(state, tmp)
    lrs = [g["lr"] for k in ("g_optimizer", "d_optimizer") for g in state[k]["param_groups"]]
    log.write(f"[campaign] from iteration {it} the learning rates ({', '.join(f'{v:.3g}' for v in lrs)}) "
              f"halve every {half_life} iterations\n")  # fmt: skip
    log.flush()
    return out


def network_overrides(args: argparse.Namespace) -> dict[str, int]:
    """The ``ct`` preset's fields this run changes (``base_channels``, ``n_res``), as given."""
    return {k: v for k, v in (("base_channels", args.base_channels), ("n_res", args.n_res)) if v is not None}


def score(restorer_ckpt: Path, cache_file: Path, dataset_dir: Path, overrides: dict[str, int]) -> list[dict]:
    """Single-pass abdomen-window scores of the Restorer in ``restorer_ckpt`` (a full training state of the
    ``ct`` preset with ``overrides``)."""
    from ldct_invrep.inference import SliceDenoiser
    from ldct_invrep.networks import LIRNet, get_config

    net = LIRNet(get_config("ct", **overrides))
    net.load_state_dict(torch.load(restorer_ckpt, map_location="cpu", weights_only=False)["network"])
    return score_denoiser(SliceDenoiser(net.restorer().eval(), batch_size=1), cache_file, dataset_dir)


def score_denoiser(denoiser, cache_file: Path, dataset_dir: Path) -> list[dict]:
    """Abdomen-window scores of ``denoiser`` (an ``inference.SliceDenoiser``) on the cache's simulated held-out
    pairs and the real development pairs."""
    from ldct_invrep.data import load_ct_training_cache
    from ldct_invrep.data.dev_pairs import read_dev_pairs
    from ldct_invrep.evaluation.pairs import cache_test_dose_fractions
    from ldct_invrep.metrics import compute_metrics

    cache = load_ct_training_cache(cache_file, units="hu")
    fractions = cache_test_dose_fractions(cache.manifest)
    names = [f"sim_f{f:g}" for f in fractions]
    items = list(zip(names, cache.test_noisy, cache.test_clean, strict=True))
    items += [(p.name, p.quarter, p.full) for p in read_dev_pairs(dataset_dir)]
    rows = []
    for name, noisy, clean in items:
        out = denoiser.denoise(noisy)
        m_in = compute_metrics(noisy, clean, "abdomen")[0]
        m_out = compute_metrics(out, clean, "abdomen")[0]
        soft = (clean > -100) & (clean < 200)
        rows.append(
            {
                "split": "sim" if name.startswith("sim_") else "real",
                "name": name,
                "input_psnr": m_in.psnr, "psnr": m_out.psnr, "input_ssim": m_in.ssim, "ssim": m_out.ssim,
                "bias_hu": float((out - clean)[soft].mean()) if soft.any() else float("nan"),
            }  # fmt: skip
        )
    return rows


def summarise(rows: list[dict]) -> str:
    parts = []
    for key in sorted({(r["split"], r["name"] if r["split"] == "real" else r["name"]) for r in rows}):
        sel = [r for r in rows if (r["split"], r["name"]) == key]
        parts.append(
            f"{key[1]} {np.mean([r['input_psnr'] for r in sel]):.2f}->{np.mean([r['psnr'] for r in sel]):.2f}"
        )
    return "; ".join(parts)


def keep_running_mean(args: argparse.Namespace) -> list[int]:
    """Fold the run's new checkpoints from ``--average-from`` to ``--average-to`` into ``state/mean_<from>_<to>.pt``
    (``engine.update_checkpoint_mean``); returns the iterations in the mean."""
    from ldct_invrep.networks import LIRNet, get_config

    mean = args.state / f"mean_{args.average_from}_{args.average_to}.pt"
    net = LIRNet(get_config("ct", **network_overrides(args)))
    found = checkpoint_iterations(args.work / "models")
    return update_checkpoint_mean(mean, net, found, args.average_from - 1, args.average_to)


def score_weights(path: Path, cache_file: Path, dataset_dir: Path) -> None:
    """Print the scores of an exported checkpoint run as its header says (self-ensemble, reference noise): the
    figure a campaign's adoption rule compares (the mean over the simulated held-out pairs, all fractions)."""
    from ldct_invrep.inference import SliceDenoiser

    denoiser, header = SliceDenoiser.from_checkpoint(path, batch_size=1)
    rows = score_denoiser(denoiser, cache_file, dataset_dir)
    sim = [r for r in rows if r["split"] == "sim"]
    print(f"{path} (self-ensemble {denoiser.self_ensemble}, reference noise {header.get('reference_noise_hu', 0)} HU), "
          f"abdomen PSNR input -> output: {summarise(rows)}")  # fmt: skip
    print(f"simulated held-out pairs, all fractions ({len(sim)}): {np.mean([r['input_psnr'] for r in sim]):.2f} -> "
          f"{np.mean([r['psnr'] for r in sim]):.2f} dB")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset-dir", type=Path, required=True, help="holds ct_nifti/, ct_more/ (and the dev pairs)")
    p.add_argument("--work", type=Path, required=True, help="run folder: cache, checkpoints, TensorBoard logs")
    p.add_argument("--state", type=Path, default=HERE / "ct_default_model", help="committed state and logs")
    p.add_argument("--chunk", type=int, default=500, help="iterations per chunk (a multiple of the epoch length 250)")
    p.add_argument("--until", type=int, default=40000, help="stop after this many iterations")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr-half-life", type=int, default=None, help="anneal: learning rates halve every N iterations from here")
    p.add_argument("--clean-domain-noise", action="store_true",
                   help="D_Y judges the translation plus the clean domain's own noise (data.clean_noise; not in the paper)")
    p.add_argument("--base-channels", type=int, default=None, help="the ct preset's channels (default 16)")
    p.add_argument("--n-res", type=int, default=None, help="the ct preset's residual blocks (default 4)")
    p.add_argument("--average-from", type=int, default=None, help="keep the running mean of the checkpoints from this "
                   "iteration to --average-to in --state (mean_<from>_<to>.pt: the export's --mean, a fresh machine goes on with it)")
    p.add_argument("--average-to", type=int, default=None)
    p.add_argument("--score-weights", type=Path, default=None, metavar="CKPT",
                   help="train nothing: print the scores of an exported checkpoint as deployed (its header's self-ensemble "
                   "and reference noise) on --work's cache and the real pairs")
    args = p.parse_args()
    if (args.average_from is None) != (args.average_to is None):
        p.error("--average-from and --average-to go together")
    if args.score_weights is not None:
        torch.set_num_threads(args.threads)
        score_weights(args.score_weights, args.work / "cache" / "ct_default_model.npz", args.dataset_dir)
        return
    args.work, args.state = args.work.resolve(), args.state.resolve()
    args.dataset_dir = args.dataset_dir.resolve()
    args.state.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    curve = args.state / "curve.csv"
    with open(args.state / "train.log", "a", encoding="utf-8") as log:
        while True:
            it, start = latest_training_state(args.work / "models", args.state / "checkpoint.pt")
            if it >= args.until:
                break
            target = min(it + args.chunk, args.until)
            if args.lr_half_life and start is not None:
                start = set_lr_half_life(start, it, args.lr_half_life, args.work, log)
            t0 = time.time()
            run_chunk(args, start, target, log)
            minutes = (time.time() - t0) / 60.0
            it_new, ckpt = latest_training_state(args.work / "models", args.state / "checkpoint.pt")
            if ckpt is None or it_new <= it:
                raise SystemExit(f"chunk to {target} left no newer checkpoint (see {args.state / 'train.log'})")
            commit_state(ckpt, args.state / "checkpoint.pt")
            if args.average_from is not None:
                keep_running_mean(args)
            rows = score(ckpt, args.work / "cache" / "ct_default_model.npz", args.dataset_dir, network_overrides(args))
            append_curve_rows(curve, CURVE_FIELDS, [{"iteration": it_new, "minutes": f"{minutes:.1f}", **r} for r in rows])
            log.write(f"[campaign] iteration {it_new} ({minutes:.1f} min): {summarise(rows)}\n")
            log.flush()


if __name__ == "__main__":
    main()

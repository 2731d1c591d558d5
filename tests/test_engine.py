"""LIRTrainer: player separation of the two steps, determinism, exact resume, checkpoint export,
handlers, ablations, and a short CPU training on the sample CT series."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from _helpers import TINY, one_thread_fixture
from ignite.engine import Events
from monai.utils import set_determinism
from torch.utils.data import DataLoader, Dataset

from ldct_invrep.engine import (
    ABLATIONS,
    ImageGridHandler,
    LIRTrainer,
    build_lir,
    discriminator_step,
    generator_step,
    make_checkpoint_loader,
    make_checkpoint_saver,
    make_optimizers,
    make_schedulers,
    make_stats_handlers,
    make_validation,
)
from ldct_invrep.errors import InputError
from ldct_invrep.io.checkpoint import load_restorer, read_header, save_restorer
from ldct_invrep.losses.objective import LIRLossWeights, LIRObjective
from ldct_invrep.networks import LIRConfig, LIRDiscriminators, LIRNet

_one_thread = one_thread_fixture()
PATCH = 32


class RandomUnpaired(Dataset):
    """Fixed random unpaired patches in network range (deterministic, no set_epoch)."""

    def __init__(self, n: int = 4, size: int = PATCH, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.noisy = torch.rand(n, 1, size, size, generator=g) * 2 - 1
        self.clean = torch.rand(n, 1, size, size, generator=g) * 2 - 1

    def __len__(self) -> int:
        return len(self.noisy)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"noisy": self.noisy[i], "clean": self.clean[i]}


def _objective() -> LIRObjective:
    return LIRObjective(LIRLossWeights(semantic=0.0))


def _make_trainer(seed: int, max_epochs: int, handlers=(), config: LIRConfig = TINY, lr: float = 1e-4, **kwargs):
    set_determinism(seed)
    net, disc = LIRNet(config), LIRDiscriminators(config)
    g_opt, d_opt = make_optimizers(net, disc, lr=lr)
    g_sched, d_sched = make_schedulers(g_opt, d_opt, gamma=0.5, step=3)
    loader = kwargs.pop("loader", None) or DataLoader(RandomUnpaired(), batch_size=2, shuffle=True)
    trainer = LIRTrainer(
        device="cpu", max_epochs=max_epochs, train_data_loader=loader, network=net, discriminators=disc,
        objective=_objective(), g_optimizer=g_opt, d_optimizer=d_opt, g_scheduler=g_sched, d_scheduler=d_sched,
        **kwargs,
    )  # fmt: skip
    for h in handlers(trainer) if callable(handlers) else handlers:
        h.attach(trainer)
    outputs: list[dict[str, float]] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
    return trainer, outputs


def _state(trainer) -> dict[str, torch.Tensor]:
    out = {f"g.{k}": v.clone() for k, v in trainer.network.state_dict().items()}
    out.update({f"d.{k}": v.clone() for k, v in trainer.discriminators.state_dict().items()})
    for name, opt in (("go", trainer.g_optimizer), ("do", trainer.d_optimizer)):
        for i, s in opt.state_dict()["state"].items():
            out.update({f"{name}.{i}.{k}": torch.as_tensor(v).clone() for k, v in s.items()})
    return out


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


def test_discriminator_and_generator_steps_touch_only_their_player():
    set_determinism(0)
    net, disc, objective = LIRNet(TINY).train(), LIRDiscriminators(TINY), _objective()
    g_opt, d_opt = make_optimizers(net, disc)
    x, y = RandomUnpaired().noisy[:2], RandomUnpaired().clean[:2]

    g0 = {k: v.clone() for k, v in net.state_dict().items()}
    d0 = {k: v.clone() for k, v in disc.state_dict().items()}
    terms = discriminator_step(net(x, y), disc, objective, d_opt)
    assert {"d_x", "d_y", "d_r", "total"} <= terms.keys()
    assert all(torch.equal(v, g0[k]) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())
    assert any(not torch.equal(v, d0[k]) for k, v in disc.state_dict().items())

    g1 = {k: v.clone() for k, v in net.state_dict().items()}
    d1 = {k: v.clone() for k, v in disc.state_dict().items()}
    d_grads = [p.grad.clone() for p in disc.parameters()]
    terms = generator_step(net(x, y), disc, objective, g_opt)
    assert {"rec", "cc", "adv", "adv_r", "bc", "kl", "total"} <= terms.keys()
    assert all(torch.equal(v, d1[k]) for k, v in disc.state_dict().items())
    assert all(torch.equal(p.grad, g) for p, g in zip(disc.parameters(), d_grads))  # no D gradient computed
    assert all(p.requires_grad for p in disc.parameters())  # unfrozen again
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, g1[k])]
    assert changed and any(k.startswith("noise_encoder.") for k in changed)


def test_seeded_run_is_bit_identical():
    runs = []
    for _ in range(2):
        trainer, outputs = _make_trainer(seed=7, max_epochs=1)
        trainer.run()
        assert trainer.state.iteration == 2 and len(outputs) == 2
        runs.append((outputs, _state(trainer)))
    assert runs[0][0] == runs[1][0]
    _assert_same_state(runs[0][1], runs[1][1])
    expected = {"rec", "cc", "adv", "adv_r", "bc", "sc", "kl", "g_total", "d_x", "d_y", "d_r", "d_total", "lr"}
    assert expected <= runs[0][0][0].keys()
    assert all(isinstance(v, float) and math.isfinite(v) for v in runs[0][0][0].values())


def test_resume_is_exact(tmp_path):
    # uninterrupted: 2 epochs of 2 iterations
    full, full_out = _make_trainer(seed=1, max_epochs=2)
    full.run()
    assert len(full_out) == 4

    # interrupted after iteration 2, checkpoint every 2 iterations
    first, _ = _make_trainer(
        seed=1, max_epochs=1, handlers=lambda t: [make_checkpoint_saver(str(tmp_path), t, 2, n_saved=2)]
    )
    first.run()
    ckpt = tmp_path / "checkpoint_iteration=2.pt"
    assert ckpt.is_file() and (tmp_path / "checkpoint_final.pt").is_file()
    saved = torch.load(ckpt, weights_only=True)
    expected = {"network", "discriminators", "g_optimizer", "d_optimizer", "g_scheduler", "d_scheduler", "trainer"}
    assert expected | {"rng"} <= saved.keys()

    # fresh objects with other initial weights and RNG, resumed from the checkpoint
    resumed, resumed_out = _make_trainer(
        seed=99, max_epochs=2, handlers=lambda t: [make_checkpoint_loader(str(ckpt), t)]
    )
    resumed.run()
    assert resumed.state.iteration == 4
    assert resumed_out == full_out[2:]
    _assert_same_state(_state(resumed), _state(full))
    assert resumed.g_scheduler.get_last_lr() == full.g_scheduler.get_last_lr()


def test_learning_rate_schedules():
    net, disc = LIRNet(TINY), LIRDiscriminators(TINY)
    g_opt, d_opt = make_optimizers(net, disc, lr=1e-3, betas=(0.0, 0.9), representation_lr_factor=0.5)
    assert g_opt.defaults["betas"] == (0.0, 0.9)
    assert [g["lr"] for g in d_opt.param_groups] == [1e-3, 5e-4]
    d_params = [p for g in d_opt.param_groups for p in g["params"]]
    assert len(d_params) == len(list(disc.parameters())) == len({id(p) for p in d_params})
    g_sched, d_sched = make_schedulers(g_opt, d_opt, gamma=0.5, step=10)
    for _ in range(10):
        g_opt.step(), d_opt.step(), g_sched.step(), d_sched.step()
    assert g_opt.param_groups[0]["lr"] == pytest.approx(5e-4)
    assert d_opt.param_groups[1]["lr"] == pytest.approx(2.5e-4)
    g_opt, d_opt = make_optimizers(net, disc, lr=1e-3)
    g_sched, _ = make_schedulers(g_opt, d_opt, gamma=0.5, step=4, kind="step")
    lrs = []
    for _ in range(5):
        g_opt.step(), g_sched.step()
        lrs.append(g_opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4, 5e-4])
    with pytest.raises(ValueError):
        make_schedulers(g_opt, d_opt, kind="cosine")


@pytest.mark.parametrize("ablation", sorted(ABLATIONS))
def test_ablations_train(ablation):
    set_determinism(0)
    net, disc, objective = build_lir(TINY, ablation, weights=LIRLossWeights(semantic=0.0))
    g_opt, d_opt = make_optimizers(net, disc)
    out = net(*(t[:2] for t in (RandomUnpaired().noisy, RandomUnpaired().clean)))
    d_terms = discriminator_step(out, disc, objective, d_opt)
    g_terms = generator_step(out, disc, objective, g_opt)
    assert (net.noise_encoder is None) == (ablation == "no_noise_encoder")
    assert (disc.representation_discriminator is None) == (ablation == "no_representation_discriminator")
    if ablation == "no_representation_discriminator":
        assert d_terms["d_r"] == 0.0 and g_terms["adv_r"] == 0.0
    if ablation == "no_background_consistency":
        assert g_terms["bc"] == 0.0
    else:
        assert g_terms["bc"] > 0.0
    assert math.isfinite(g_terms["total"]) and math.isfinite(d_terms["total"])


def test_bf16_autocast_iteration():
    trainer, outputs = _make_trainer(seed=0, max_epochs=1, amp=True)
    trainer.run()
    assert len(outputs) == 2 and all(math.isfinite(v) for v in outputs[-1].values())
    assert all(p.dtype == torch.float32 for p in trainer.network.parameters())
    with pytest.raises(ValueError):
        _make_trainer(seed=0, max_epochs=1, amp=True, amp_dtype=torch.float16)


def test_bad_batch_is_reported():
    loader = DataLoader([{"image": torch.zeros(1, PATCH, PATCH)}] * 2, batch_size=2)
    trainer, _ = _make_trainer(seed=0, max_epochs=1, loader=loader)
    with pytest.raises(ValueError, match="noisy"):
        trainer.run()


def test_save_and_load_restorer(tmp_path):
    net = LIRNet(TINY).eval()
    header = {"preset": "tiny", "window": "full", "iterations": 12, "training_data": "random patches"}
    path = save_restorer(tmp_path / "sub" / "restorer.pt", net, header)
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"format", "header_json", "state_dict"}
    assert all(k.startswith(("content_encoder.", "generator.")) for k in raw["state_dict"])
    restorer, loaded = load_restorer(path)
    assert loaded["preset"] == "tiny" and loaded["iterations"] == 12 and loaded["config"]["base_channels"] == 8
    assert loaded["package_version"] and loaded["format_version"] == 1
    assert read_header(path) == loaded
    x = torch.rand(1, 1, 37, 41) * 2 - 1
    with torch.no_grad():
        assert torch.equal(restorer(x), net.restorer()(x))
    # a bare Restorer round-trips with the config in the header
    path2 = save_restorer(tmp_path / "r2.pt", restorer, {"config": loaded["config"]})
    assert load_restorer(path2)[1]["config"] == loaded["config"]

    with pytest.raises(ValueError, match="JSON"):
        save_restorer(tmp_path / "bad.pt", net, {"when": object()})
    with pytest.raises(InputError, match="missing.pt"):
        load_restorer(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt"):
        load_restorer(tmp_path / "junk.pt")
    torch.save({"some": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(InputError, match="plain.pt: a plain state dict without the network config"):
        load_restorer(tmp_path / "plain.pt")
    torch.save({"format": "something-else", "n": 1}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="other.pt: not an"):
        load_restorer(tmp_path / "other.pt")


def test_validation_tensorboard_and_image_handlers(tmp_path):
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(3, 1, 36, 28, generator=g) * 0.2 - 0.7  # odd sizes: the Restorer pads and crops
    paired = [{"noisy": c + 0.01 * torch.randn(c.shape, generator=g), "clean": c} for c in clean]
    val_loader = DataLoader(paired, batch_size=2)

    def handlers(trainer):
        validation, evaluator = make_validation(val_loader, trainer.network, "cpu", interval=2, window="abdomen")
        handlers.evaluator = evaluator
        grid = ImageGridHandler(
            clean[:2], clean[:2], trainer.network.restorer, log_dir=str(tmp_path / "tb"), interval=2
        )
        handlers.grid = grid
        return [validation, grid, *make_stats_handlers(str(tmp_path / "tb"), every_n_iterations=1)]

    trainer, outputs = _make_trainer(seed=0, max_epochs=2, handlers=handlers)
    started, in_forward = [], []
    trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: started.append(e.network.content_encoder_x.training))
    forward = trainer.network.forward

    def recording_forward(x, y):
        in_forward.append(trainer.network.content_encoder_x.training)
        return forward(x, y)

    trainer.network.forward = recording_forward
    trainer.run()
    assert len(outputs) == 4
    psnr = handlers.evaluator.state.metrics["val_psnr"]
    assert isinstance(psnr, float) and math.isfinite(psnr) and psnr > 0
    assert handlers.evaluator.state.iteration == 2  # 3 slices in batches of 2
    grid = handlers.grid.grid()
    assert grid.shape == (1, 2 * 36, 3 * 28) and 0 <= grid.min() and grid.max() <= 1
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    # validation (after iteration 2) leaves the shared E_X in eval mode; the trainer switches it back
    assert started == [True, True, False, True]
    assert in_forward == [True] * 4


def _sample_ct_slices(folder: Path) -> np.ndarray:
    """HU slices of the shipped series read with pydicom, mapped to network range and downsampled x2."""
    slices = []
    for f in sorted(folder.glob("CT.*")):
        ds = pydicom.dcmread(f)
        hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        slices.append(hu[::2, ::2])
    hu = np.stack(slices)
    return (np.clip(hu, -1024, 3072) + 1024) / 4096 * 2 - 1


@pytest.mark.slow
def test_short_training_on_ct_lowers_reconstruction_losses(sample_series):
    from ldct_invrep.data import UnpairedPatchDataset

    net_range = _sample_ct_slices(sample_series)
    rng = np.random.default_rng(0)
    noisy = [s + rng.normal(0, 50 / 2048, s.shape).astype(np.float32) for s in net_range[0::2]]  # ~50 HU noise
    clean = list(net_range[1::2])
    dataset = UnpairedPatchDataset(
        noisy, clean, patch_size=PATCH, samples_per_epoch=2 * 40, seed=0, min_tissue_fraction=0.5
    )
    loader = DataLoader(dataset, batch_size=2, shuffle=False)
    trainer, outputs = _make_trainer(seed=0, max_epochs=1, loader=loader, lr=5e-4)
    trainer.g_scheduler = trainer.d_scheduler = None
    trainer.run()
    assert len(outputs) == 40
    for key in ("rec", "cc"):
        first = np.mean([o[key] for o in outputs[:5]])
        last = np.mean([o[key] for o in outputs[-5:]])
        assert last < 0.8 * first, (key, first, last)


def test_rng_state_round_trip(tmp_path):
    import random

    from ldct_invrep.engine import RNGState

    set_determinism(3)
    torch.save(RNGState().state_dict(), tmp_path / "rng.pt")

    def draws():
        return random.random(), float(np.random.rand()), float(np.random.randn()), torch.rand(3).tolist()

    first = draws()
    RNGState().load_state_dict(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert draws() == first


def test_latest_training_state_prefers_the_furthest_of_run_folder_and_committed_copy(tmp_path: Path) -> None:
    from ldct_invrep.engine.checkpoint import latest_training_state

    models, committed = tmp_path / "models", tmp_path / "state" / "checkpoint.pt"
    models.mkdir()
    assert latest_training_state(models, committed) == (0, None)
    for it in (250, 500):
        torch.save({"trainer": {"iteration": it}}, models / f"checkpoint_iteration={it}.pt")
    (models / "checkpoint_iteration=x.pt").write_bytes(b"")  # not an iteration: ignored
    assert latest_training_state(models, committed) == (500, models / "checkpoint_iteration=500.pt")
    committed.parent.mkdir()
    torch.save({"trainer": {"iteration": 750}}, committed)
    assert latest_training_state(models, committed) == (750, committed)


def test_checkpoint_mean_built_chunk_by_chunk_equals_the_mean_of_all(tmp_path: Path) -> None:
    from ldct_invrep.engine.checkpoint import checkpoint_iterations, update_checkpoint_mean

    models = tmp_path / "models"
    models.mkdir()
    torch.manual_seed(0)
    for it in (250, 500, 750, 1000, 1250):
        torch.save({"network": LIRNet(TINY).state_dict()}, models / f"checkpoint_iteration={it}.pt")
    files = checkpoint_iterations(models)
    mean_file = tmp_path / "state" / "mean_1000.pt"
    # first chunk: up to 750; then the run "moves to a fresh machine": the folded files are gone
    assert update_checkpoint_mean(mean_file, LIRNet(TINY), {i: f for i, f in files.items() if i <= 750}, 500, 1000) == [750]
    files[750].unlink()
    net = LIRNet(TINY)
    assert update_checkpoint_mean(mean_file, net, checkpoint_iterations(models), 500, 1000) == [750, 1000]
    torch.manual_seed(0)  # the files' weights again, to average 750 and 1000 directly
    weights = [LIRNet(TINY).state_dict() for _ in range(5)]
    direct = {k: (weights[2][k].float() + weights[3][k].float()) / 2 for k in weights[2] if weights[2][k].is_floating_point()}
    for k, v in direct.items():
        torch.testing.assert_close(net.state_dict()[k], v)
    # nothing new: the mean is unchanged; another range is refused
    again = LIRNet(TINY)
    assert update_checkpoint_mean(mean_file, again, checkpoint_iterations(models), 500, 1000) == [750, 1000]
    torch.testing.assert_close(again.state_dict(), net.state_dict())
    with pytest.raises(InputError, match="not \\(0, 1000\\]"):
        update_checkpoint_mean(mean_file, LIRNet(TINY), files, 0, 1000)


class _WithCleanNoise(RandomUnpaired):
    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {**super().__getitem__(i), "clean_noise": torch.full_like(self.clean[i], 0.25)}


def test_trainer_passes_the_clean_domain_noise_to_the_objective(monkeypatch):
    """A batch with "clean_noise" reaches both players' losses as ``clean_noise`` (and changes the run)."""
    seen: list[tuple[str, float | None]] = []
    for side in ("generator_loss", "discriminator_loss"):
        original = getattr(LIRObjective, side)

        def spy(self, out, disc, clean_noise=None, _original=original, _side=side):
            seen.append((_side, None if clean_noise is None else float(clean_noise.mean())))
            return _original(self, out, disc, clean_noise=clean_noise)

        monkeypatch.setattr(LIRObjective, side, spy)
    plain, plain_out = _make_trainer(seed=0, max_epochs=1)
    plain.run()
    assert {v for _, v in seen} == {None}
    seen.clear()
    noisy, noisy_out = _make_trainer(seed=0, max_epochs=1, loader=DataLoader(_WithCleanNoise(), batch_size=2))
    noisy.run()
    assert sorted(seen) == [("discriminator_loss", 0.25)] * 2 + [("generator_loss", 0.25)] * 2
    assert noisy_out[0]["d_y"] != pytest.approx(plain_out[0]["d_y"])

"""Image classification with Lightning: data layout, DataModule checks, training, export,
resume, the train-cls command and its shipped configs. Everything runs on tiny data on CPU."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

pl = pytest.importorskip("lightning.pytorch")
timm = pytest.importorskip("timm")

from visionattn import cli  # noqa: E402
from visionattn.classification import ExportStateDict, ImageClassifier, ImageFolderDataModule  # noqa: E402
from visionattn.utils import UserError  # noqa: E402

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "classification"
CLASSES = ("ant", "bee", "cat")
# A ResNet with MCA-S in every block, small enough to train a few steps in a second.
TINY = {"layers": [1, 1, 1, 1], "channels": [8, 16, 32, 64], "stem_type": "deep", "stem_width": 8}
MODEL = "resnet18_mca_s"


@pytest.fixture(autouse=True)
def _no_kernel_build(monkeypatch):
    # The fused MCA inference kernel compiles on first use (about a minute); plain torch ops
    # give the same numbers, and these tests are about training plumbing.
    monkeypatch.setenv("VISIONATTN_FUSED_MOMENTS", "0")


def write_folder(root: Path, classes=CLASSES, n_train: int = 6, n_val: int = 2, size: int = 32) -> Path:
    """root/{train,val}/<class>/*.png, each class a noisy colour of its own."""
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                base = np.zeros(3) + 40
                base[c % 3] = 200
                pixels = np.clip(base + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def tiny_data(root: Path, **kwargs) -> ImageFolderDataModule:
    return ImageFolderDataModule(str(root), img_size=32, batch_size=6, num_workers=0, pin_memory=False,
                                 scale=(0.5, 1.0), crop_pct=1.0, **kwargs)


def tiny_model(num_classes: int = 3) -> ImageClassifier:
    return ImageClassifier(MODEL, num_classes=num_classes, model_kwargs=TINY)


def trainer(tmp_path: Path, **kwargs) -> "pl.Trainer":
    options = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=str(tmp_path))
    options.update(kwargs)
    return pl.Trainer(**options)


# ----------------------------------------------------------------------------- digits layout

def test_digits_split_is_stratified_and_deterministic():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    from visionattn.benchmarks.cls_digits import split_indices

    labels = sklearn_datasets.load_digits().target
    train, val = split_indices(labels, 0.2, seed=0)
    assert len(train) + len(val) == len(labels) and not set(train) & set(val)
    for c in range(10):
        n = int((labels == c).sum())
        assert abs(int((labels[val] == c).sum()) - 0.2 * n) <= 0.5
    again = split_indices(labels, 0.2, seed=0)
    assert np.array_equal(train, again[0]) and np.array_equal(val, again[1])
    assert not np.array_equal(val, split_indices(labels, 0.2, seed=1)[1])


def test_digits_layout_is_written_once(tmp_path):
    pytest.importorskip("sklearn")
    from visionattn.benchmarks.cls_digits import prepare_digits

    root = tmp_path / "data"
    record = prepare_digits(root, img_size=8)
    for split, expected in (("train", 1438), ("val", 359)):
        assert sorted(p.name for p in (root / split).iterdir()) == [str(d) for d in range(10)]
        files = list((root / split).glob("*/*.png"))
        assert len(files) == expected == sum(record["counts"][split].values())
    with Image.open(next((root / "val").glob("3/*.png"))) as image:
        assert image.size == (8, 8)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    stamp = (root / "layout.json").stat().st_mtime_ns
    assert prepare_digits(root, img_size=8) == record
    assert (root / "layout.json").stat().st_mtime_ns == stamp
    with pytest.raises(UserError, match="choose another --out"):
        prepare_digits(root, img_size=16)


# ----------------------------------------------------------------------------- DataModule

def test_datamodule_reads_class_folders(tmp_path):
    data = tiny_data(write_folder(tmp_path))
    data.setup("fit")
    assert data.classes == list(CLASSES) and len(data.train_set) == 18 and len(data.val_set) == 6
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (6, 3, 32, 32) and y.dtype == torch.int64


def test_datamodule_missing_folders(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        tiny_data(tmp_path / "nope").setup("fit")
    write_folder(tmp_path)
    with pytest.raises(UserError, match="val2"):
        tiny_data(tmp_path, val_dir="val2").setup("fit")


def test_datamodule_class_mismatch(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "val" / "cat").rename(tmp_path / "val" / "dog")
    with pytest.raises(UserError, match=r"val'.*missing: \['cat'\], extra: \['dog'\]"):
        tiny_data(tmp_path).setup("fit")


def test_num_classes_must_match_the_data(tmp_path):
    write_folder(tmp_path)
    with pytest.raises(UserError, match="model.num_classes is 5 .* 3 class folders"):
        trainer(tmp_path, fast_dev_run=1).fit(tiny_model(num_classes=5), datamodule=tiny_data(tmp_path))


# ----------------------------------------------------------------------------- training

def test_fit_logs_exports_and_resumes(tmp_path):
    data_root = write_folder(tmp_path / "data")
    ckpt_dir = tmp_path / "ckpt"

    def callbacks():
        return [pl.callbacks.ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/top1", mode="max",
                                             save_last=True), ExportStateDict()]

    model = tiny_model()
    first = trainer(tmp_path, max_epochs=1, callbacks=callbacks())
    first.fit(model, datamodule=tiny_data(data_root))
    assert first.global_step == 3
    metrics = first.callback_metrics
    assert {"train/loss", "val/loss", "val/top1"} <= set(metrics) and "val/top5" not in metrics
    assert all(torch.isfinite(metrics[k]) for k in ("train/loss", "val/loss"))
    assert 0.0 <= float(metrics["val/top1"]) <= 1.0

    for stem in ("best", "last"):
        assert (ckpt_dir / f"{stem}.ckpt").is_file() and (ckpt_dir / f"{stem}.pth").is_file()
    loaded = timm.create_model(MODEL, num_classes=3, checkpoint_path=str(ckpt_dir / "last.pth"), **TINY)
    trained = model.model.state_dict()
    assert loaded.state_dict().keys() == trained.keys()
    assert all(torch.equal(loaded.state_dict()[k], trained[k]) for k in trained)

    second = trainer(tmp_path, max_epochs=2, callbacks=callbacks())
    second.fit(tiny_model(), datamodule=tiny_data(data_root), ckpt_path="last")
    assert second.global_step == 6
    assert torch.load(ckpt_dir / "last.ckpt", weights_only=False)["global_step"] == 6


def test_top5_only_with_five_classes_or_more():
    assert set(tiny_model(3).val_metrics.keys()) == {"val/top1"}
    assert set(tiny_model(5).val_metrics.keys()) == {"val/top1", "val/top5"}


def test_optimizer_and_scheduler_defaults_are_the_paper_recipe():
    optimizers = tiny_model().configure_optimizers()
    opt, sched = optimizers["optimizer"], optimizers["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.SGD)
    assert opt.defaults["lr"] == 0.1 and opt.defaults["momentum"] == 0.9 and opt.defaults["weight_decay"] == 1e-4
    assert isinstance(sched, torch.optim.lr_scheduler.MultiStepLR) and sorted(sched.milestones) == [30, 60, 90]


# ----------------------------------------------------------------------------- command line

def write_config(tmp_path: Path, data_root: Path, max_steps: int) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": max_steps, "limit_val_batches": 1,
            "num_sanity_val_steps": 0, "logger": False, "enable_progress_bar": False,
            "enable_model_summary": False, "default_root_dir": str(tmp_path / "run"),
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                 "init_args": {"dirpath": str(tmp_path / "run" / "ckpt"), "save_last": True}},
                {"class_path": "visionattn.classification.export.ExportStateDict"},
            ],
        },
        "model": {"model_name": MODEL, "num_classes": 3, "model_kwargs": TINY,
                  "optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.01}}},
        "data": {"root": str(data_root), "img_size": 32, "batch_size": 6, "num_workers": 0,
                 "pin_memory": False, "crop_pct": 1.0},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_cli_fits_from_a_config_and_resumes(tmp_path):
    config = write_config(tmp_path, write_folder(tmp_path / "data"), max_steps=2)
    assert cli.main(["train-cls", "fit", "--config", str(config)]) == 0
    ckpt = tmp_path / "run" / "ckpt"
    assert (ckpt / "last.pth").is_file()
    assert torch.load(ckpt / "last.ckpt", weights_only=False)["global_step"] == 2
    assert cli.main(["train-cls", "fit", "--config", str(config), "--trainer.max_steps", "3",
                     "--ckpt_path", "last"]) == 0
    assert torch.load(ckpt / "last.ckpt", weights_only=False)["global_step"] == 3


def test_cli_reports_a_missing_data_folder_in_one_line(tmp_path, capsys):
    config = write_config(tmp_path, tmp_path / "missing", max_steps=1)
    assert cli.main(["train-cls", "fit", "--config", str(config)]) == 2
    assert "visionattn train-cls: error: data.root" in capsys.readouterr().err


def merged_config(capsys, *configs: Path) -> dict:
    args = ["train-cls", "fit"]
    for config in configs:
        args += ["--config", str(config)]
    with pytest.raises(SystemExit) as exc:
        cli.main(args + ["--print_config"])
    assert exc.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.parametrize("name", ["resnet50_mca_s", "resnet50_mca_e", "resnet18_mca_s", "resnet18_mca_e",
                                  "resnet101_mca_s", "resnet50"])
def test_imagenet_configs_are_the_recipe_plus_a_model(name, capsys):
    config = merged_config(capsys, CONFIGS / "base_imagenet.yaml", CONFIGS / f"imagenet_{name}.yaml")
    model, trainer_cfg, data = config["model"], config["trainer"], config["data"]
    assert model["model_name"] == name and model["num_classes"] == 1000
    assert model["optimizer"]["init_args"].items() >= {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}.items()
    assert model["lr_scheduler"]["init_args"]["milestones"] == [30, 60, 90]
    assert trainer_cfg["max_epochs"] == 100 and data["batch_size"] == 256 and data["img_size"] == 224
    # --print_config shows the names filled in from model.model_name.
    assert trainer_cfg["logger"]["init_args"]["name"] == f"imagenet_{name}"
    kinds = [c["class_path"].rsplit(".", 1)[-1] for c in trainer_cfg["callbacks"]]
    assert {"ExportStateDict", "TQDMProgressBar"} <= set(kinds) and kinds.count("ModelCheckpoint") == 1
    checkpoint = trainer_cfg["callbacks"][kinds.index("ModelCheckpoint")]["init_args"]
    assert checkpoint["dirpath"] == f"outputs/classification/imagenet_{name}/checkpoints"
    assert checkpoint["save_last"] is True and checkpoint["filename"] == "best"
    assert (checkpoint["monitor"], checkpoint["mode"], checkpoint["save_top_k"]) == ("val/top1", "max", 1)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("imagenet_*.yaml")), ids=lambda p: p.stem)
def test_imagenet_model_files_state_only_the_model(path):
    config = yaml.safe_load(path.read_text())
    assert list(config) == ["model"] and config["model"]["model_name"] == path.stem[len("imagenet_"):]


def imagenet_cli(tmp_path: Path, name: str, *overrides: str):
    """The train-cls CLI on the recipe + model file, built but not run; a tiny network and
    save_dir under tmp_path so that nothing is written in the repository."""
    from visionattn.classification.cli import classification_cli

    args = ["--config", str(CONFIGS / "base_imagenet.yaml"), "--config", str(CONFIGS / f"imagenet_{name}.yaml"),
            "--trainer.accelerator", "cpu", "--trainer.devices", "1",
            "--trainer.logger.init_args.save_dir", str(tmp_path / "out"),
            "--model.model_kwargs", yaml.safe_dump({"channels": TINY["channels"]}, default_flow_style=True),
            *overrides]
    return classification_cli(args, run=False)


@pytest.mark.parametrize("name", ["resnet50_mca_s", "resnet50_mca_e", "resnet18_mca_s", "resnet18_mca_e",
                                  "resnet101_mca_s", "resnet50"])
def test_imagenet_runs_are_named_after_their_model(tmp_path, name):
    built = imagenet_cli(tmp_path, name)
    assert built.model.hparams.model_name == name
    assert built.trainer.logger.name == f"imagenet_{name}"
    assert built.trainer.logger.root_dir == str(tmp_path / "out" / f"imagenet_{name}")
    checkpoints = [c for c in built.trainer.callbacks if isinstance(c, pl.callbacks.ModelCheckpoint)]
    assert len(checkpoints) == 1
    # Fixed per model (no version_N), so --ckpt_path last finds the previous run's last.ckpt.
    assert Path(checkpoints[0].dirpath) == tmp_path / "out" / f"imagenet_{name}" / "checkpoints"
    assert not (tmp_path / "out").exists()


def test_given_run_names_win(tmp_path):
    built = imagenet_cli(tmp_path, "resnet18_mca_e", "--trainer.logger.init_args.name", "mine",
                         "--trainer.callbacks.dirpath", str(tmp_path / "elsewhere"))
    assert built.trainer.logger.name == "mine"
    assert [c.dirpath for c in built.trainer.callbacks if isinstance(c, pl.callbacks.ModelCheckpoint)] == \
        [str(tmp_path / "elsewhere")]
    # Only the name given: the checkpoints follow it.
    built = imagenet_cli(tmp_path, "resnet18_mca_e", "--trainer.logger.init_args.name", "mine")
    assert built.trainer.checkpoint_callback.dirpath == str(tmp_path / "out" / "mine" / "checkpoints")


def test_fill_run_names_leaves_what_it_cannot_fill():
    from jsonargparse import Namespace

    from visionattn.classification.cli import fill_run_names

    checkpoint = Namespace(class_path="lightning.pytorch.callbacks.ModelCheckpoint", init_args=Namespace(dirpath=None))
    other = Namespace(class_path="lightning.pytorch.callbacks.TQDMProgressBar", init_args=Namespace(dirpath=None))
    logger = Namespace(class_path="lightning.pytorch.loggers.CSVLogger",
                       init_args=Namespace(save_dir="runs", name="x_{model_name}"))
    # Whole-command config: the subcommand's part is filled.
    cfg = Namespace(subcommand="fit", fit=Namespace(model=Namespace(model_name="m"),
                                                    trainer=Namespace(logger=[logger], callbacks=[other, checkpoint])))
    fill_run_names(cfg)
    assert logger.init_args.name == "x_m" and checkpoint.init_args.dirpath == str(Path("runs/x_m/checkpoints"))
    assert other.init_args.dirpath is None  # not a ModelCheckpoint
    # No logger: nothing to put the checkpoints under; no model name: the placeholder stays.
    checkpoint.init_args.dirpath = None
    cfg = Namespace(model=Namespace(model_name="m"), trainer=Namespace(logger=False, callbacks=checkpoint))
    assert fill_run_names(cfg).trainer.callbacks.init_args.dirpath is None
    logger.init_args.name = "x_{model_name}"
    cfg = Namespace(model=Namespace(model_name=None), trainer=Namespace(logger=logger, callbacks=[checkpoint]))
    fill_run_names(cfg)
    assert logger.init_args.name == "x_{model_name}" and checkpoint.init_args.dirpath is None


def test_digits_config_matches_the_benchmark(capsys):
    from visionattn.benchmarks import cls_digits

    config = merged_config(capsys, CONFIGS / "digits_resnet_tiny.yaml")
    assert config["model"]["model_kwargs"] == cls_digits.TINY_RESNET
    assert config["model"]["optimizer"]["init_args"]["lr"] == cls_digits.RECIPE["lr"]
    assert config["data"]["batch_size"] == cls_digits.RECIPE["batch_size"]
    assert config["data"]["img_size"] == cls_digits.IMG_SIZE
    assert tuple(config["data"]["mean"]) == cls_digits.DIGITS_MEAN


def test_command_module_does_not_import_lightning():
    code = "import sys, visionattn.classification.command; print('lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

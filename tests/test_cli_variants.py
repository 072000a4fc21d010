"""``lstmkit train`` with the LSTM variants: the options reach the model, the run's config keeps them,
``evaluate`` rebuilds the same model from the checkpoint, and older configs (without them) still load."""

import json

import pytest

from lstmkit import io
from lstmkit.cli import main
from lstmkit.nn.rnn_base import RNNBase
from lstmkit.tasks import get_task
from lstmkit.tasks.base import variant_options

QUICK = ["--hidden-size", "8", "--epochs", "2", "--max-batches", "3", "--no-progress"]


@pytest.mark.parametrize(
    "task, flags, expected",
    [
        ("digits", ["--layer-norm", "--peepholes"], dict(layer_norm=True, peepholes=True)),
        ("digits", ["--recurrent-dropout", "0.2", "--zoneout", "0.1"], dict(recurrent_dropout=0.2, zoneout=0.1)),
        ("text", ["--recurrent-dropout", "0.3", "--layer-norm"], dict(recurrent_dropout=0.3, layer_norm=True)),
    ],
)
def test_variant_options_reach_the_model_and_evaluate_rebuilds_it(tmp_path, capsys, task, flags, expected):
    out = tmp_path / task
    extra = []
    if task == "text":
        corpus = tmp_path / "corpus.txt"
        corpus.write_text("the cat sat on the mat. " * 200)
        extra = ["--file", str(corpus)]
    assert main(["train", task, *QUICK, *flags, *extra, "--out", str(out)]) == 0
    arrays, meta = io.load_checkpoint(out / "best.npz")
    assert variant_options(meta["config"]) == expected
    model = get_task(task)(meta["config"]).build_model()
    lstm = next(module for module in model.modules() if isinstance(module, RNNBase))
    for name, value in expected.items():
        shown = getattr(lstm, name)
        assert shown == value or shown == (value, value), (name, shown)
    names = set(dict(lstm.named_parameters()))
    assert any("layer_norm" in name for name in names) == expected.get("layer_norm", False)
    assert any("peephole" in name for name in names) == expected.get("peepholes", False)
    summary = json.loads((out / "summary.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(out / "best.npz")]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    metric = get_task(task).metric
    assert evaluated["test"][metric] == pytest.approx(summary["test"][metric], rel=1e-6)


def test_a_config_written_before_the_variants_builds_the_plain_model():
    config = get_task("digits").make_config(hidden_size=8)
    for name in ("recurrent_dropout", "zoneout", "layer_norm", "peepholes"):
        del config[name]
    assert variant_options(config) == {}
    model = get_task("digits")(config).build_model()
    assert sorted(dict(model.named_parameters())) == sorted(
        dict(get_task("digits")(get_task("digits").make_config(hidden_size=8)).build_model().named_parameters())
    )


@pytest.mark.parametrize("flag, value", [("--recurrent-dropout", "1"), ("--zoneout", "-0.1"), ("--zoneout", "x")])
def test_bad_variant_values_are_refused_when_parsed(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit):
        main(["train", "digits", flag, value, "--out", str(tmp_path / "d")])
    assert flag in capsys.readouterr().err


def test_the_fast_backend_trains_every_variant(tmp_path):
    out = tmp_path / "d"  # layer norm too: the fused variant ops have every variant the CLI offers
    flags = ["--layer-norm", "--peepholes", "--recurrent-dropout", "0.2", "--zoneout", "0.1", "--backend", "fast"]
    assert main(["train", "digits", *QUICK, *flags, "--out", str(out)]) == 0
    _, meta = io.load_checkpoint(out / "best.npz")
    assert variant_options(meta["config"]) == dict(layer_norm=True, peepholes=True, recurrent_dropout=0.2, zoneout=0.1)

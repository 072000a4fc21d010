"""Module-level options of LSTM, GRU and RNN (issue 23, part B): recurrent_dropout, forget_bias,
merge_mode, left padding, per-layer hidden sizes; against torch (float64, 1e-10), and their errors.
"""

import re

import numpy as np
import pytest
import torch
from conftest import assert_close, to_torch_module
from layer_reference import compare_layer
from options_reference import (
    as_tuple,
    compare_with,
    equations_reference,
    per_layer,
    random_hx,
    stack_reference,
    torch_stack,
)

import lstmkit
from lstmkit.cli import main
from lstmkit.explain import explain_layer, keras_parameter_count, parameter_count, parameter_shapes
from lstmkit.nn.packing import roll_in_time

LAYERS = {"LSTM": lstmkit.LSTM, "GRU": lstmkit.GRU, "RNN_TANH": lstmkit.RNN}
F64 = np.float64


def make(mode, input_size, hidden_size, num_layers=1, **options):
    return LAYERS[mode](input_size, hidden_size, num_layers, dtype=F64, seed=3, **options)


# ---- recurrent_dropout ---------------------------------------------------------------------
DROPOUT_CASES = [
    (mode, backend, num_layers, bidirectional, lengths)
    for mode, backends in (("LSTM", ("reference", "auto")), ("GRU", ("reference", "auto")), ("RNN_TANH", ("auto",)))
    for backend in backends
    for num_layers, bidirectional, lengths in ((1, False, None), (2, True, [5, 2, 4]))
]


@pytest.mark.parametrize("mode,backend,num_layers,bidirectional,lengths", DROPOUT_CASES)
def test_recurrent_dropout_equals_the_equations_in_torch_with_the_layers_masks(
    mode, backend, num_layers, bidirectional, lengths, rng
):
    layer = make(mode, 3, 4, num_layers, bidirectional=bidirectional, recurrent_dropout=0.4, backend=backend)
    x, hx = rng.standard_normal((5, 3, 3)), random_hx(layer, 3, rng)
    masks = compare_with(layer, equations_reference(layer), x, hx, rng, lengths)
    assert len(masks) == num_layers
    for mask in masks:
        assert mask.shape == (layer.num_directions, 3, 4)
        assert set(np.unique(mask)) <= {0.0, 1 / 0.6}


def test_recurrent_dropout_with_projection_sizes_per_layer_and_a_merge(rng):
    layer = make("LSTM", 3, [5, 4], 2, bidirectional=True, proj_size=2, merge_mode="mul", recurrent_dropout=0.3)
    x, hx = rng.standard_normal((4, 2, 3)), random_hx(layer, 2, rng)
    masks = compare_with(layer, equations_reference(layer), x, hx, rng, [4, 3])
    assert [mask.shape for mask in masks] == [(2, 2, 2), (2, 2, 2)]  # on h: H_out = proj_size


def test_recurrent_dropout_keeps_units_at_the_expected_rate():
    rate, layer = 0.3, make("GRU", 2, 50, bidirectional=True, recurrent_dropout=0.3)
    masks = []
    for _ in range(5):
        layer(np.zeros((2, 40, 2)))
        masks.append(layer._saved.pop().saved.recurrent_masks[0])
    kept = np.concatenate([mask.ravel() for mask in masks])
    assert set(np.unique(kept)) == {0.0, 1 / (1 - rate)}
    standard_error = np.sqrt(rate * (1 - rate) / kept.size)  # 20,000 units
    assert abs(np.mean(kept > 0) - (1 - rate)) < 3 * standard_error


@pytest.mark.parametrize("mode", LAYERS)
def test_recurrent_dropout_uses_one_mask_at_every_step(mode, rng):
    """A unit dropped from h_{t-1} is dropped at every step: its column of weight_hh gets no gradient."""
    layer = make(mode, 3, 8, bidirectional=True, recurrent_dropout=0.5)
    output, _ = layer(rng.standard_normal((6, 1, 3)))  # one sequence: one mask per direction
    masks = layer._saved[-1].saved.recurrent_masks[0]
    layer.backward(rng.standard_normal(output.shape))
    for direction, name in enumerate(("weight_hh_l0", "weight_hh_l0_reverse")):
        column_norms = np.abs(getattr(layer, name).grad).sum(axis=0)
        dropped = masks[direction, 0] == 0
        assert 0 < dropped.sum() < 8
        assert np.all(column_norms[dropped] == 0) and np.all(column_norms[~dropped] > 0)


def test_recurrent_dropout_is_off_in_eval_and_at_zero(rng):
    x = rng.standard_normal((5, 2, 3))
    plain = make("LSTM", 3, 4, 2)
    expected, _ = plain(x)
    for layer in (make("LSTM", 3, 4, 2, recurrent_dropout=0.5).eval(), make("LSTM", 3, 4, 2, recurrent_dropout=0.0)):
        output, _ = layer(x)
        np.testing.assert_array_equal(output, expected)
        assert not layer._saved or layer._saved[-1].saved.recurrent_masks is None
    training, _ = make("LSTM", 3, 4, 2, recurrent_dropout=0.5)(x)
    assert np.max(np.abs(training - expected)) > 1e-3


def test_recurrent_dropout_is_reproducible_from_the_seed(rng):
    x = rng.standard_normal((5, 2, 3))
    first, second = (make("GRU", 3, 4, 2, recurrent_dropout=0.5) for _ in range(2))
    a, b = first(x)[0], second(x)[0]
    np.testing.assert_array_equal(a, b)
    assert np.max(np.abs(first(x)[0] - a)) > 1e-3  # the next call draws new masks


# ---- forget_bias ---------------------------------------------------------------------------
def test_forget_bias_sets_the_f_block_of_bias_ih_and_zeroes_bias_hh():
    plain = make("LSTM", 3, [4, 5], 2, bidirectional=True)
    layer = make("LSTM", 3, [4, 5], 2, bidirectional=True, forget_bias=1.0)
    assert "forget_bias=1.0" in repr(layer) and "forget_bias" not in repr(plain)
    for name, parameter in layer.named_parameters():
        expected = plain.state_dict()[name]
        if name.startswith("bias_"):
            hidden = parameter.shape[0] // 4
            f_block = 1.0 if name.startswith("bias_ih") else 0.0
            np.testing.assert_array_equal(parameter.data[hidden : 2 * hidden], f_block)
            expected[hidden : 2 * hidden] = f_block
        np.testing.assert_array_equal(parameter.data, expected)  # the rest: PyTorch's initialisation


def test_forget_bias_layer_equals_torch_with_its_weights(rng):
    layer = lstmkit.LSTM(3, 4, 2, bidirectional=True, forget_bias=2.5, dtype=F64, seed=0)
    config = dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    reference = to_torch_module(layer, torch.nn.LSTM, F64, **config)
    assert torch.all(reference.bias_ih_l1[4:8] + reference.bias_hh_l1[4:8] == 2.5)
    x = rng.standard_normal((5, 2, 3))
    compare_layer(layer, reference, x, None, F64, rng)


# ---- merge_mode ----------------------------------------------------------------------------
MERGE_CASES = [("LSTM", merge_mode, None) for merge_mode in ("concat", "sum", "mul", "ave")]
MERGE_CASES += [("LSTM", "mul", [5, 3, 4]), ("GRU", "ave", None), ("RNN_TANH", "sum", [2, 5, 5])]


@pytest.mark.parametrize("mode,merge_mode,lengths", MERGE_CASES)
def test_merge_mode_equals_bidirectional_torch_layers_merged_by_hand(mode, merge_mode, lengths, rng):
    layer = make(mode, 3, 4, 3, bidirectional=True, merge_mode=merge_mode)
    features = 8 if merge_mode == "concat" else 4
    assert layer.weight_ih_l1.shape[1] == features and layer.output_features == features
    x, hx = rng.standard_normal((5, 3, 3)), random_hx(layer, 3, rng)
    compare_with(layer, stack_reference(layer), x, hx, rng, lengths)


def test_merge_mode_with_projection_reads_proj_size_features(rng):
    layer = make("LSTM", 3, 5, 2, bidirectional=True, proj_size=2, merge_mode="ave")
    assert layer.weight_ih_l1.shape == (20, 2)
    compare_with(layer, stack_reference(layer), rng.standard_normal((4, 2, 3)), random_hx(layer, 2, rng), rng)


# ---- left padding --------------------------------------------------------------------------
def to_left(padded, lengths, batch_first=False):
    """Each sequence of a right-padded batch moved to the end; the padding in front filled with junk."""
    time_major = np.swapaxes(padded, 0, 1) if batch_first else padded
    steps = time_major.shape[0]
    moved = roll_in_time(time_major, steps - np.asarray(lengths))
    front = np.arange(steps)[:, None] < (steps - np.asarray(lengths))[None, :]
    moved = np.where(front[:, :, None], 7.0, moved)
    return np.swapaxes(moved, 0, 1) if batch_first else moved


@pytest.mark.parametrize("mode,batch_first", [("LSTM", False), ("GRU", True), ("RNN_TANH", False)])
def test_left_padding_equals_right_padding_moved(mode, batch_first, rng):
    lengths = np.array([3, 6, 1, 4])
    right_layer = LAYERS[mode](3, 4, 2, bidirectional=True, batch_first=batch_first, dtype=F64, seed=1)
    left_layer = LAYERS[mode](3, 4, 2, bidirectional=True, batch_first=batch_first, dtype=F64, seed=1)
    shape = (4, 6, 3) if batch_first else (6, 4, 3)
    x = rng.standard_normal(shape)
    hx = random_hx(right_layer, 4, rng)
    right, right_state = right_layer(x, hx, lengths=lengths)
    left, left_state = left_layer(to_left(x, lengths, batch_first), hx, lengths=lengths, padding_side="left")
    expected = to_left(right, lengths, batch_first)
    padding = expected == 7.0
    assert np.all(left[padding] == 0)  # zero in the padding at the front
    assert_close(left[~padding], expected[~padding], F64, "output")
    for a, b in zip(as_tuple(left_state), as_tuple(right_state)):
        assert_close(a, b, F64, "final state")

    doutput = rng.standard_normal(right.shape)
    dstate = tuple(rng.standard_normal(part.shape) for part in as_tuple(right_state))
    dstate = dstate if len(dstate) > 1 else dstate[0]
    dx_right, dhx_right = right_layer.backward(doutput, dstate)
    dx_left, dhx_left = left_layer.backward(to_left(doutput, lengths, batch_first), dstate)
    expected = to_left(dx_right, lengths, batch_first)
    assert np.all(dx_left[expected == 7.0] == 0)
    assert_close(dx_left[expected != 7.0], expected[expected != 7.0], F64, "dinput")
    for a, b in zip(as_tuple(dhx_left), as_tuple(dhx_right)):
        assert_close(a, b, F64, "initial state gradient")
    for (name, ours), (_, theirs) in zip(left_layer.named_parameters(), right_layer.named_parameters()):
        assert_close(ours.grad, theirs.grad, F64, f"grad of {name}")


def test_left_padded_final_state_is_the_state_at_the_last_step(rng):
    layer = make("GRU", 3, 4)
    x = rng.standard_normal((5, 2, 3))
    output, h_n = layer(x, lengths=[5, 2], padding_side="left")
    np.testing.assert_array_equal(h_n[0], output[-1])
    alone, _ = layer(x[3:, 1:])  # the short sequence by itself
    assert_close(output[3:, 1:], alone, F64, "the left-padded sequence")
    assert np.all(output[:3, 1] == 0)


@pytest.mark.parametrize("batch_first", [False, True])
def test_pack_and_pad_with_left_padding_equal_torch(batch_first, rng):
    sequences = [torch.from_numpy(rng.standard_normal((length, 2))) for length in (2, 5, 3)]
    lengths = [len(s) for s in sequences]
    left = torch.nn.utils.rnn.pad_sequence(sequences, batch_first=batch_first, padding_side="left")
    ours_left = lstmkit.pad_sequence([s.numpy() for s in sequences], batch_first=batch_first, padding_side="left")
    np.testing.assert_array_equal(ours_left, left.numpy())

    packed = lstmkit.pack_padded_sequence(
        left.numpy(), lengths, batch_first=batch_first, enforce_sorted=False, padding_side="left"
    )
    expected = torch.nn.utils.rnn.pack_sequence(sequences, enforce_sorted=False)
    np.testing.assert_array_equal(packed.data, expected.data.numpy())
    np.testing.assert_array_equal(packed.batch_sizes, expected.batch_sizes.numpy())
    np.testing.assert_array_equal(packed.sorted_indices, expected.sorted_indices.numpy())

    padded, padded_lengths = lstmkit.pad_packed_sequence(packed, batch_first=batch_first, padding_side="left")
    np.testing.assert_array_equal(padded, left.numpy())
    np.testing.assert_array_equal(padded_lengths, lengths)
    longer, _ = lstmkit.pad_packed_sequence(packed, batch_first, -1.0, total_length=7, padding_side="left")
    expected = np.full((7, 3, 2), -1.0)  # torch's pad_sequence has no total_length: written out
    for n, sequence in enumerate(sequences):
        expected[7 - len(sequence) :, n] = sequence.numpy()
    np.testing.assert_array_equal(longer, expected.swapaxes(0, 1) if batch_first else expected)


# ---- per-layer hidden sizes ----------------------------------------------------------------
SIZES_CASES = [
    ("LSTM", [6, 4, 5], False, 0, None),
    ("LSTM", [6, 4, 5], True, 3, [5, 2, 4]),
    ("GRU", [5, 3], True, 0, None),
    ("RNN_TANH", [4, 6], False, 0, [1, 5, 3]),
]


@pytest.mark.parametrize("mode,sizes,bidirectional,proj_size,lengths", SIZES_CASES)
def test_per_layer_sizes_equal_torch_layers_stacked_by_hand(mode, sizes, bidirectional, proj_size, lengths, rng):
    options = {"proj_size": proj_size} if proj_size else {}
    layer = make(mode, 3, sizes, len(sizes), bidirectional=bidirectional, **options)
    x, hx = rng.standard_normal((5, 3, 3)), random_hx(layer, 3, rng)
    compare_with(layer, stack_reference(layer), x, hx, rng, lengths)
    _, state = layer(x, hx)
    D = layer.num_directions
    h_n = as_tuple(state)[0]
    assert isinstance(h_n, list) and [a.shape for a in h_n] == [(D, 3, proj_size or size) for size in sizes]
    if mode == "LSTM":
        assert [a.shape for a in state[1]] == [(D, 3, size) for size in sizes]
    layer.clear_saved()


def test_per_layer_sizes_unbatched_and_fed_back(rng):
    layer = make("LSTM", 3, [6, 4], 2, bidirectional=True)
    output, (h_n, c_n) = layer(rng.standard_normal((5, 3)))
    assert output.shape == (5, 8) and [a.shape for a in h_n] == [(2, 6), (2, 4)]
    again, _ = layer(rng.standard_normal((5, 3)), (h_n, c_n))  # a final state is a valid initial state
    assert again.shape == (5, 8)


def test_per_layer_initialisation_bounds_and_the_int_case_unchanged(rng):
    layer = make("LSTM", 3, [9, 4], 2)
    for name, parameter in layer.named_parameters():
        bound = 1 / np.sqrt(9 if name.endswith("_l0") else 4)
        assert np.max(np.abs(parameter.data)) <= bound
    assert np.max(np.abs(layer.weight_hh_l1.data)) > 1 / 3  # drawn from the wider bound of H_1 = 4
    np.testing.assert_array_equal(layer.weight_ih_l0.data, make("LSTM", 3, 9).weight_ih_l0.data)

    same, stacked = make("GRU", 3, [5, 5], 2, bidirectional=True), make("GRU", 3, 5, 2, bidirectional=True)
    for (name, a), (other, b) in zip(same.named_parameters(), stacked.named_parameters()):
        assert name == other
        np.testing.assert_array_equal(a.data, b.data)
    x = rng.standard_normal((4, 2, 3))
    (out_list, h_list), (out_array, h_array) = same(x), stacked(x)
    np.testing.assert_array_equal(out_list, out_array)
    assert isinstance(h_array, np.ndarray) and h_array.shape == (4, 2, 5)
    np.testing.assert_array_equal(np.concatenate(h_list), h_array)


def test_state_dict_round_trip_with_every_option(rng):
    options = dict(bidirectional=True, proj_size=2, merge_mode="sum", forget_bias=1.0, recurrent_dropout=0.2)
    first, second = lstmkit.LSTM(3, [5, 4], 2, seed=1, **options), lstmkit.LSTM(3, [5, 4], 2, seed=2, **options)
    state = first.state_dict()
    assert list(state) == list(parameter_shapes("LSTM", 3, [5, 4], 2, True, True, 2, merge_mode="sum"))
    second.load_state_dict(state)
    first.eval(), second.eval()
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(first(x)[0], second(x)[0])
    torch_names = [
        name.replace("_l0", f"_l{k}")
        for k, module in enumerate(torch_stack(first))
        for name, _ in module.named_parameters()
    ]
    assert list(state) == torch_names


def test_counts_and_shapes_of_per_layer_sizes_and_merges():
    layer = lstmkit.LSTM(3, [6, 4, 5], 3, bidirectional=True, proj_size=2, merge_mode="ave")
    shapes = {name: tuple(p.shape) for name, p in layer.named_parameters()}
    assert parameter_shapes("LSTM", 3, [6, 4, 5], 3, True, True, 2, merge_mode="ave") == shapes
    torch_total = sum(p.numel() for module in torch_stack(layer) for p in module.parameters())
    assert lstmkit.count_parameters(layer) == torch_total
    assert parameter_count("LSTM", 3, [6, 4, 5], 3, True, True, 2, merge_mode="ave") == torch_total
    assert shapes["weight_ih_l1"] == (16, 2) and shapes["weight_hr_l2"] == (2, 5)


def test_keras_count_of_per_layer_units_and_merges():
    import keras

    model = keras.Sequential(
        [
            keras.Input((3, 4)),
            keras.layers.Bidirectional(keras.layers.GRU(6, return_sequences=True), merge_mode="sum"),
            keras.layers.Bidirectional(keras.layers.GRU(5), merge_mode="sum"),
        ]
    )
    assert keras_parameter_count("GRU", 4, [6, 5], 2, True, True, "sum") == model.count_params()
    text = explain_layer(4, [6, 5], 2, 3, 1, mode="GRU", bidirectional=True, merge_mode="sum")
    assert f"total: {model.count_params():,} parameters (keras" in text
    assert "Bidirectional(GRU(5), merge_mode='sum')" in text


def test_explain_prints_every_layers_sizes_and_its_note_holds(rng):
    text = explain_layer(3, [6, 4, 5], 3, 4, 2, bidirectional=True, proj_size=2)
    layer = lstmkit.LSTM(3, [6, 4, 5], 3, bidirectional=True, proj_size=2, dtype=F64, seed=0)
    output, (h_n, c_n) = layer(rng.standard_normal((4, 2, 3)))
    assert "H=[6, 4, 5], H_out=[2, 2, 2] (proj_size)" in text
    for k, (h, c) in enumerate(zip(h_n, c_n)):
        assert re.search(rf"h_n\[{k}\]\s+{re.escape(str(h.shape))}", text)
        assert re.search(rf"c_n\[{k}\]\s+{re.escape(str(c.shape))}", text)
    for k, size in enumerate([6, 4, 5]):
        assert f"layer {k} (input {3 if k == 0 else 4}, H={size})" in text
    assert f"total: {lstmkit.count_parameters(layer):,} parameters (torch" in text
    claims = re.findall(r"(h_n(?:\[[^\]]+\])+) equals (output\[[^\]]+\])", text)
    assert len(claims) == 2
    for state, expression in claims:
        np.testing.assert_array_equal(eval(state, {"h_n": h_n}), eval(expression, {"output": output}))


def test_cli_explains_per_layer_sizes_and_a_merge_mode(capsys):
    flags = ["--input-size", "3", "--hidden-size", "6,4", "--num-layers", "2", "--bidirectional"]
    assert main(["explain", *flags, "--merge-mode", "mul"]) == 0
    text = capsys.readouterr().out
    assert "lstmkit.LSTM(3, [6, 4], num_layers=2, bidirectional=True, merge_mode='mul')" in text
    assert "h_n[1]  (2, 1, 4)" in text and "output  (1, 1, 4)" in text
    assert main(["explain", "--input-size", "3", "--hidden-size", "6,4", "--num-layers", "3"]) == 2
    assert "hidden_size as a list must give one size per layer, num_layers=3, got 2 sizes [6, 4]" in (
        capsys.readouterr().err
    )


# ---- errors --------------------------------------------------------------------------------
CONSTRUCTOR_ERRORS = [
    (dict(recurrent_dropout=1.0), ValueError, r"recurrent_dropout must be in \[0, 1\), got 1.0 \(1 would zero"),
    (dict(recurrent_dropout=-0.1), ValueError, r"recurrent_dropout must be in \[0, 1\), got -0.1$"),
    (dict(recurrent_dropout="0.5"), TypeError, r"recurrent_dropout must be a number in \[0, 1\), got '0.5'"),
    (
        dict(hidden_size=[4, 5], num_layers=3),
        ValueError,
        r"hidden_size as a list must give one size per layer, num_layers=3, got 2 sizes \[4, 5\]",
    ),
    (dict(hidden_size=[4, 0], num_layers=2), ValueError, r"hidden_size\[1\] must be >= 1, got 0"),
    (dict(merge_mode="sum"), ValueError, r"merge_mode='sum' merges the two directions and needs bidirectional=True"),
    (dict(merge_mode="max", bidirectional=True), ValueError, r"merge_mode must be one of .*'ave', got 'max'"),
    (dict(forget_bias=1.0, bias=False), ValueError, r"forget_bias=1.0 .* needs bias=True, got bias=False"),
    (dict(forget_bias="1"), TypeError, r"forget_bias must be a finite number or None, got '1'"),
    (dict(forget_bias=float("inf")), ValueError, r"forget_bias must be a finite number, got inf"),
    (
        dict(hidden_size=[4, 6], num_layers=2, proj_size=4),
        ValueError,
        r"proj_size must be smaller than hidden_size=\[4, 6\] \(every layer's; the least is 4\), got 4",
    ),
]


@pytest.mark.parametrize("options,error,message", CONSTRUCTOR_ERRORS)
def test_constructor_errors_name_the_option_and_value(options, error, message):
    options = {"hidden_size": 4, **options}
    with pytest.raises(error, match="^LSTM: " + message):
        lstmkit.LSTM(3, **options)


def test_forget_bias_is_an_lstm_option():
    for layer_class in (lstmkit.GRU, lstmkit.RNN):
        owner = layer_class.__name__
        reason = rf"^{owner}: forget_bias is an LSTM option \({owner} has no forget gate\), got forget_bias=1.0$"
        with pytest.raises(ValueError, match=reason):
            layer_class(3, 4, forget_bias=1.0)
        assert layer_class(3, 4, forget_bias=None).forget_bias is None


def test_state_list_errors(rng):
    layer, x = lstmkit.LSTM(3, [4, 5], 2, dtype=F64), rng.standard_normal((5, 2, 3))
    h, c = [np.zeros((1, 2, 4)), np.zeros((1, 2, 5))], [np.zeros((1, 2, 4)), np.zeros((1, 2, 5))]
    with pytest.raises(ValueError, match=r"LSTM: h_0 must be a list of num_layers=2 arrays.*got list of length 1"):
        layer(x, (h[:1], c))
    with pytest.raises(ValueError, match=r"LSTM: c_0 must be a list of num_layers=2 arrays.*got one array"):
        layer(x, (h, np.zeros((2, 2, 5))))
    with pytest.raises(ValueError, match=r"LSTM: h_0\[1\] must have shape \(1, 2, 5\), got \(1, 2, 4\)"):
        layer(x, ([h[0], h[0]], c))
    with pytest.raises(TypeError, match=r"LSTM: hx must be a pair \(h_0, c_0\) of lists, got list of length 3"):
        layer(x, [h, c, c])
    gru = lstmkit.GRU(3, [4, 5], 2, dtype=F64)
    with pytest.raises(ValueError, match=r"GRU: h_0 must be a list of num_layers=2 arrays.*got one array"):
        gru(x, np.zeros((2, 2, 4)))
    output, h_n = gru(x, h)
    with pytest.raises(ValueError, match=r"GRU: dh_n\[0\] must have shape \(1, 2, 4\), got \(1, 2, 5\)"):
        gru.backward(output, [h[1], h[1]])


def test_padding_side_errors(rng):
    layer, x = lstmkit.GRU(3, 4), rng.standard_normal((5, 2, 3))
    with pytest.raises(ValueError, match=r"GRU: padding_side must be 'right' or 'left', got 'middle'"):
        layer(x, lengths=[5, 3], padding_side="middle")
    packed = lstmkit.pack_padded_sequence(x, [5, 3])
    with pytest.raises(TypeError, match=r"GRU: padding_side= goes with a padded array.*got padding_side='left'"):
        layer(packed, padding_side="left")
    with pytest.raises(ValueError, match=r"^GRU: padding_side='left' needs lengths= .*got lengths=None$"):
        layer(x, padding_side="left")
    output, _ = layer(x, padding_side="right")  # right padding without lengths: every sequence runs to T
    np.testing.assert_array_equal(output, layer(x)[0])
    with pytest.raises(ValueError, match=r"pack_padded_sequence: padding_side must be .*, got 'top'"):
        lstmkit.pack_padded_sequence(x, [5, 3], padding_side="top")
    with pytest.raises(ValueError, match=r"pad_packed_sequence: padding_side must be .*, got 'top'"):
        lstmkit.pad_packed_sequence(packed, padding_side="top")


def test_per_layer_lists_in_per_layer_helper_match_the_layers_format(rng):
    """The tests' own conversion: stacked and listed states give the same per-layer arrays."""
    stacked = make("LSTM", 3, 4, 2, bidirectional=True)
    parts = random_hx(stacked, 2, rng)
    layers = per_layer(stacked, parts)
    assert [a.shape for a in layers[1]] == [(2, 2, 4), (2, 2, 4)]
    np.testing.assert_array_equal(layers[1][0], parts[0][2:4])

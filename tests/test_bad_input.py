"""Bad input, walked through the public API and the command line in one place: every case
must raise a ValueError or TypeError (or print one line and exit non-zero) whose message
names the problem, and leave nothing half-written behind."""

import contextlib
import io

import pytest
import torch

import transformer_lite as tl
from transformer_lite.data import dates_vocab
from transformer_lite.helpers import seeded_randint, seeded_randn

D = 16


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return tl.make_model(
        20, 20, d_model=D, n_heads=2, d_ff=32, n_layers=1, max_len=64
    ).eval()


def ids(*shape, high=20):
    return seeded_randint(3, high, *shape, seed=0)


def x(*shape):
    return seeded_randn(*shape, seed=1)


CASES = {
    "d_model not divisible by n_heads": (
        lambda m: tl.MultiHeadAttention(510, 8),
        ValueError,
        "d_model=510 is not divisible by n_heads=8",
    ),
    "config: d_model not divisible": (
        lambda m: tl.make_model(10, 10, d_model=100, n_heads=8),
        ValueError,
        "d_model=100 is not divisible by n_heads=8",
    ),
    "float mask": (
        lambda m: tl.scaled_dot_product_attention(
            x(3, 4), x(3, 4), x(3, 4), mask=torch.ones(3, 3)
        ),
        TypeError,
        "mask must be a bool tensor .* got dtype torch.float32",
    ),
    "int mask": (
        lambda m: tl.MultiHeadAttention(D, 2)(
            x(1, 3, D),
            x(1, 3, D),
            x(1, 3, D),
            mask=torch.ones(3, 3, dtype=torch.long),
        ),
        TypeError,
        "got dtype torch.int64",
    ),
    "mask that does not broadcast": (
        lambda m: tl.scaled_dot_product_attention(
            x(2, 3, 4),
            x(2, 5, 4),
            x(2, 5, 4),
            mask=torch.ones(3, 4, dtype=torch.bool),
        ),
        ValueError,
        r"mask of shape \(3, 4\) does not broadcast .* \(2, 3, 5\)",
    ),
    "query/key width mismatch": (
        lambda m: tl.scaled_dot_product_attention(x(3, 8), x(5, 6), x(5, 6)),
        ValueError,
        "same last dimension d_k, got 8 and 6",
    ),
    "embedding width is not d_model": (
        lambda m: tl.MultiHeadAttention(D, 2)(
            x(1, 3, 12), x(1, 3, D), x(1, 3, D)
        ),
        ValueError,
        "query has 12 features but d_model=16",
    ),
    "sequence longer than the positional table": (
        lambda m: m(ids(1, 65), ids(1, 4)),
        ValueError,
        r"positions up to 65 do not fit the positional table \(max_len=64\)",
    ),
    "token id >= vocab size": (
        lambda m: m(ids(2, 5) + 20, ids(2, 4)),
        ValueError,
        r"token ids must be in \[0, 20\)",
    ),
    "negative token id": (
        lambda m: m(ids(2, 5), -ids(2, 4)),
        ValueError,
        r"token ids must be in \[0, 20\) .* got \[-",
    ),
    "float token ids": (
        lambda m: m(ids(2, 5).float(), ids(2, 4)),
        TypeError,
        "src must be a tensor of integer token ids, got torch.float32",
    ),
    "empty batch": (
        lambda m: m(ids(0, 5), ids(0, 4)),
        ValueError,
        r"src must have shape \(batch, length\), got \(0, 5\)",
    ),
    "source/target batch mismatch": (
        lambda m: m(ids(3, 5), ids(2, 4)),
        ValueError,
        "source and target batch sizes differ: 3 and 2",
    ),
    "tokens without a batch dimension": (
        lambda m: tl.padding_mask(torch.tensor([1, 2, 0]), 0),
        ValueError,
        r"tokens must have shape \(batch, length\)",
    ),
    "NaN logits in the loss": (
        lambda m: tl.label_smoothed_loss(
            torch.full((1, 2, 5), float("nan")),
            torch.ones(1, 2, dtype=torch.long),
            0.1,
            0,
        ),
        ValueError,
        "logits contain NaN or infinity",
    ),
    "bad causal mask size": (
        lambda m: tl.causal_mask(0),
        ValueError,
        "size must be a positive int",
    ),
    "unknown task": (
        lambda m: tl.TrainConfig(task="poetry"),
        ValueError,
        "unknown task 'poetry'",
    ),
    "zero steps": (
        lambda m: tl.TrainConfig(task="copy", steps=0),
        ValueError,
        "steps must be a positive int, got 0",
    ),
    "characters outside the vocabulary": (
        lambda m: dates_vocab().encode("27 ноября 2026"),
        ValueError,
        "characters not in the vocabulary: 'бноря'",
    ),
    "unknown model setting": (
        lambda m: tl.make_model(10, 10, heads=4),
        ValueError,
        r"unknown setting\(s\) \['heads'\]",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_with_a_clear_message(model, case):
    call, error, message = CASES[case]
    with pytest.raises(error, match=message):
        call(model)


def test_there_are_at_least_fifteen_kinds():
    assert len(CASES) >= 15


def test_files_that_are_not_checkpoints(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    with pytest.raises(
        ValueError, match="notes.txt is not a transformer_lite checkpoint"
    ):
        tl.load_checkpoint(text)
    torch.save({"state": 1}, tmp_path / "other.pt")
    with pytest.raises(
        ValueError, match="other.pt is not a transformer_lite checkpoint"
    ):
        tl.load_checkpoint(tmp_path / "other.pt")


def test_checkpoint_from_another_config(tmp_path):
    config = tl.TrainConfig(
        task="copy", steps=1, batch_size=8, warmup=1, eval_size=4
    )
    small = tl.Trainer(
        config, tl.small_model_config(d_model=16, d_ff=32), device="cpu"
    )
    small.save(tmp_path / "small.pt")
    wide = tl.Trainer(
        config, tl.small_model_config(d_model=32, d_ff=32), device="cpu"
    )
    with pytest.raises(
        ValueError,
        match=r"made for another model \(d_model: 16 there, 32 here",
    ):
        wide.load_state(
            tl.load_checkpoint(tmp_path / "small.pt"), source="small.pt"
        )


def test_failed_save_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    tl.save_checkpoint(path, {"step": 1})
    before = path.read_bytes()

    def crash(obj, file):
        file.write(b"partial")
        raise KeyboardInterrupt  # as if the process were stopped mid-write

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        tl.save_checkpoint(path, {"step": 2})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


CLI_CASES = {
    "unknown task": (
        ["train", "--task", "poetry", "--steps", "5", "--out", "x.pt"],
        "invalid choice: 'poetry'",
    ),
    "zero steps": (
        ["train", "--task", "copy", "--steps", "0", "--out", "x.pt"],
        "steps must be a positive int, got 0",
    ),
    "negative steps": (
        ["train", "--task", "copy", "--steps", "-2", "--out", "x.pt"],
        "steps must be a positive int, got -2",
    ),
    "unknown schedule": (
        ["train", "--task", "copy", "--schedule", "cosine", "--out", "x.pt"],
        "invalid choice: 'cosine'",
    ),
    "label smoothing out of range": (
        [
            "train",
            "--task",
            "copy",
            "--label-smoothing",
            "1.5",
            "--out",
            "x.pt",
        ],
        "label_smoothing must be in [0, 1), got 1.5",
    ),
    "missing checkpoint": (
        ["translate", "--checkpoint", "nowhere.pt", "27 mai 2026"],
        "no checkpoint at nowhere.pt",
    ),
    "not a checkpoint": (
        ["translate", "--checkpoint", "notes.txt", "27 mai 2026"],
        "notes.txt is not a transformer_lite checkpoint",
    ),
    "no command": ([], "the following arguments are required"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_cli_bad_input_is_one_line(tmp_path, monkeypatch, case):
    """`python -m transformer_lite ARGS` runs ``cli.main(ARGS)``: called here, in
    this process (tests/test_train.py runs the module as a program). An
    exception main lets through fails the test with its traceback."""
    from transformer_lite.cli import main

    (tmp_path / "notes.txt").write_text("hello")
    monkeypatch.chdir(tmp_path)
    args, message = CLI_CASES[case]
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code
    lines = stderr.getvalue().strip().splitlines()
    assert code not in (0, None), (code, stdout.getvalue())
    assert len(lines) == 1, stderr.getvalue()
    assert message in lines[0]
    assert not (tmp_path / "x.pt").exists()  # nothing written

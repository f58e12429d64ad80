"""Chapter 7: data generation, label smoothing, schedules, checkpoints and resume, the
command line, and DistributedDataParallel equivalence.

The command line is run in this process (``transformer_lite.cli.main``), which is what
``python -m transformer_lite`` calls; a few tests start real processes: the module run
as ``python -m``, under torchrun, and without the [train] extra."""

import contextlib
import datetime
import io
import json
import math
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from transformer_lite import (
    TrainConfig,
    Trainer,
    constant_lambda,
    label_smoothed_loss,
    linear_lambda,
    load_checkpoint,
    noam_lambda,
    save_checkpoint,
    small_model_config,
    smoothed_target_entropy,
)
from transformer_lite.data import (
    EOS,
    PAD,
    BatchStream,
    Vocab,
    copy_example,
    date_example,
    date_styles,
    dates_vocab,
    encode_batch,
    held_out_pairs,
    split_dates,
)
from transformer_lite.helpers import seeded_randint, seeded_randn


def tiny(task="copy", steps=12, dropout=0.1, **train):
    config = TrainConfig(
        task=task, steps=steps, warmup=3, eval_size=20, batch_size=16, **train
    )
    return Trainer(
        config,
        small_model_config(d_model=32, d_ff=64, dropout=dropout),
        device="cpu",
    )


@dataclass
class Ran:
    """What a command-line run left: its exit status, stdout and stderr."""

    returncode: int
    stdout: str
    stderr: str


def cli(*args: str) -> Ran:
    """`python -m transformer_lite ARGS`, in this process: ``cli.main(ARGS)``, with
    argparse's exits (--help, usage errors) caught as the status they give. An
    exception that main lets through fails the test with its traceback."""
    from transformer_lite.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:
            code = exit_.code
    return Ran(0 if code is None else code, out.getvalue(), err.getvalue())


def python_m(
    *args: str, env=None, timeout=300
) -> subprocess.CompletedProcess:
    """`python -m transformer_lite ARGS` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "transformer_lite", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        timeout=timeout,
    )


# data


def test_held_out_dates_are_disjoint_and_cover_the_range():
    train, test = split_dates(seed=0)
    assert not set(train) & set(test)
    assert (
        len(train) + len(test)
        == (datetime.date(2099, 12, 31) - datetime.date(1900, 1, 1)).days + 1
    )
    assert 0.09 < len(test) / (len(train) + len(test)) < 0.11
    assert (
        split_dates(seed=0) == (train, test)
        and split_dates(seed=1)[1] != test
    )


def test_test_set_uses_only_held_out_dates():
    held_out = {d.isoformat() for d in split_dates(0)[1]}
    assert all(
        target in held_out
        for _, target in held_out_pairs("dates", seed=0, n=500)
    )


def test_training_batches_never_use_held_out_dates():
    held_out = {d.isoformat() for d in split_dates(0)[1]}
    stream = BatchStream("dates", dates_vocab(), batch_size=64, seed=0)
    for step in range(0, 80, 7):
        assert not any(target in held_out for _, target in stream.pairs(step))


def test_copy_held_out_strings_never_appear_in_training():
    stream = BatchStream("copy", Vocab("abcdefghij"), batch_size=64, seed=0)
    training = {
        source for step in range(40) for source, _ in stream.pairs(step)
    }
    assert not training & {
        source for source, _ in held_out_pairs("copy", n=500)
    }


def test_batches_are_a_function_of_the_step():
    a = BatchStream("dates", dates_vocab(), batch_size=32, seed=3)
    b = BatchStream("dates", dates_vocab(), batch_size=32, seed=3)
    assert a.pairs(5) == b.pairs(5) and a.pairs(40) == b.pairs(40)
    assert a.pairs(5) != BatchStream(
        "dates", dates_vocab(), batch_size=32, seed=4
    ).pairs(5)
    first, second = (
        a.batch(7, rank=0, world_size=2),
        a.batch(7, rank=1, world_size=2),
    )
    whole = a.batch(7)
    assert (
        first[3] == second[3] == whole[3]
    )  # everyone knows the global token count
    assert first[0].size(0) == second[0].size(0) == 16


def test_date_sources_fit_the_vocabulary_and_length():
    vocab = dates_vocab()
    pairs = held_out_pairs("dates", seed=0, n=2000)
    assert max(len(source) for source, _ in pairs) <= 36
    encode_batch(pairs, vocab)  # every character is known


def test_numeric_styles_are_unambiguous_and_day_first_when_dotted():
    import random

    styles = date_styles()
    assert ("de", "medium") in styles
    date = datetime.date(2027, 11, 17)
    texts = set()
    rng = random.Random(0)
    for _ in range(400):
        text, target = date_example(date, rng, noise=False)
        assert target == "2027-11-17"
        texts.add(text)
    # dotted dates are day-first; slashed ones only ever year-first
    assert {"17.11.2027", "2027-11-17", "2027/11/17"} <= texts
    assert not any(t.endswith("/2027") for t in texts)


def test_encode_batch_shifts_and_pads():
    vocab = Vocab("ab")
    src, tgt_in, tgt_out = encode_batch([("ab", "b"), ("a", "ab")], vocab)
    a, b = vocab.encode("a")[0], vocab.encode("b")[0]
    assert src.tolist() == [[a, b], [a, PAD]]
    assert tgt_in.tolist() == [[1, b, PAD], [1, a, b]]
    assert tgt_out.tolist() == [[b, EOS, PAD], [a, b, EOS]]


def test_vocab_names_unknown_characters_and_decodes():
    vocab = dates_vocab()
    with pytest.raises(
        ValueError, match="characters not in the vocabulary: 'бноря'"
    ):
        vocab.encode("27 ноября")
    ids = vocab.encode("2026-11-27") + [EOS] + vocab.encode("99")
    assert vocab.decode(ids) == "2026-11-27"


def test_copy_example_rule():
    import random

    rng = random.Random(0)
    for held_out in (False, True):
        for _ in range(50):
            text, target = copy_example(rng, held_out=held_out)
            assert text == target and 4 <= len(text) <= 12
            assert (
                sum("abcdefghij".index(c) for c in text) % 10 == 0
            ) == held_out


# loss and schedules


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.25])
def test_label_smoothing_matches_cross_entropy(smoothing):
    logits = seeded_randn(3, 6, 11, seed=0) * 2
    target = seeded_randint(1, 11, 3, 6, seed=1)
    target[0, 3:] = PAD
    ours = label_smoothed_loss(logits, target, smoothing, pad_id=PAD)
    theirs = F.cross_entropy(
        logits.transpose(1, 2),
        target,
        ignore_index=PAD,
        label_smoothing=smoothing,
    )
    torch.testing.assert_close(ours, theirs)


def test_label_smoothing_target_distribution():
    logits = torch.zeros(1, 1, 4, requires_grad=True)
    label_smoothed_loss(logits, torch.tensor([[2]]), 0.2, pad_id=0).backward()
    # the gradient of cross-entropy is p - q: q = 0.8 on token 2 plus 0.05 everywhere
    torch.testing.assert_close(
        logits.grad[0, 0],
        torch.full((4,), 0.25) - torch.tensor([0.05, 0.05, 0.85, 0.05]),
    )


@pytest.mark.parametrize(
    ("size", "smoothing"), [(14, 0.1), (92, 0.1), (5, 0.3)]
)
def test_smoothed_target_entropy_is_the_lowest_loss(size, smoothing):
    floor = smoothed_target_entropy(size, smoothing)
    target = seeded_randint(0, size, 32, seed=0)
    q = torch.full((32, size), smoothing / size, dtype=torch.float64)
    q[torch.arange(32), target] += 1 - smoothing
    at_q = F.cross_entropy(q.log(), target, label_smoothing=smoothing)
    assert math.isclose(at_q.item(), floor, rel_tol=1e-9)
    for seed in range(5):  # any other prediction costs more
        logits = q.log() + 0.1 * seeded_randn(32, size, seed=seed).double()
        loss = F.cross_entropy(logits, target, label_smoothing=smoothing)
        assert loss.item() > floor
    assert smoothed_target_entropy(size, 0.0) == 0.0
    assert round(smoothed_target_entropy(14, 0.1), 3) == 0.547
    assert round(smoothed_target_entropy(92, 0.1), 3) == 0.769


def test_smoothed_target_entropy_refuses_bad_values():
    with pytest.raises(ValueError, match="vocab_size >= 2"):
        smoothed_target_entropy(1, 0.1)
    with pytest.raises(ValueError, match="0 <= smoothing < 1"):
        smoothed_target_entropy(10, 1.0)


def test_trainer_keeps_every_step_loss_and_resumes_it(tmp_path):
    trainer = tiny(steps=6).fit(progress=False, until=4)
    assert len(trainer.losses) == 4 and all(x > 0 for x in trainer.losses)
    trainer.save(tmp_path / "c.pt")
    resumed = Trainer.resume(tmp_path / "c.pt", device="cpu")
    assert resumed.losses == trainer.losses
    assert len(resumed.fit(progress=False).losses) == 6


def test_constant_schedule():
    factor = constant_lambda(10)
    assert factor(0) == 0.1 and factor(9) == 1.0 and factor(10_000) == 1.0
    trainer = tiny(schedule="constant")
    trainer.fit(progress=False)
    assert math.isclose(
        trainer.optimizer.param_groups[0]["lr"], trainer.config.lr
    )


def test_noam_schedule_values():
    factor = noam_lambda(512, 4000)
    for step in [1, 100, 4000, 10000]:
        expected = 512**-0.5 * min(step**-0.5, step * 4000**-1.5)
        assert math.isclose(factor(step - 1), expected, rel_tol=1e-12)
    assert (
        max(range(20000), key=factor) == 3999
    )  # the peak is at the end of warm-up


def test_noam_through_lambda_lr():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, noam_lambda(128, 10)
    )
    lrs = []
    for _ in range(30):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert max(lrs) == lrs[9] and math.isclose(lrs[9], 128**-0.5 * 10**-0.5)


def test_linear_schedule():
    factor = linear_lambda(10, 100)  # steps counted from 0, as LambdaLR does
    assert factor(0) == 0.1 and factor(9) == 1.0
    assert math.isclose(
        factor(54), (100 - 55 + 1) / (100 - 10 + 1)
    )  # step 55 of the decay
    assert factor(99) > 0  # the last step of the budget still learns
    assert factor(100) == 0.0 and factor(150) == 0.0


# checkpoints and resume


def test_resume_is_bit_identical(tmp_path):
    straight = tiny().fit(progress=False)
    interrupted = tiny().fit(progress=False, until=5)
    interrupted.save(tmp_path / "half.pt")
    resumed = Trainer.resume(tmp_path / "half.pt", device="cpu").fit(
        progress=False
    )
    assert resumed.step == straight.step == 12
    for (name, a), b in zip(
        straight.model.state_dict().items(),
        resumed.model.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b), name
    for a, b in zip(
        straight.optimizer.state_dict()["state"].values(),
        resumed.optimizer.state_dict()["state"].values(),
        strict=True,
    ):
        assert torch.equal(a["exp_avg"], b["exp_avg"])


def test_checkpoint_history_includes_its_own_step(tmp_path):
    tiny(steps=6, eval_every=3).fit(
        progress=False, out=tmp_path / "c.pt", until=3
    )
    state = load_checkpoint(tmp_path / "c.pt")
    assert state["step"] == 3 and [r["step"] for r in state["history"]] == [3]


def test_resume_with_a_new_budget_uses_the_new_schedule_at_once(tmp_path):
    trainer = tiny(steps=10)
    trainer.fit(progress=False, out=tmp_path / "c.pt")
    longer = Trainer.resume(tmp_path / "c.pt", steps=20, device="cpu")
    expected = longer.config.lr * linear_lambda(3, 20)(10)
    assert math.isclose(longer.optimizer.param_groups[0]["lr"], expected)


def test_checkpoint_file_mode_follows_the_umask(tmp_path):
    umask = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "c.pt", {"step": 1})
    finally:
        os.umask(umask)
    assert (tmp_path / "c.pt").stat().st_mode & 0o777 == 0o644


def test_checkpoint_holds_everything(tmp_path):
    trainer = tiny(steps=3).fit(progress=False, out=tmp_path / "c.pt")
    state = load_checkpoint(tmp_path / "c.pt")
    for key in [
        "model",
        "optimizer",
        "scheduler",
        "rng",
        "model_config",
        "train_config",
        "vocab",
        "step",
    ]:
        assert key in state
    assert state["step"] == 3 and state["vocab"] == trainer.vocab.chars


def test_failed_save_leaves_old_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"step": 1})
    before = path.read_bytes()

    def broken_save(obj, file):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "c.pt"
    ]  # no temporary file left


@pytest.mark.parametrize(
    "content",
    [b"not a checkpoint at all", b"", b"PK\x03\x04 broken zip"],
    ids=["text", "empty", "zip"],
)
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(
        ValueError, match="is not a transformer_lite checkpoint"
    ):
        load_checkpoint(path)


def test_foreign_torch_file_is_not_a_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(
        ValueError, match="is not a transformer_lite checkpoint"
    ):
        load_checkpoint(tmp_path / "other.pt")


def test_checkpoint_for_another_model_is_refused(tmp_path):
    tiny(steps=2).fit(progress=False, out=tmp_path / "c.pt")
    other = Trainer(
        TrainConfig(task="copy", steps=2),
        small_model_config(d_model=64, d_ff=64),
        device="cpu",
    )
    with pytest.raises(
        ValueError,
        match=r"was made for another model \(d_model: 32 there, 64 here",
    ):
        other.load_state(load_checkpoint(tmp_path / "c.pt"), source="c.pt")


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "poetry"}, "unknown task 'poetry'"),
        ({"steps": 0}, "steps must be a positive int, got 0"),
        ({"steps": -5}, "steps must be a positive int, got -5"),
        ({"schedule": "cosine"}, "schedule must be 'linear' or 'noam'"),
        ({"label_smoothing": 1.0}, r"label_smoothing must be in \[0, 1\)"),
    ],
)
def test_bad_train_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


# the command line


def one_line_error(result, code):
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_cli_help():
    result = cli("--help")
    assert (
        result.returncode == 0
        and "train" in result.stdout
        and "translate" in result.stdout
    )
    result = cli("train", "--help")
    assert result.returncode == 0 and "--task {copy,dates}" in result.stdout
    assert "--schedule {linear,noam,constant}" in result.stdout


def test_cli_train_then_translate(tmp_path):
    out = tmp_path / "copy.pt"
    result = cli(
        "train",
        "--task",
        "copy",
        "--steps",
        "20",
        "--out",
        str(out),
        "--d-model",
        "32",
        "--d-ff",
        "64",
        "--batch-size",
        "32",
        "--eval-every",
        "10",
        "--schedule",
        "constant",
        "--label-smoothing",
        "0.05",
    )
    assert result.returncode == 0, result.stderr
    assert "step    20" in result.stdout and out.exists()
    saved = load_checkpoint(out)["train_config"]
    assert (saved["schedule"], saved["label_smoothing"]) == ("constant", 0.05)
    result = cli("translate", "--checkpoint", str(out), "abc", "jjj")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    resumed = cli(
        "train",
        "--task",
        "copy",
        "--steps",
        "25",
        "--out",
        str(out),
        "--resume",
    )
    assert resumed.returncode == 0 and "step    25" in resumed.stdout, (
        resumed.stderr
    )
    again = cli(
        "train", "--task", "copy", "--out", str(out), "--resume"
    )  # keeps the budget
    assert again.returncode == 0 and "nothing to train" in again.stdout, (
        again.stderr
    )
    assert load_checkpoint(out)["train_config"]["steps"] == 25


def test_cli_reports_divergence_in_one_line(tmp_path):
    args = [
        "--d-model",
        "32",
        "--d-ff",
        "64",
        "--batch-size",
        "8",
        "--eval-every",
        "0",
    ]
    result = cli(
        "train",
        "--task",
        "copy",
        "--steps",
        "3",
        "--out",
        str(tmp_path / "x.pt"),
        "--lr",
        "1e30",
        *args,
    )
    assert "training diverged" in one_line_error(result, 1)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ["train", "--task", "poetry", "--steps", "5", "--out", "x.pt"],
            2,
            "invalid choice: 'poetry'",
        ),
        (
            ["train", "--task", "copy", "--steps", "0", "--out", "x.pt"],
            1,
            "steps must be a positive int, got 0",
        ),
        (
            ["train", "--task", "copy", "--steps", "-3", "--out", "x.pt"],
            1,
            "steps must be a positive int",
        ),
        (
            ["train", "--task", "copy", "--steps", "ten", "--out", "x.pt"],
            2,
            "invalid int value: 'ten'",
        ),
        (
            ["train", "--task", "copy"],
            2,
            "the following arguments are required: --out",
        ),
        (
            ["translate", "--checkpoint", "missing.pt", "27 novembre 2026"],
            1,
            "no checkpoint at missing.pt",
        ),
        (["fly"], 2, "invalid choice: 'fly'"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)  # x.pt and missing.pt: relative to here
    line = one_line_error(cli(*args), code)
    assert message in line
    assert not (tmp_path / "x.pt").exists()


TINY = ["--d-model", "16", "--d-ff", "32", "--n-heads", "2"]
TINY += ["--n-layers", "1", "--batch-size", "8"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny copy-task checkpoint, trained once through the command line for
    the tests that only translate with one (read, never written to)."""
    out = tmp_path_factory.mktemp("trained") / "copy.pt"
    args = ["train", "--task", "copy", "--steps", "3", "--out", str(out)]
    result = cli(*args, "--warmup", "2", "--eval-size", "20", *TINY)
    assert result.returncode == 0, result.stderr
    return out


def test_python_m_transformer_lite_runs(trained):
    """The module run as a program, in a process of its own: what every other
    command-line test calls in-process (cli.main) is what `python -m` runs."""
    result = python_m("translate", "--checkpoint", str(trained), "abc", "jj")
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2 and not result.stderr
    assert (
        result.stdout
        == cli("translate", "--checkpoint", str(trained), "abc", "jj").stdout
    )


def test_cli_refuses_files_that_are_not_checkpoints_and_unknown_characters(
    tmp_path, trained
):
    junk = tmp_path / "junk.pt"
    junk.write_text("hello")
    assert "is not a transformer_lite checkpoint" in one_line_error(
        cli("translate", "--checkpoint", str(junk), "x"), 1
    )
    line = one_line_error(
        cli("translate", "--checkpoint", str(trained), "abz!"), 1
    )
    assert "characters not in the vocabulary: '!z'" in line


# DistributedDataParallel


def test_ddp_two_processes_equal_one(tmp_path, monkeypatch):
    """Two processes under torchrun train the same weights as one. Both runs are
    on the CPU, the ranks joined by gloo: CUDA is hidden from them, since on a
    machine with one GPU two ranks would share it, which nccl refuses."""
    common = [
        "--task",
        "copy",
        "--steps",
        "4",
        "--d-model",
        "32",
        "--d-ff",
        "64",
        "--batch-size",
        "32",
        "--eval-every",
        "0",
        "--dropout",
        "0.0",
        "--eval-size",
        "10",
    ]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    single = cli("train", *common, "--out", str(tmp_path / "one.pt"))
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "transformer_lite",
            "train",
            *common,
            "--out",
            str(tmp_path / "two.pt"),
        ],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "CUDA_VISIBLE_DEVICES": "",
        },
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("step     4") == 1, ddp.stdout  # rank 0 reports
    one = load_checkpoint(tmp_path / "one.pt")["model"]
    two = load_checkpoint(tmp_path / "two.pt")["model"]
    # The key projection's bias is the exception: adding b to every key adds q·b to every
    # score of a row, which the softmax ignores, so its true gradient is exactly 0 and what
    # autograd returns is rounding noise (~1e-9). Adam divides by the noise's own size, so
    # the update is ±lr either way, and two runs that round differently disagree on it.
    noise_only = [name for name in one if name.endswith("w_k.bias")]
    assert (
        len(noise_only) == 6
    )  # 2 encoder self, 2 decoder self, 2 cross attentions
    for name in one:
        if name not in noise_only:
            torch.testing.assert_close(
                two[name], one[name], atol=1e-5, rtol=0, msg=name
            )
    assert not torch.equal(
        one["generator.weight"],
        Trainer(
            TrainConfig(task="copy", steps=4),
            small_model_config(d_model=32, d_ff=64),
            device="cpu",
        ).model.state_dict()["generator.weight"],
    )  # training moved the weights


# the package's split, the [train] extra, evaluation size, confidence

# runs commands of the command line, one after another in one process (each as
# `python -m transformer_lite` would: its __main__, sys.exit included), with some
# modules made impossible to import, as on a machine where the [train] extra
# (babel, tqdm) is not installed. Prints one JSON record per command.
WITHOUT = """
import contextlib, importlib.machinery, io, json, runpy, sys, traceback

class Block:  # finds the blocked modules, and fails to load them
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked}:
            return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {{spec.name!r}}")

    def exec_module(self, module):
        pass

sys.meta_path.insert(0, Block())
results = []
for argv in json.loads(sys.argv[1]):
    sys.argv[1:] = argv
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_module("transformer_lite", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exit_:
            code = 0 if exit_.code is None else exit_.code
        except BaseException:
            traceback.print_exc()
            code = "an uncaught exception"
    results.append({{"returncode": code, "stdout": out.getvalue(), "stderr": err.getvalue()}})
print(json.dumps(results))
"""


def cli_without(blocked, *commands: list[str]) -> list[Ran]:
    """Run each command in one process where the modules `blocked` cannot be
    imported; the Ran of each."""
    code = WITHOUT.format(blocked=set(blocked))
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(commands)],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [Ran(**record) for record in json.loads(done.stdout)]


@pytest.fixture(scope="module")
def without_train_extra(tmp_path_factory):
    """Three commands run without babel and tqdm: train the dates task (which
    needs babel), train the copy task with progress lines, translate with it."""
    folder = tmp_path_factory.mktemp("without")
    dates, copy = folder / "d.pt", folder / "c.pt"
    train_copy = [
        "train",
        "--task",
        "copy",
        "--steps",
        "4",
        "--out",
        str(copy),
    ]
    train_copy += ["--eval-size", "7", "--progress", "--warmup", "2", *TINY]
    ran = cli_without(
        {"babel", "tqdm"},
        [
            "train",
            "--task",
            "dates",
            "--steps",
            "2",
            "--out",
            str(dates),
            *TINY,
        ],
        train_copy,
        ["translate", "--checkpoint", str(copy), "abc"],
    )
    return dict(zip(["dates", "copy", "translate"], ran, strict=True)), folder


def test_dates_without_babel_is_one_line_naming_the_extra(
    without_train_extra,
):
    ran, folder = without_train_extra
    result = ran["dates"]
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        "error: the dates task needs babel, which is not installed: "
        'pip install "transformer_lite[train]"\n'
    )
    assert not (folder / "d.pt").exists()


def test_copy_trains_without_babel_or_tqdm_with_plain_progress(
    without_train_extra,
):
    ran, folder = without_train_extra
    result = ran["copy"]
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert "copy 4/4 loss=" in lines[-2] and lines[-1] == "evaluating 7/7"
    assert load_checkpoint(folder / "c.pt")["train_config"]["eval_size"] == 7
    # and translating needs neither
    result = ran["translate"]
    assert result.returncode == 0 and result.stdout.strip(), result.stderr


def test_evaluation_has_its_own_progress_and_size():
    trainer = tiny(steps=2)
    assert TrainConfig().eval_size == 500
    with pytest.raises(ValueError, match="eval_size"):
        TrainConfig(eval_size=0)
    import contextlib
    import io

    from transformer_lite import train

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        bar = train._progress_bar(30, desc="evaluating", enabled=False)
        bar.update(30)
    assert stderr.getvalue() == ""
    seen = []
    original = train.held_out_pairs

    def spy(task, seed, n):
        seen.append(n)
        return original(task, seed, n)

    train.held_out_pairs = spy
    try:
        trainer.fit(progress=False)
        trainer.evaluate(size=11)
    finally:
        train.held_out_pairs = original
    assert seen == [20, 11]  # the config's eval_size, then the one asked


def test_evaluation_is_a_small_fraction_of_a_short_run():
    """The run of the issue: 60 steps of the copy task at the default sizes.
    Every step costs the same, so its training time is 60 times the median of
    8 timed steps; the evaluation (500 held-out examples), timed after those 8,
    must take under a quarter of that. (A model that has learnt less ends its
    translations no sooner: evaluated after 8 steps, it costs no less.)"""
    import statistics
    import time

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = Trainer(TrainConfig(task="copy", steps=60), device="cpu")
        steps = []
        for step in range(1, 9):
            started = time.perf_counter()
            trainer.fit(progress=False, until=step)
            steps.append(time.perf_counter() - started)
        assert trainer.step == 8 and not trainer.history  # no evaluation yet
        started = time.perf_counter()
        trainer.evaluate()
        evaluation = time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)
    training = 60 * statistics.median(steps)
    assert evaluation < 0.25 * training, (evaluation, training)


def test_translate_with_confidence_is_the_mean_token_probability():
    from transformer_lite import translate, translate_with_confidence

    trainer = tiny(steps=6)
    model = trainer.model.eval()
    texts = ["abc", "jjjjjj", "a"]
    read = translate_with_confidence(model, trainer.vocab, texts, max_len=8)
    answers = translate(model, trainer.vocab, texts, max_len=8)
    assert [a for a, _ in read] == answers
    for text, (answer, confidence) in zip(texts, read, strict=True):
        src, tgt_in, tgt_out = encode_batch([(text, answer)], trainer.vocab)
        probs = model(src, tgt_in).softmax(-1)[0]  # (T, V)
        chosen = probs[torch.arange(len(tgt_out[0])), tgt_out[0]]
        expected = chosen.log().mean().exp().item()
        assert confidence == pytest.approx(expected, rel=1e-5)
        assert 0.0 < confidence <= 1.0


def test_cli_flags_low_confidence(trained):
    out = trained
    flagged = cli(
        "translate",
        "--checkpoint",
        str(out),
        "--min-confidence",
        "1.0",
        "abc",
        "ddd",
    )
    assert flagged.returncode == 0, flagged.stderr
    lines = flagged.stdout.splitlines()
    assert len(lines) == 2
    assert all("  (low confidence: 0." in line for line in lines)
    plain = cli(
        "translate",
        "--checkpoint",
        str(out),
        "--min-confidence",
        "0",
        "abc",
        "ddd",
    )
    assert "confidence" not in plain.stdout
    assert [line.split("  (")[0] for line in lines] == (
        plain.stdout.splitlines()
    )


def test_cli_version():
    import transformer_lite

    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == (
        f"python -m transformer_lite {transformer_lite.__version__}"
    )


def test_modules_hold_one_idea_each():
    import transformer_lite as tl
    from transformer_lite import cli as cli_module
    from transformer_lite import data

    for name in ("main", "describe", "noisy", "FIRST_DATE", "Vocab"):
        assert not hasattr(tl, name), name
    assert cli_module.main and cli_module.describe and data.noisy
    assert tl.Trainer.save.__doc__ and tl.Trainer.state.__doc__
    assert repr(Vocab("abc")) == (
        "Vocab(7 symbols: '<pad>', '<s>', '</s>', '<unk>', 'a', 'b', 'c')"
    )
    assert repr(dates_vocab()).startswith(
        f"Vocab({len(dates_vocab())} symbols: '<pad>', '<s>', '</s>', "
    ) and repr(dates_vocab()).endswith(", ...)")

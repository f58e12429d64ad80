"""The benchmark suite (benchmarks/): how it measures, its goals, its command line, and the
recorded run that the Performance appendix reads. Nothing here asserts a speed.

The command line is called in this process (``benchmarks.__main__.main``); one test runs
``python -m benchmarks`` as a program."""

import contextlib
import io
import json
import subprocess
import sys

import pytest
import torch

from benchmarks import suite
from benchmarks.__main__ import SECTIONS, goals, main, write_json
from benchmarks.measure import Timing, machine, peak_mib

CPU = torch.device("cpu")


def test_timing_summarises_runs():
    timing = Timing.of([0.3, 0.1, 0.2, 0.5, 0.4])
    assert (timing.median, timing.min, timing.max, timing.runs) == (
        0.3,
        0.1,
        0.5,
        5,
    )


def test_peak_mib_counts_the_most_held_at_once():
    def allocate():
        a = torch.empty(2 * 2**20)  # 8 MiB
        b = torch.empty(2**20)  # 4 MiB: 12 MiB held together
        del a, b
        torch.empty(2**20)  # 4 MiB, after the others were freed

    assert peak_mib(allocate, CPU) == pytest.approx(12, abs=0.5)


def test_peak_mib_ignores_what_existed_before():
    kept = [torch.empty(4 * 2**20)]  # 16 MiB allocated before the measurement
    assert peak_mib(
        lambda: kept.append(torch.empty(2**20)), CPU
    ) == pytest.approx(4, abs=0.5)


def test_peak_mib_frees_with_before_outside_the_count():
    # a tensor allocated while an earlier measurement was running (the profiler saw it)...
    kept = []
    assert peak_mib(
        lambda: kept.append(torch.empty(2 * 2**20)), CPU
    ) == pytest.approx(8, abs=0.5)

    def run():  # ...which the next call frees first, as a benchmark drops old gradients
        kept.clear()
        kept.append(torch.empty(2**20))

    def clear():
        kept.clear()

    # freed by `before`, it is not subtracted from the 4 MiB that the call allocates
    assert peak_mib(run, CPU, before=clear) == pytest.approx(4, abs=0.5)


def test_machine_line_names_torch_and_threads():
    info = machine(CPU, "fp32")
    assert (
        torch.__version__ in info["line"]
        and f"{torch.get_num_threads()} threads" in info["line"]
    )
    assert (
        info["torch_threads"] == torch.get_num_threads()
        and info["precision"] == "fp32"
    )


def test_decoding_benchmark_checks_its_sides_write_the_same_tokens():
    settings = suite.Settings(device=CPU, quick=True)
    results = suite.decoding(settings)
    (row,) = results["rows"]
    assert row["same_tokens"] and (row["batch"], row["new_tokens"]) == (1, 16)
    assert row["plain"]["seconds"]["runs"] == 5
    assert row["packed"]["ops_per_step"] < row["plain"]["ops_per_step"]
    assert results["stream_gbps"] > 0 and 0 < row["packed"]["floor_share"]
    long = results["long"]
    assert long["same_tokens"] and long["new_tokens"] == 32


def test_a_decoding_side_that_writes_other_tokens_is_refused(monkeypatch):
    real = suite._marian_generate

    def wrong(marian, src, new_tokens):
        tokens = real(marian, src, new_tokens)
        return torch.where(tokens == tokens[0, 0], 3, tokens)

    monkeypatch.setattr(suite, "_marian_generate", wrong)
    monkeypatch.setattr(suite, "long_generation", lambda settings: {})
    with pytest.raises(AssertionError, match="marian decoding wrote other"):
        suite.decoding(suite.Settings(device=CPU, quick=True))


def test_bytes_per_token_counts_what_a_step_reads():
    model = suite.tl.make_model(
        100, 90, d_model=16, n_heads=2, d_ff=32, n_layers=2
    )
    per_layer = 4 * (16 * 16 + 16) + 2 * (
        16 * 16 + 16
    )  # self q k v o, cross q o
    per_layer += (16 * 32 + 32) + (32 * 16 + 16) + 3 * 2 * 16  # ff, 3 norms
    generator = 16 * 90 + 90
    assert suite.bytes_per_token(model) == 4 * (2 * per_layer + generator)


def test_attention_core_sides_compute_the_same_function():
    q, k, v = (torch.randn(2, 3, 9, 8, dtype=torch.float64) for _ in range(3))
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(
        suite.attention_with_chapter1_softmax(q, k, v), expected
    )


def test_torch_baseline_model_runs_with_our_masks_convention():
    model = suite.TorchSeq2Seq(
        vocab=50, d_model=16, n_heads=2, n_layers=1, d_ff=32
    ).eval()
    src = torch.randint(1, 50, (3, 7))
    tgt = torch.randint(1, 50, (3, 5))
    logits = model(src, tgt)
    assert logits.shape == (3, 5, 50)
    # causal: changing a later target token does not change earlier positions
    changed = tgt.clone()
    changed[:, -1] = (changed[:, -1] % 49) + 1
    torch.testing.assert_close(model(src, changed)[:, :-1], logits[:, :-1])


def _results(
    speedup_small,
    speedup_base,
    share,
    peer,
    mha_ratios,
    mha_peaks,
    floor_share,
    vs_marian,
    long,
    make_test,
):
    def decoding_row(batch):
        row = {
            "config": "small",
            "batch": batch,
            "plain": {"vs_marian": 1.0},
            "packed": {"vs_marian": vs_marian, "tokens_per_s": 100.0},
        }
        if batch == 1:
            row["packed"]["floor_share"] = floor_share
            row["floor_tokens_per_s"] = 100.0 / floor_share
        return row

    return {
        "training": {
            "rows": [
                {
                    "config": "small",
                    "speedup": speedup_small,
                    "ours": {"ceiling_share": 0.2},
                },
                {
                    "config": "base",
                    "speedup": speedup_base,
                    "ours": {"ceiling_share": share},
                },
            ]
        },
        "peer": {"rows": [{"config": "small", "speedup": peer}]},
        "mha": {
            "rows": [
                {"L": length, "time_ratio": ratio, "ours": {"peak_mib": peak}}
                for length, ratio, peak in zip(
                    [256, 512, 1024], mha_ratios, mha_peaks, strict=True
                )
            ]
        },
        "decoding": {
            "rows": [decoding_row(1), decoding_row(32)],
            "long": {
                "new_tokens": 256,
                "speedup": long,
                "packed_speedup": long,
            },
        },
        "wall": {"make test": {"seconds": make_test, "exit_code": 0}},
    }


def test_goals_met():
    found = goals(
        _results(
            1.3,
            1.1,
            0.56,
            1.4,
            [0.8, 0.9, 0.95],
            [10, 20, 40],
            0.6,
            2.1,
            6.0,
            250,
        )
    )
    assert len(found) == 11 and all(g["met"] for g in found), found


def test_goals_missed():
    found = goals(
        _results(
            1.1,
            0.9,
            0.5,
            1.1,
            [0.8, 1.2, 0.9],
            [10, 40, 160],
            0.3,
            1.2,
            2.0,
            400,
        )
    )
    assert len(found) == 11 and not any(g["met"] for g in found), found


def test_write_json_leaves_old_file_when_it_fails(tmp_path):
    path = tmp_path / "results.json"
    write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})  # not JSON
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def _cli(*args, cwd, monkeypatch) -> subprocess.CompletedProcess:
    """`python -m benchmarks ARGS` run in cwd, in this process: main(ARGS), with
    argparse's exits caught as the status they give."""
    monkeypatch.chdir(cwd)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit_:
            code = exit_.code
    code = 0 if code is None else code
    return subprocess.CompletedProcess(
        args, code, out.getvalue(), err.getvalue()
    )


def test_python_m_benchmarks_runs(root):
    """The package run as a program, in a process of its own (refusing an
    argument, so that it measures nothing): main's exit status comes through."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--repeats", "3"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    assert "--repeats must be at least 5" in done.stderr


def test_cli_quick_run_writes_json(tmp_path, root, monkeypatch):
    out = tmp_path / "bench.json"
    done = _cli(
        "--quick",
        "--only",
        "matmul",
        "mha",
        "--out",
        str(out),
        cwd=root,
        monkeypatch=monkeypatch,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["quick"] and set(data["results"]) == {"matmul", "mha"}
    assert data["machine"]["line"] in done.stdout
    assert [r["L"] for r in data["results"]["mha"]["rows"]] == [64, 256]
    assert any("MultiHeadAttention" in g["goal"] for g in data["goals"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--repeats", "3"], "--repeats must be at least 5"),
        (["--device", "tpu"], "--device must be cpu or cuda"),
        (["--only", "everything"], "invalid choice"),
        (["--out", "."], "is a directory"),
        (
            ["--out", "pyproject.toml/results.json"],
            "cannot create or write files under",
        ),
    ],
)
def test_cli_refuses_bad_arguments(args, message, root, monkeypatch):
    done = _cli(*args, cwd=root, monkeypatch=monkeypatch)
    assert done.returncode == 2 and message in done.stderr, done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cli_refuses_cuda_without_a_gpu(root, monkeypatch):
    done = _cli("--device", "cuda", cwd=root, monkeypatch=monkeypatch)
    assert done.returncode == 2 and "no CUDA device" in done.stderr


def test_recorded_run_is_a_complete_run(root):
    """The book's Performance appendix reads this file: it must be a full run, every section
    measured with at least 5 runs per figure; wall times, when recorded, of passing commands.
    (`make bench-record` times `make test`, which runs this test on the previous record.)"""
    data = json.loads((root / "benchmarks/results/cpu.json").read_text())
    results = data["results"]
    assert not data["quick"] and set(SECTIONS) <= set(results) <= {
        *SECTIONS,
        "wall",
    }
    assert data["machine"]["line"] and data["machine"]["device"] == "cpu"
    assert [r["L"] for r in results["mha"]["rows"]] == [
        64,
        128,
        256,
        512,
        1024,
        2048,
        4096,
    ]
    assert {r["config"] for r in results["training"]["rows"]} == {
        "small",
        "base",
    }
    decoding = results["decoding"]
    assert {(r["config"], r["batch"]) for r in decoding["rows"]} == {
        ("small", 1),
        ("small", 32),
        ("base", 1),
        ("base", 32),
    }
    assert all(r["same_tokens"] for r in decoding["rows"])
    assert decoding["long"]["same_tokens"]
    assert decoding["long"]["new_tokens"] == 256
    assert {r["config"] for r in results["peer"]["rows"]} == {"small", "base"}
    runs = [r["seconds"]["runs"] for r in results["matmul"]["rows"]]
    runs += [
        r["ours"]["seconds"]["runs"] for r in results["training"]["rows"]
    ]
    assert min(runs) >= 5
    assert all(w["exit_code"] == 0 for w in results.get("wall", {}).values())
    assert data["goals"] == goals(results)


def test_goal_make_test_needs_a_passing_run():
    (found,) = goals(
        {"wall": {"make test": {"seconds": 100.0, "exit_code": 2}}}
    )
    assert not found["met"] and "exit code 2" in found["measured"]

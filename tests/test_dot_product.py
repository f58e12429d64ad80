"""Chapter 1's package code: softmax and unscaled dot-product attention, proven against
PyTorch, with shapes, batching, errors and device-independent random numbers."""

import pytest
import torch
import torch.nn.functional as F

from transformer_lite import check_qkv, dot_product_attention, softmax
from transformer_lite.helpers import get_device, seeded_randn, time_calls


def test_get_device_matches_availability():
    assert get_device().type == (
        "cuda" if torch.cuda.is_available() else "cpu"
    )


def test_seeded_randn_is_reproducible_and_seed_dependent():
    a = seeded_randn(3, 4, seed=0)
    torch.testing.assert_close(a, seeded_randn(3, 4, seed=0), rtol=0, atol=0)
    assert not torch.equal(a, seeded_randn(3, 4, seed=1))
    assert (
        a.shape == (3, 4)
        and a.dtype == torch.float32
        and a.device.type == "cpu"
    )


def test_seeded_randn_does_not_touch_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(2)
    torch.manual_seed(123)
    seeded_randn(5, seed=7)
    torch.testing.assert_close(torch.rand(2), expected, rtol=0, atol=0)


def test_seeded_randn_same_numbers_on_every_device():
    cpu = seeded_randn(2, 3, seed=5, dtype=torch.float64)
    moved = seeded_randn(
        2, 3, seed=5, device=get_device(), dtype=torch.float64
    )
    assert moved.dtype == torch.float64
    torch.testing.assert_close(moved.cpu(), cpu, rtol=0, atol=0)


@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_softmax_matches_torch(dim):
    s = seeded_randn(4, 5, 6, seed=1) * 10
    torch.testing.assert_close(softmax(s, dim=dim), torch.softmax(s, dim=dim))


def test_softmax_does_not_overflow():
    s = torch.tensor([[1000.0, 999.0, -1000.0], [-1e4, -1e4, -1e4]])
    out = softmax(s)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.softmax(s, dim=-1))
    torch.testing.assert_close(out.sum(-1), torch.ones(2))


def test_softmax_gradient_matches_torch():
    s1 = seeded_randn(3, 7, seed=2).requires_grad_()
    s2 = s1.detach().clone().requires_grad_()
    weights = seeded_randn(3, 7, seed=3)
    (softmax(s1) * weights).sum().backward()
    (torch.softmax(s2, -1) * weights).sum().backward()
    torch.testing.assert_close(s1.grad, s2.grad)


def test_attention_matches_torch_sdpa_without_scaling():
    q = seeded_randn(2, 3, 5, 8, seed=4)
    k = seeded_randn(2, 3, 7, 8, seed=5)
    v = seeded_randn(2, 3, 7, 6, seed=6)
    out, weights = dot_product_attention(q, k, v)
    assert out.shape == (2, 3, 5, 6) and weights.shape == (2, 3, 5, 7)
    expected = F.scaled_dot_product_attention(q, k, v, scale=1.0)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5))


def test_attention_equals_loop_over_queries():
    q, k, v = (
        seeded_randn(4, 3, seed=7),
        seeded_randn(6, 3, seed=8),
        seeded_randn(6, 2, seed=9),
    )
    out, _ = dot_product_attention(q, k, v)
    for t in range(4):
        w = torch.exp(k @ q[t]) / torch.exp(k @ q[t]).sum()
        torch.testing.assert_close(out[t], w @ v)


def test_attention_broadcasts_batch_dimensions():
    q = seeded_randn(
        2, 1, 4, 8, seed=10
    )  # one query set shared across 3 heads
    k = seeded_randn(1, 3, 5, 8, seed=11)
    v = seeded_randn(1, 3, 5, 8, seed=12)
    out, weights = dot_product_attention(q, k, v)
    assert out.shape == (2, 3, 4, 8) and weights.shape == (2, 3, 4, 5)


def test_each_query_is_independent_of_the_others():
    q, kv = seeded_randn(10, 4, seed=13), seeded_randn(12, 4, seed=14)
    full, _ = dot_product_attention(q, kv, kv)
    alone, _ = dot_product_attention(q[6:7], kv, kv)
    torch.testing.assert_close(alone[0], full[6])


def test_same_keys_other_values_same_weights():
    q, k = seeded_randn(3, 4, seed=15), seeded_randn(3, 4, seed=16)
    out_a, w_a = dot_product_attention(q, k, seeded_randn(3, 5, seed=17))
    out_b, w_b = dot_product_attention(q, k, seeded_randn(3, 5, seed=18))
    torch.testing.assert_close(w_a, w_b, rtol=0, atol=0)
    assert not torch.allclose(out_a, out_b)


def test_values_pass_on_what_keys_do_not_hold():
    # keys say where (one-hot positions), values say what (one-hot words):
    # the values are read back, while V = K returns the key, whatever is
    # stored
    where = torch.eye(4)
    queries = 10 * where
    answers = []
    for perm in [torch.tensor([2, 0, 3, 1]), torch.tensor([1, 3, 0, 2])]:
        what = torch.eye(4)[perm]
        out, _ = dot_product_attention(queries, where, what)
        assert torch.equal(out.argmax(-1), perm)
        v_is_k, _ = dot_product_attention(queries, where, where)
        answers.append(v_is_k)
        assert torch.equal(v_is_k.argmax(-1), torch.arange(4))
    torch.testing.assert_close(answers[0], answers[1], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("q_shape", "k_shape", "v_shape", "message"),
    [
        ((4, 8), (5, 6), (5, 6), "same last dimension d_k, got 8 and 6"),
        ((4, 8), (5, 8), (6, 8), "same length Lk, got 5 keys and 6 values"),
        ((8,), (5, 8), (5, 8), "query needs at least 2 dimensions"),
        ((4, 8), (8,), (5, 8), "key needs at least 2 dimensions"),
    ],
)
def test_bad_shapes_name_the_problem(q_shape, k_shape, v_shape, message):
    q, k, v = torch.zeros(q_shape), torch.zeros(k_shape), torch.zeros(v_shape)
    with pytest.raises(ValueError, match=message):
        check_qkv(q, k, v)
    with pytest.raises(ValueError, match=message):
        dot_product_attention(q, k, v)


def test_plot_attention_checks_labels():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from transformer_lite.helpers import plot_attention

    ax = plot_attention(torch.eye(2), ["a", "b"], ["c", "d"], title="t")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["c", "d"]
    with pytest.raises(
        ValueError,
        match=r"shape \(2, 2\) do not fit 3 query tokens and 2 key",
    ):
        plot_attention(torch.eye(2), ["a", "b", "c"], ["c", "d"])


def test_time_calls_takes_turns_after_warmup():
    calls = []
    times = time_calls(
        lambda: calls.append("f"),
        lambda: calls.append("g"),
        repeats=3,
        warmup=2,
    )
    # 2 warm-up rounds, then 3 timed rounds in turns, the order reversed every other round
    assert calls == ["f", "g"] * 2 + ["f", "g", "g", "f", "f", "g"]
    assert [len(t) for t in times] == [3, 3]
    assert all(s >= 0 for t in times for s in t)


def test_time_calls_measures_time():
    import time

    (slow,), (fast,) = (
        time_calls(lambda: time.sleep(0.02), repeats=1, warmup=0),
        time_calls(lambda: None, repeats=1, warmup=0),
    )
    assert slow[0] >= 0.02 > fast[0]


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((), {}, "at least one function"),
        ((print,), {"repeats": 0}, "repeats must be a positive int"),
        ((print,), {"warmup": -1}, "warmup must be an int >= 0"),
        ((print,), {"repeats": 2.5}, "repeats must be a positive int"),
    ],
)
def test_time_calls_refuses_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        time_calls(*args, **kwargs)


def test_plot_attention_without_matplotlib_names_the_extra(tmp_path):
    """Without matplotlib, plot_attention says which extra to install."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'matplotlib':\n"
        "            raise ImportError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import torch\n"
        "from transformer_lite.helpers import plot_attention\n"
        "try:\n"
        "    plot_attention(torch.ones(2, 2), ['a', 'b'], ['a', 'b'])\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        'plot_attention needs matplotlib: pip install "transformer_lite[plot]"'
    )

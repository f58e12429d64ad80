"""The recorded experiments (python -m experiments) run end to end on a tiny budget, so
the code behind the JSON a chapter reads cannot rot."""

import json

from experiments.ch7_controls import CONTROLS, record


def test_ch7_controls_record_end_to_end(tmp_path):
    out = tmp_path / "controls.json"
    result = record(
        out=out,
        steps=4,
        seeds=(0,),
        batch_size=8,
        eval_every=2,
        eval_size=4,
        final_eval_size=4,
        loss_every=2,
        device="cpu",
        model={"d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 1},
    )
    saved = json.loads(out.read_text())
    assert saved == json.loads(json.dumps(result))
    assert {run["name"] for run in saved["runs"]} == set(CONTROLS)
    for run in saved["runs"]:
        assert [step for step, _ in run["exact_match"]] == [2, 4]
        assert len(run["loss"]) == 2 and run["final_loss"] > 0
        assert 0.0 <= run["final_exact_match"] <= 1.0
    assert saved["recorded"] and saved["machine"]

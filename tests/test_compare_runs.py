"""`memgym.benchmarks.compare_runs`: several runs' held-out curves on one plot, finals in a table."""

from __future__ import annotations

import json

from memgym.benchmarks.compare_runs import final, held_out_curve, main, take_off


def _run(folder, successes, finished):
    folder.mkdir()
    lines = [{"step": 100 * (i + 1), "train/return": 0.0} for i in range(len(successes))]
    for line, s in zip(lines, successes):
        line["eval/success"] = s
    lines.insert(1, {"step": 150, "train/return": 0.1})  # an iteration without an evaluation
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    if finished:
        (folder / "eval.json").write_text(json.dumps(
            {"metrics": {"success": {"mean": successes[-1], "ci95": 0.05}}}))
        (folder / "baseline_levels.json").write_text(json.dumps({"oracle": 1.0}))
    return folder


def test_curves_tables_and_plot(tmp_path, capsys):
    a = _run(tmp_path / "seed0", [0.1, 0.4, 0.5], finished=True)
    b = _run(tmp_path / "seed1", [0.2, 0.9], finished=False)
    assert held_out_curve(a, "success") == [
        {"step": 100, "success": 0.1}, {"step": 200, "success": 0.4}, {"step": 300, "success": 0.5}]
    assert final(a, "success") == {"mean": 0.5, "ci95": 0.05}
    assert final(b, "success") is None
    out = tmp_path / "seeds.png"
    assert main([str(a), str(b), "--metric", "success", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| seed0 | 300 | never | 0.500 ± 0.050 |" in table
    assert "| seed1 | 200 | never | unfinished |" in table
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_take_off_is_where_a_window_of_evaluations_first_averages_the_level():
    points = [{"step": 10 * (i + 1), "success": s}
              for i, s in enumerate([0.0, 1.0, 0.0, 0.7, 0.8, 0.9, 0.9, 1.0])]
    # One lucky evaluation (step 20) does not count; 0.7+0.8+0.9+0.9+1.0 = 4.3 -> 0.86 does.
    assert take_off(points, "success") == 80
    assert take_off(points, "success", window=2) == 60  # (0.8 + 0.9) / 2 = 0.85, at step 60
    assert take_off(points, "success", level=0.95) is None
    assert take_off(points[:4], "success") is None  # fewer evaluations than the window

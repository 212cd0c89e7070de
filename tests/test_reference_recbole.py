"""bench/reference_recbole.py without its RecBole environment: arguments, the missing-data message, the data copy
RecBole reads, and resuming from kept results (nothing here builds .cache/recbole-venv)."""
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import reference_recbole as ref  # noqa: E402


@pytest.fixture
def no_venv(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("the RecBole environment was about to be built")
    monkeypatch.setattr(ref, "ensure_venv", refuse)


def _inter(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    path.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                    + "".join("\t".join(r) + "\n" for r in rows))
    return path


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as e:
        ref.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(flag in out for flag in ("--models", "--seeds", "--workdir", "--epochs", "--data"))


def test_missing_data_says_how_to_make_it(tmp_path, capsys, no_venv):
    missing = tmp_path / "ml-100k.inter"
    assert ref.main(["--data", str(missing), "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "make .cache/public/ml-100k/ml-100k.inter" in err


@pytest.mark.parametrize("argv, says", [
    (["--epochs", "0"], "--epochs 0: give a whole number of epochs >= 1"),
    (["--models", "BERT4Rec"], "invalid choice: 'BERT4Rec'"),
    (["--seeds", "42", "1", "42"], "--seeds 42 1 42: a seed is given twice"),
])
def test_bad_arguments_are_named(argv, says, capsys, no_venv):
    with pytest.raises(SystemExit) as e:
        ref.main(argv)
    assert e.value.code == 2 and says in capsys.readouterr().err


def test_timestamps_become_exact_ranks_in_file_order(tmp_path):
    src = _inter(tmp_path / "in.inter", [("7", "a", "5", "881250949"), ("7", "b", "3", "881250949"),
                                          ("9", "a", "4", "881250950"), ("9", "c", "1", "874724710")])
    data_path = ref.prepare_dataset(src, tmp_path / "w")
    out = (data_path / ref.DATASET / f"{ref.DATASET}.inter").read_text().splitlines()
    assert out == ["user_id:token\titem_id:token\ttimestamp:float", "7\ta\t1", "7\tb\t1", "9\ta\t2", "9\tc\t0"]


def test_a_file_without_timestamps_is_refused(tmp_path):
    src = tmp_path / "in.inter"
    src.write_text("user_id:token\titem_id:token\n7\ta\n")
    with pytest.raises(ValueError, match="timestamp:float.*make .cache/public/ml-100k/ml-100k.inter"):
        ref.prepare_dataset(src, tmp_path / "w")


def test_torch_comes_from_the_project_lock():
    lock = [line for line in (REPO / "requirements.lock").read_text().splitlines() if line.startswith("torch==")]
    assert [p for p in ref.pins() if p.startswith("torch==")] == lock


def _keep(workdir: Path, model: str, seed: int, ndcg: float, **extra) -> None:
    path = ref.result_path(workdir, model, seed, 300)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": model, "seed": seed, "settings": ref.settings(model), "best_epoch": 20,
                                "epochs_run": 31, "valid_ndcg@10": 0.07, "test": {"ndcg@10": ndcg, "hit@10": 0.15},
                                "train_targets": 97171, "epoch_s": 100.0, "targets_per_s": 971.71,
                                "to_best_s": 2100.0, **extra}))


def test_kept_results_are_reported_without_rerunning(tmp_path, capsys, no_venv):
    src = _inter(tmp_path / "in.inter", [("7", "a", "5", "1"), ("7", "b", "3", "2")])
    _keep(tmp_path, "Pop", 42, 0.02)
    for seed, ndcg in ((42, 0.07), (1, 0.08)):
        _keep(tmp_path, "GRU4Rec", seed, ndcg)
    assert ref.main(["--data", str(src), "--workdir", str(tmp_path), "--models", "GRU4Rec", "--seeds", "42", "1"]) == 0
    out = capsys.readouterr().out
    assert "GRU4Rec seed 1 (kept from an earlier run): test NDCG@10 0.0800" in out
    assert ("ml-100k reference GRU4Rec: test NDCG@10 0.0750 +- 0.0071 HR@10 0.1500 +- 0.0000 (2 seeds: 42 1); "
            "best epoch 20, 20; 100.0 s/epoch, 972 targets/s; time to best 2100, 2100 s") in out
    assert "ml-100k reference Pop    : test NDCG@10 0.0200 HR@10 0.1500 (1 seeds: 42)" in out


def test_a_result_kept_under_other_settings_is_run_again(tmp_path, no_venv):
    src = _inter(tmp_path / "in.inter", [("7", "a", "5", "1"), ("7", "b", "3", "2")])
    _keep(tmp_path, "Pop", 42, 0.02)
    _keep(tmp_path, "GRU4Rec", 42, 0.07, settings={**ref.settings("GRU4Rec"), "num_layers": 1})
    with pytest.raises(AssertionError, match="about to be built"):
        ref.main(["--data", str(src), "--workdir", str(tmp_path), "--models", "GRU4Rec", "--seeds", "42"])

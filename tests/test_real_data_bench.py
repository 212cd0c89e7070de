"""bench/real_data_bench.py's argument handling (the bench itself runs on the real file, outside `make test`)."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_a_missing_file_says_where_uci_publishes_it(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "real_data_bench.py"), "--online-retail",
                           str(tmp_path / "missing.csv.gz"), "--out", str(tmp_path / "out"), "--horizons", "90",
                           "--only", "decay", "profiles"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "archive.ics.uci.edu/dataset/352/online+retail" in proc.stderr and "missing.csv.gz" in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing started


def test_mean_and_spread_over_seeds():
    sys.path.insert(0, str(REPO / "bench"))
    from real_data_bench import mean_std

    assert mean_std([0.1, 0.3]) == "0.2000 +- 0.1414" and mean_std([0.25]) == "0.2500"
    assert mean_std([None, 0.5]) == "0.5000" and mean_std([]) == "n/a"

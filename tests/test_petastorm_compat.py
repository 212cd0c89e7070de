"""The shards stay Petastorm-readable: every train row read with make_batch_reader in the separate pinned
environment that `make test` builds (.venv-petastorm: pyarrow 14, numpy < 2, petastorm 0.13.1, no Ray)."""
import argparse
import json
import re
import subprocess
from pathlib import Path

import pytest

from interest_core.config import load_config
from interest_core.data_versions import resolve_data_dir
from interest.synthetic import generate
from spark_jobs.etl import run_etl

REPO = Path(__file__).resolve().parent.parent
PETASTORM_PY = REPO / ".venv-petastorm" / "bin" / "python"


def test_petastorm_reads_every_train_row(spark, tmp_path):
    if not PETASTORM_PY.exists():
        pytest.fail("missing .venv-petastorm: run `make test`, which builds it from tests/compat/")
    generate(tmp_path / "synth", users=300, items=200, days=30, events=8000, seed=5)
    args = argparse.Namespace(input=str(tmp_path / "synth"), format="synthetic", output=str(tmp_path / "data"),
                              items=None, column_map=None, ts_unit="auto", sep=None, hmac_key_file=None,
                              allow_insecure_demo_key=True)
    cfg = load_config("tiny-cpu")
    run_etl(spark, args, cfg)
    manifest = json.loads((resolve_data_dir(tmp_path / "data") / "manifest.json").read_text())
    proc = subprocess.run([str(PETASTORM_PY), str(REPO / "tests" / "compat" / "petastorm_read.py"),
                           (resolve_data_dir(tmp_path / "data") / "train").as_uri(), str(cfg.data.max_len + 1), "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = re.search(r"rows=(\d+) padded_ok=(\w+)", proc.stdout)
    assert m and int(m.group(1)) == manifest["rows"]["train"] and m.group(2) == "True", proc.stdout

"""Every flag of every command goes through the CLI's own parsing in some test, and reaches what it sets.

`--cutoff` was once broken for every user while its setting worked below the CLI; the flags below had no test that
parsed them, so each gets one here, and a meta-test keeps every flag of every command quoted in a test.
"""
import glob
import json
from pathlib import Path

import pytest

from interest.cli import build_parser, main

TESTS = Path(__file__).resolve().parent


def _parse(command: str, argv: list[str]):
    return build_parser(command).parse_args([command, *argv])


def test_generate_start():
    assert _parse("generate", ["--out", "o", "--start", "2024-02-01"]).start == "2024-02-01"


def test_etl_map_ts_unit_sep_and_max_len():
    from spark_jobs.etl import config_from_args
    from spark_jobs.ingest import parse_column_map

    a = _parse("etl", ["--input", "x", "--format", "generic", "--output", "o", "--map", "user_id=visitor,ts=time",
                       "--ts-unit", "ms", "--sep", ";", "--max-len", "20"])
    assert parse_column_map(a.column_map) == {"user_id": "visitor", "ts": "time"}
    assert (a.ts_unit, a.sep, config_from_args(a).data.max_len) == ("ms", ";", 20)


def test_etl_cold_users():
    from spark_jobs.etl import config_from_args

    a = _parse("etl", ["--input", "x", "--format", "generic", "--output", "o", "--cold-users", "0.2"])
    assert config_from_args(a).data.cold_users == 0.2
    with pytest.raises(ValueError, match="leave-one-out"):
        config_from_args(_parse("etl", ["--input", "x", "--format", "generic", "--output", "o", "--cold-users", "0.2",
                                        "--split", "time", "--cutoff", "2024-01-01", "--horizon-days", "7"]))


def test_train_max_failures():
    from ray_train.train import config_from_args

    a = _parse("train", ["--data", "d", "--output", "r", "--max-failures", "5", "--force"])
    assert config_from_args(a, {"config": {"data": {}}}).train.max_failures == 5 and a.force


def test_evaluate_latent_and_compare():
    a = _parse("evaluate", ["--run", "r", "--latent", "v", "--compare", "a", "--compare", "b"])
    assert (a.latent, a.compare) == ("v", ["a", "b"])


def test_export_segments_and_latent():
    a = _parse("export", ["--run", "r", "--output", "o", "--segments", "8", "--latent", "v"])
    assert (a.segments, a.latent) == ("8", "v")


def test_plan_gpu_flags_change_the_plan(capsys):
    assert main(["plan", "--config", "base", "--json"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert main(["plan", "--config", "base", "--json", "--train-sequences", "1000000", "--gpu-mem-gib", "40",
                 "--gpu-tflops", "989", "--mfu", "0.4"]) == 0
    tuned = json.loads(capsys.readouterr().out)
    t, m = tuned["time"], tuned["memory_gib_per_rank"]
    assert (t["train_sequences"], m["gpu_mem"], t["gpu_tflops"], t["mfu"]) == (1_000_000, 40.0, 989.0, 0.4)
    # 10x fewer sequences, ~3.2x the TFLOPs and 4/3 the MFU: the epoch is that much shorter
    ratio = default["time"]["seconds_per_epoch"] / t["seconds_per_epoch"]
    assert ratio == pytest.approx(10 * 989 / default["time"]["gpu_tflops"] * 0.4 / default["time"]["mfu"], rel=1e-6)


def _flags():
    parser = build_parser(None)
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return [(name, flag) for name, p in sub.choices.items() for a in p._actions for flag in a.option_strings
            if flag.startswith("--") and flag != "--help"]


@pytest.mark.parametrize("command,flag", _flags())
def test_every_flag_is_parsed_by_a_test(command, flag):
    quoted = f'"{flag}"'
    assert any(quoted in Path(f).read_text() for f in glob.glob(str(TESTS / "*.py"))), \
        f"`interest {command} {flag}` is parsed by no test: add one that goes through the CLI's parsing"

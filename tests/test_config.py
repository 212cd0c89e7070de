import json

import pytest

from interest_core.config import ConfigError, load_config


def test_presets_load_and_differ():
    tiny, base, large = (load_config(p) for p in ("tiny-cpu", "base", "large"))
    assert tiny.model.dim < base.model.dim < large.model.dim
    assert large.train.zero_stage == 3 and tiny.train.zero_stage == 2


def test_set_overrides_are_typed():
    cfg = load_config("tiny-cpu", ["train.lr=0.01", "eval.ks=[1, 5]", "eval.select=hr@5", "model.arch=hstu"])
    assert cfg.train.lr == 0.01 and cfg.eval.ks == [1, 5] and cfg.model.arch == "hstu"
    assert cfg.eval.select == "hr@5" and cfg.eval.select_k == 5


@pytest.mark.parametrize("overrides", [["eval.ks=[5, 20]"], ["eval.select=ndcg@7"], ["eval.select=auc@10"]])
def test_selection_metric_must_be_a_reported_metric(overrides):
    with pytest.raises(ConfigError, match=r"eval.select='[a-z]+@\d+' is not a reported metric; choose one of .*hr@5"):
        load_config("tiny-cpu", overrides)


def test_presets_ship_inside_the_package():
    from interest_core.config import preset_names
    assert {"base", "large", "tiny-cpu"} <= set(preset_names())


@pytest.mark.parametrize("override, match", [
    ("train.lrr=1", r"unknown config key 'train.lrr'; did you mean 'train.lr'"),
    ("modle.dim=3", r"unknown config key 'modle'.*did you mean 'model.dim'"),
    ("train.lr=-1", r"train.lr=-1.*greater than 0"),
    ("train.zero_stage=5", r"train.zero_stage=5"),
    ("lr", r"expected section.key=value"),
])
def test_bad_overrides_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config("tiny-cpu", [override])


def test_unknown_key_in_yaml_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("extends: tiny-cpu\ntrain:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"'train.epoch'; did you mean 'train.epochs'"):
        load_config(str(f))


def test_unknown_preset():
    with pytest.raises(ConfigError, match="did you mean 'tiny-cpu'"):
        load_config("tiny-cp")


def test_each_backbone_gets_its_recipe_unless_a_key_is_set():
    sasrec, hstu = load_config("base"), load_config("base", ["model.arch=hstu"])
    assert (sasrec.model.dropout, sasrec.model.norm, sasrec.model.ffn_mult, sasrec.train.adam_beta2) == (
        0.5, "post", 4, 0.999)
    assert (hstu.model.dropout, hstu.model.scale_embeddings, hstu.train.adam_beta2) == (0.2, True, 0.98)
    explicit = load_config("base", ["model.dropout=0.3", "model.norm=pre"])
    assert explicit.model.dropout == 0.3 and explicit.model.norm == "pre" and explicit.model.ffn_mult == 4


@pytest.mark.parametrize("cutoff", ["2024-03-31", "2024-03-31T00:00:00", "2024-03-31T02:00:00+02:00",
                                    "2024-03-31 00:00:00Z"])
def test_etl_cutoff_flag_accepts_dates_times_and_offsets(cutoff):
    """YAML reads `2024-03-31` as a date; every ISO form reaches the config as text and means the same instant."""
    from interest.cli import build_parser
    from spark_jobs.etl import config_from_args

    args = build_parser("etl").parse_args(["etl", "--input", "x", "--format", "generic", "--output", "o", "--split",
                                           "time", "--cutoff", cutoff, "--horizon-days", "30"])
    d = config_from_args(args).data
    assert (d.split, d.cutoff_ts, d.horizon_s) == ("time", 1711843200, 30 * 86400)


@pytest.mark.parametrize("overrides, match", [
    (["data.split=time"], r"data.split=time needs data.cutoff; e.g. --split time --cutoff 2024-03-31"),
    (["data.split=time", "data.cutoff=31/03/2024"], r"cutoff '31/03/2024' is not an ISO date or time"),
])
def test_time_split_config_errors_name_the_fix(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config("tiny-cpu", overrides)


def test_export_segments_is_a_positive_number_or_auto():
    from interest_core.export_config import ExportConfig

    assert ExportConfig(segments="auto").segments == "auto" and ExportConfig(segments=4).segments == 4
    for bad in (0, -2, "many"):
        with pytest.raises(ValueError, match="segments"):
            ExportConfig(segments=bad)


def test_credentials_in_uris_are_redacted_wherever_a_config_is_written():
    from interest_core.config import redact_uri, redacted

    assert redact_uri("https://alice:s3cret@mlflow.example.com:5000/x") == "https://***@mlflow.example.com:5000/x"
    assert redact_uri("s3://AKIA:key@bucket/path") == "s3://***@bucket/path"
    assert redact_uri("http://mlflow:5000") == "http://mlflow:5000" and redact_uri("a@b.c") == "a@b.c"
    cfg = load_config("tiny-cpu", ["train.mlflow_tracking_uri=https://alice:s3cret@mlflow.example.com"]).to_dict()
    out = redacted(cfg)
    assert "s3cret" not in json.dumps(out) and out["train"]["mlflow_tracking_uri"] == "https://***@mlflow.example.com"
    assert "s3cret" in json.dumps(cfg)  # the run itself keeps what it needs to connect

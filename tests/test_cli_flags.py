"""Every flag of every command goes through that command's parsing in some test, and reaches what it sets.

`--cutoff` was once broken for every user while its setting worked below the CLI; the flags below had no test that
parsed them, so each gets one here. A meta-test keeps every (command, flag) pair in the argv of some test FOR THAT
COMMAND: `interest train --set` in a test does not count for `interest plan --set`.
"""
import argparse
import ast
import json
import re
from pathlib import Path

import pytest

from interest.cli import build_parser, main

TESTS = Path(__file__).resolve().parent


def _parse(command: str, argv: list[str]):
    return build_parser(command).parse_args([command, *argv])


def test_generate_flags_reach_the_generator(tmp_path, capsys):
    assert main(["generate", "--out", str(tmp_path), "--users", "50", "--items", "40", "--events", "800", "--days",
                 "10", "--seed", "3", "--start", "2024-02-01"]) == 0
    params = json.loads((tmp_path / "generator.json").read_text())["params"]
    assert {k: params[k] for k in ("users", "items", "events", "days", "seed", "start")} == \
        {"users": 50, "items": 40, "events": 800, "days": 10, "seed": 3, "start": "2024-02-01"}


def test_etl_map_ts_unit_sep_and_max_len():
    from spark_jobs.etl import config_from_args
    from spark_jobs.ingest import parse_column_map

    a = _parse("etl", ["--input", "x", "--format", "generic", "--output", "o", "--map", "user_id=visitor,ts=time",
                       "--ts-unit", "ms", "--sep", ";", "--max-len", "20"])
    assert parse_column_map(a.column_map) == {"user_id": "visitor", "ts": "time"}
    assert (a.ts_unit, a.sep, config_from_args(a).data.max_len) == ("ms", ";", 20)


def test_etl_items_hmac_key_file_and_master(tmp_path, monkeypatch):
    from spark_jobs import etl
    from spark_jobs.pseudonymize import load_key

    for name, text in (("events.csv", "user_id,item_id,ts\n"), ("items.csv", "item_id\n"), ("key", "k" * 32 + "\n")):
        (tmp_path / name).write_text(text)
    a = _parse("etl", ["--input", str(tmp_path / "events.csv"), "--format", "generic", "--output", "o", "--items",
                       str(tmp_path / "items.csv"), "--hmac-key-file", str(tmp_path / "key"), "--master", "local[1]"])
    assert etl.input_fingerprints(a)["items"]["path"] == str(tmp_path / "items.csv")
    assert load_key(a.hmac_key_file, a.allow_insecure_demo_key) == (b"k" * 32, f"file:{tmp_path / 'key'}")
    asked = []
    monkeypatch.setattr(etl, "get_spark", lambda *args: asked.append(args))
    etl.get_spark_for(etl.config_from_args(a), a.master)
    assert asked[0][3] == "local[1]"


def test_etl_fingerprints_its_input_once_per_run(tmp_path, monkeypatch, capsys):
    """`interest etl` lists the input's files once, before Spark starts (a missing input fails there); the manifest
    records that listing. Spark and the job itself are stand-ins here: only the run's bookkeeping is under test."""
    from types import SimpleNamespace

    from interest_core.data_versions import resolve_data_dir
    from spark_jobs import etl

    (tmp_path / "events.csv").write_text("user_id,item_id,ts\nu1,i1,1700000000\n")
    listed, fingerprint = [], etl._fingerprint
    monkeypatch.setattr(etl, "_fingerprint", lambda path, *flag: listed.append(path) or fingerprint(path, *flag))
    monkeypatch.setattr(etl, "get_spark_for", lambda cfg, master=None: SimpleNamespace(stop=lambda: None))
    counts = {"rows_in": 1, "rows_quarantined": 0, "rows_deduplicated": 0, "users": 1}
    monkeypatch.setattr(etl, "_build", lambda *a: {"counts": counts, "rows": {"train": 1, "valid": 1, "test": 1}})
    assert main(["etl", "--input", str(tmp_path / "events.csv"), "--format", "generic", "--output",
                 str(tmp_path / "out"), "--config", "tiny-cpu", "--allow-insecure-demo-key"]) == 0
    assert listed == [str(tmp_path / "events.csv")]
    assert json.loads((resolve_data_dir(tmp_path / "out") / "manifest.json").read_text())["input"]["files"] == 1
    capsys.readouterr()


def test_etl_cold_users():
    from spark_jobs.etl import config_from_args

    a = _parse("etl", ["--input", "x", "--format", "generic", "--output", "o", "--cold-users", "0.2"])
    assert config_from_args(a).data.cold_users == 0.2
    with pytest.raises(ValueError, match="leave-one-out"):
        config_from_args(_parse("etl", ["--input", "x", "--format", "generic", "--output", "o", "--cold-users", "0.2",
                                        "--split", "time", "--cutoff", "2024-01-01", "--horizon-days", "7"]))


def test_train_model_workers_zero_stage_max_failures_and_address():
    from ray_train.train import config_from_args

    a = _parse("train", ["--data", "d", "--output", "r", "--model", "hstu", "--workers", "3", "--zero-stage", "3",
                         "--max-failures", "5", "--address", "auto", "--force"])
    cfg = config_from_args(a, {"config": {"data": {}}})
    assert (cfg.model.arch, cfg.train.workers, cfg.train.zero_stage, cfg.train.max_failures) == ("hstu", 3, 3, 5)
    assert a.address == "auto" and a.force


def test_evaluate_data_latent_and_compare():
    a = _parse("evaluate", ["--run", "r", "--data", "d", "--latent", "v", "--compare", "a", "--compare", "b"])
    assert (a.data, a.latent, a.compare) == ("d", "v", ["a", "b"])


def test_export_top_k_segments_latent_and_address():
    a = _parse("export", ["--run", "r", "--output", "o", "--top-k", "50", "--segments", "8", "--latent", "v",
                          "--address", "auto"])
    assert (a.top_k, a.segments, a.latent, a.address) == (50, "8", "v", "auto")


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


def test_plan_set_changes_the_planned_config(capsys):
    assert main(["plan", "--config", "base", "--json"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert main(["plan", "--config", "base", "--json", "--set", "train.zero_stage=3",
                 "--set", "train.micro_batch_size=64"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert (default["parallel"]["zero_stage"], default["parallel"]["micro_batch"]) == (2, 128)
    assert (planned["parallel"]["zero_stage"], planned["parallel"]["micro_batch"]) == (3, 64)
    # half the micro-batch: half the activations and half the seconds a step
    mem, default_mem = planned["memory_gib_per_rank"], default["memory_gib_per_rank"]
    assert mem["activations"] == pytest.approx(default_mem["activations"] / 2, rel=1e-9)
    assert planned["time"]["seconds_per_step"] == pytest.approx(default["time"]["seconds_per_step"] / 2, rel=1e-9)


def test_demo_config_model_and_set_reach_the_etl_and_both_trainings(tmp_path, monkeypatch, capsys):
    """`interest demo` with every stage recorded instead of run (no Spark, no Ray): what each stage was handed."""
    import interest.synthetic
    from interest import evaluate, export, report
    from interest_core.config import load_config
    from ray_train import train
    from spark_jobs import etl

    calls = []

    def record(name):
        return lambda *a, **kw: calls.append((name, a[0])) or 0

    for module, attr in ((interest.synthetic, "generate"), (etl, "run"), (train, "run"), (evaluate, "run"),
                         (export, "run"), (report, "write_report")):
        monkeypatch.setattr(module, attr, record(f"{module.__name__.split('.')[-1]}.{attr}"))
    assert main(["demo", "--out", str(tmp_path / "demo"), "--config", "base", "--model", "hstu",
                 "--set", "train.lr=0.002"]) == 0
    staged = {}
    for name, arg in calls:
        staged.setdefault(name, []).append(arg)
    assert load_config("base").train.lr != 0.002  # the --set, not the preset, gives 0.002 below
    (etl_args,) = staged["etl.run"]
    assert etl_args.config == "base" and etl.config_from_args(etl_args).train.lr == 0.002
    sequence, latent = (train.config_from_args(a, {"config": {"data": {}}}) for a in staged["train.run"])
    assert (sequence.model.arch, latent.model.arch) == ("hstu", "vae")
    assert sequence.train.lr == latent.train.lr == 0.002


# The meta-test reads the tests' sources (ast), not a record of what a test session parsed: a session parses only
# what it selected, and the `interest` subprocesses (the demo, the jobs) parse where no hook of this process sees.
# An argv is a list, after name lookup (BASE + [...], [interest, *base, ...]), whose first word is a command or whose
# command follows the CLI itself (`interest`, `.../interest`, `-m interest.cli`, top-level `--verbose` aside); or a
# call's (COMMAND, [...]) arguments, as in _parse("etl", [...]). Only the words after the command count for it.
_CLI = re.compile(r"""(^|[^\w.])interest(\.cli)?['")]*$""")


def _flags() -> dict[str, set[str]]:
    parser = build_parser(None)
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: {f for a in p._actions for f in a.option_strings if f.startswith("--") and f != "--help"}
            for name, p in sub.choices.items()}


FLAGS = _flags()


def _words(node: ast.AST, names: dict) -> list[tuple[str | None, str]] | None:
    """The words an argv expression builds, each (its string or None, its source); None: not a list of words."""
    if isinstance(node, ast.List):
        out = []
        for e in node.elts:
            inner = _words(e.value, names) if isinstance(e, ast.Starred) else None
            const = isinstance(e, ast.Constant) and isinstance(e.value, str)
            out += inner if inner is not None else [(e.value if const else None, e.value if const else ast.unparse(e))]
        return out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _words(node.left, names), _words(node.right, names)
        return left + right if left is not None and right is not None else None
    return names.get(node.id) if isinstance(node, ast.Name) else None


def _command_argv(words: list[tuple[str | None, str]]) -> tuple[str, list[str]] | None:
    for i, (word, _) in enumerate(words):
        before = [src for w, src in words[:i] if w != "--verbose"]
        if word in FLAGS and (not before or _CLI.search(before[-1])):
            return word, [w for w, _ in words[i + 1:] if w is not None]
    return None


def parsed_pairs(source: str) -> set[tuple[str, str]]:
    """(command, flag) for each flag in an argv of that command in the source."""
    tree, argvs = ast.parse(source), []
    module_names: dict = {}
    for scope in [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]:
        names = dict(module_names)
        body = scope.body if scope is tree else list(ast.walk(scope))
        for st in sorted((n for n in body if isinstance(n, (ast.Assign, ast.AugAssign))), key=lambda n: n.lineno):
            target = st.targets[0] if isinstance(st, ast.Assign) else st.target
            value = st.value if isinstance(st, ast.Assign) else ast.BinOp(st.target, ast.Add(), st.value)
            got = _words(value, names) if isinstance(target, ast.Name) else None
            if got is not None:
                names[target.id] = got
        if scope is tree:
            module_names = names
        for node in ast.walk(scope):
            if isinstance(node, (ast.List, ast.BinOp)):
                argvs.append(_command_argv(_words(node, names) or []))
            elif isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[0], ast.Constant) \
                    and node.args[0].value in FLAGS and _words(node.args[1], names) is not None:
                argvs.append((node.args[0].value, [w for w, _ in _words(node.args[1], names) if w is not None]))
    return {(command, flag) for command, words in filter(None, argvs) for word in words for flag in FLAGS[command]
            if word == flag or word.startswith(flag + "=")}


def test_the_scan_keys_each_flag_by_the_command_that_parses_it():
    source = '''
BASE = ["pipeline", "--config", "tiny-cpu"]
def test_x(tmp_path):
    main(["train", "--data", "d", "--set", "a=b"])
    main(BASE + ["--redo", "train"])
    main(["--verbose", "plan", "--json"])
    base = ["etl", "--format", "generic"]
    subprocess.run([str(venv / "bin" / "interest"), *base, "--items", "i.csv"])
    subprocess.run([sys.executable, "-m", "interest.cli", "export", "--top-k=5"])
    _parse("evaluate", ["--data", "d"])
    flags = ["--gpus", "4", "--set", "x=y"]  # no command: counts for none
    parser.parse_args(["--workers", "2"])  # a bare parser, not the CLI's
    subprocess.run(["ray", "job", "submit", "--", "python", "-m", "other", "demo", "--model", "hstu"])
'''
    assert parsed_pairs(source) == {("train", "--data"), ("train", "--set"), ("pipeline", "--config"),
                                    ("pipeline", "--redo"), ("plan", "--json"), ("etl", "--format"),
                                    ("etl", "--items"), ("export", "--top-k"), ("evaluate", "--data")}


_PARSED = set().union(*(parsed_pairs(f.read_text()) for f in sorted(TESTS.glob("*.py"))))


@pytest.mark.parametrize("command,flag", sorted((c, f) for c, fs in FLAGS.items() for f in fs))
def test_every_flag_is_parsed_by_a_test(command, flag):
    assert (command, flag) in _PARSED, (
        f"`interest {command} {flag}` is in no test's argv for `{command}` (a flag in another command's argv does "
        f"not count): add a test that parses it through the CLI, e.g. main([\"{command}\", ..., \"{flag}\", ...]) "
        f"or build_parser(\"{command}\").parse_args([\"{command}\", ..., \"{flag}\", ...]), and checks what it sets")

"""The layering holds: import-linter's contracts, workers that import no pyspark, a CLI that parses lazily, and
package data that a wheel install finds (README: Architecture)."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

_BLOCKER = """
import sys
class _Block:
    def __init__(self, names): self.names = names
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, _Block(set({blocked!r})))
"""


def _run_blocked(blocked: set[str], code: str) -> subprocess.CompletedProcess:
    script = _BLOCKER.replace("{blocked!r}", repr(sorted(blocked))) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_import_contracts_are_kept():
    proc = subprocess.run([str(VENV_BIN / "lint-imports")], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_training_workers_import_no_pyspark():
    proc = _run_blocked({"pyspark"}, """
        import ray_train.train, ray_train.loop, ray_train.data, ray_train.engine, ray_train.models.saved
        import interest_core.baselines, interest_core.scoring, interest_core.batches
        print("imported", "pyspark" in sys.modules)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "imported False"


def test_planner_runs_without_torch_ray_or_pyspark():
    proc = _run_blocked({"torch", "ray", "pyspark", "deepspeed"}, """
        from interest.cli import main
        sys.exit(main(["plan", "--config", "large", "--num-items", "4000000", "--gpus", "16", "--json"]))
    """)
    assert proc.returncode == 0, proc.stderr
    assert '"params"' in proc.stdout


def test_top_level_help_imports_no_heavy_library():
    proc = _run_blocked({"torch", "ray", "pyspark", "deepspeed", "matplotlib"}, """
        from interest.cli import main
        try:
            main(["--help"])
        except SystemExit as e:
            assert e.code == 0
    """)
    assert proc.returncode == 0, proc.stderr
    for name in ("demo", "generate", "etl", "train", "evaluate", "report", "export", "plan"):
        assert name in proc.stdout


def test_every_help_example_parses():
    """Each command's --help example is accepted by that command's parser (flags exist, values type-check)."""
    import shlex

    from interest.cli import COMMANDS, build_parser

    for name, (_, _, example) in COMMANDS.items():
        argv = [w for w in shlex.split(example) if "=" not in w or w.startswith("-")]
        assert argv[0] == "interest", example
        args = build_parser(name).parse_args(argv[1:])
        assert args.command == name


def test_every_readme_command_parses():
    """Each `interest ...` line of the README's code blocks is accepted by that command's parser."""
    import re
    import shlex

    from interest.cli import COMMANDS, build_parser

    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```\n(.*?)```", text, flags=re.S)
    # a command continued with a trailing backslash is one command
    lines = [ln.split("  #")[0].strip() for b in blocks for ln in b.replace("\\\n", " ").splitlines()]
    found = [re.search(r"(?:^|\s)(interest (?:--verbose )?(\w+).*)$", ln) for ln in lines]
    commands = [(m.group(1), m.group(2)) for m in found if m and m.group(2) in COMMANDS]
    assert len(commands) >= 10, commands
    for line, name in commands:
        args = build_parser(name).parse_args(shlex.split(line)[1:])
        assert args.command == name, line


@pytest.mark.slow
def test_wheel_install_finds_its_package_data(tmp_path):
    """Build the wheel, install it with --no-deps into a fresh venv that sees .venv's packages (no downloads), and run
    commands from outside the checkout: presets and DeepSpeed JSON come from the installed package."""
    import shutil

    # Built from a copy: setuptools leaves build/ beside the sources, and a stale build/ would leak into wheels.
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv*", ".git", ".cache", "build", "*.egg-info",
                                                              "__pycache__", "demo_out", "runs", "out"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("interest_trainer-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    # .venv's site-packages after the venv's own: its editable hook of this checkout is a .pth there, which a
    # path added by a .pth line does not run, so `interest` resolves to the installed wheel only.
    (site / "dotvenv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    py = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(py), "-c", "import interest_core, ray_train; print(interest_core.__file__, "
                            "ray_train.__file__)"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert where.returncode == 0 and str(REPO) not in where.stdout and str(venv) in where.stdout, where
    plan = subprocess.run([str(venv / "bin" / "interest"), "plan", "--config", "tiny-cpu", "--num-items", "5000",
                           "--events", "1e9"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert plan.returncode == 0 and "memory_gib_per_rank.total" in plan.stdout, plan.stderr
    assert "etl.hours" in plan.stdout  # the ETL calibration is package data
    demo = subprocess.run([str(venv / "bin" / "interest"), "demo", "--help"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    assert demo.returncode == 0 and "--out" in demo.stdout, demo.stderr
    ds = subprocess.run([str(py), "-c", "from interest_core.config import TrainConfig\n"
                         "from ray_train.engine import deepspeed_config\n"
                         "print(deepspeed_config(TrainConfig(zero_stage=3), 2, False)['zero_optimization']['stage'])"],
                        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert ds.returncode == 0 and ds.stdout.strip() == "3", ds.stderr
    quiet = subprocess.run([str(py), "-c", "from ray_train.logs import RAY_DATA_QUIET\n"
                            "from spark_jobs.session import QUIET_LOG4J\n"
                            "print(RAY_DATA_QUIET.is_file(), QUIET_LOG4J.is_file(), RAY_DATA_QUIET, QUIET_LOG4J)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert quiet.returncode == 0 and quiet.stdout.startswith("True True") and str(venv) in quiet.stdout, quiet


def test_ray_working_dir_package_holds_no_key_or_data(tmp_path):
    """`ray job submit --working-dir .` zips the directory the way packaging.create_package does: a key file and
    raw or derived data planted in the checkout stay out of the package, the code goes in."""
    import shutil
    import zipfile

    from ray._private.runtime_env.packaging import create_package

    src = tmp_path / "checkout"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv*", ".git", ".cache", "__pycache__", "demo_out",
                                                              "build", "*.egg-info"))
    planted = {"secret": "k" * 64, "hmac.key": "k" * 64, "keys/my-secret.txt": "k", "data/events.csv": "u1,i1,1",
               "demo_out/data/train/part-0.parquet": "x", "runs/r1/model/model.pt": "x", "exports/e/p.parquet": "x",
               "ml.inter": "x", "events.jsonl": "{}"}
    for name, text in planted.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    pkg = tmp_path / "pkg.zip"
    create_package(str(src), pkg, include_gitignore=True)
    names = set(zipfile.ZipFile(pkg).namelist())
    leaked = [n for n in names if any(n.rstrip("/").endswith(p) for p in planted)]
    assert not leaked, leaked
    assert {"ray_train/train.py", "interest_core/config.py", "spark_jobs/etl.py"} <= names

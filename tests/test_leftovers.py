"""The session-end check of tests/conftest.py: it fails a test session that leaves a process or a project file."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

LEAKY = '''
import subprocess, tempfile, os

def test_leaks():
    subprocess.Popen(["sleep", "600"])
    open(os.path.join(tempfile.gettempdir(), "interest-leak-check-{tag}"), "w").close()
'''


def test_a_session_that_leaves_a_process_or_a_project_file_fails(tmp_path):
    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "conftest.py")
    tag = os.urandom(4).hex()
    (tmp_path / "test_leaky.py").write_text(LEAKY.replace("{tag}", tag))
    leaked_file = Path(tempfile.gettempdir()) / f"interest-leak-check-{tag}"
    try:
        got = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                             cwd=REPO, capture_output=True, text=True, timeout=300,
                             env=os.environ | {"PYTHONPATH": str(REPO), "INTEREST_LEFTOVER_GRACE_S": "2"})
        assert got.returncode == 1, got.stdout[-2000:]
        assert "left behind by the test session" in got.stdout and "sleep 600" in got.stdout
        assert str(leaked_file) in got.stdout
    finally:
        for pid in re.findall(r"process (\d+): sleep 600", got.stdout if "got" in locals() else ""):
            os.kill(int(pid), signal.SIGKILL)
        leaked_file.unlink(missing_ok=True)

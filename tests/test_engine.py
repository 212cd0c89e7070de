"""The DeepSpeed engine the training workers build (ray_train/engine.py), on one rank in a process of its own."""
import json
import os
import socket
import subprocess
import sys

SCRIPT = """
import json, os
import torch
import torch.distributed as dist
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ["PORT"], RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
os.environ["TORCH_EXTENSIONS_DIR"] = os.environ["EXT_DIR"]
dist.init_process_group("gloo", rank=0, world_size=1)
from interest_core.config import load_config
from ray_train.engine import build_engine
engine, _ = build_engine(torch.nn.Linear(4, 4), load_config("tiny-cpu").train, 1, 10)
loss = engine(torch.ones(2, 4)).sum()
engine.backward(loss)
engine.step()
from deepspeed.comm import comm
print(json.dumps({"shm_op": comm.cdb.shm_comm_op is not None, "built": os.listdir(os.environ["EXT_DIR"])}))
dist.destroy_process_group()
"""


def test_training_builds_no_inference_communication_op(tmp_path):
    """A fresh machine's first training compiles nothing: DeepSpeed's shared-memory op serves tensor-parallel
    inference only, so the engine skips it (an empty torch extensions directory stays empty) and steps as before."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ext = tmp_path / "torch_extensions"
    ext.mkdir()
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PORT": str(port), "EXT_DIR": str(ext),
                               "DS_ACCELERATOR": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {"shm_op": False, "built": []}, got

